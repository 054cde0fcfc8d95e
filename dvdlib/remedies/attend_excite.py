"""Attend-and-Excite (Chefer et al., SIGGRAPH 2023) as a remedy for a collapsing prompt.

At each of the first denoising steps, Attend-and-Excite reads the cross-attention maps of the
subject tokens, smooths each with a Gaussian and asks that its peak be high; the loss
``max over tokens of (1 - peak)`` is lowered by a gradient step on the latents before the step is
taken (and, at a few listed steps, by repeated steps until every peak passes a threshold). A
dominated concept whose tokens are barely attended to is thus pushed into the image.

This module calls diffusers' own ``StableDiffusionAttendAndExcitePipeline``: it is built from the
given pipeline's modules (shared, no copy of the weights) and called once per prompt with every
seed as one image of that prompt. What this module adds:

- the subject tokens: the positions of the two concepts (``dominant`` and ``dominated``) in the
  prompt, found with `dvdlib.tokens.concept_span` on `dvdlib.tokens.sequence_tokenizer`. Those
  positions count the start token as position 0, as the pipeline's ``token_indices`` do (it drops
  position 0 and shifts by one; ``get_indices`` lists the same numbering). ``tokens="all"``
  excites every token of both concepts; ``"last"`` only the last token of each (one token per
  subject, as in Attend-and-Excite's examples; here the last: "castle" of "neuschwanstein castle").
- the initial latents: `dvdlib.generate.initial_latents`, the seed's own noise, so that a remedy
  that changes nothing gives the plain image.
- the attention resolution (`attention_resolution`): Attend-and-Excite averages the cross-attention
  maps of one grid size, 16×16 for SD at 512 px (64×64 latents): the grid of the decoder's first
  cross-attention block (SD 1.4's layers 8–10) and of the encoder block before the middle (layers
  5–6). Diffusers' own default, ``ceil(pixels / 32)``, is that grid only for an 8× VAE; here it is
  read from the UNet at the sampler's resolution, so it is right for any SD-layout UNet: 16 at
  512 px and 24 at 768 px (SD 2.1), 4 for the smoke model at 128 px (16×16 latents) and 4 for the
  toy model at 32 px, whose 2× "VAE" gives 16×16 latents and whose cross-attention grids are 16, 8,
  4 (layers 5–6, 8–10) and 2 (the middle).
- ``max_iter_to_alter`` bounds every change: a threshold step at or past it is dropped (diffusers'
  pipeline would still refine the latents there), so ``max_iter_to_alter=0`` is the plain
  generation. With the defaults (thresholds at steps 0, 10, 20, all below 25) nothing is dropped.

Parameters and their defaults (the paper's, which are diffusers'; tuned for SD's 50 DDIM steps):
``max_iter_to_alter=25`` (Attend-and-Excite updates the latents in the first 25 steps),
``thresholds={0: 0.05, 10: 0.5, 20: 0.8}`` (at those steps the latents are refined until every
subject token's smoothed peak attention reaches the threshold, at most 20 tries),
``scale_factor=20`` (step size α; the step at step i is ``scale_factor · sqrt(linspace(1, 0.5,
steps)[i])``), ``attn_res=None`` (the grid above; an int picks another grid the UNet has),
``tokens="all"``.

The gradient runs through the UNet: use the model in float32 on a CPU (float16 on a GPU works as
in diffusers). Each image is refined on its own (the pipeline's loop), so time grows with the
number of seeds; the final noise prediction of a step is one batch of all the seeds.
"""

from __future__ import annotations

import inspect
import warnings
from contextlib import contextmanager

import torch

from ..generate import pipeline_call
from ..layers import cross_attention_layers
from ..progress import quiet
from ..tokens import concept_span, sequence_tokenizer

#: The name that keys this remedy's images in the store.
NAME = "attend_excite"

#: Attend-and-Excite's parameters as the paper and diffusers set them (for 50 DDIM steps).
DEFAULTS = {
    "max_iter_to_alter": 25,
    "thresholds": {0: 0.05, 10: 0.5, 20: 0.8},
    "scale_factor": 20.0,
    "attn_res": None,
    "tokens": "all",
}

TOKEN_CHOICES = ("all", "last")


def _thresholds(thresholds) -> dict[int, float]:
    """``{step: threshold}`` from a dict (int or str keys, as JSON or papermill give it) or a list of
    (step, threshold) pairs; None means the default."""
    if thresholds is None:
        thresholds = DEFAULTS["thresholds"]
    items = thresholds.items() if isinstance(thresholds, dict) else thresholds
    found = {}
    for step, value in items:
        step, value = int(step), float(value)
        if step < 0 or not 0.0 < value <= 1.0:
            raise ValueError(f"thresholds: step {step} → {value}; give steps ≥ 0 and thresholds in (0, 1]")
        found[step] = value
    return dict(sorted(found.items()))


def _params(params: dict) -> dict:
    """Every parameter, defaults filled in and checked."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"Attend-and-Excite has no parameter {unknown}; it takes {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    p["max_iter_to_alter"] = int(p["max_iter_to_alter"])
    if p["max_iter_to_alter"] < 0:
        raise ValueError(f"max_iter_to_alter must be ≥ 0, got {p['max_iter_to_alter']}")
    p["thresholds"] = _thresholds(p["thresholds"])
    p["scale_factor"] = float(p["scale_factor"])
    if p["attn_res"] is not None:
        p["attn_res"] = int(p["attn_res"])
    if p["tokens"] not in TOKEN_CHOICES:
        raise ValueError(f"tokens must be one of {TOKEN_CHOICES}, got {p['tokens']!r}")
    return p


def key(**params) -> dict:
    """What keys this remedy's images beside the sampler: its name and every parameter, defaults
    filled in (thresholds as [step, threshold] pairs, so that the dict survives JSON)."""
    p = _params(params)
    return {"remedy": NAME, **p, "thresholds": [[s, t] for s, t in p["thresholds"].items()]}


def applies(pipe) -> str | None:
    """None when Attend-and-Excite can run on ``pipe`` (a StableDiffusionPipeline-like pipeline: a
    UNet that cross-attends to one text encoder's tokens: SD 1.x/2.x, the smoke and toy models),
    else one sentence saying why not."""
    name = type(pipe).__name__
    unet = getattr(pipe, "unet", None)
    if unet is None:
        return (f"{name} has no UNet: its text and image tokens attend to each other jointly in a transformer "
                "(SD3, FLUX), which diffusers' Attend-and-Excite pipeline can neither hook nor call.")
    if getattr(pipe, "text_encoder_2", None) is not None or getattr(unet.config, "addition_embed_type", None):
        return (f"{name}'s UNet also needs pooled text embeddings and size conditioning from a second text "
                "encoder (SDXL), which diffusers' Attend-and-Excite pipeline (SD 1.x/2.x only) never passes.")
    missing = [m for m in ("text_encoder", "tokenizer", "vae", "scheduler") if getattr(pipe, m, None) is None]
    if missing:
        return f"{name} lacks the {', '.join(missing)} that diffusers' Attend-and-Excite pipeline needs."
    if not cross_attention_layers(unet):
        return f"{name}'s UNet has no cross-attention layers, so there is no attention to a concept to excite."
    return None


def token_indices(pipe, prompt: str, dominant: str, dominated: str, tokens: str = "all") -> list[int]:
    """The positions Attend-and-Excite excites for ``prompt``: the dominant concept's, then the
    dominated one's (``tokens="last"``: the last token of each), in the pipeline's numbering (the
    start token is position 0). Raises `dvdlib.tokens.ConceptNotFound` for a concept not in it."""
    if tokens not in TOKEN_CHOICES:
        raise ValueError(f"tokens must be one of {TOKEN_CHOICES}, got {tokens!r}")
    tokenizer = sequence_tokenizer(pipe)
    found = []
    for concept in (dominant, dominated):
        span = concept_span(tokenizer, prompt, concept)
        found += span if tokens == "all" else span[-1:]
    return list(dict.fromkeys(found))  # a token the two concepts share, once


def attention_resolution(pipe, resolution: int, attn_res: int | None = None) -> int:
    """The side of the cross-attention maps Attend-and-Excite reads at ``resolution`` pixels: the
    grid of the decoder's first cross-attention block (SD at 512 px: 16, as the paper), or
    ``attn_res`` when given and some cross-attention layer has that grid."""
    layers = cross_attention_layers(pipe.unet, resolution, pipe.vae_scale_factor)
    sizes = sorted({layer.size for layer in layers})
    if attn_res is not None:
        if attn_res not in sizes:
            raise ValueError(f"attn_res {attn_res}: no cross-attention layer of this UNet has a {attn_res}×{attn_res} "
                             f"grid at {resolution} px; its grids are {sizes}")
        return attn_res
    ups = [layer for layer in layers if layer.block == "up"]
    return (ups or layers)[0].size


def attend_excite_pipeline(pipe):
    """Diffusers' ``StableDiffusionAttendAndExcitePipeline`` around ``pipe``'s own modules (shared:
    no weights are copied), without safety checker or progress bar."""
    from diffusers import StableDiffusionAttendAndExcitePipeline

    accepted = inspect.signature(StableDiffusionAttendAndExcitePipeline.__init__).parameters
    modules = {k: v for k, v in pipe.components.items() if k in accepted}
    modules.update(safety_checker=None, feature_extractor=None)
    with quiet():  # its deprecation notice
        ae = StableDiffusionAttendAndExcitePipeline(**modules, requires_safety_checker=False)
    ae.set_progress_bar_config(disable=True)
    return ae


@contextmanager
def _unet_restored(unet):
    """Give the UNet back as it was, whatever happens: its attention processors (the pipeline swaps
    them and restores them only when it finishes) and its parameters' ``requires_grad`` (off
    meanwhile: the gradient is taken for the latents only, so none is kept for the weights)."""
    processors = unet.attn_processors
    grads = {name: p.requires_grad for name, p in unet.named_parameters()}
    unet.requires_grad_(False)
    try:
        yield
    finally:
        unet.set_attn_processor(processors)
        for name, p in unet.named_parameters():
            p.requires_grad_(grads[name])


def _per_prompt(values, prompts, what: str) -> list[str]:
    if isinstance(values, str):
        return [values] * len(prompts)
    values = list(values)
    if len(values) != len(prompts):
        raise ValueError(f"{what}: {len(values)} given for {len(prompts)} prompts; give one per prompt (or one for all)")
    return values


def calls(pipe, prompts, seeds, sampler: dict, *, dominant, dominated, output_type: str = "pil", **params) -> list[dict]:
    """The keyword arguments of the Attend-and-Excite pipeline call of each prompt (all its seeds as
    its images), every concept located first: a concept missing from its prompt raises
    `dvdlib.tokens.ConceptNotFound` before any latent is drawn."""
    reason = applies(pipe)
    if reason:
        raise ValueError(f"Attend-and-Excite cannot run here: {reason}")
    p = _params(params)
    if isinstance(prompts, str) or isinstance(seeds, (str, int)):
        raise TypeError("give the prompts and the seeds as lists (one prompt: [prompt])")
    prompts, seeds = list(prompts), [int(s) for s in seeds]
    if not prompts or not seeds:
        raise ValueError("give at least one prompt and one seed")
    pairs = zip(prompts, _per_prompt(dominant, prompts, "dominant"), _per_prompt(dominated, prompts, "dominated"))
    indices = [token_indices(pipe, prompt, a, b, p["tokens"]) for prompt, a, b in pairs]
    side = attention_resolution(pipe, sampler["resolution"], p["attn_res"])
    thresholds = {step: t for step, t in p["thresholds"].items() if step < p["max_iter_to_alter"]}
    out = []
    for prompt, positions in zip(prompts, indices):
        call = pipeline_call(pipe, [(prompt, s) for s in seeds], sampler)
        call.update(prompt=prompt, num_images_per_prompt=len(seeds), token_indices=positions,
                    max_iter_to_alter=p["max_iter_to_alter"], thresholds=thresholds,
                    scale_factor=p["scale_factor"], attn_res=(side, side), output_type=output_type)
        out.append(call)
    return out


def run(pipe, prompts, seeds, sampler: dict, *, dominant, dominated, output_type: str = "pil", **params):
    """`generate` with the pipeline's ``output_type``: PIL images, or ``"latent"`` for the final
    latents [len(prompts)·len(seeds), C, h, w] in the same order."""
    jobs = calls(pipe, prompts, seeds, sampler, dominant=dominant, dominated=dominated, output_type=output_type,
                 **params)
    ae = attend_excite_pipeline(pipe)
    results = []
    with _unet_restored(pipe.unet), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.meshgrid")  # inside diffusers' Gaussian smoothing
        for call in jobs:
            results.append(ae(**call).images)
    if output_type == "latent":
        return torch.cat(results)
    return [image for images in results for image in images]


def generate(pipe, prompts, seeds, sampler: dict, *, dominant, dominated, **params) -> list:
    """Attend-and-Excite images of every prompt × seed, in the order ``[(p, s) for p in prompts for s
    in seeds]``, each from the seed's own initial latents (`dvdlib.remedies`' contract).

    ``dominant`` / ``dominated``: one concept per prompt (or one string for all); ``params``:
    ``max_iter_to_alter`` (25), ``thresholds`` ({0: 0.05, 10: 0.5, 20: 0.8}), ``scale_factor``
    (20), ``attn_res`` (None: the grid this module's docstring explains), ``tokens`` ("all")."""
    return run(pipe, prompts, seeds, sampler, dominant=dominant, dominated=dominated, **params)
