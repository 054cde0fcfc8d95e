"""The noise-prediction norm (Wen et al. 2024; paper §3.7): the pure function by
hand, the hook against two direct UNet calls on the smoke model, the store, the order test."""
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import dvdlib
from dvdlib import memorization, noise_norm
from dvdlib.generate import initial_latents
from dvdlib.metrics import noise_prediction_norm
from dvdlib.store import Store
from dvdlib.findings import unwritten_claims


def test_norm_by_hand():
    cond = np.zeros((2, 1, 2, 2))
    uncond = np.zeros((2, 1, 2, 2))
    cond[0, 0, 0, 0], cond[0, 0, 1, 1] = 3.0, 4.0  # image 0: a 3-4-5 triangle
    cond[1] = 1.0  # image 1: four ones → √4 = 2
    uncond[1, 0, 0, 0] = 1.0  # ... minus one of them → √3
    assert noise_prediction_norm(cond, uncond) == pytest.approx([5.0, np.sqrt(3.0)])
    assert noise_prediction_norm(uncond, cond) == pytest.approx([5.0, np.sqrt(3.0)])  # symmetric


def test_norm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        noise_prediction_norm(np.zeros((1, 4, 2, 2)), np.zeros((1, 4, 2, 3)))


def test_v_prediction_difference_becomes_epsilon_difference():
    # x_t = √ᾱ x0 + √(1−ᾱ) ε, v = √ᾱ ε − √(1−ᾱ) x0; both branches see the same x_t
    rng = np.random.default_rng(0)
    alpha_bar = 0.3
    a, s = np.sqrt(alpha_bar), np.sqrt(1 - alpha_bar)
    x_t, eps_c, eps_u = rng.normal(size=(3, 8))
    v = {k: a * e - s * (x_t - s * e) / a for k, e in (("c", eps_c), ("u", eps_u))}
    scale = noise_norm.epsilon_scale("v_prediction", alpha_bar)
    assert scale * (v["c"] - v["u"]) == pytest.approx(eps_c - eps_u)
    assert noise_norm.epsilon_scale("epsilon", alpha_bar) == 1.0
    with pytest.raises(ValueError, match="sample"):
        noise_norm.epsilon_scale("sample", alpha_bar)


def test_first_steps_scale_with_the_schedule():
    assert [memorization.first_steps(n) for n in (50, 25, 10, 3)] == [10, 5, 2, 1]


def test_per_prompt_averages_first_steps_and_seeds():
    table = pd.DataFrame([{"prompt": p, "seed": seed, "step": step, "norm": base + 10 * step + seed}
                          for p, base in (("a", 0.0), ("b", 100.0)) for seed in (0, 2) for step in (1, 2, 3)])
    scores = memorization.per_prompt(table, first=2).set_index("prompt")["score"]
    # steps 1–2, seeds 0 and 2: mean of 10, 20, 12, 22 = 16
    assert scores["a"] == pytest.approx(16.0) and scores["b"] == pytest.approx(116.0)
    with pytest.raises(ValueError, match="1..3"):
        memorization.per_prompt(table, first=4)


def test_order_tests():
    scores = {"memorized": [10.0, 11, 12, 13], "dominancebench": [5.0, 6, 7, 8], "balanced": [1.0, 2, 3, 4]}
    tests = memorization.order_tests(scores).set_index(["higher", "lower"])
    assert list(tests.index) == [("memorized", "dominancebench"), ("memorized", "balanced"),
                                 ("dominancebench", "balanced")]
    assert (tests["P(higher > lower)"] == 1.0).all()
    assert (tests["U"] == 16).all()
    # fully separated samples of 4 and 4: exact one-sided p = 1 / C(8, 4) = 1/70
    assert tests["p"].to_numpy() == pytest.approx(np.full(3, 1 / 70))
    assert tests["holds"].all()
    reversed_order = memorization.order_tests(dict(reversed(list(scores.items()))))
    assert not reversed_order["holds"].any()
    assert (reversed_order["P(higher > lower)"] == 0.0).all()


# on the smoke model ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke():
    return dvdlib.load("smoke")


def test_hook_matches_two_direct_unet_calls(smoke):
    """What the hook reads from the CFG batch equals ‖UNet(x_t, prompt) − UNet(x_t, "")‖ computed
    with two separate UNet calls at every step's x_t."""
    prompts, steps = ["Colosseum Carry-all Pouch", "a mug"], 3
    latents = initial_latents(smoke, [1825, 410], 128)
    seen = []  # x_t before each step

    def keep(pipe, index, t, tensors):
        seen.append(tensors["latents"].clone())
        return tensors

    with noise_norm.record_noise_norms(smoke) as rec:
        smoke(prompts, latents=latents.clone(), num_inference_steps=steps, height=128, width=128,
              guidance_scale=7.5, output_type="latent", callback_on_step_end=keep)
    hooked = rec.per_image()
    assert hooked.shape == (2, steps)
    cond, uncond = smoke.encode_prompt(prompts, "cpu", 1, True, negative_prompt=["", ""])
    inputs = [latents] + seen[:-1]
    with torch.no_grad():
        for k, t in enumerate(smoke.scheduler.timesteps):
            x = smoke.scheduler.scale_model_input(inputs[k], t)
            e_c = smoke.unet(x, t, encoder_hidden_states=cond).sample.numpy()
            e_u = smoke.unet(x, t, encoder_hidden_states=uncond).sample.numpy()
            direct = np.sqrt(((e_c - e_u) ** 2).reshape(2, -1).sum(1))
            assert hooked[:, k] == pytest.approx(direct, rel=1e-4)
    assert (hooked > 0).all()
    assert not smoke.unet._forward_hooks  # the hook is gone


def test_hook_needs_guidance(smoke):
    with pytest.raises(ValueError, match="classifier-free guidance"):
        with noise_norm.record_noise_norms(smoke):
            smoke("a mug", num_inference_steps=2, height=128, width=128, guidance_scale=1.0, output_type="latent")


def test_noise_norms_are_stored_and_not_recomputed(smoke, tmp_path, monkeypatch):
    settings = {"resolution": 128, "steps": 4, "guidance": 7.5, "eta": 0.0}
    store = Store(tmp_path, "smoke", settings)
    first = memorization.noise_norms(smoke, ["a mug", "Colosseum Mug"], [1825], store=store, until_step=2,
                                     progress=False)
    assert list(first.step) == [1, 2, 1, 2]
    assert first.groupby("prompt", sort=False).size().tolist() == [2, 2]
    # stopping early reads the same first steps as the whole schedule
    full = memorization.noise_norms(smoke, ["a mug", "Colosseum Mug"], [1825], store=store, progress=False)
    assert len(full) == 8
    assert full[full.step <= 2].norm.to_numpy() == pytest.approx(first.norm.to_numpy(), rel=1e-5)

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a stored norm")

    monkeypatch.setattr(sys.modules["dvdlib.generate"], "_generate_batch", boom)  # the module, not dvdlib.generate()
    again = memorization.noise_norms(smoke, ["a mug", "Colosseum Mug"], [1825], store=store, until_step=2,
                                     progress=False)
    pd.testing.assert_frame_equal(first, again)


# the chapter ----------------------------------------------------------------------------------------

def test_memorization_chapter_runs_on_smoke(tmp_path):
    """Chapter 07 through papermill with profile smoke: figures, results, the paper's order beside."""
    import json

    from dvdlib import scheduler
    from test_book import copy_book

    root = copy_book(tmp_path)
    (outcome,) = scheduler.run_chapters("smoke", only="07_memorization", cwd=root, verbose=False)
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    figures = root / "book" / "figures" / "07_memorization"
    assert {p.name for p in figures.glob("*.png")} == {"norm_per_step.png", "norm_by_set.png"}
    results = json.loads((root / "book" / "results" / "07_memorization.json").read_text())
    # every key a toy-findings claim reads from this chapter is written by it
    assert unwritten_claims("07_memorization", [r["key"] for r in results["results"]]) == []
    rows = {r["key"]: r for r in results["results"]}
    assert rows["order"]["paper"] == "memorized > DominanceBench > balanced"
    assert sorted(rows["order"]["this run"].split(" > ")) == ["balanced", "dominancebench", "memorized"]
    assert rows["first_steps"]["this run"] == "2 of 10"
    assert {"median_memorized", "median_dominancebench", "median_balanced", "order_tests", "order_holds"} <= set(rows)
    assert rows["order_tests"]["this run"].count("p = ") == 3
