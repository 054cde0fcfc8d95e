"""Attention recording and head scaling (paper §3.4–§3.6): dvdlib.attention.

Everything runs the smoke model (random weights, SD 1.x layout) for a few DDIM steps at 128 px.
"""
import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from dvdlib import models
from dvdlib.attention import ControlledProcessor, HeadScaling, Recording, attention_probs, intervene, record
from dvdlib.generate import initial_latents
from dvdlib.layers import registry

PROMPTS = ["a photo of a cat", "van gogh starry night notebook"]
SEEDS = [1825, 410]
STEPS = 3
TOKENS = 77


@pytest.fixture(scope="module")
def pipe():
    return models.load("smoke")


def run(pipe, prompts=PROMPTS, seeds=SEEDS, steps=STEPS, guidance=7.5, resolution=128, **kwargs):
    latents = initial_latents(pipe, seeds, resolution)
    return pipe(list(prompts), latents=latents, num_inference_steps=steps, guidance_scale=guidance,
                height=resolution, width=resolution, output_type="np", **kwargs).images


@pytest.fixture(scope="module")
def plain(pipe):
    """Images from the stock processors."""
    return run(pipe)


@pytest.fixture(scope="module")
def recorded(pipe):
    """The same generation with every layer, step and head recorded, maps included."""
    with record(pipe, layers="all", steps="all", heads="each", maps=True) as rec:
        images = run(pipe)
    return images, rec


def processors(pipe):
    return dict(pipe.unet.attn_processors)


def assert_restored(pipe, before):
    after = processors(pipe)
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before), "original processor objects must come back"
    assert not any(isinstance(p, ControlledProcessor) for p in after.values())
    assert not hasattr(pipe.unet, "_dvd_control")
    assert len(pipe.unet._forward_pre_hooks) == 0


# (1) the recording processor computes what the stock one does -------------------------------------

def test_recording_leaves_images_unchanged(plain, recorded):
    images, _ = recorded
    assert images.shape == plain.shape == (2, 128, 128, 3)
    assert plain.std() > 0.01  # a real image, not a constant the comparison would trivially pass
    np.testing.assert_allclose(images, plain, atol=1e-4, rtol=0)


def test_generation_is_deterministic(pipe, plain):
    # the reference the other tests compare against must itself be reproducible bit for bit
    np.testing.assert_array_equal(run(pipe), plain)


@pytest.mark.parametrize("masked", [False, True])
def test_attention_probs_equals_stock_processor(pipe, masked):
    attn = registry(pipe)[8].module  # layer 9
    torch.manual_seed(0)
    hidden = torch.randn(2, 16, attn.to_q.in_features)
    context = torch.randn(2, TOKENS, attn.to_k.in_features)
    mask = None
    if masked:  # additive bias, as diffusers passes an encoder attention mask: hide tokens 10..76
        mask = torch.zeros(2, 1, TOKENS)
        mask[:, :, 10:] = -10000.0
    with torch.no_grad():
        stock = AttnProcessor2_0()(attn, hidden, context, attention_mask=mask)
        probs, out = attention_probs(attn, hidden, context, attention_mask=mask)
        # the probabilities by hand: softmax(q kᵀ · scale) per head
        heads, dim = attn.heads, attn.to_q.out_features // attn.heads
        q = attn.to_q(hidden).view(2, -1, heads, dim).transpose(1, 2)
        k = attn.to_k(context).view(2, -1, heads, dim).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) * dim ** -0.5
        if masked:
            logits = logits + mask[:, None]
        expected = logits.softmax(-1)
    assert probs.shape == (2, attn.heads, 16, TOKENS) and probs.dtype == torch.float32
    torch.testing.assert_close(out, stock, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=1e-5)
    if masked:
        assert probs[..., 10:].max() < 1e-6
        torch.testing.assert_close(probs[..., :10].sum(-1), torch.ones(2, attn.heads, 16))


def test_attention_probs_head_factors(pipe):
    attn = registry(pipe)[2].module
    torch.manual_seed(1)
    hidden, context = torch.randn(1, 64, attn.to_q.in_features), torch.randn(1, TOKENS, attn.to_k.in_features)
    with torch.no_grad():
        ref, ref_out = attention_probs(attn, hidden, context)
        ones, ones_out = attention_probs(attn, hidden, context, head_factors=torch.ones(attn.heads))
        factors = torch.ones(attn.heads)
        factors[1] = 0.0
        scaled, _ = attention_probs(attn, hidden, context, head_factors=factors)
    torch.testing.assert_close(ones, ref, atol=0, rtol=0)
    torch.testing.assert_close(ones_out, ref_out, atol=0, rtol=0)
    torch.testing.assert_close(scaled[:, 1], torch.full_like(scaled[:, 1], 1 / TOKENS))
    torch.testing.assert_close(scaled[:, 0], ref[:, 0], atol=0, rtol=0)
    assert (ref[:, 1] - 1 / TOKENS).abs().max() > 1e-4  # it was not uniform before


# (2) what is recorded -------------------------------------------------------------------------------

def test_every_requested_layer_and_step_recorded(recorded):
    _, rec = recorded
    assert rec.keys() == [(layer, step) for layer in range(1, 17) for step in range(1, STEPS + 1)]
    assert dict(rec.calls) == {layer: STEPS for layer in range(1, 17)}  # one call per layer and step
    assert rec.steps_seen == {1, 2, 3}


def test_shares_per_head_are_probability_vectors(pipe, recorded):
    _, rec = recorded
    for layer in registry(pipe):
        for step in (1, STEPS):
            share = rec.share(layer.index, step)
            assert isinstance(share, np.ndarray)
            assert share.shape == (len(PROMPTS), layer.heads, TOKENS)
            assert share.min() >= 0
            np.testing.assert_allclose(share.sum(-1), 1.0, atol=1e-5)


def test_maps_match_the_registry_and_the_shares(pipe, recorded):
    _, rec = recorded
    for layer in registry(pipe, 128):
        spatial = rec.map(layer.index, 1)
        assert spatial.shape == (len(PROMPTS), layer.size, layer.size, TOKENS)
        np.testing.assert_allclose(spatial.sum(-1), 1.0, atol=1e-5)
        # averaging the map over pixels gives the head-averaged share
        np.testing.assert_allclose(spatial.mean(axis=(1, 2)), rec.share(layer.index, 1).mean(axis=1), atol=1e-6)


def test_maps_follow_the_resolution(pipe):
    with record(pipe, layers=[1, 3, 7, 9], steps=[1], maps=True, shares=False) as rec:
        run(pipe, steps=2, resolution=64)
    by_index = {layer.index: layer for layer in registry(pipe, 64)}
    for index in (1, 3, 7, 9):
        side = by_index[index].size
        assert rec.map(index, 1).shape == (2, side, side, TOKENS)
    assert [by_index[i].size for i in (1, 3, 7, 9)] == [8, 4, 1, 2]
    with pytest.raises(KeyError, match="no shares recorded"):
        rec.share(1, 1)  # shares=False


def test_only_requested_layers_and_steps(pipe, recorded):
    _, everything = recorded
    with record(pipe, layers=[3, 9], steps=[2], heads="mean") as rec:
        run(pipe)
    assert rec.keys() == [(3, 2), (9, 2)]
    assert dict(rec.calls) == {3: 1, 9: 1}
    share = rec.share(9, 2)
    assert share.shape == (len(PROMPTS), TOKENS)
    np.testing.assert_allclose(share.sum(-1), 1.0, atol=1e-5)
    # heads="mean" is the per-head recording averaged over heads
    np.testing.assert_allclose(share, everything.share(9, 2).mean(axis=1), atol=1e-6)
    with pytest.raises(KeyError, match="layer 9, step 1"):
        rec.share(9, 1)
    with pytest.raises(KeyError, match="no maps recorded"):
        rec.map(9, 2)  # maps were not asked for


def test_step_beyond_the_run_records_nothing(pipe):
    with record(pipe, layers=[1], steps=[STEPS + 1]) as rec:
        run(pipe)
    assert rec.keys() == [] and rec.steps_seen == set()
    with record(pipe, layers=[1], steps=[STEPS]) as rec:  # the last step is numbered STEPS
        run(pipe)
    assert rec.keys() == [(1, STEPS)]


def test_conditional_branch(pipe, recorded):
    _, everything = recorded
    with record(pipe, layers=[5], steps=[1], heads="each", branch="both") as both:
        run(pipe)
    with record(pipe, layers=[5], steps=[1], heads="each", branch="uncond") as uncond:
        run(pipe)
    n = len(PROMPTS)
    cond = everything.share(5, 1)  # recorded with the default branch="cond"
    assert cond.shape[0] == n
    assert both.share(5, 1).shape[0] == 2 * n
    # diffusers stacks [unconditional, conditional]: "cond" is the second half, "uncond" the first
    np.testing.assert_allclose(both.share(5, 1)[n:], cond, atol=1e-6)
    np.testing.assert_allclose(both.share(5, 1)[:n], uncond.share(5, 1), atol=1e-6)
    assert np.abs(both.share(5, 1)[:n] - cond).max() > 1e-5  # the two halves do differ
    # the two prompts' conditional rows differ (so the branch really is the prompts')
    assert np.abs(cond[0] - cond[1]).max() > 1e-5


def test_no_guidance_records_the_whole_batch(pipe):
    with record(pipe, layers=[5], steps=[1]) as rec:
        run(pipe, guidance=1.0)
    assert rec.share(5, 1).shape == (len(PROMPTS), TOKENS)


@pytest.mark.parametrize("kwargs, message", [
    (dict(heads="sum"), "heads must be"),
    (dict(branch="positive"), "branch must be"),
    (dict(shares=False, maps=False), "nothing to record"),
    (dict(steps=0), "numbered from 1"),
    (dict(steps=[]), "numbered from 1"),
    (dict(layers=[17]), "no cross-attention layer"),
])
def test_record_argument_errors(pipe, kwargs, message):
    before = processors(pipe)
    with pytest.raises(ValueError, match=message):
        with record(pipe, **kwargs):
            pass
    assert_restored(pipe, before)


# (3) processors come back ---------------------------------------------------------------------------

def test_processors_installed_and_restored(pipe):
    before = processors(pipe)
    cross = {layer.processor_name for layer in registry(pipe)}
    with record(pipe, layers=[1], steps=[1]):
        inside = processors(pipe)
        assert sum(isinstance(p, ControlledProcessor) for p in inside.values()) == 16
        assert all(isinstance(inside[k], ControlledProcessor) for k in cross)
        assert all(inside[k] is before[k] for k in before if k not in cross)  # self-attention untouched
        assert all(inside[k].stock is before[k] for k in cross)
    assert_restored(pipe, before)


def test_processors_restored_when_generation_raises(pipe, plain):
    before = processors(pipe)

    def boom(pipeline, index, timestep, tensors):
        raise RuntimeError("boom at step %d" % (index + 1))

    with pytest.raises(RuntimeError, match="boom at step 1"):
        with record(pipe, layers="all", steps="all") as rec:
            run(pipe, callback_on_step_end=boom)
    assert_restored(pipe, before)
    assert (1, 1) in rec.keys() and (1, 2) not in rec.keys()  # it did run step 1 before raising
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(pipe, {(9, 0): 0.0}):
            run(pipe, callback_on_step_end=boom)
    assert_restored(pipe, before)
    np.testing.assert_array_equal(run(pipe), plain)  # nothing left behind changes the next run


def test_nested_record_and_intervene(pipe, recorded):
    _, base = recorded
    before = processors(pipe)
    with record(pipe, layers=[8, 9], steps=[1], heads="each") as outer:
        installed = processors(pipe)
        with intervene(pipe, {(9, 0): 0.0}):
            with record(pipe, layers=[9], steps=[1], heads="each") as inner:
                assert processors(pipe) == installed  # nested contexts reuse the installed processors
                run(pipe)
            assert processors(pipe) == installed
        assert processors(pipe) == installed
        run(pipe)  # intervention gone, outer recording still on: a second batch of 2 images
    assert_restored(pipe, before)
    assert inner.share(9, 1).shape == (2, 2, TOKENS)
    assert outer.share(9, 1).shape == (4, 2, TOKENS)
    np.testing.assert_allclose(inner.share(9, 1)[:, 0], 1 / TOKENS, rtol=1e-6)
    np.testing.assert_allclose(outer.share(9, 1)[:2], inner.share(9, 1), atol=0)
    # the second run, after intervene closed, is the unintervened one again
    np.testing.assert_allclose(outer.share(9, 1)[2:], base.share(9, 1), atol=1e-6)
    np.testing.assert_allclose(outer.share(8, 1), np.concatenate([base.share(8, 1)] * 2), atol=1e-6)


# (4) head scaling -------------------------------------------------------------------------------------

def test_factor_one_changes_nothing(pipe, plain):
    with intervene(pipe, {(9, 0): 1.0, (3, 1): 1.0, (16, 0): 1.0}, steps="all"):
        images = run(pipe)
    np.testing.assert_allclose(images, plain, atol=1e-4, rtol=0)


def test_factor_zero_makes_that_head_uniform_and_nothing_else(pipe, plain, recorded):
    _, base = recorded
    assert np.abs(base.share(9, 1)[:, 0] - 1 / TOKENS).max() > 1e-4  # not uniform without ablation
    with record(pipe, layers="all", steps=[1, 2], heads="each") as rec:
        with intervene(pipe, {(9, 0): 0.0}):  # default: the first step only
            images = run(pipe)
    # the ablated head attends uniformly over all 77 positions at step 1 ...
    np.testing.assert_allclose(rec.share(9, 1)[:, 0], 1 / TOKENS, rtol=1e-6, atol=0)
    # ... the layer's other head is untouched ...
    np.testing.assert_allclose(rec.share(9, 1)[:, 1], base.share(9, 1)[:, 1], atol=1e-7, rtol=0)
    # ... and so is every layer the UNet runs before layer 9 at that step
    for layer in range(1, 9):
        np.testing.assert_allclose(rec.share(layer, 1), base.share(layer, 1), atol=1e-7, rtol=0)
    # layers after it see the changed output (the ablation does act), and so does the image
    assert np.abs(rec.share(10, 1) - base.share(10, 1)).max() > 1e-6
    assert np.abs(images - plain).max() > 1e-3
    # at step 2 there is no ablation: the head is no longer uniform
    assert np.abs(rec.share(9, 2)[:, 0] - 1 / TOKENS).max() > 1e-4


def test_intervention_only_at_chosen_steps(pipe, recorded):
    _, base = recorded
    with record(pipe, layers="all", steps=[1, 2], heads="each") as rec:
        with intervene(pipe, {(9, 0): 0.0}, steps=[2]):
            run(pipe)
    for layer in range(1, 17):  # step 1 is the unablated run everywhere
        np.testing.assert_allclose(rec.share(layer, 1), base.share(layer, 1), atol=1e-7, rtol=0)
    np.testing.assert_allclose(rec.share(9, 2)[:, 0], 1 / TOKENS, rtol=1e-6, atol=0)


def test_intervention_at_an_unreached_step_leaves_images_unchanged(pipe, plain):
    with intervene(pipe, {(9, 0): 0.0, (1, 1): 0.0}, steps=[STEPS + 1, 50]):
        images = run(pipe)
    np.testing.assert_array_equal(images, plain)


def test_scalings_compose_multiplicatively(pipe):
    with record(pipe, layers=[9], steps=[1], heads="each") as twice:
        with intervene(pipe, {(9, 0): 0.5}), intervene(pipe, {(9, 0): 0.5}):
            run(pipe, steps=1)
    with record(pipe, layers=[9], steps=[1], heads="each") as once:
        with intervene(pipe, {(9, 0): 0.25}):
            run(pipe, steps=1)
    np.testing.assert_allclose(twice.share(9, 1), once.share(9, 1), atol=1e-7)
    vector = HeadScaling({(9, 0): 0.25, (3, 1): 0.0}, steps=[1]).vector(registry(pipe)[8], 1, "cpu")
    assert vector.tolist() == [0.25, 1.0]
    assert HeadScaling({(9, 0): 0.25}, steps=[1]).vector(registry(pipe)[8], 2, "cpu") is None
    assert HeadScaling({(9, 0): 0.25}, steps=[1]).vector(registry(pipe)[7], 1, "cpu") is None


@pytest.mark.parametrize("heads", [{(9, 2): 0.0}, {(9, -1): 0.0}, {(17, 0): 0.0}, {(0, 0): 0.0}])
def test_invalid_head(pipe, heads):
    before = processors(pipe)
    with pytest.raises(ValueError, match="no head"):
        with intervene(pipe, heads):
            pass
    assert_restored(pipe, before)


# (5) a hook that records nothing is an error ---------------------------------------------------------

def test_check_raises_for_a_silent_layer(pipe):
    layers = registry(pipe)[:3]
    rec = Recording(layers, steps=[1])
    rec.check()  # no wanted step ran: nothing to complain about
    rec.steps_seen.add(1)
    rec.calls[1] += 1
    with pytest.raises(RuntimeError, match=r"layers \[2, 3\] recorded nothing during steps \[1\]"):
        rec.check()
    rec.calls[2] += 1
    rec.calls[3] += 1
    rec.check()  # every layer recorded


def test_check_catches_a_layer_routed_around_its_processor(pipe):
    before = processors(pipe)
    with pytest.raises(RuntimeError, match=r"layers \[2\] recorded nothing"):
        with record(pipe, layers=[1, 2], steps=[1]) as rec:
            registry(pipe)[1].module.set_processor(AttnProcessor2_0())  # the hook on layer 2 goes silent
            run(pipe, steps=1)
    assert rec.keys() == [(1, 1)]
    assert_restored(pipe, before)


# known bug ---------------------------------------------------------------------------------------------

def test_direct_unet_call_after_a_guided_pipeline_call_records_the_whole_batch(pipe):
    run(pipe, steps=1)  # leaves pipe._guidance_scale = 7.5 behind
    latents = initial_latents(pipe, SEEDS, 128)
    context = torch.randn(2, TOKENS, pipe.unet.config.cross_attention_dim)
    with record(pipe, layers=[1], steps="all") as rec, torch.no_grad():
        pipe.unet(latents, pipe.scheduler.timesteps[0], encoder_hidden_states=context)
    assert rec.share(1, 1).shape == (2, TOKENS)


# (6) head intervention, as paper §3.6 uses it -----------------------------------------

def test_factor_scales_logits_by_hand(pipe):
    """Logits × f is a softmax of f·log p: the probabilities become p^f renormalised (0 → uniform)."""
    attn = registry(pipe)[4].module  # layer 5
    torch.manual_seed(2)
    hidden, context = torch.randn(2, 16, attn.to_q.in_features), torch.randn(2, TOKENS, attn.to_k.in_features)
    with torch.no_grad():
        ref, _ = attention_probs(attn, hidden, context)
        for factor in (0.5, 2.0, 0.0):
            scaled, _ = attention_probs(attn, hidden, context, head_factors=torch.tensor([factor, 1.0]))
            expected = ref[:, 0] ** factor / (ref[:, 0] ** factor).sum(-1, keepdim=True)
            torch.testing.assert_close(scaled[:, 0], expected, atol=1e-6, rtol=1e-4)
            torch.testing.assert_close(scaled[:, 1], ref[:, 1], atol=0, rtol=0)


def test_several_heads_in_several_layers(pipe, recorded):
    _, base = recorded
    ablated = {(9, 0): 0.0, (9, 1): 0.0, (3, 1): 0.0}
    with record(pipe, layers="all", steps=[1], heads="each", branch="both") as rec:
        with intervene(pipe, ablated):
            run(pipe)
    n = len(PROMPTS)
    both = rec.share(9, 1)
    assert both.shape == (2 * n, 2, TOKENS)
    # every ablated head is uniform over the 77 positions, in both halves of classifier-free guidance
    np.testing.assert_allclose(both, 1 / TOKENS, rtol=1e-6, atol=0)
    np.testing.assert_allclose(rec.share(3, 1)[:, 1], 1 / TOKENS, rtol=1e-6, atol=0)
    # the other head of layer 3 and the layers before it are untouched (conditional half)
    np.testing.assert_allclose(rec.share(3, 1)[n:, 0], base.share(3, 1)[:, 0], atol=1e-7, rtol=0)
    for layer in (1, 2):
        np.testing.assert_allclose(rec.share(layer, 1)[n:], base.share(layer, 1), atol=1e-7, rtol=0)
    # layer 4 comes after layer 3's ablated head: it sees a changed input
    assert np.abs(rec.share(4, 1)[n:] - base.share(4, 1)).max() > 1e-6
