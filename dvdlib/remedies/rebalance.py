"""Early attention rebalancing (beyond the paper): during the first denoising steps, in the layers
the collapse detector reads, lower the dominant concept's share of cross-attention and raise the
dominated concept's, in the conditional branch of classifier-free guidance only.

The paper finds the collapse decided in cross-attention at the first steps (§3.4–§3.5: the
dominant concept's tokens take the attention there, the dominated one's fade over the first
interval), spread over heads (§3.6: no single head carries it). This remedy acts on that moment and
on no single head: in every head of the chosen layers, at the chosen steps, each of the dominant
concept's tokens has its pre-normalisation attention probability multiplied by 1 − ``strength``
and each of the dominated concept's by ``boost`` (a logit bias of log(factor),
`dvdlib.attention.reweight_tokens`); afterwards the model runs untouched, so the dominant concept
keeps the attention it needs to be drawn.

Defaults (``STRENGTH``, ``BOOST``, ``K`` and the layers) were chosen on twins that no chapter
scores (`dvdlib.remedies.tuning`: pairs 12 and 13 of chapter 12's design, rigid and memorized, at a
seed no chapter gives them; ``benchmarks/results/remedy_tuning.json``): of 18 settings, every one
that acts in the detector's layers alone (`dvdlib.detect.LAYERS`, SD 1.4's 9 and 10) left the share
with both concepts present where it was, and acting in every layer raised it most with the dominant
tokens' attention removed (``STRENGTH`` 1), the dominated's multiplied by 4 (``BOOST``) over the first
``K`` = 12 of the toy world's 25 steps (+0.15 over the plain images; the first 25 gave the same, the
first 5 +0.12). On Stable Diffusion they are untested.

The module follows the remedies' contract (`dvdlib.remedies`): ``generate``, ``key``, ``applies``.
"""

from __future__ import annotations

import math
from numbers import Integral

from ..attention import TokenReweighting, _suppressible, reweight_tokens_each
from ..family import paper_layers
from ..generate import pipeline_call
from ..layers import registry as layer_registry
from ..tokens import known_span, sequence_tokenizer

#: The remedy's name in its stored images' key.
NAME = "rebalance"
#: The dominant concept's tokens get their attention multiplied by 1 − STRENGTH (0: left alone, 1: removed).
STRENGTH = 1.0
#: The dominated concept's tokens get their attention multiplied by BOOST (1: left alone).
BOOST = 4.0
#: The remedy acts at the first K denoising steps (``steps`` default).
K = 12
#: The layers it acts in: every cross-attention layer (acting in the detector's, `LAYERS`, alone
#: changed nothing on the tuning twins).
DEFAULT_LAYERS = "all"


def _layers(layers) -> str | tuple[int, ...]:
    """``"all"`` or sorted SD 1.4 layer numbers (1–16); a bad one raises ValueError."""
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"layers must be 'all' or SD 1.4 layer numbers (1–16), got {layers!r}")
        return "all"
    numbers = [layers] if isinstance(layers, Integral) else list(layers)
    if not numbers or not all(isinstance(n, Integral) and not isinstance(n, bool) for n in numbers):
        raise ValueError(f"layers must be 'all' or SD 1.4 layer numbers (1–16), got {layers!r}")
    bad = [int(n) for n in numbers if not 1 <= n <= 16]
    if bad:
        raise ValueError(f"no layer {bad}: layers are SD 1.4's cross-attention layers in the paper's numbering, 1–16")
    return tuple(sorted({int(n) for n in numbers}))


def _steps(steps) -> tuple[int, ...]:
    """``None`` → the first `K` steps; an int k → the first k steps; else sorted 1-based step numbers."""
    if steps is None:
        steps = K
    if isinstance(steps, Integral) and not isinstance(steps, bool):
        if steps < 1:
            raise ValueError(f"steps: the first k steps needs k ≥ 1, got {steps}")
        return tuple(range(1, int(steps) + 1))
    numbers = list(steps)
    if not numbers or not all(isinstance(n, Integral) and not isinstance(n, bool) and n >= 1 for n in numbers):
        raise ValueError(f"steps must be k (the first k steps) or 1-based step numbers, got {steps!r}")
    return tuple(sorted({int(n) for n in numbers}))


def _params(strength, boost, layers, steps) -> dict:
    """The parameters checked and filled in (ValueError for a bad one)."""
    strength, boost = float(strength), float(boost)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must lie in [0, 1] (0: the dominant concept left alone, 1: its tokens "
                         f"removed), got {strength}")
    if not (math.isfinite(boost) and boost >= 1.0):
        raise ValueError(f"boost must be a finite factor ≥ 1 (1: the dominated concept left alone), got {boost}")
    return {"strength": strength, "boost": boost, "layers": _layers(layers), "steps": _steps(steps)}


def key(strength: float = STRENGTH, boost: float = BOOST, layers=DEFAULT_LAYERS, steps=None, **_) -> dict:
    """The JSON-able key of this remedy's images (beside the sampler): its name and every parameter,
    defaults filled in (``steps`` as the step numbers; ``layers`` in SD 1.4's numbering)."""
    p = _params(strength, boost, layers, steps)
    return {"remedy": NAME, "strength": p["strength"], "boost": p["boost"],
            "layers": p["layers"] if p["layers"] == "all" else list(p["layers"]), "steps": list(p["steps"])}


def applies(pipe) -> str | None:
    """None where the remedy runs (SD-layout cross-attention: SD 1.x/2.x, SDXL, the toy and smoke
    models); else why not."""
    try:
        _suppressible(pipe, what="early attention rebalancing")
    except NotImplementedError:
        return ("early attention rebalancing reweights text tokens in cross-attention layers, whose softmax runs "
                "over the text alone; this model's joint attention (SD3, FLUX) puts text and image keys in one "
                "softmax, where a token's share is not the cross-attention share the remedy is defined on, and "
                "dvdlib's joint-attention processors do not apply token biases")
    return None


def _per_prompt(value, prompts, name: str) -> list[str]:
    """One concept per prompt: a str for every prompt, or a sequence as long as ``prompts``."""
    if isinstance(value, str):
        return [value] * len(prompts)
    value = list(value)
    if len(value) != len(prompts) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}: give one concept (str) per prompt, {len(prompts)} in all, or one str for "
                         f"every prompt; got {value!r}")
    return value


def plan(pipe, prompts, seeds, sampler: dict, *, dominant, dominated, strength: float = STRENGTH,
         boost: float = BOOST, layers=DEFAULT_LAYERS, steps=None, every=None) -> list[TokenReweighting | None]:
    """One `TokenReweighting` per image, in the order ``[(p, s) for p in prompts for s in seeds]``
    (None where no factor differs from 1), after checking everything (ValueError) before any
    compute: the parameters, the concepts in each prompt (`dvdlib.tokens.known_span`: found, known
    to the tokenizer, not overlapping), the steps against the sampler's. ``every``: the registry."""
    prompts, seeds = list(prompts), list(seeds)
    if not prompts or not seeds:
        raise ValueError("give at least one prompt and one seed")
    p = _params(strength, boost, layers, steps)
    reason = applies(pipe)
    if reason is not None:
        raise NotImplementedError(reason)
    if p["steps"][0] > int(sampler["steps"]):
        raise ValueError(f"steps {list(p['steps'])} all lie beyond the sampler's {sampler['steps']} steps: the remedy "
                         "would change nothing")
    every = layer_registry(pipe) if every is None else every
    on = None if p["layers"] == "all" else paper_layers(pipe, p["layers"])
    if on is not None:
        known = {layer.index for layer in every}
        missing = [n for n in on if n not in known]
        if missing:
            raise ValueError(f"SD 1.4's layers {list(p['layers'])} read on this model as {on}, but it has layers "
                             f"1–{len(every)}")
    tokenizer = sequence_tokenizer(pipe)
    big, small = _per_prompt(dominant, prompts, "dominant"), _per_prompt(dominated, prompts, "dominated")
    per_prompt = []
    for prompt, a, b in zip(prompts, big, small):
        span_a, span_b = known_span(tokenizer, prompt, a), known_span(tokenizer, prompt, b)
        shared = sorted(set(span_a) & set(span_b))
        if shared:
            raise ValueError(f"in prompt {prompt!r} the dominant concept {a!r} and the dominated {b!r} share token "
                             f"positions {shared}: give two distinct concepts of the prompt")
        scales = {i: 1.0 - p["strength"] for i in span_a} | {i: p["boost"] for i in span_b}
        item = TokenReweighting(scales, on, p["steps"])
        per_prompt.append(item if any(f != 1.0 for f in scales.values()) else None)
    return [item for item in per_prompt for _ in seeds]


def generate(pipe, prompts, seeds, sampler: dict, *, dominant, dominated, strength: float = STRENGTH,
             boost: float = BOOST, layers=DEFAULT_LAYERS, steps=None, batch_size: int = 8) -> list:
    """Images of ``prompts`` × ``seeds`` (in the order ``[(p, s) for p in prompts for s in seeds]``),
    each from the seed's own initial latents (`dvdlib.generate.pipeline_call`), with the dominant
    concept's attention lowered and the dominated concept's raised early on.

    - ``dominant`` / ``dominated``: the concepts' words, one per prompt (or one str for all);
    - ``strength`` s ∈ [0, 1] (default `STRENGTH`): the dominant concept's tokens' attention
      probabilities are multiplied by 1 − s (s = 1: removed) before the renormalisation;
    - ``boost`` g ≥ 1 (default `BOOST`): the dominated concept's tokens' multiplied by g;
    - ``layers``: SD 1.4's layer numbers (1–16, read on the model by `dvdlib.family.paper_layers`)
      or "all" (the default, `DEFAULT_LAYERS`);
    - ``steps``: None (the first `K` = 12 steps), k (the first k) or 1-based step numbers;
    - ``batch_size``: images per pipeline call, not a parameter of the remedy (it changes the images
      only within float rounding), so not in `key`.

    At s = 0 and g = 1 nothing acts and every image is the plain one, bit for bit. Every input is
    checked before any compute (`plan`); a joint-attention model raises NotImplementedError
    (`applies`). The defaults were chosen on twins no chapter scores (`dvdlib.remedies.tuning`).
    """
    prompts, seeds = list(prompts), list(seeds)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    every = layer_registry(pipe)
    items = plan(pipe, prompts, seeds, sampler, dominant=dominant, dominated=dominated, strength=strength,
                 boost=boost, layers=layers, steps=steps, every=every)
    pairs = [(p, s) for p in prompts for s in seeds]
    images = []
    for start in range(0, len(pairs), int(batch_size)):
        batch, chunk = pairs[start:start + int(batch_size)], items[start:start + int(batch_size)]
        call = pipeline_call(pipe, batch, sampler)
        if all(item is None for item in chunk):
            images += pipe(**call).images
            continue
        with reweight_tokens_each(pipe, chunk, registry=every):
            images += pipe(**call).images
    return images
