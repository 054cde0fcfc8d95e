"""The prompt-weighting remedy (dvdlib.remedies.weighting): the dominated concept up-weighted in
compel's syntax, on the smoke pipeline (CLIP), the toy world's pipeline (MiniLM, a BERT) and a tiny
SDXL; weight 1 is the plain image bit for bit, a weight above 1 moves only the concept's rows."""

import math

import numpy as np
import pytest
import torch

from dvdlib import models
from dvdlib.generate import pipeline_call
from dvdlib.remedies import weighting
from dvdlib.tokens import ConceptNotFound, concept_span, sequence_tokenizer

SAMPLER = {"resolution": 64, "steps": 2, "guidance": 7.5, "eta": 0.0, "negative_prompt": ""}
TOY_SAMPLER = {**SAMPLER, "resolution": 32, "guidance": 1.5}
#: two prompts of two concepts each, short enough for the toy world's 6 content tokens:
#: (prompt, dominant, dominated)
CASES = [("a red ball and a castle", "castle", "red ball"),
         ("a cube beside a ball", "cube", "ball")]


@pytest.fixture(scope="module")
def smoke():
    return models.load("smoke")


@pytest.fixture(scope="module")
def toy():
    from dvdlib.toy.model import build_toy

    return build_toy()


@pytest.fixture(scope="module")
def sdxl():
    return models.load("tiny:sdxl")


FAMILIES = {"smoke": SAMPLER, "toy": TOY_SAMPLER, "sdxl": SAMPLER}


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def remedy(pipe, sampler, seeds, weight, cases=CASES):
    prompts, dominant, dominated = zip(*cases)
    return weighting.generate(pipe, prompts, seeds, sampler, dominant=list(dominant), dominated=list(dominated),
                              weight=weight)


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_one_is_the_plain_image_bit_for_bit(family, request):
    """Same latents, steps, guidance and eta as the plain call; compel leaves weight-1 rows as the
    encoder gives them and the unconditional side is the pipeline's empty prompt, so nothing moves."""
    pipe, sampler, seeds = request.getfixturevalue(family), FAMILIES[family], [1825, 410]
    plain = pipe(**pipeline_call(pipe, [(p, s) for p, _, _ in CASES for s in seeds], sampler)).images
    weighted = remedy(pipe, sampler, seeds, 1.0)
    assert len(weighted) == len(plain) == 4  # order: [(p, s) for p in prompts for s in seeds]
    for a, b in zip(plain, weighted):
        assert np.array_equal(pixels(a), pixels(b))


def test_weight_above_one_changes_the_image(smoke):
    plain = remedy(smoke, SAMPLER, [1825], 1.0, CASES[:1])
    weighted = remedy(smoke, SAMPLER, [1825], 2.0, CASES[:1])
    assert np.abs(pixels(plain[0]) - pixels(weighted[0])).max() > 0


def conditioning(pipe, weight, case=CASES[0]):
    prompt, dominant, dominated = case
    encoder, plans = weighting.prepare(pipe, [prompt], dominant=[dominant], dominated=[dominated], weight=weight)
    return encoder.conditioning(plans)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", CASES)
def test_weight_moves_only_the_dominated_concepts_rows(family, case, request):
    """Rows of the prompt's conditioning that change are exactly the dominated concept's positions in
    the pipeline's token sequence (dvdlib.tokens.concept_span); the dominant concept's do not."""
    pipe = request.getfixturevalue(family)
    prompt, dominant, dominated = case
    plain, up = conditioning(pipe, 1.0, case)["prompt_embeds"][0], conditioning(pipe, 1.5, case)["prompt_embeds"][0]
    tokenizer = sequence_tokenizer(pipe)
    span = concept_span(tokenizer, prompt, dominated)
    changed = (plain != up).any(-1).nonzero().flatten().tolist()
    assert changed == span
    assert not set(changed) & set(concept_span(tokenizer, prompt, dominant))


@pytest.mark.parametrize("family", ["smoke", "toy"])
def test_weighted_rows_are_pushed_away_from_the_empty_prompt(family, request):
    """compel's weighting at the concept's rows: empty + weight · (z − empty), with the empty prompt
    the pipeline encodes for the unconditional side."""
    pipe = request.getfixturevalue(family)
    prompt, _, dominated = CASES[0]
    plain, up = conditioning(pipe, 1.0), conditioning(pipe, 1.5)
    z, weighted, empty = plain["prompt_embeds"][0], up["prompt_embeds"][0], up["negative_prompt_embeds"][0]
    own_empty = pipe.encode_prompt("", pipe.device, 1, False)[0][0]
    assert torch.equal(empty, own_empty)
    span = concept_span(sequence_tokenizer(pipe), prompt, dominated)
    expected = empty[span] + 1.5 * (z[span] - empty[span])
    assert torch.allclose(weighted[span], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_one_conditioning_is_the_pipelines_own(family, request):
    pipe = request.getfixturevalue(family)
    prompt = CASES[0][0]
    ours = conditioning(pipe, 1.0)["prompt_embeds"]
    if family == "sdxl":
        own = pipe.encode_prompt(prompt, device=pipe.device, num_images_per_prompt=1,
                                 do_classifier_free_guidance=False)[0]
    else:
        own = pipe.encode_prompt(prompt, pipe.device, 1, False)[0]
    assert torch.equal(ours, own)


def counting(pipe):
    """Forward calls of the text encoder(s) and the UNet, counted by hooks."""
    calls = []
    modules = [pipe.unet, pipe.text_encoder] + ([pipe.text_encoder_2] if hasattr(pipe, "text_encoder_2") else [])
    handles = [m.register_forward_hook(lambda *_: calls.append(1)) for m in modules]
    return calls, handles


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("which", ["dominated", "dominant"])
def test_a_concept_not_in_the_prompt_is_refused_before_compute(family, which, request):
    pipe = request.getfixturevalue(family)
    concepts = {"dominant": ["castle"], "dominated": ["red ball"], which: ["spaceship"]}
    calls, handles = counting(pipe)
    try:
        with pytest.raises(ConceptNotFound, match="spaceship"):
            weighting.generate(pipe, [CASES[0][0]], [1], SAMPLER, **concepts)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == []


@pytest.mark.parametrize("prompt, dominant, dominated", [
    ("a ball- and a cube", "ball", "cube"),  # compel: "ball-" is ball at 0.9
    ("a cube+ and a ball", "cube", "ball"),  # "cube+" is cube at 1.1
    ("a photo (at night) of a ball and a cube", "cube", "ball")])  # the parentheses vanish
def test_a_prompt_compel_would_misread_is_refused(smoke, prompt, dominant, dominated):
    """Words compel reads as its syntax would weight or drop other tokens: refused, prompt named."""
    with pytest.raises(ValueError, match="compel"):
        weighting.prepare(smoke, [prompt], dominant=[dominant], dominated=[dominated])


def test_a_dash_after_the_concept_stays_text(smoke):
    """"(ball)1.5-" is read as the weighted ball, then the dash as text: the pipeline's tokens."""
    _, plans = weighting.prepare(smoke, ["a ball- and a cube"], dominant=["cube"], dominated=["ball"])
    assert plans[0].weighted == "a (ball)1.5- and a cube"


def test_one_concept_per_prompt(smoke):
    with pytest.raises(ValueError, match="one concept per prompt"):
        weighting.prepare(smoke, [c[0] for c in CASES], dominant=["cube"], dominated=["ball"])


def test_weighted_prompt_in_compels_syntax():
    assert weighting.weighted_prompt("a photo of a ball and a tower", "ball") == "a photo of a (ball)1.5 and a tower"
    assert weighting.weighted_prompt("Van Gogh's Starry Night", "van gogh", 2) == "(Van Gogh)2.0's Starry Night"
    assert weighting.weighted_prompt("three balls on a mug", "ball", 1.25) == "three (balls)1.25 on a mug"
    assert weighting.weighted_prompt("a Spider-Man mug", "spider man") == "a (Spider-Man)1.5 mug"
    with pytest.raises(ConceptNotFound, match="nothing to weight"):
        weighting.weighted_prompt("a mug", "ball")


def test_possessive_and_hyphen_read_as_the_pipeline_reads_them(smoke):
    """The weighted string compel parses tokenizes to the pipeline's ids, with only the concept weighted."""
    prompts = ["a spider-man mug and a cat", "the ball's shadow on a tower"]
    _, plans = weighting.prepare(smoke, prompts, dominant=["cat", "tower"], dominated=["spider man", "ball"])
    assert [p.weighted for p in plans] == ["a (spider-man)1.5 mug and a cat", "the (ball)1.5's shadow on a tower"]


def test_key_names_the_remedy_and_its_weight():
    assert weighting.key() == {"remedy": "weighting", "weight": weighting.WEIGHT}
    assert weighting.key(weight=2) == {"remedy": "weighting", "weight": 2.0}
    for bad in (0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="weight"):
            weighting.key(weight=bad)


@pytest.mark.parametrize("family", FAMILIES)
def test_applies_to_the_unet_families(family, request):
    assert weighting.applies(request.getfixturevalue(family)) is None


@pytest.mark.parametrize("model", ["tiny:sd3", "tiny:flux"])
def test_applies_says_why_not_for_the_others(model):
    pipe = models.load(model)
    why = weighting.applies(pipe)
    assert isinstance(why, str) and why.endswith(".") and why.count(". ") == 0
    assert f"not yet for the {model.split(':')[1]} family" in why
    with pytest.raises(ValueError, match="does not apply"):
        weighting.generate(pipe, ["a ball and a cube"], [1], SAMPLER, dominant=["cube"], dominated=["ball"])


def test_applies_says_why_not_for_another_encoder(smoke):
    """An SD pipeline whose encoder is neither CLIP nor BERT: one sentence naming it."""
    from transformers import T5Config, T5EncoderModel

    other = type(smoke)(**{**smoke.components, "text_encoder": T5EncoderModel(T5Config(
        d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, vocab_size=100))})
    assert "T5EncoderModel" in weighting.applies(other)
