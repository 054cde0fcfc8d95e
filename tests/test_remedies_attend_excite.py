"""The Attend-and-Excite remedy (dvdlib.remedies.attend_excite) against diffusers' own
StableDiffusionAttendAndExcitePipeline, on the smoke model (128 px, real CLIP tokenizer) and the
toy model (32 px, MiniLM WordPiece tokenizer, 2x space-to-depth "VAE"), a step or two each."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionAttendAndExcitePipeline

from dvdlib import models
from dvdlib.generate import initial_latents, pipeline_call
from dvdlib.remedies import attend_excite as ae
from dvdlib.tokens import ConceptNotFound, clip_tokenizer

SMOKE = {"resolution": 128, "steps": 1, "guidance": 7.5, "eta": 0.0, "sampler": "DDIM"}
TOY = {"resolution": 32, "steps": 2, "guidance": 1.5, "eta": 0.0, "sampler": "DDIM"}
SEEDS = [1825, 410]
TOY_MODEL = Path(__file__).resolve().parents[1] / "toy" / "run1" / "model"


@pytest.fixture(scope="module")
def smoke():
    return models.load("smoke")


@pytest.fixture(scope="module")
def toy():
    if not (TOY_MODEL / "toy.json").is_file():
        pytest.skip("the toy model toy/run1/model is not here")
    from dvdlib.toy.model import load_toy

    return load_toy(TOY_MODEL)


def diffusers_pipeline(pipe):
    """The Attend-and-Excite pipeline built here by hand, on the same modules."""
    return StableDiffusionAttendAndExcitePipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
        scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def arrays(images) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.int16) for image in images])


# (a) the update is diffusers' pipeline for the same inputs

@pytest.mark.parametrize("world", ["smoke", "toy"])
def test_one_step_matches_diffusers_pipeline(world, request):
    pipe = request.getfixturevalue(world)
    if world == "smoke":
        prompt, dominant, dominated, sampler, grid = "a photo of a cat and a dog", "cat", "dog", SMOKE, 4
    else:
        prompt, dominant, dominated, sampler, grid = "tower and ball", "tower", "ball", TOY, 4
    side = sampler["resolution"]
    names = [n.replace("</w>", "") for n in pipe.tokenizer.convert_ids_to_tokens(pipe.tokenizer(prompt).input_ids)]
    indices = [names.index(dominant), names.index(dominated)]  # the pipeline's own numbering (get_indices)
    theirs = diffusers_pipeline(pipe)
    theirs.set_progress_bar_config(disable=True)
    direct = dict(prompt=prompt, token_indices=indices, latents=initial_latents(pipe, SEEDS, side),
                  height=side, width=side, num_inference_steps=sampler["steps"], guidance_scale=sampler["guidance"],
                  eta=sampler["eta"], num_images_per_prompt=len(SEEDS), attn_res=(grid, grid))
    expected = theirs(**direct, output_type="latent").images
    ours = ae.run(pipe, [prompt], SEEDS, sampler, dominant=dominant, dominated=dominated, output_type="latent")
    assert torch.equal(ours, expected)
    one = {**direct, "latents": direct["latents"][:1], "num_images_per_prompt": 1}  # the images: one seed is enough
    images = ae.generate(pipe, [prompt], SEEDS[:1], sampler, dominant=dominant, dominated=dominated)
    assert np.array_equal(arrays(images), arrays(theirs(**one).images))
    # and it did change the latents: the plain step from the same noise differs
    plain = pipe(**pipeline_call(pipe, [(prompt, s) for s in SEEDS], {**sampler}, want_image=False)).images
    assert (ours - plain).abs().max() > 1e-3


def test_update_leaves_the_shared_unet_as_it_was(smoke):
    processors = dict(smoke.unet.attn_processors)
    grads = [p.requires_grad for p in smoke.unet.parameters()]
    ae.run(smoke, ["a cat and a dog"], SEEDS[:1], SMOKE, dominant="cat", dominated="dog", output_type="latent")
    assert smoke.unet.attn_processors == processors and [p.requires_grad for p in smoke.unet.parameters()] == grads


def test_unet_restored_after_a_failure(smoke, monkeypatch):
    processors = dict(smoke.unet.attn_processors)

    def broken(self, latents, *args, **kwargs):
        raise RuntimeError("stop")

    monkeypatch.setattr(StableDiffusionAttendAndExcitePipeline, "_update_latent", broken)
    with pytest.raises(RuntimeError, match="stop"):
        ae.run(smoke, ["a cat and a dog"], SEEDS[:1], SMOKE, dominant="cat", dominated="dog", output_type="latent")
    assert smoke.unet.attn_processors == processors


# (b) no update: the plain generation

@pytest.mark.parametrize("world", ["smoke", "toy"])
def test_no_update_is_the_plain_generation(world, request):
    """With ``max_iter_to_alter=0`` nothing is changed (the threshold steps are dropped too), and
    the result is the plain pipeline's for the same prompts and seeds, in the contract's order.
    Not bitwise: Attend-and-Excite's attention processor computes the attention as
    softmax(baddbmm(q, k)) @ v in every layer (it must, to keep the maps), where the plain
    pipeline's uses torch's fused scaled_dot_product_attention; the two round differently (about
    1e-6 here), which a few steps carry to the final latents."""
    pipe = request.getfixturevalue(world)
    if world == "smoke":
        prompts, dominant, dominated, sampler = ["a photo of a cat and a dog", "a dog beside a red mug"], \
            ["cat", "dog"], ["dog", "mug"], {**SMOKE, "steps": 3}
    else:
        prompts, dominant, dominated, sampler = ["tower and ball", "ball and tower"], "tower", "ball", {**TOY, "steps": 3}
    jobs = [(p, s) for p in prompts for s in SEEDS]
    ours = ae.run(pipe, prompts, SEEDS, sampler, dominant=dominant, dominated=dominated, output_type="latent",
                  max_iter_to_alter=0)
    plain = pipe(**pipeline_call(pipe, jobs, sampler, want_image=False)).images
    assert ours.shape == plain.shape
    torch.testing.assert_close(ours, plain, rtol=1e-4, atol=1e-4)
    images = ae.generate(pipe, prompts, SEEDS, sampler, dominant=dominant, dominated=dominated, max_iter_to_alter=0)
    plain_images = pipe(**pipeline_call(pipe, jobs, sampler)).images
    assert len(images) == len(jobs)
    assert np.abs(arrays(images) - arrays(plain_images)).max() <= 1  # one level of 255 at most


def test_threshold_steps_past_max_iter_to_alter_are_dropped(smoke):
    [call] = ae.calls(smoke, ["a cat and a dog"], SEEDS, SMOKE, dominant="cat", dominated="dog",
                      max_iter_to_alter=10)
    assert call["thresholds"] == {0: 0.05}
    [call] = ae.calls(smoke, ["a cat and a dog"], SEEDS, SMOKE, dominant="cat", dominated="dog")
    assert call["thresholds"] == {0: 0.05, 10: 0.5, 20: 0.8} and call["max_iter_to_alter"] == 25
    assert call["scale_factor"] == 20 and call["num_images_per_prompt"] == 2 and call["prompt"] == "a cat and a dog"
    assert torch.equal(call["latents"], initial_latents(smoke, SEEDS, 128))


# (c) the token indices point at the concept words

@pytest.mark.parametrize("prompt, dominant, dominated", [
    ("Neuschwanstein Castle Coaster", "neuschwanstein castle", "coaster"),
    ("a carry-all pouch and Van Gogh's starry night", "van gogh", "carry-all pouch"),
    ("a photo of a cat and a dog", "cat", "dog"),
])
def test_indices_spell_the_concepts_with_the_clip_tokenizer(smoke, prompt, dominant, dominated):
    tokenizer = smoke.tokenizer
    assert tokenizer.get_vocab() == clip_tokenizer().get_vocab()  # the smoke model reads with the real CLIP BPE
    ids = tokenizer(prompt).input_ids
    names = diffusers_pipeline(smoke).get_indices(prompt)  # the pipeline's own numbering
    assert names[0] == "<|startoftext|>"  # position 0 is the start token there too
    first, second = (ae.token_indices(smoke, prompt, c, c) for c in (dominant, dominated))
    for concept, span in ((dominant, first), (dominated, second)):
        assert tokenizer.decode([ids[i] for i in span]).replace(" ", "").replace("-", "") == \
            concept.replace(" ", "").replace("-", "")
        assert "".join(names[i] for i in span).replace("</w>", "").replace("-", "") == \
            concept.replace(" ", "").replace("-", "")
    assert ae.token_indices(smoke, prompt, dominant, dominated) == first + second
    last = ae.token_indices(smoke, prompt, dominant, dominated, tokens="last")
    assert last == [first[-1], second[-1]]


def test_indices_spell_the_concepts_with_the_toy_tokenizer(toy):
    prompt = "ball and tower"
    ids = toy.tokenizer(prompt).input_ids
    indices = ae.token_indices(toy, prompt, "tower", "ball")
    assert [toy.tokenizer.decode([ids[i]]) for i in indices] == ["tower", "ball"]
    assert indices == [3, 1]  # [CLS] ball and tower [SEP]
    names = diffusers_pipeline(toy).get_indices(prompt)
    assert [names[i] for i in indices] == ["tower", "ball"]


def test_attention_resolution_is_the_grid_attend_and_excite_reads(smoke, toy):
    assert ae.attention_resolution(smoke, 128) == 4  # 16×16 latents: grids 16, 8, 4, 2
    assert ae.attention_resolution(smoke, 512) == 16  # SD's 512 px: the paper's 16×16
    assert ae.attention_resolution(toy, 32) == 4  # 2× VAE: 16×16 latents, grids 16, 8, 4, 2
    assert ae.attention_resolution(toy, 32, attn_res=8) == 8
    with pytest.raises(ValueError, match=r"grids are \[2, 4, 8, 16\]"):
        ae.attention_resolution(toy, 32, attn_res=1)  # diffusers' own default at 32 px, ceil(32 / 32)


# (d) a concept not in the prompt: a clear error before any compute

def test_missing_concept_fails_before_any_compute(smoke, monkeypatch):
    def no_compute(*args, **kwargs):
        raise AssertionError("computed before checking the concepts")

    monkeypatch.setattr(StableDiffusionAttendAndExcitePipeline, "__call__", no_compute)
    monkeypatch.setattr(type(smoke.unet), "forward", no_compute)
    with pytest.raises(ConceptNotFound, match="'giraffe'.*'a cat and a dog'"):
        ae.generate(smoke, ["a photo of a cat and a dog", "a cat and a dog"], SEEDS, SMOKE,
                    dominant=["cat", "cat"], dominated=["dog", "giraffe"])
    with pytest.raises(ValueError, match="2 given for 1 prompts"):
        ae.generate(smoke, ["a cat and a dog"], SEEDS, SMOKE, dominant=["cat", "dog"], dominated="dog")


# key, applies

def test_key_fills_every_default_and_survives_json():
    k = ae.key()
    assert k == {"remedy": "attend_excite", "max_iter_to_alter": 25, "thresholds": [[0, 0.05], [10, 0.5], [20, 0.8]],
                 "scale_factor": 20.0, "attn_res": None, "tokens": "all"}
    assert json.loads(json.dumps(k)) == k
    assert ae.key(thresholds={"10": 0.5, "0": 0.05, "20": 0.8}) == k  # string keys, as JSON gives them
    assert ae.key(max_iter_to_alter=10) != k
    with pytest.raises(TypeError, match="no parameter"):
        ae.key(max_iter=3)
    with pytest.raises(ValueError, match="tokens"):
        ae.key(tokens="first")


def test_applies(smoke, toy):
    assert ae.applies(smoke) is None and ae.applies(toy) is None
    for family, words in (("tiny:sdxl", "SDXL"), ("tiny:sd3", "no UNet"), ("tiny:flux", "no UNet")):
        reason = ae.applies(models.load(family))
        assert reason and words in reason and reason.endswith(".") and reason.count(". ") == 0
    with pytest.raises(ValueError, match="cannot run here.*SDXL"):
        ae.generate(models.load("tiny:sdxl"), ["a cat and a dog"], SEEDS, SMOKE, dominant="cat", dominated="dog")
