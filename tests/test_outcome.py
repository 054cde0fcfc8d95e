"""dvdlib.outcome: the outcome of an intervened generation (paper §3.6), checked by hand."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dvdlib.metrics import dvd_score
from dvdlib.outcome import (CORRUPTED, MITIGATED, NOT_MEMORIZED, UNCHANGED, DvDRule, MemorizedRule, dvd_outcome,
                            dvd_outcomes, embedding, mean_pairwise_similarity, memorized_outcome, pixel_embedding,
                            pixel_spread)


# --- DominanceBench: from the judge's Yes counts -------------------------------------------------

@pytest.mark.parametrize("c, n, expected", [
    (5, 0, UNCHANGED),   # DvD 100: still collapsed
    (4, 2, UNCHANGED),   # DvD 4·3/25·100 = 48 = τ: still collapsed (≥)
    (5, 2, UNCHANGED),   # DvD 60
    (3, 3, MITIGATED),   # DvD 24, both concepts present (3 of 5 each)
    (5, 5, MITIGATED),   # DvD 0, both fully present
    (3, 2, CORRUPTED),   # DvD 36 < 48, but the object is not present either: other
    (1, 5, CORRUPTED),   # the dominant concept gone
    (0, 0, CORRUPTED),   # nothing recognisable
])
def test_dvd_outcome_by_hand(c, n, expected):
    assert dvd_outcome(c, n, dvd_score(c, n)) == expected


def test_dvd_defaults_never_overlap():
    # with c ≥ 3 and n ≥ 3, DvD ≤ 5·2/25·100 = 40 < 48: "mitigated" and "unchanged" exclude each other
    for c in range(6):
        for n in range(6):
            both = c >= 3 and n >= 3
            assert not (both and dvd_score(c, n) >= 48)
            assert (dvd_outcome(c, n, dvd_score(c, n)) == MITIGATED) == both


def test_dvd_rule_thresholds_are_parameters():
    assert dvd_outcome(3, 3, 24.0, DvDRule(concept_min=4)) == CORRUPTED
    assert dvd_outcome(4, 2, 48.0, DvDRule(tau=60)) == CORRUPTED
    assert dvd_outcome(4, 2, 48.0, DvDRule(tau=60, object_min=2)) == MITIGATED
    # where thresholds overlap, "unchanged" (still collapsed) wins: c=5, n=3 → DvD 40 ≥ τ=20
    assert dvd_outcome(5, 3, 40.0, DvDRule(tau=20)) == UNCHANGED
    with pytest.raises(ValueError, match="out of 5"):
        DvDRule(concept_min=6)
    with pytest.raises(ValueError, match="tau"):
        DvDRule(tau=120)


def test_dvd_outcomes_per_prompt_from_means_over_seeds():
    counts = {1: [(5, 0), (4, 1)],   # c 4.5, n 0.5, DvD (100 + 64)/2 = 82 → unchanged
              2: [(5, 5), (3, 2)],   # c 4, n 3.5, DvD (0 + 36)/2 = 18 → mitigated
              3: [(0, 5), (1, 4)]}   # c 0.5, n 4.5, DvD (0 + 4)/2 = 2 → corrupted
    images = pd.DataFrame([{"case_num": case, "seed": s, "c": c, "n": n, "dvd": dvd_score(c, n)}
                           for case, pairs in counts.items() for s, (c, n) in zip((1825, 410), pairs)])
    table = dvd_outcomes(images)
    assert table["case_num"].tolist() == [1, 2, 3]
    assert table["c"].tolist() == [4.5, 4.0, 0.5] and table["n"].tolist() == [0.5, 3.5, 4.5]
    assert table["dvd"].tolist() == [82.0, 18.0, 2.0] and table["images"].tolist() == [2, 2, 2]
    assert table["outcome"].tolist() == [UNCHANGED, MITIGATED, CORRUPTED]
    with pytest.raises(ValueError, match="lacks column"):
        dvd_outcomes(images.drop(columns="n"))


# --- memorized prompts: similarity across seeds ------------------------------------------------

def bars(fraction: float, size: int = 32, vertical: bool = True) -> Image.Image:
    """White where x < fraction·size (or y, for vertical=False), black elsewhere."""
    a = np.zeros((size, size), np.uint8)
    cut = int(fraction * size)
    if vertical:
        a[:, :cut] = 255
    else:
        a[:cut, :] = 255
    return Image.fromarray(np.stack([a] * 3, -1))


def similarity(a, b):
    return mean_pairwise_similarity([a, b])


def test_pixel_similarity_by_hand():
    left, top = bars(0.5), bars(0.5, vertical=False)
    assert similarity(left, left) == pytest.approx(1.0)
    # left half vs top half: each quadrant contributes ±¼·¼, they cancel → correlation 0
    assert similarity(left, top) == pytest.approx(0.0, abs=1e-12)
    # left half (p=½) vs left three quarters (p=¾): cov = ½ − ½·¾ = ⅛; sd ½ and √(¾·¼) → 1/√3
    assert similarity(left, bars(0.75)) == pytest.approx(1 / np.sqrt(3))
    # the inverted picture is perfectly anti-correlated
    inverted = Image.fromarray(255 - np.asarray(left))
    assert similarity(left, inverted) == pytest.approx(-1.0)
    # contrast and brightness do not change it (correlation): 60 + 0.5·x
    dim = Image.fromarray((60 + np.asarray(left) // 2).astype(np.uint8))
    assert similarity(left, dim) == pytest.approx(1.0)


def test_pixel_embedding_shapes_and_flat_images():
    flat = Image.new("RGB", (32, 32), (128, 128, 128))
    e = pixel_embedding([bars(0.5), flat], size=16)
    assert e.shape == (2, 16 * 16 * 3)
    assert np.linalg.norm(e[0]) == pytest.approx(1.0) and not e[1].any()
    assert similarity(bars(0.5), flat) == 0.0  # a flat image has no pattern in common with anything
    # arrays in [0, 1] or [0, 255] are accepted as well as PIL images
    as_float = np.asarray(bars(0.5), dtype=np.float32) / 255
    assert mean_pairwise_similarity([as_float, bars(0.5)]) == pytest.approx(1.0)


def test_mean_pairwise_over_seeds():
    a, b = bars(0.5), bars(0.5, vertical=False)
    # pairs (a, a) = 1, (a, b) = 0, (a, b) = 0 → 1/3
    assert mean_pairwise_similarity([a, a, b]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least two"):
        mean_pairwise_similarity([a])


def test_similarity_function_is_a_parameter():
    def brightness(images):  # a one-number embedding: every non-black image "looks the same"
        return np.array([[np.asarray(im).mean() + 1.0] for im in images])

    assert mean_pairwise_similarity([bars(0.5), bars(0.5, vertical=False)], brightness) == pytest.approx(1.0)
    assert embedding(brightness) is brightness
    assert embedding("pixels") is pixel_embedding
    with pytest.raises(ValueError, match="unknown similarity"):
        embedding("sscd")


def test_clip_embedding_from_a_folder(tmp_path):
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=8)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    embed = embedding(f"clip:{tmp_path}")
    vectors = embed([bars(0.5), bars(0.5), bars(0.25, vertical=False)])
    assert vectors.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert mean_pairwise_similarity([bars(0.5), bars(0.5)], embed) == pytest.approx(1.0)


def test_pixel_spread():
    assert pixel_spread([Image.new("RGB", (32, 32), (90, 90, 90))]) == 0.0
    assert pixel_spread([bars(0.5)]) == pytest.approx(0.5)  # half 0, half 1
    assert pixel_spread([bars(0.5), Image.new("RGB", (32, 32))]) == pytest.approx(0.25)


@pytest.mark.parametrize("before, after, spread, expected", [
    (0.3, 0.1, 0.3, NOT_MEMORIZED),  # the plain images do not reproduce: nothing to mitigate
    (0.9, 0.1, 0.3, MITIGATED),
    (0.9, 0.5, 0.3, UNCHANGED),      # not *below* the threshold
    (0.9, 0.8, 0.3, UNCHANGED),
    (0.9, 0.1, 0.01, CORRUPTED),     # blank images
])
def test_memorized_outcome_by_hand(before, after, spread, expected):
    assert memorized_outcome(before, after, spread) == expected


def test_memorized_rule_parameters():
    assert memorized_outcome(0.9, 0.6, 0.3, MemorizedRule(threshold=0.7)) == MITIGATED
    assert memorized_outcome(0.6, 0.1, 0.3, MemorizedRule(threshold=0.7)) == NOT_MEMORIZED
    assert memorized_outcome(0.9, 0.1, 0.01, MemorizedRule(blank_std=0)) == MITIGATED
    assert memorized_outcome(None, 0.1, 0.3) == MITIGATED  # no baseline check
    assert memorized_outcome(None, 0.8, 0.3) == UNCHANGED
    with pytest.raises(ValueError, match="cosine"):
        MemorizedRule(threshold=2)
