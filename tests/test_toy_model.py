"""The toy model: a standard StableDiffusionPipeline built offline around the
frozen MiniLM encoder; the layer registry, attention recording and span finding work on it; it
saves and loads; training is deterministic and resumes bitwise-identically."""
import json

import numpy as np
import pytest
import torch

import dvdlib
from dvdlib.tokens import concept_span, content_positions
from dvdlib.toy import model as toy
from dvdlib.toy.train import TrainConfig, export, learning_rate, train

#: A UNet small enough to train a few steps in a second (same block layout as the real one).
TINY_UNET = {"block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4, "attention_head_dim": [1, 2, 2, 2]}


@pytest.fixture(scope="module")
def pipe():
    return toy.build_toy(seed=0)


def test_pipeline_is_a_standard_sd_pipeline(pipe):
    from diffusers import StableDiffusionPipeline

    assert isinstance(pipe, StableDiffusionPipeline)
    assert pipe.vae_scale_factor == 2 and pipe.unet.config.sample_size * pipe.vae_scale_factor == 32
    assert pipe.tokenizer.model_max_length == toy.MAX_TOKENS == 8
    assert not any(p.requires_grad for p in pipe.text_encoder.parameters())
    assert pipe.scheduler.config.prediction_type == "v_prediction"


def test_registry_numbers_sixteen_layers_like_sd(pipe):
    layers = dvdlib.registry(pipe)
    assert [layer.index for layer in layers] == list(range(1, 17))
    assert [layer.size for layer in layers] == [16, 16, 8, 8, 4, 4, 2, 4, 4, 4, 8, 8, 8, 16, 16, 16]
    assert [layer.block for layer in layers] == ["down"] * 6 + ["mid"] + ["up"] * 9
    assert layers[6].name.startswith("mid_block") and layers[7].name.startswith("up_blocks.1")
    assert [layer.heads for layer in layers] == [2, 2, 4, 4, 8, 8, 8, 8, 8, 8, 4, 4, 4, 2, 2, 2]
    # every text path is a numbered layer: the only cross-attention modules are the attn2 ones
    from diffusers.models.attention_processor import Attention
    cross = [n for n, m in pipe.unet.named_modules() if isinstance(m, Attention) and m.is_cross_attention]
    assert sorted(cross) == sorted(layer.name for layer in layers)


def test_span_finding_on_the_wordpiece_tokenizer(pipe):
    assert concept_span(pipe.tokenizer, "tower and ball", "ball") == [3]
    assert concept_span(pipe.tokenizer, "tower and ball", "tower") == [1]
    assert concept_span(pipe.tokenizer, "Mosaic and rings", "ring") == [3]
    assert content_positions(pipe.tokenizer, "robot and box") == [1, 2, 3]


def test_text_states_are_distinct_per_prompt(pipe):
    states, _ = pipe.encode_prompt(["tower and ball", "ball and tower", "ball", ""], "cpu", 1, False)
    assert states.shape == (4, 8, 384)
    for i in range(4):
        for j in range(i):
            assert (states[i] - states[j]).abs().mean() > 0.05


def test_space_to_depth_vae_is_lossless(pipe):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z = pipe.vae.encode(x).latent_dist.mode()
    assert z.shape == (2, 12, 16, 16)
    assert torch.equal(pipe.vae.decode(z).sample, x)


def test_generation_with_guidance_and_recording(pipe):
    latents = torch.randn(1, 12, 16, 16, generator=torch.Generator().manual_seed(0))
    with dvdlib.record(pipe, layers="all", steps=[1]) as rec:
        out = pipe(["tower and ball"], latents=latents, num_inference_steps=2, guidance_scale=3.0, output_type="np")
    assert out.images.shape == (1, 32, 32, 3)
    assert sorted(rec.keys()) == [(n, 1) for n in range(1, 17)]
    share = rec.share(9, 1)
    assert share.shape == (1, 8) and np.allclose(share.sum(-1), 1, atol=1e-4)


def test_save_and_load_round_trip(pipe, tmp_path):
    folder = toy.save_toy(pipe, tmp_path / "model", info={"steps": 0})
    assert toy.is_toy_folder(folder) and json.loads((folder / toy.MARKER).read_text())["steps"] == 0
    assert not (folder / "text_encoder").exists()  # the encoder's weights come from the package
    loaded = toy.load_toy(folder)
    assert isinstance(loaded.vae, toy.SpaceToDepthVAE) and loaded.unet.dtype == torch.float32
    weights = loaded.unet.state_dict()
    for key, value in pipe.unet.state_dict().items():
        assert torch.equal(weights[key], value.half().float()), key
    a, _ = pipe.encode_prompt(["ring and box"], "cpu", 1, False)
    b, _ = loaded.encode_prompt(["ring and box"], "cpu", 1, False)
    assert torch.equal(a, b)
    assert len(dvdlib.registry(loaded)) == 16
    from dvdlib.worlds import get

    via_load = get("toy").load_model(str(folder))  # the toy world loads its folders with load_toy
    assert isinstance(via_load.vae, toy.SpaceToDepthVAE)
    assert torch.equal(via_load.unet.state_dict()[key], weights[key])


def test_learning_rate_schedule():
    cfg = TrainConfig()
    assert learning_rate(cfg, 0) == pytest.approx(cfg.lr / cfg.warmup)
    assert learning_rate(cfg, cfg.warmup - 1) == learning_rate(cfg, cfg.decay_start - 1) == cfg.lr
    assert learning_rate(cfg, 4 * cfg.decay_start - 1) == pytest.approx(cfg.lr / 2)


def tiny(steps):
    return TrainConfig(steps=steps, batch_size=4, unet=TINY_UNET, checkpoint_every=2, log_every=1,
                       eval_images=8, eval_timesteps=[500])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 4-step run straight through, and one of 2 steps resumed to 4."""
    root = tmp_path_factory.mktemp("toy_runs")
    straight = train(root / "straight", tiny(4), progress=False)
    train(root / "split", tiny(2), progress=False)
    resumed = train(root / "split", tiny(4), progress=False)
    return root, straight, resumed


def test_training_resumes_bitwise_identically(runs):
    root, straight, resumed = runs
    assert resumed.step == straight.step == 4
    for mine, theirs in ((resumed.unet, straight.unet), (resumed.ema, straight.ema)):
        for (key, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(a, b), key
    logs = [(root / run / "loss.csv").read_text() for run in ("straight", "split")]
    drop_wall = [[line.rsplit(",", 1)[0] for line in log.splitlines()] for log in logs]
    assert drop_wall[0] == drop_wall[1] and len(drop_wall[0]) == 5
    losses = [float(line.split(",")[1]) for line in drop_wall[0][1:]]
    assert all(np.isfinite(losses)) and max(losses) < 3.0  # v-targets have unit variance
    evals = [(root / run / "eval.csv").read_text().splitlines() for run in ("straight", "split")]
    assert evals[0] == evals[1] and len(evals[0]) == 3  # header, step 2, step 4


def test_resume_refuses_another_config(runs):
    root, _, _ = runs
    with pytest.raises(ValueError, match="lr"):
        train(root / "split", TrainConfig(**{**tiny(6).__dict__, "lr": 1e-3}), progress=False)


def test_export_writes_a_loadable_model_and_manifest(runs):
    root, _, _ = runs
    manifest = export(root / "straight")
    for key in ("config", "seed", "steps", "data_hash", "wall_time_s", "final_loss", "conditioning"):
        assert key in manifest, key
    assert manifest["steps"] == 4 and json.loads((root / "straight" / "manifest.json").read_text()) == manifest
    loaded = toy.load_toy(root / "straight" / "model")
    assert loaded.unet.config.block_out_channels == [8, 8, 8, 8]
    assert torch.equal(loaded.unet.state_dict()["conv_out.bias"], runs[1].ema.state_dict()["conv_out.bias"].half().float())


def test_a_run_continues_from_its_export_when_checkpoints_are_gone(tmp_path):
    """Checkpoints are not committed; the small export is. A new session continues from it."""
    import shutil

    out = tmp_path / "run"
    first = train(out, tiny(2), progress=False)
    export(out)
    shutil.rmtree(out / "checkpoints")
    second = train(out, tiny(4), progress=False)
    assert second.step == 4
    losses = (out / "loss.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in losses[1:]] == ["1", "2", "3", "4"]  # steps 3–4 appended
    started = toy.load_toy(out / "model").unet.state_dict()  # the step-2 export it continued from
    assert not torch.equal(second.unet.state_dict()["conv_out.bias"], started["conv_out.bias"])
    assert second.data_hash == first.data_hash
