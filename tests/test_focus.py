"""dvdlib.focus on its own (paper §3.4): the Focus Score table, per-prompt reduction, the layer
tests and the peak token, on hand-made attention shares."""

import numpy as np
import pandas as pd
import pytest

from dvdlib import focus
from dvdlib.generate import Sample
from dvdlib.tokens import ConceptNotFound, clip_tokenizer, concept_span, content_positions

PROMPT = "a mug and a pouch"


@pytest.fixture(scope="module")
def tok():
    return clip_tokenizer()


def shares(tok, peak: int | None, value: float = 0.9) -> np.ndarray:
    """Token shares over 77 positions: uniform over the content tokens, or ``value`` on one."""
    positions = content_positions(tok, PROMPT)
    a = np.zeros(77)
    a[positions] = 1 / len(positions)
    if peak is not None:
        a[positions] = (1 - value) / (len(positions) - 1)
        a[peak] = value
    return a


def test_focus_table_reads_every_layer_of_every_sample(tok):
    positions = content_positions(tok, PROMPT)
    peaked = Sample(PROMPT, 1, None, {"share/L1/S1": shares(tok, positions[1]), "share/L2/S1": shares(tok, None)})
    table = focus.focus_table([peaked], tok, [1, 2])
    assert list(table.layer) == [1, 2] and table.peak_token[0] == "mug"
    assert table.focus[0] > 0.5 and table.focus[1] == pytest.approx(0.0, abs=1e-9)  # uniform: no focus


def test_per_prompt_reduces_seeds():
    table = pd.DataFrame({"prompt": ["p"] * 4, "layer": [1, 1, 2, 2], "focus": [0.1, 0.3, 0.2, 0.6]})
    assert list(focus.per_prompt(table).focus) == pytest.approx([0.2, 0.4])
    assert list(focus.per_prompt(table, "max").focus) == pytest.approx([0.3, 0.6])


def test_layer_tests_find_the_layer_that_separates_the_sets():
    rng = np.random.default_rng(0)
    bench = pd.DataFrame({"prompt": np.repeat(range(12), 2), "layer": [1, 2] * 12,
                          "focus": np.ravel([[0.5 + rng.random() * 0.1, rng.random()] for _ in range(12)])})
    control = bench.assign(focus=lambda d: np.where(d.layer == 1, d.focus - 0.5, d.focus[::-1].to_numpy()))
    tests = focus.layer_tests(bench, control).set_index("layer")
    assert tests.loc[1, "significant"] and not tests.loc[2, "significant"]
    assert tests.loc[1, "n_bench"] == tests.loc[1, "n_control"] == 12
    assert (tests.p_adjusted >= tests.p).all()


def test_peak_on_concept_averages_seeds_and_layers(tok):
    positions = content_positions(tok, PROMPT)
    mug, pouch = positions[1], positions[4]
    samples = [Sample(PROMPT, s, None, {"share/L8/S1": shares(tok, pouch, 0.6), "share/L9/S1": shares(tok, mug, 0.5)})
               for s in (1, 2)]
    peaks = focus.peak_on_concept(samples, tok, {PROMPT: "pouch"}, layers=[8, 9])
    assert peaks.peak[0] == pouch and bool(peaks.on_concept[0])
    only_nine = focus.peak_on_concept(samples, tok, {PROMPT: "pouch"}, layers=[9])
    assert only_nine.peak[0] == mug and not only_nine.on_concept[0]


def test_peak_token_chance_is_per_prompt(tok):
    """A peak drawn at random hits the concept with the share of the prompt's content tokens that
    spell it: 1 of the 5 content tokens of "a mug and a pouch" (not one half)."""
    positions = content_positions(tok, PROMPT)
    pouch = positions[4]
    samples = [Sample(PROMPT, 1, None, {"share/L8/S1": shares(tok, pouch, 0.6)})]
    peaks = focus.peak_on_concept(samples, tok, {PROMPT: "pouch"}, layers=[8])
    assert len(positions) == 5 and peaks.chance[0] == pytest.approx(1 / 5)
    two = focus.peak_on_concept_at(samples, tok, {PROMPT: positions[3:5]}, layers=[8])  # "a pouch": two tokens
    assert two.chance[0] == pytest.approx(2 / 5)
    assert focus.peak_on_concept(samples, tok, "a pouch", layers=[8]).equals(two)  # one concept for every prompt


# words at the surface, positions one level down: the same numbers on the packaged CLIP tokenizer -----------

BAG = "The Colosseum, Rome Italy Carry-all Pouch"  # "carry-all pouch": 4 tokens, 7–10 (tests/test_tokens.py)
TWICE = "a red mug and a blue mug"                 # "mug" at 3 and at 7


def random_samples(tok, prompt, peak=None, seeds=(1, 2, 3), layers=(8, 9, 10)):
    """Random token shares of ``prompt``'s content tokens per seed and layer; ``peak`` raised in all."""
    rng = np.random.default_rng(len(prompt))
    positions = content_positions(tok, prompt)
    samples = []
    for seed in seeds:
        attention = {}
        for layer in layers:
            a = np.zeros(77)
            a[0] = 0.5
            a[positions] = rng.uniform(0.0, 0.02, len(positions))
            if peak is not None:
                a[peak] += 0.05
            attention[f"share/L{layer}/S1"] = a
        samples.append(Sample(prompt, seed, None, attention))
    return samples


@pytest.mark.parametrize("prompt, word, span, peak", [
    (BAG, "carry-all pouch", [7, 8, 9, 10], 9),   # a multi-token word, the peak on one of its tokens
    (BAG, "colosseum", [2, 3], 9),                # the peak on another concept's token
    (TWICE, "mug", [3], 3),                       # a word appearing twice: its first occurrence ...
    (TWICE, "mug", [3], 7),                       # ... so a peak on the second is not on it
    (PROMPT, "a pouch", [4, 5], None),            # random shares, no planted peak
])
def test_peak_on_concept_by_words_equals_by_positions(tok, prompt, word, span, peak):
    assert concept_span(tok, prompt, word) == span
    samples = random_samples(tok, prompt, peak) + random_samples(tok, "a mug and a pouch")
    by_words = focus.peak_on_concept(samples, tok, {prompt: word, PROMPT: "mug"})
    by_positions = focus.peak_on_concept_at(samples, tok, {prompt: span, PROMPT: concept_span(tok, PROMPT, "mug")})
    pd.testing.assert_frame_equal(by_words, by_positions)
    if peak is not None:
        assert by_words.peak[0] == peak and bool(by_words.on_concept[0]) == (peak in span)


def test_peak_on_concept_names_a_missing_word_and_a_missing_prompt(tok):
    samples = random_samples(tok, PROMPT)
    with pytest.raises(ConceptNotFound, match=r"concept 'notebook' not found in prompt 'a mug and a pouch'"):
        focus.peak_on_concept(samples, tok, {PROMPT: "notebook"})
    with pytest.raises(ValueError, match=r"no concept given for prompt 'a mug and a pouch'"):
        focus.peak_on_concept(samples, tok, {"another prompt": "mug"})


def test_example_maps_share_one_perceptual_scale_and_a_labelled_colour_bar():
    """Chapter 04's maps: a perceptual colour map (not jet), one scale from 0 for every map, and a
    colour bar that says what the value is."""
    import matplotlib.pyplot as plt
    from PIL import Image

    from dvdlib import plots

    fig = plots.attention_overlay(Image.new("RGB", (32, 32)), {"tower": np.full((4, 4), 0.5), "ball": np.full((4, 4), 0.1)})
    maps = [im for ax in fig.axes[1:3] for im in ax.get_images()]
    assert [im.get_cmap().name for im in maps] == ["magma", "magma"]
    assert all(im.get_clim() == (0.0, 0.5) for im in maps)  # one scale: the ball's map is darker
    assert "attention" in fig.axes[-1].get_ylabel()
    plt.close(fig)
