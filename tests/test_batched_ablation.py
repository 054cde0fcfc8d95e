"""Batched head interventions (paper §3.6's sweep): per-image head factors in one pipeline call
equal one intervention at a time, and chapter 06's sweep stores them under the same keys."""
import numpy as np
import pandas as pd
import pytest
import torch

from dvdlib import models
from dvdlib.ablation import Intervention, Sweep, jobs
from dvdlib.attention import HeadScaling, HeadScalingEach, intervene, intervene_each, record
from dvdlib.generate import generate, initial_latents
from dvdlib.layers import registry

SAMPLER = {"resolution": 64, "steps": 2, "guidance": 7.5, "eta": 0.0, "dtype": "float32", "sampler": "DDIM",
           "negative_prompt": ""}
TOKENS = 77
#: four images: two interventions of one (prompt, seed), a plain image and another intervention
BATCH = [("a photo of a cat", 1825, ({(9, 0): 0.0}, (1,))),
         ("a photo of a cat", 1825, ({(3, 1): 0.0, (9, 1): 0.0}, (1, 2))),
         ("van gogh mug", 410, None),
         ("van gogh mug", 410, ({(1, 0): 0.5, (16, 1): 0.0}, (1,)))]


@pytest.fixture(scope="module")
def pipe():
    return models.load("smoke")


def call(pipe, batch, steps=2):
    latents = initial_latents(pipe, [s for _, s, _ in batch], 64)
    return pipe([p for p, _, _ in batch], latents=latents, num_inference_steps=steps, guidance_scale=7.5,
                height=64, width=64, output_type="np").images


def one_at_a_time(pipe, batch, n_steps=2, **record_args):
    """Each image on its own, under `intervene` (or nothing), with an optional recording."""
    images, shares = [], []
    for item in batch:
        with record(pipe, **record_args) if record_args else _nothing() as rec:
            if item[2] is None:
                images.append(call(pipe, [item], n_steps)[0])
            else:
                with intervene(pipe, item[2][0], steps=item[2][1]):
                    images.append(call(pipe, [item], n_steps)[0])
        shares.append(rec)
    return np.stack(images), shares


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_per_image_factors_equal_one_intervention_at_a_time(pipe):
    with intervene_each(pipe, [item[2] for item in BATCH]):
        batched = call(pipe, BATCH)
    alone, _ = one_at_a_time(pipe, BATCH)
    assert batched.std() > 0.01
    np.testing.assert_allclose(batched, alone, atol=1e-4, rtol=0)
    # the interventions do act: the two images of the same prompt and seed differ
    assert np.abs(batched[0] - batched[1]).max() > 1e-3


def test_per_image_factors_change_only_their_images_heads(pipe):
    args = dict(layers="all", steps=[1], heads="each", branch="both")
    with record(pipe, **args) as rec, intervene_each(pipe, [item[2] for item in BATCH]):
        call(pipe, BATCH, steps=1)
    _, alone = one_at_a_time(pipe, BATCH, n_steps=1, **args)
    n = len(BATCH)
    for i in range(n):
        for layer in range(1, 17):
            both = rec.share(layer, 1)  # [uncond images, cond images]
            got = np.stack([both[i], both[n + i]])
            np.testing.assert_allclose(got, alone[i].share(layer, 1), atol=1e-6)
    # image 0's head 0 of layer 9 is uniform in both halves of guidance; image 2's (plain) is not
    both = rec.share(9, 1)
    np.testing.assert_allclose(both[[0, n], 0], 1 / TOKENS, rtol=1e-6)
    assert np.abs(both[[2, n + 2], 0] - 1 / TOKENS).max() > 1e-4
    # image 1 ablates (3, 1) and (9, 1), not (9, 0)
    np.testing.assert_allclose(both[[1, n + 1], 1], 1 / TOKENS, rtol=1e-6)
    assert np.abs(both[[1, n + 1], 0] - 1 / TOKENS).max() > 1e-4


def test_per_image_factors_compose_with_a_whole_batch_scaling(pipe):
    layer = registry(pipe)[8]
    each = HeadScalingEach([HeadScaling({(9, 0): 0.5}), None])
    assert each.factors_for(layer, 1, "cpu", 4, guided=True).tolist() == [[0.5, 1.0], [1.0, 1.0]] * 2
    assert each.factors_for(layer, 2, "cpu", 4, guided=True) is None  # no image is scaled at step 2
    with pytest.raises(ValueError, match="one scaling per image"):
        each.factors_for(layer, 1, "cpu", 6, guided=True)
    with pytest.raises(ValueError, match="one scaling"):
        HeadScalingEach([])
    with intervene(pipe, {(9, 0): 0.5}), intervene_each(pipe, [({(9, 0): 0.5}, (1,)), None]):
        control = pipe.unet._dvd_control
        control.guided = True  # as a guided pipeline call sets it
        product = control.head_factors(layer, 1, "cpu", 4)
    assert product.tolist() == [[0.25, 1.0], [0.5, 1.0]] * 2
    with pytest.raises(ValueError, match="no head"):
        with intervene_each(pipe, [({(9, 5): 0.0}, (1,))]):
            pass


def test_sweep_batches_interventions_and_keys_them_as_before(pipe, tmp_path, monkeypatch):
    rows = pd.DataFrame({"case_num": [1, 2], "prompt": ["a photo of a cat", "van gogh mug"]})
    seeds = [1825, 410]
    plan = jobs([Intervention(((1, 0),)), Intervention(((3, 1),)), Intervention(((6, 0), (6, 1))),
                 Intervention(((1, 1),), 0.5, (1, 2))], [1, 2])
    # the reference: one intervention at a time, as the sweep ran before batching
    ref = Sweep(pipe, rows, seeds, root=tmp_path / "ref", model="smoke", sampler=SAMPLER)
    for job in plan:
        with intervene(pipe, job.intervention.factors, steps=job.intervention.steps):
            generate(pipe, ref.prompts(job.cases), seeds, store=ref.store(job.intervention), batch_size=2,
                     progress=False)
    sweep = Sweep(pipe, rows, seeds, root=tmp_path / "new", model="smoke", sampler=SAMPLER, batch_size=4)
    todo = sweep.missing(plan)
    assert len(todo) == 16
    # one batch: the four interventions of one prompt and seed
    assert {(p, s) for _, p, s in todo[:4]} == {("a photo of a cat", 1825)}
    calls, original = [], type(pipe).__call__

    def counting(self, *args, **kwargs):
        calls.append(len(kwargs["prompt"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", counting)
    sweep.run(plan, baseline=False, progress=False)
    assert calls == [4, 4, 4, 4]
    sweep.run(plan, baseline=False, progress=False)  # all stored: nothing generated again
    assert calls == [4, 4, 4, 4]
    monkeypatch.undo()
    for job in plan:
        a, b = ref.store(job.intervention), sweep.store(job.intervention)
        assert a.path.relative_to(tmp_path / "ref") == b.path.relative_to(tmp_path / "new")  # the same keys
        for p in ref.prompts(job.cases):
            for s in seeds:
                assert a.image_path(p, s).relative_to(a.path) == b.image_path(p, s).relative_to(b.path)
                x, y = (np.asarray(st.image(p, s), dtype=int) for st in (a, b))
                assert np.abs(x - y).max() <= 1  # equal up to rounding to 8 bits
    assert Sweep(pipe, rows, seeds, root=tmp_path / "new", model="smoke", sampler=SAMPLER).cost(
        plan, baseline=False)["to_generate"] == 0


def test_head_factors_shape_errors(pipe):
    from dvdlib.attention import attention_probs

    attn = registry(pipe)[2].module
    hidden, context = torch.randn(2, 64, attn.to_q.in_features), torch.randn(2, TOKENS, attn.to_k.in_features)
    with torch.no_grad():
        ref, _ = attention_probs(attn, hidden, context)
        per, _ = attention_probs(attn, hidden, context, head_factors=torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
        with pytest.raises(ValueError, match=r"\[batch, heads\]"):
            attention_probs(attn, hidden, context, head_factors=torch.ones(3, 2))
    torch.testing.assert_close(per[0, 0], torch.full_like(per[0, 0], 1 / TOKENS))
    torch.testing.assert_close(per[1], ref[1], atol=0, rtol=0)
    torch.testing.assert_close(per[0, 1], ref[0, 1], atol=0, rtol=0)
