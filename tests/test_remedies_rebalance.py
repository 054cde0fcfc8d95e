"""Early attention rebalancing (`dvdlib.remedies.rebalance`) and the token reweighting under it
(`dvdlib.attention.reweight_tokens`): off it is the plain image bit for bit; on, the dominant
concept's recorded share falls and the dominated's rises in the chosen layers at the chosen steps
and nowhere else; a batch equals its images made alone; bad input is refused before any compute.
On the smoke model (random weights, SD 1.x layout) and the toy model (trained, 16 layers)."""

import json

import numpy as np
import pytest
import torch

from dvdlib import models
from dvdlib.attention import (TokenReweighting, TokenReweightingEach, TokenSuppression, attention_probs, record,
                              reweight_tokens, reweight_tokens_each)
from dvdlib.generate import pipeline_call
from dvdlib.layers import registry
from dvdlib.remedies import rebalance
from dvdlib.tokens import concept_span, sequence_tokenizer

SEEDS = [1825, 410]
SAMPLER = {"resolution": 64, "steps": 2, "guidance": 7.5, "eta": 0.0, "dtype": "float32", "sampler": "DDIM",
           "negative_prompt": ""}
PROMPTS = ["Van Gogh Mug", "Colosseum Carry-all Pouch"]
DOMINANT, DOMINATED = ["van gogh", "colosseum"], ["mug", "carry-all pouch"]
SPANS = {"Van Gogh Mug": ([1, 2], [3]), "Colosseum Carry-all Pouch": ([1, 2], [3, 4, 5, 6])}


@pytest.fixture(scope="module")
def pipe():
    return models.load("smoke")


@pytest.fixture(scope="module")
def plain(pipe):
    pairs = [(p, s) for p in PROMPTS for s in SEEDS]
    return [np.asarray(im) for im in pipe(**pipeline_call(pipe, pairs, SAMPLER)).images]


def arrays(images):
    return [np.asarray(im, dtype=int) for im in images]


def acted(monkeypatch):
    """(layer, step) pairs at which a per-image reweighting gave a bias, as the run goes."""
    seen = set()
    original = TokenReweightingEach.bias_for

    def spy(self, layer, step, *args, **kwargs):
        bias = original(self, layer, step, *args, **kwargs)
        if bias is not None:
            seen.add((layer.index, step))
        return bias

    monkeypatch.setattr(TokenReweightingEach, "bias_for", spy)
    return seen


# --- the token reweighting -----------------------------------------------------------------------------------

def test_spans_are_the_ones_the_tests_assume(pipe):
    tokenizer = sequence_tokenizer(pipe)
    for prompt, a, b in zip(PROMPTS, DOMINANT, DOMINATED):
        assert (concept_span(tokenizer, prompt, a), concept_span(tokenizer, prompt, b)) == SPANS[prompt]


def test_reweighted_probabilities_are_the_stock_ones_scaled_and_renormalised(pipe):
    """Per pixel and head: each position's probability times its factor (0: removed), then
    renormalised; the unconditional half untouched; outside its layers and steps no bias."""
    layer = registry(pipe)[8]
    torch.manual_seed(0)
    hidden = torch.randn(2, 16, layer.module.to_q.in_features)
    context = torch.randn(2, 77, layer.module.to_k.in_features)
    stock, _ = attention_probs(layer.module, hidden, context)
    for scales in ({1: 0.5, 3: 2.0}, {1: 0.0, 2: 0.0, 3: 4.0}, {5: 1.0, 6: 3.0}):
        r = TokenReweighting(scales, layers=[9, 10], steps=[1, 2])
        bias = r.bias_for(layer, 2, "cpu", 2, 77, guided=True)
        assert torch.all(bias[0] == 0)
        probs, _ = attention_probs(layer.module, hidden, context, logit_bias=bias)
        scaled = stock[1].clone()
        for i, f in scales.items():
            scaled[..., i] *= f
        torch.testing.assert_close(probs[1], scaled / scaled.sum(-1, keepdim=True), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(probs[0], stock[0])
        assert r.bias_for(registry(pipe)[7], 1, "cpu", 2, 77, True) is None  # layer 8: not chosen
        assert r.bias_for(layer, 3, "cpu", 2, 77, True) is None  # step 3: not chosen
    assert not TokenReweighting({1: 1.0, 2: 1.0}).acts(1)  # factor 1 everywhere: nothing acts
    assert TokenReweighting({1: 2.0}, layers=None).acts(1, registry(pipe)[0])  # None: every layer
    # a suppression is a reweighting by 1 − strength in every layer, with the same bias as before
    s = TokenSuppression([3, 4], 0.5)
    assert isinstance(s, TokenReweighting) and s.scales == {3: 0.5, 4: 0.5} and s.layers is None
    torch.testing.assert_close(s.row(77, "cpu"), TokenReweighting({3: 0.5, 4: 0.5}).row(77, "cpu"))


@pytest.mark.parametrize("kwargs, message", [
    ({"scales": {1: -0.5}}, "≥ 0"), ({"scales": {1: float("inf")}}, "finite"), ({"scales": {-1: 2.0}}, "from 0"),
    ({"scales": {1: 2.0}, "layers": [0]}, "numbered from 1"), ({"scales": {1: 2.0}, "steps": [0]}, "from 1")])
def test_reweighting_refuses_bad_factors_layers_steps(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenReweighting(**kwargs)


def test_reweight_tokens_refuses_an_unknown_layer_and_joint_attention(pipe):
    with pytest.raises(ValueError, match="no cross-attention layer"):
        with reweight_tokens(pipe, {1: 2.0}, layers=[17]):
            pass
    with pytest.raises(ValueError, match="no cross-attention layer"):
        with reweight_tokens_each(pipe, [({1: 2.0}, [3, 40], (1,)), None]):
            pass
    assert all(type(layer.module.processor).__name__ != "ControlledProcessor" for layer in registry(pipe))
    sd3 = models.load("tiny:sd3")
    with pytest.raises(NotImplementedError, match="token reweighting"):
        with reweight_tokens(sd3, {1: 2.0}):
            pass
    assert "joint attention" in rebalance.applies(sd3)
    with pytest.raises(NotImplementedError, match="joint attention"):
        rebalance.generate(sd3, ["a cat and a dog"], [1], SAMPLER, dominant="cat", dominated="dog")


# --- (a) off is the plain image ---------------------------------------------------------------------------

def test_off_is_the_plain_image_bit_for_bit(pipe, plain, monkeypatch):
    seen = acted(monkeypatch)
    off = rebalance.generate(pipe, PROMPTS, SEEDS, SAMPLER, dominant=DOMINANT, dominated=DOMINATED,
                             strength=0.0, boost=1.0, batch_size=4)
    assert all(np.array_equal(a, b) for a, b in zip(plain, arrays(off)))
    pairs = [(p, s) for p in PROMPTS for s in SEEDS]
    with reweight_tokens(pipe, {1: 1.0, 2: 1.0, 3: 1.0}, layers=[9, 10], steps=[1, 2]):
        ones = pipe(**pipeline_call(pipe, pairs, SAMPLER)).images
    with reweight_tokens_each(pipe, [({1: 1.0}, None, (1,)), None, None, ({3: 1.0}, [9], "all")]):
        ones_each = pipe(**pipeline_call(pipe, pairs, SAMPLER)).images
    for got in (ones, ones_each):
        assert all(np.array_equal(a, b) for a, b in zip(plain, arrays(got)))
    assert not seen  # the stock processor ran everywhere
    on = rebalance.generate(pipe, PROMPTS[:1], SEEDS[:1], SAMPLER, dominant="van gogh", dominated="mug",
                            strength=1.0, boost=8.0)
    assert not np.array_equal(arrays(on)[0], plain[0])  # on, the image changes
    layers = {layer.index for layer in registry(pipe)}
    assert seen == {(n, k) for n in layers for k in (1, 2)}  # default: every layer, the first K steps (2 here)
    assert all(type(layer.module.processor).__name__ != "ControlledProcessor" for layer in registry(pipe))


# --- (b) the shares move where it acts, and only there -----------------------------------------------------

def shares(pipe, monkeypatch, **params):
    """Recorded shares [uncond + cond images, tokens] per (layer, step) of one run, and where it acted."""
    seen = acted(monkeypatch)
    with record(pipe, layers="all", steps=[1, 2], branch="both") as rec:
        rebalance.generate(pipe, PROMPTS, SEEDS, SAMPLER, dominant=DOMINANT, dominated=DOMINATED,
                           layers=[9, 10], steps=[1], batch_size=4, **params)
    return rec, set(seen)


@pytest.fixture(scope="module")
def stock_shares(pipe):
    with record(pipe, layers="all", steps=[1, 2], branch="both") as rec:
        pipe(**pipeline_call(pipe, [(p, s) for p in PROMPTS for s in SEEDS], SAMPLER))
    return rec


def span_share(rec, layer, step, which):
    """The conditional images' summed share of each image's dominant (0) or dominated (1) tokens."""
    share = rec.share(layer, step)
    n = share.shape[0] // 2
    prompts = [p for p in PROMPTS for _ in SEEDS]
    return np.array([share[n + i, SPANS[p][which]].sum() for i, p in enumerate(prompts)])


@pytest.mark.parametrize("strength, boost", [(0.8, 1.0), (0.0, 4.0), (0.5, 2.0)])
def test_shares_move_in_the_chosen_layers_and_steps_only(pipe, stock_shares, monkeypatch, strength, boost):
    rec, seen = shares(pipe, monkeypatch, strength=strength, boost=boost)
    assert seen == {(9, 1), (10, 1)}  # the bias acted there and nowhere else (not at step 2)
    for layer in range(1, 9):  # before layer 9 at step 1 everything is as in the plain run
        np.testing.assert_array_equal(rec.share(layer, 1), stock_shares.share(layer, 1))
    for layer in range(1, 17):  # the unconditional branch never sees the bias at step 1
        np.testing.assert_allclose(rec.share(layer, 1)[:4], stock_shares.share(layer, 1)[:4], atol=1e-6)
    for layer in (9, 10):  # lowering one concept raises the other through the renormalisation, and back
        assert np.all(span_share(rec, layer, 1, 0) < span_share(stock_shares, layer, 1, 0) - 1e-4)
        assert np.all(span_share(rec, layer, 1, 1) > span_share(stock_shares, layer, 1, 1) + 1e-4)
        np.testing.assert_allclose(rec.share(layer, 1).sum(-1), 1, atol=1e-5)
    # layer 9 sees the plain run's input, so its change is the reweighting alone: per pixel the
    # dominant tokens' probability is multiplied by (1 − s)/D and the dominated's by g/D, where the
    # renormaliser D lies in [1 − s, g]
    low, high = 1 - strength, boost
    ratio = span_share(rec, 9, 1, 0) / span_share(stock_shares, 9, 1, 0)
    assert np.all(ratio >= low / high - 1e-5) and np.all(ratio <= 1 + 1e-5)
    ratio = span_share(rec, 9, 1, 1) / span_share(stock_shares, 9, 1, 1)
    assert np.all(ratio >= 1 - 1e-5) and np.all(ratio <= high / low + 1e-5)
    if strength == 0:  # only the dominated raised: every other token scaled by the same 1/D ≤ 1
        share, before = rec.share(9, 1)[4:], stock_shares.share(9, 1)[4:]
        assert np.all(share[:, [0, 7, 8]] <= before[:, [0, 7, 8]] + 1e-6)


# --- (c) a batch is its images made alone --------------------------------------------------------------------

def test_a_batch_equals_each_prompt_alone(pipe):
    kwargs = dict(strength=0.7, boost=3.0, layers=[9, 10], steps=2)
    together = arrays(rebalance.generate(pipe, PROMPTS, SEEDS, SAMPLER, dominant=DOMINANT, dominated=DOMINATED,
                                         batch_size=4, **kwargs))
    alone = []
    for prompt, a, b in zip(PROMPTS, DOMINANT, DOMINATED):
        for seed in SEEDS:
            alone += arrays(rebalance.generate(pipe, [prompt], [seed], SAMPLER, dominant=a, dominated=b, **kwargs))
    assert len(together) == len(alone) == 4
    for x, y in zip(together, alone):
        assert np.abs(x - y).max() <= 2
    # the two prompts' spans differ: made with the other's spans, the images are not the same
    swapped = arrays(rebalance.generate(pipe, PROMPTS[1:], SEEDS[:1], SAMPLER, dominant="carry-all pouch",
                                        dominated="colosseum", **kwargs))
    assert np.abs(swapped[0] - together[2]).max() > 2


# --- (d) bad input, before any compute --------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"strength": -0.1}, "strength"), ({"strength": 1.5}, "strength"), ({"boost": 0.5}, "boost"),
    ({"boost": float("nan")}, "boost"), ({"layers": [17]}, "no layer"), ({"layers": [0, 9]}, "no layer"),
    ({"layers": "some"}, "layers"), ({"steps": [0]}, "steps"), ({"steps": [3, 4]}, "beyond"),
    ({"dominant": "cathedral"}, "not found"), ({"dominated": ["mug"]}, "one concept"),
    ({"dominated": ["van gogh", "pouch"]}, "share token"), ({"prompts": []}, "at least one")])
def test_bad_input_raises_before_any_compute(pipe, monkeypatch, change, message):
    def no_compute(*args, **kwargs):
        raise AssertionError("compute started before the input was checked")

    monkeypatch.setattr(rebalance, "pipeline_call", no_compute)
    monkeypatch.setattr(type(pipe.unet), "forward", no_compute)
    kwargs = dict(prompts=PROMPTS, dominant=DOMINANT, dominated=DOMINATED) | change
    prompts = kwargs.pop("prompts")
    with pytest.raises(ValueError, match=message):
        rebalance.generate(pipe, prompts, SEEDS, SAMPLER, **kwargs)


# --- the contract's key and applies -----------------------------------------------------------------------------

def test_key_and_applies(pipe):
    key = rebalance.key()
    assert key == {"remedy": "rebalance", "strength": rebalance.STRENGTH, "boost": rebalance.BOOST,
                   "layers": "all", "steps": list(range(1, rebalance.K + 1))}
    assert json.loads(json.dumps(key)) == key
    assert rebalance.key(strength=0, boost=1, layers="all", steps=3) == {
        "remedy": "rebalance", "strength": 0.0, "boost": 1.0, "layers": "all", "steps": [1, 2, 3]}
    assert rebalance.key(layers=[10, 9, 9], steps=[2, 1]) == rebalance.key(layers=(9, 10), steps=2)
    assert rebalance.key(batch_size=2) == key  # not a parameter of the remedy
    with pytest.raises(ValueError, match="strength"):
        rebalance.key(strength=2)
    assert rebalance.applies(pipe) is None


# --- the toy model --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy():
    from dvdlib.toy.model import load_toy

    return load_toy("toy/run1/model")


def test_toy_model_off_is_plain_and_on_moves_the_shares(toy):
    sampler = {"resolution": 32, "steps": 25, "guidance": 1.5, "eta": 0.0}
    prompts, dominant, dominated = ["tower and ball", "ball and tower"], "tower", "ball"
    pairs = [(p, 1825) for p in prompts]
    plain = arrays(toy(**pipeline_call(toy, pairs, sampler)).images)
    off = rebalance.generate(toy, prompts, [1825], sampler, dominant=dominant, dominated=dominated,
                             strength=0.0, boost=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(plain, arrays(off)))
    with record(toy, layers=[8, 9, 10], steps=[1]) as stock:
        toy(**pipeline_call(toy, pairs, sampler))
    with record(toy, layers=[8, 9, 10], steps=[1]) as rec:
        on = rebalance.generate(toy, prompts, [1825], sampler, dominant=dominant, dominated=dominated,
                                layers=[9, 10])  # the other defaults; two layers, so layer 8 is a layer it skips
    assert any(np.abs(a - b).max() > 2 for a, b in zip(plain, arrays(on)))
    np.testing.assert_array_equal(rec.share(8, 1), stock.share(8, 1))  # layer 8 runs before the chosen ones
    tokenizer = sequence_tokenizer(toy)
    for i, prompt in enumerate(prompts):
        a, b = concept_span(tokenizer, prompt, dominant), concept_span(tokenizer, prompt, dominated)
        for layer in (9, 10):
            assert rec.share(layer, 1)[i, a].sum() < stock.share(layer, 1)[i, a].sum()
            assert rec.share(layer, 1)[i, b].sum() > stock.share(layer, 1)[i, b].sum()
