"""Recording and steering cross-attention through diffusers attention processors (paper §3.4–§3.6).

One processor, `ControlledProcessor`, sits on every cross-attention layer while a `record` or
`intervene` context is open. For a (layer, step) that nobody asked about it hands the call to the
layer's original processor untouched (the fast fused path); otherwise it computes the attention
probabilities explicitly, optionally scales chosen heads' pre-softmax logits or suppresses or
reweights chosen text positions (`suppress_tokens`, `reweight_tokens`), and hands the
probabilities of the conditional branch of classifier-free guidance to the open recordings.

Steps are numbered from 1 = the first (noisiest) denoising step, read from the timestep the UNet
is called with. Contexts nest (`intervene` inside `record` and vice versa); the original
processors come back when the outermost one closes, also when the generation raises.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from contextlib import contextmanager

import numpy as np
import torch

from .family import of
from .layers import Layer, select
from .layers import registry as layer_registry


def _steps(steps) -> frozenset[int] | None:
    """``"all"`` → None (every step); an int or iterable of ints → a frozenset of 1-based steps."""
    if steps == "all":
        return None
    steps = frozenset([steps] if isinstance(steps, int) else steps)
    if not steps or min(steps) < 1:
        raise ValueError(f"steps are numbered from 1 (the first denoising step); got {sorted(steps)}")
    return steps


class Recording:
    """Attention a `record` context captured, per (layer, step), moved to the CPU as it comes.

    ``share(layer, step)`` is the attention each token receives, averaged over the layer's pixels
    (and its heads when ``heads="mean"``): shape [images, tokens] or [images, heads, tokens].
    ``map(layer, step)`` is the head-averaged spatial map [images, side, side, tokens].
    Images are in the order the pipeline was called (conditional branch only by default).
    """

    def __init__(self, layers: list[Layer], steps, heads="mean", maps=False, shares=True, branch="cond",
                 softmax="text"):
        if softmax not in ("text", "joint"):
            raise ValueError(f"softmax must be 'text' (over the text keys only) or 'joint' (the slice of a joint "
                             f"softmax), got {softmax!r}")
        if heads not in ("mean", "each"):
            raise ValueError(f"heads must be 'mean' or 'each', got {heads!r}")
        if branch not in ("cond", "uncond", "both"):
            raise ValueError(f"branch must be 'cond', 'uncond' or 'both', got {branch!r}")
        if not (maps or shares):
            raise ValueError("nothing to record: ask for shares and/or maps")
        self.layers = {layer.index: layer for layer in layers}
        self.steps, self.heads, self.branch, self.softmax = _steps(steps), heads, branch, softmax
        self.keep_maps, self.keep_shares = maps, shares
        self._shares, self._maps = defaultdict(list), defaultdict(list)
        self.calls: Counter = Counter()  # layer index -> recorded calls
        self.steps_seen: set[int] = set()

    def wants_step(self, step: int | None) -> bool:
        return step is not None and (self.steps is None or step in self.steps)

    def wants(self, layer: int, step: int | None) -> bool:
        return layer in self.layers and self.wants_step(step)

    def add(self, layer: int, step: int, probs: torch.Tensor, guided: bool) -> None:
        """Keep what was asked from probabilities [batch, heads, pixels, tokens]."""
        if not guided and self.branch == "uncond":
            raise ValueError("branch='uncond' asked for, but this UNet call has no unconditional half "
                             "(no classifier-free guidance): record branch='cond' or 'both'")
        if guided and self.branch != "both":
            half = probs.shape[0] // 2
            probs = probs[half:] if self.branch == "cond" else probs[:half]
        if self.keep_shares:
            share = probs.mean(dim=2)
            self._shares[layer, step].append((share.mean(dim=1) if self.heads == "mean" else share).float().cpu())
        if self.keep_maps:
            spatial = probs.mean(dim=1)
            side = int(round(spatial.shape[1] ** 0.5))
            self._maps[layer, step].append(spatial.reshape(spatial.shape[0], side, side, -1).float().cpu())
        self.calls[layer] += 1

    def share(self, layer: int, step: int = 1) -> np.ndarray:
        return self._take(self._shares, layer, step, "shares")

    def map(self, layer: int, step: int = 1) -> np.ndarray:
        return self._take(self._maps, layer, step, "maps")

    def _take(self, store, layer, step, what) -> np.ndarray:
        if (layer, step) not in store:
            raise KeyError(f"no {what} recorded for layer {layer}, step {step}; recorded: {sorted(store)}")
        return torch.cat(store[layer, step]).numpy()

    def keys(self) -> list[tuple[int, int]]:
        """The (layer, step) pairs recorded so far."""
        return sorted(set(self._shares) | set(self._maps))

    def per_image(self) -> list[dict[str, np.ndarray]]:
        """One dict per image: ``"share/L{layer}/S{step}"`` and ``"map/L{layer}/S{step}"`` arrays."""
        arrays = {f"share/L{l}/S{s}": self.share(l, s) for l, s in sorted(self._shares)}
        arrays |= {f"map/L{l}/S{s}": self.map(l, s) for l, s in sorted(self._maps)}
        n = len(next(iter(arrays.values()))) if arrays else 0
        return [{key: value[i] for key, value in arrays.items()} for i in range(n)]

    def check(self) -> None:
        """Raise if a wanted step ran but some wanted layer recorded nothing (a silent hook)."""
        if self.steps_seen:
            silent = [n for n in self.layers if self.calls[n] == 0]
            if silent:
                raise RuntimeError(
                    f"attention recording hooked {len(self.layers)} layers but layers {silent} recorded "
                    f"nothing during steps {sorted(self.steps_seen)}: the UNet does not route them "
                    f"through their attention processor (a diffusers change?)."
                )


class HeadScaling:
    """Multiply chosen heads' pre-softmax logits by a factor at chosen steps (paper §3.6).

    ``factors`` maps (layer, head) — layer numbered from 1, head from 0 — to the factor; factor 0
    makes the head attend uniformly over all tokens, factor 1 changes nothing.
    """

    def __init__(self, factors: dict[tuple[int, int], float], steps=(1,)):
        self.factors, self.steps = dict(factors), _steps(steps)

    def vector(self, layer: Layer, step: int | None, device) -> torch.Tensor | None:
        if step is None or (self.steps is not None and step not in self.steps):
            return None
        chosen = {head: f for (index, head), f in self.factors.items() if index == layer.index}
        if not chosen:
            return None
        vector = torch.ones(layer.heads, device=device)
        for head, factor in chosen.items():
            vector[head] = factor
        return vector

    def factors_for(self, layer: Layer, step: int | None, device, batch: int, guided: bool) -> torch.Tensor | None:
        """The factors of this scaling at (layer, step): [heads] (one for the whole batch), or None."""
        return self.vector(layer, step, device)


class HeadScalingEach:
    """One `HeadScaling` per image of a pipeline call (None: that image is not scaled), so that
    different interventions share one batch (paper §3.6's sweep, batched).

    An image's factors apply to both halves of classifier-free guidance, as `HeadScaling`'s do.
    """

    def __init__(self, scalings: list[HeadScaling | None]):
        if not scalings:
            raise ValueError("give one scaling (or None) per image of the pipeline call")
        self.scalings = list(scalings)

    def factors_for(self, layer: Layer, step: int | None, device, batch: int, guided: bool) -> torch.Tensor | None:
        """[batch, heads] factors at (layer, step), or None when no image is scaled there. ``batch``
        is the UNet's: the images, or twice that under classifier-free guidance."""
        vectors = [None if s is None else s.vector(layer, step, device) for s in self.scalings]
        if all(v is None for v in vectors):
            return None
        n = len(self.scalings)
        if batch not in (n, 2 * n) or (batch == 2 * n and not guided):
            raise ValueError(f"{n} per-image head scalings for a UNet batch of {batch}: give one scaling per "
                             "image of the pipeline call (num_images_per_prompt=1)")
        ones = torch.ones(layer.heads, device=device)
        per_image = torch.stack([ones if v is None else v for v in vectors])
        return torch.cat([per_image, per_image]) if batch == 2 * n else per_image


class TokenReweighting:
    """Multiply chosen text positions' attention by chosen factors, in chosen cross-attention
    layers at chosen steps, in the conditional branch of classifier-free guidance only.

    ``scales`` maps a text position (in the padded sequence the attention sees,
    `dvdlib.tokens.concept_span`) to a factor f ≥ 0 on that token's pre-normalisation attention
    probability, in every head: its logit gets log(f) added (−inf at f = 0: the token removed), so
    its probability is multiplied by f and all are renormalised (the softmax of the biased logits).
    f < 1 lowers a token's share, f > 1 raises it, f = 1 changes nothing. ``layers``: None (every
    cross-attention layer) or layer numbers of the registry (`dvdlib.layers.registry`, as
    `record`'s ``layers``); ``steps``: 1-based denoising steps or "all". Where no factor differs
    from 1, or outside its layers and steps, nothing acts and the stock processor runs
    (bit-identical to a plain generation). The unconditional branch is never touched: the empty
    prompt holds no concept at those positions.
    """

    def __init__(self, scales: dict[int, float], layers=None, steps=(1,)):
        scales = {int(i): float(f) for i, f in dict(scales).items()}
        if any(i < 0 for i in scales):
            raise ValueError(f"text positions are counted from 0, got {sorted(scales)}")
        bad = {i: f for i, f in scales.items() if not (math.isfinite(f) and f >= 0)}
        if bad:
            raise ValueError(f"token factors must be finite and ≥ 0 (0: the token removed, 1: unchanged), got {bad}")
        self.scales = dict(sorted(scales.items()))
        if layers is not None:
            layers = frozenset([layers] if isinstance(layers, int) else (int(n) for n in layers))
            if not layers or min(layers) < 1:
                raise ValueError(f"layers are numbered from 1 (None: every layer); got {sorted(layers)}")
        self.layers, self.steps = layers, _steps(steps)

    def acts(self, step: int | None, layer: "Layer | int | None" = None) -> bool:
        """Whether this reweighting changes anything at ``step`` (and at ``layer``, when given)."""
        if step is None or not any(f != 1.0 for f in self.scales.values()):
            return False
        if self.steps is not None and step not in self.steps:
            return False
        index = getattr(layer, "index", layer)
        return layer is None or self.layers is None or index in self.layers

    def row(self, tokens: int, device) -> torch.Tensor:
        """The additive logit bias [tokens] of one conditional image."""
        if max(self.scales) >= tokens:
            raise ValueError(f"text position {max(self.scales)} beyond the {tokens} tokens this layer attends to")
        bias = torch.zeros(tokens, device=device)
        for i, f in self.scales.items():
            bias[i] = math.log(f) if f > 0 else -math.inf
        return bias

    def bias_for(self, layer: Layer, step: int | None, device, batch: int, tokens: int,
                 guided: bool) -> torch.Tensor | None:
        """The additive logit bias [batch, tokens] at (layer, step), or None when nothing acts."""
        if not self.acts(step, layer):
            return None
        bias = self.row(tokens, device).expand(batch, tokens).clone()
        if guided:
            bias[: batch // 2] = 0.0  # the unconditional half: left alone
        return bias


class TokenSuppression(TokenReweighting):
    """Suppress chosen text positions in every cross-attention layer at chosen steps: the positive
    control of a head ablation (paper §3.6), the dominant concept's tokens taken out of the prompt's
    attention where the ablation acts.

    The positions' pre-softmax logits get ``log(1 − strength)`` added, in every head: at strength 1
    they are pushed to −inf, so their probabilities are zero and the other tokens' are renormalised
    (the softmax over what is left); at strength s their probabilities are scaled by 1 − s before
    the renormalisation. At strength 0 nothing acts and the stock processor runs (bit-identical to a
    plain generation). Only the conditional branch of classifier-free guidance is touched: the
    unconditional prompt holds no concept at those positions. (A `TokenReweighting` with every
    position's factor 1 − strength, in every layer.)

    ``positions``: the text positions (in the padded sequence the attention sees,
    `dvdlib.tokens.concept_span`) suppressed in every image of the call.
    """

    def __init__(self, positions, strength: float = 1.0, steps=(1,)):
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must lie in [0, 1] (0: off, 1: the tokens removed), got {strength}")
        self.positions = sorted({int(i) for i in positions})
        if self.positions and self.positions[0] < 0:
            raise ValueError(f"text positions are counted from 0, got {self.positions}")
        super().__init__({i: 1.0 - strength for i in self.positions}, None, steps)
        self.strength = strength

    def acts(self, step: int | None, layer: "Layer | int | None" = None) -> bool:
        """Whether this suppression changes anything at ``step`` (in every layer)."""
        return (self.strength > 0 and bool(self.positions) and step is not None
                and (self.steps is None or step in self.steps))

    def row(self, tokens: int, device) -> torch.Tensor:
        """The additive logit bias [tokens] of one conditional image."""
        if self.positions[-1] >= tokens:
            raise ValueError(f"text position {self.positions[-1]} beyond the {tokens} tokens this layer attends to")
        bias = torch.zeros(tokens, device=device)
        bias[self.positions] = math.log1p(-self.strength) if self.strength < 1 else -math.inf
        return bias


class TokenReweightingEach:
    """One `TokenReweighting` (or `TokenSuppression`) per image of a pipeline call (None: that image
    left alone), so that images with different token spans, layers or steps share a batch."""

    what = "token reweightings"

    def __init__(self, items: list[TokenReweighting | None]):
        if not items:
            raise ValueError(f"give one of the {self.what} (or None) per image of the pipeline call")
        self.items = list(items)

    def bias_for(self, layer: Layer, step: int | None, device, batch: int, tokens: int,
                 guided: bool) -> torch.Tensor | None:
        """[batch, tokens] additive logit bias at (layer, step), or None when no image's acts there.
        ``batch`` is the UNet's: the images, or twice that under classifier-free guidance (the
        conditional half second)."""
        acting = [s is not None and s.acts(step, layer) for s in self.items]
        if not any(acting):
            return None
        n = len(self.items)
        if batch not in (n, 2 * n) or (batch == 2 * n and not guided):
            raise ValueError(f"{n} per-image {self.what} for a UNet batch of {batch}: give one per "
                             "image of the pipeline call (num_images_per_prompt=1)")
        bias = torch.zeros(batch, tokens, device=device)
        offset = batch - n  # the conditional images: the second half under guidance
        for i, (s, on) in enumerate(zip(self.items, acting)):
            if on:
                bias[offset + i] = s.row(tokens, device)
        return bias


class TokenSuppressionEach(TokenReweightingEach):
    """One `TokenSuppression` per image of a pipeline call (None: that image left alone), so that
    the positive control of different prompts shares a batch with other interventions (paper §3.6)."""

    what = "token suppressions"

    def __init__(self, suppressions: list[TokenSuppression | None]):
        super().__init__(suppressions)

    @property
    def suppressions(self) -> list[TokenSuppression | None]:
        return self.items


def attention_probs(attn, hidden_states, context, attention_mask=None, head_factors=None, logit_bias=None):
    """Cross-attention of a diffusers `Attention` computed explicitly, as the stock processor does.

    Returns (probabilities [batch, heads, pixels, tokens] in float32, layer output). Logits are
    multiplied by ``head_factors`` — [heads], or [batch, heads] per sample — before the mask and
    the softmax; ``logit_bias`` ([batch, tokens], `TokenReweighting`) is added to every head's
    logits with the mask.
    """
    if attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.ndim != 3:
        raise NotImplementedError("explicit attention supports the SD cross-attention layout only")
    batch = hidden_states.shape[0]
    if attn.norm_cross:
        context = attn.norm_encoder_hidden_states(context)
    query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
    head_dim = key.shape[-1] // attn.heads
    query, key, value = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))
    if attn.norm_q is not None:
        query, key = attn.norm_q(query), attn.norm_k(key)
    logits = (query.float() @ key.float().transpose(-1, -2)) * attn.scale
    if head_factors is not None:
        logits = logits * per_sample(head_factors, batch)
    if attention_mask is not None:
        mask = attn.prepare_attention_mask(attention_mask, context.shape[1], batch)
        logits = logits + mask.view(batch, attn.heads, -1, mask.shape[-1]).float()
    if logit_bias is not None:
        logits = logits + logit_bias[:, None, None, :].float()
    probs = logits.softmax(dim=-1)
    out = (probs.to(value.dtype) @ value).transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + hidden_states
    return probs, out / attn.rescale_output_factor


def per_sample(head_factors: torch.Tensor, batch: int) -> torch.Tensor:
    """Head factors [heads] or [batch, heads] as [batch or 1, heads, 1, 1], to multiply logits."""
    if head_factors.ndim == 1:
        return head_factors.view(1, -1, 1, 1)
    if head_factors.ndim != 2 or head_factors.shape[0] != batch:
        raise ValueError(f"head factors of shape {tuple(head_factors.shape)} for a batch of {batch}: "
                         "give [heads] or [batch, heads]")
    return head_factors[:, :, None, None]


class ControlledProcessor:
    """The attention processor `record` and `intervene` install on each cross-attention layer."""

    def __init__(self, layer: Layer, stock, control: "_Control"):
        self.layer, self.stock, self.control = layer, stock, control

    def asked(self, hidden_states) -> tuple[list[Recording], torch.Tensor | None]:
        """The recordings that want this call and the head factors that act on it (or None)."""
        control, step = self.control, self.control.step
        recordings = [r for r in control.recordings if r.wants(self.layer.index, step)]
        return recordings, control.head_factors(self.layer, step, hidden_states.device, hidden_states.shape[0])

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        control, step = self.control, self.control.step
        recordings, factors = self.asked(hidden_states)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        bias = control.token_bias(self.layer, step, hidden_states.device, hidden_states.shape[0], context.shape[1])
        if not recordings and factors is None and bias is None:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        probs, out = attention_probs(attn, hidden_states, context, attention_mask, factors, bias)
        for recording in recordings:
            recording.add(self.layer.index, step, probs, control.guided)
        return out


def unet_call(pipe, args, kwargs, timestep_scale: float = 1.0) -> tuple[int | None, bool, object]:
    """What a denoiser call of a pipeline is: (step, guided, timestep). The step is the timestep's
    position in the scheduler's schedule (1 = the first denoising step; None outside it); the batch
    is guided when the pipeline uses classifier-free guidance and the input is two identical halves.
    ``timestep_scale``: what the pipeline divided the scheduler's timestep by before the call."""
    sample = kwargs.get("sample", kwargs.get("hidden_states", args[0] if args else None))
    half = sample.shape[0] // 2
    guided = _pipeline_guides(pipe) and sample.shape[0] % 2 == 0 and torch.equal(sample[:half], sample[half:])
    t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
    timesteps = getattr(pipe.scheduler, "timesteps", None)
    step = None
    if t is not None and timesteps is not None:
        first = torch.as_tensor(t).flatten()[0].float() * timestep_scale
        hits = torch.isclose(timesteps.to(first.device).float(), first, rtol=1e-5, atol=1e-3).nonzero()
        if len(hits):
            step = int(hits[0]) + 1
    return step, guided, t


def _pipeline_guides(pipe) -> bool:
    """The pipeline's classifier-free-guidance flag (as left by its latest call)."""
    try:
        return bool(pipe.do_classifier_free_guidance)
    except AttributeError:  # the UNet is called outside a pipeline call
        return False


class _Control:
    """State shared by the processors of one UNet: the current step, open recordings, scalings."""

    def __init__(self, pipe, layers: list[Layer], timestep_scale: float = 1.0):
        self.pipe, self.layers, self.timestep_scale = pipe, layers, timestep_scale
        self.step: int | None = None
        self.guided = False
        self.text_length: int | None = None  # text tokens of the current call (FLUX's single-stream blocks)
        self.recordings: list[Recording] = []
        self.scalings: list[HeadScaling] = []
        self.suppressions: list[TokenReweighting | TokenReweightingEach] = []  # token suppressions and reweightings

    def on_unet_call(self, module, args, kwargs):
        """Forward pre-hook: the step and whether the batch is guided (`unet_call`)."""
        self.step, self.guided, _ = unet_call(self.pipe, args, kwargs, self.timestep_scale)
        context = kwargs.get("encoder_hidden_states")
        self.text_length = None if context is None else context.shape[1]
        for recording in self.recordings:
            if recording.wants_step(self.step):
                recording.steps_seen.add(self.step)

    def head_factors(self, layer: Layer, step, device, batch: int):
        """The product of the open scalings' factors at (layer, step): [heads] when every scaling
        is one for the whole batch, [batch, heads] when one is per image; None when none acts."""
        found = [f for s in self.scalings if (f := s.factors_for(layer, step, device, batch, self.guided)) is not None]
        if not found:
            return None
        if all(f.ndim == 1 for f in found):
            return torch.stack(found).prod(dim=0)
        product = torch.ones(batch, layer.heads, device=device)
        for f in found:
            product = product * f
        return product

    def token_bias(self, layer: Layer, step, device, batch: int, tokens: int):
        """The sum of the open token suppressions' and reweightings' logit biases at (layer, step):
        [batch, tokens], or None when none acts."""
        found = [b for s in self.suppressions
                 if (b := s.bias_for(layer, step, device, batch, tokens, self.guided)) is not None]
        if not found:
            return None
        return torch.stack(found).sum(dim=0)


@contextmanager
def _controlled(pipe, layers: list[Layer] | None = None):
    """Install the adapter's processor (`ControlledProcessor` or a subclass) on every layer of the
    registry (``layers``: the registry when the caller has it; once, for nested contexts). Only
    the registry's modules are touched, set and restored one by one (no walk over the model)."""
    adapter = of(pipe)
    unet = adapter.denoiser(pipe)
    control = getattr(unet, "_dvd_control", None)
    if control is not None:
        yield control
        return
    layers = layer_registry(pipe) if layers is None else layers
    if not layers:
        raise RuntimeError(f"{type(unet).__name__} has no cross-attention layers to hook")
    original = [layer.module.processor for layer in layers]
    control = _Control(pipe, layers, adapter.timestep_scale(pipe))
    hook = None
    try:
        for layer, stock in zip(layers, original):
            layer.module.set_processor(adapter.processor(layer, stock, control))
        hooked = sum(isinstance(layer.module.processor, ControlledProcessor) for layer in layers)
        if hooked != len(layers):
            raise RuntimeError(f"hooked {hooked} attention processors, expected {len(layers)} cross-attention layers")
        hook = unet.register_forward_pre_hook(control.on_unet_call, with_kwargs=True)
        unet._dvd_control = control
        yield control
    finally:
        if hook is not None:
            hook.remove()
            del unet._dvd_control
        for layer, stock in zip(layers, original):
            layer.module.set_processor(stock)


@contextmanager
def _attached(pipe, kind: str, item, layers: list[Layer] | None = None):
    """Keep ``item`` in the control's ``kind`` list ("recordings", "scalings" or "suppressions")
    while open."""
    with _controlled(pipe, layers) as control:
        getattr(control, kind).append(item)
        try:
            yield item
        finally:
            getattr(control, kind).remove(item)


@contextmanager
def record(pipe, layers="all", steps=(1,), heads="mean", maps=False, shares=True, branch="cond", softmax="text",
           registry: list[Layer] | None = None):
    """Record cross-attention while the block runs: ``with record(pipe, layers=[8, 9, 10]) as rec:``.

    ``layers``: paper numbers (1–16 in SD) or "all"; ``steps``: 1-based denoising steps or "all";
    ``heads``: "mean" (head-averaged) or "each"; ``maps``: also keep spatial maps (memory grows
    with the pixels); ``branch``: "cond" (the prompt's branch of classifier-free guidance),
    "uncond" or "both"; ``softmax``: under joint attention (SD3), a token's share from a softmax
    over the text keys only ("text", the default) or the slice of the joint softmax ("joint";
    `dvdlib.adapters.joint`); the same thing under cross-attention. ``registry``: the pipeline's
    layer registry (`dvdlib.layers.registry`) when the caller has it (else built here); so for
    ``intervene``, ``intervene_each``, ``suppress_tokens`` and ``suppress_tokens_each``.
    """
    every = layer_registry(pipe) if registry is None else registry
    recording = Recording(select(every, layers), steps, heads, maps, shares, branch, softmax)
    with _attached(pipe, "recordings", recording, every):
        yield recording
    recording.check()


@contextmanager
def intervene(pipe, heads: dict[tuple[int, int], float], steps=(1,), registry: list[Layer] | None = None):
    """Scale chosen heads' pre-softmax logits at chosen steps (paper §3.6 ablation).

    ``heads`` maps (layer, head) to a factor: ``{(3, 5): 0.0}`` makes head 5 of layer 3 uniform at
    the first step (the paper's default ablation).
    """
    every = _check_heads(pipe, heads, registry)
    with _attached(pipe, "scalings", HeadScaling(heads, steps), every) as scaling:
        yield scaling


@contextmanager
def intervene_each(pipe, per_image: list[tuple[dict[tuple[int, int], float], object] | None],
                   registry: list[Layer] | None = None):
    """One intervention per image of the next pipeline calls (paper §3.6, batched): ``per_image``
    holds, for each image in call order, ``(heads, steps)`` as `intervene` takes them, or None for
    an image left alone. Equal, within float tolerance, to one `intervene` per image."""
    scalings, every = [], layer_registry(pipe) if registry is None else registry
    for item in per_image:
        if item is not None:
            heads, steps = item
            _check_heads(pipe, heads, every)
            item = HeadScaling(heads, steps)
        scalings.append(item)
    with _attached(pipe, "scalings", HeadScalingEach(scalings), every) as scaling:
        yield scaling


def _check_heads(pipe, heads, every: list[Layer] | None = None) -> list[Layer]:
    """Raise for a (layer, head) the pipeline does not have; return its registry."""
    every = layer_registry(pipe) if every is None else every
    layers = {layer.index: layer for layer in every}
    for layer, head in heads:
        if layer not in layers or not 0 <= head < layers[layer].heads:
            raise ValueError(f"no head {head} in layer {layer}: see dvdlib.layers.registry(pipe)")
    return every


@contextmanager
def suppress_tokens(pipe, positions, steps=(1,), strength: float = 1.0, registry: list[Layer] | None = None):
    """Suppress text positions in every cross-attention layer at chosen steps (paper §3.6's positive
    control, `TokenSuppression`): ``with suppress_tokens(pipe, concept_span(tok, prompt, "van gogh")):``
    takes the concept's tokens out of the conditional branch's attention at the first step."""
    every = _suppressible(pipe, registry)
    with _attached(pipe, "suppressions", TokenSuppression(positions, strength, steps), every) as suppression:
        yield suppression


@contextmanager
def suppress_tokens_each(pipe, per_image: list[tuple[object, object, float] | None],
                         registry: list[Layer] | None = None):
    """One token suppression per image of the next pipeline calls: ``per_image`` holds, for each
    image in call order, ``(positions, steps, strength)`` as `suppress_tokens` takes them, or None
    for an image left alone (paper §3.6's positive control, batched)."""
    every = _suppressible(pipe, registry)
    each = TokenSuppressionEach([None if item is None else TokenSuppression(item[0], item[2], item[1])
                                 for item in per_image])
    with _attached(pipe, "suppressions", each, every) as suppression:
        yield suppression


def _suppressible(pipe, registry: list[Layer] | None = None, what: str = "token suppression") -> list[Layer]:
    """The registry of a pipeline whose processors apply token suppression or reweighting
    (SD-layout cross-attention); a joint-attention family raises rather than silently not
    suppressing (``what``: the intervention, named in the error)."""
    every = layer_registry(pipe) if registry is None else registry
    probe = of(pipe).processor(every[0], None, None)
    if type(probe).__call__ is not ControlledProcessor.__call__:
        raise NotImplementedError(f"{what} is implemented for cross-attention (SD, SDXL), not for "
                                  f"{type(probe).__name__}")
    return every


@contextmanager
def reweight_tokens(pipe, scales: dict[int, float], layers=None, steps=(1,), registry: list[Layer] | None = None):
    """Multiply text positions' attention by factors in chosen cross-attention layers at chosen
    steps, in the conditional branch (`TokenReweighting`): ``with reweight_tokens(pipe, {1: 0.5,
    4: 2.0}, layers=[9, 10], steps=[1, 2]):`` halves token 1's and doubles token 4's
    pre-normalisation attention in layers 9 and 10 at the first two steps. ``layers``: None (every
    layer) or numbers of the registry (an unknown one raises ValueError before anything runs)."""
    every = _suppressible(pipe, registry, "token reweighting")
    reweighting = TokenReweighting(scales, layers, steps)
    _check_layers(every, reweighting.layers)
    with _attached(pipe, "suppressions", reweighting, every) as attached:
        yield attached


@contextmanager
def reweight_tokens_each(pipe, per_image: list[tuple[dict[int, float], object, object] | None],
                         registry: list[Layer] | None = None):
    """One token reweighting per image of the next pipeline calls: ``per_image`` holds, for each
    image in call order, ``(scales, layers, steps)`` as `reweight_tokens` takes them (or a
    `TokenReweighting`), or None for an image left alone. Equal, within float tolerance, to one
    `reweight_tokens` per image."""
    every = _suppressible(pipe, registry, "token reweighting")
    items = [item if item is None or isinstance(item, TokenReweighting) else TokenReweighting(*item)
             for item in per_image]
    for item in items:
        if item is not None:
            _check_layers(every, item.layers)
    with _attached(pipe, "suppressions", TokenReweightingEach(items), every) as attached:
        yield attached


def _check_layers(every: list[Layer], layers) -> None:
    """Raise ValueError for a layer number ``every`` (a registry) does not have (None: all)."""
    if layers is not None:
        select(every, sorted(layers))
