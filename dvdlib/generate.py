"""Deterministic, batched, resumable generation (the authors' release: seeds).

A seed always means the same initial latents: they are drawn one seed at a time from a CPU
``torch.Generator``, so they are bitwise identical across batch sizes and devices. Every image,
record and attention recording goes to the `Store` as soon as its batch finishes; a rerun skips
what is stored.

Chapters share work through the store: a generation that runs the whole schedule keeps its image
and, under classifier-free guidance, its noise-prediction norms, whatever it was asked to record,
so a chapter that needs only those (the DvD images of paper §2, the norms of §3.7) reads them from
any earlier whole run of the same prompt and seed (one of §3.5's recording runs, for example).
"""

from __future__ import annotations

import inspect
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .attention import record
from .family import of
from .layers import registry as layer_registry
from .progress import task
from .store import Store, plain
from .tokens import concept_span, sequence_tokenizer

#: The ten seeds of the authors' release: random.Random(42).randint(1, 10000), ten times.
PAPER_SEEDS = (1825, 410, 4507, 4013, 3658, 2287, 1680, 8936, 1425, 9675)


def initial_latents(pipe, seeds, resolution: int) -> torch.Tensor:
    """Initial noise [len(seeds), C, r/8, r/8] (the shape of the pipeline's family), one CPU generator
    per seed, on the pipeline's device."""
    adapter = of(pipe)
    shape = adapter.latent_shape(pipe, resolution)
    noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s)), dtype=torch.float32)
             for s in seeds]
    return torch.cat(noise).to(device=pipe.device, dtype=adapter.denoiser(pipe).dtype)


@dataclass
class Sample:
    """One (prompt, seed) of a run: where its image is and what attention was recorded for it.

    Words at the surface, as DAAM reads them: ``sample.word_share("pouch", layer=7, step=1)`` and
    ``sample.word_map("pouch", layers=[8, 9, 10])`` find the word's tokens in the prompt through
    the pipeline's tokenizer (`dvdlib.tokens.concept_span`: a clear error when it is absent)."""

    prompt: str
    seed: int
    image: Path | None
    attention: dict[str, np.ndarray] = field(default_factory=dict)
    tokenizer: object = field(default=None, repr=False, compare=False)

    def tokens_of(self, word: str) -> list[int]:
        """The token positions that spell ``word`` in this sample's prompt."""
        if self.tokenizer is None:
            raise ValueError("this sample knows no tokenizer: make it with dvdlib.generate")
        return concept_span(self.tokenizer, self.prompt, word)

    def word_share(self, word: str, layer: int, step: int = 1) -> np.ndarray:
        """The attention share of ``word``'s tokens together at (layer, step) (paper §3.4–§3.5):
        a number, or one per head when heads were recorded."""
        return self.share(layer, step)[..., self.tokens_of(word)].sum(-1)

    def word_map(self, word: str, layers, step: int = 1) -> np.ndarray:
        """The attention map [side, side] of ``word``'s tokens together at ``step``, averaged over
        ``layers`` (recorded with ``maps=True``; paper §3.4's figure)."""
        span = self.tokens_of(word)
        return sum(self.map(layer, step)[..., span].sum(-1) for layer in layers) / len(layers)

    def share(self, layer: int, step: int = 1) -> np.ndarray:
        """Token shares at (layer, step): [tokens] or [heads, tokens]."""
        return self.attention[f"share/L{layer}/S{step}"]

    def map(self, layer: int, step: int = 1) -> np.ndarray:
        """Head-averaged attention map at (layer, step): [side, side, tokens]."""
        return self.attention[f"map/L{layer}/S{step}"]


def stop_after(step: int):
    """A ``callback_on_step_end`` that ends the denoising after ``step`` steps (the first-step
    analyses need nothing later)."""
    def callback(pipe, index, timestep, tensors):
        if index + 1 >= step:
            pipe._interrupt = True
        return tensors
    return callback


def recording_spec(store: Store, attention: dict | None, until_step: int | None = None,
                   noise_norms: bool = False) -> dict | None:
    """What keys a stored recording: the `record` options (or the noise-norm measure), the
    resolution and where the run stopped (None: the whole schedule)."""
    if noise_norms and attention:
        raise ValueError("record attention and noise-prediction norms in separate generations")
    if noise_norms:
        return {"measure": "noise_prediction_norm", "resolution": store.settings["resolution"], "until_step": until_step}
    if not attention:
        return None
    options = plain(attention)
    return {**options, "resolution": store.settings["resolution"], "until_step": until_step}


def records_norms(pipe, store: Store, until_step: int | None) -> bool:
    """Whether a generation records the noise-prediction norms whether asked or not: a whole run
    with classifier-free guidance of a UNet pipeline (the norms cost no extra UNet call)."""
    return until_step is None and store.settings["guidance"] > 1 and getattr(pipe, "unet", None) is not None


def _until(store: Store, until_step: int | None) -> int | None:
    """``until_step``, None where it reaches the end of the store's schedule (a whole run)."""
    return None if until_step is not None and until_step >= store.settings["steps"] else until_step


def missing(store: Store, prompts, seeds, *, attention: dict | None = None, noise_norms: bool = False,
            until_step: int | None = None) -> list[tuple[str, int]]:
    """The (prompt, seed) pairs `generate` with these arguments would make (the store lacks them;
    a frozen store raises `dvdlib.store.StoreMiss` instead)."""
    until_step = _until(store, until_step)
    jobs = [(p, int(s)) for p in prompts for s in seeds]
    return store.todo(jobs, image=until_step is None, attention=recording_spec(store, attention, until_step, noise_norms),
                      what=_what(until_step, noise_norms))


def _what(until_step: int | None, noise_norms: bool) -> str:
    """What a generation makes, in words: "images", "runs" (with norms), "first steps"."""
    if until_step is None:
        return "runs" if noise_norms else "images"
    return "first steps" if until_step == 1 else f"first {until_step} steps"


def generate(pipe, prompts, seeds, *, store: Store, batch_size: int = 8, attention: dict | None = None,
             noise_norms: bool = False, until_step: int | None = None, progress: bool = True,
             registry: list | None = None) -> list[Sample]:
    """Generate every prompt × seed (the authors' sampler), returning one `Sample` per pair in that order.

    The sampler settings (``resolution``, ``steps``, ``guidance``, ``eta``) are the store's, so
    what is stored always matches how it was made. What a generation records, stored beside each
    image: ``attention``, keyword arguments of `dvdlib.attention.record` (e.g. ``{"layers":
    "all", "steps": [1]}``), or ``noise_norms``, the text-conditional noise-prediction norm per
    step (`dvdlib.noise_norm`, paper §3.7; in ``Sample.attention["noise_norm"]``). ``until_step``:
    stop the denoising after that step (enough for first-step attention, paper §3.4; the schedule
    is still the one of ``steps``) and keep no image. A whole run keeps its image and its norms
    (`records_norms`) for other chapters, and never replaces an image already stored.
    ``registry``: the pipeline's layer registry (`dvdlib.layers.registry`) when the caller has it;
    else built once here when something is recorded.
    """
    prompts, seeds = list(prompts), [int(s) for s in seeds]
    until_step = _until(store, until_step)
    whole = until_step is None
    spec = recording_spec(store, attention, until_step, noise_norms)
    jobs = [(p, s) for p in prompts for s in seeds]
    todo = missing(store, prompts, seeds, attention=attention, until_step=until_step, noise_norms=noise_norms)
    what = _what(until_step, noise_norms)
    if todo and attention and registry is None:
        registry = layer_registry(pipe)
    with task(len(todo), what, stored=len(jobs) - len(todo), show=progress, unit="img") as update:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            _generate_batch(pipe, batch, store, attention, spec, until_step, registry)
            update(len(batch))
    tokenizer = sequence_tokenizer(pipe)
    return [Sample(p, s, store.image_path(p, s) if whole else None,
                   store.attention(p, s, spec) if spec else {}, tokenizer) for p, s in jobs]


def pipeline_call(pipe, batch, sampler: dict, want_image: bool = True, until_step: int | None = None) -> dict:
    """The keyword arguments of one pipeline call for ``batch`` [(prompt, seed), ...] under the
    ``sampler`` settings (resolution, steps, guidance, eta): the seeds' own initial latents."""
    side = sampler["resolution"]
    call = dict(prompt=[p for p, _ in batch], latents=initial_latents(pipe, [s for _, s in batch], side),
                height=side, width=side, num_inference_steps=sampler["steps"],
                guidance_scale=sampler["guidance"], eta=sampler["eta"], output_type="pil" if want_image else "latent")
    if "eta" not in inspect.signature(type(pipe).__call__).parameters:
        del call["eta"]  # a flow-matching sampler (SD3) has no eta
    if until_step:
        call["callback_on_step_end"] = stop_after(until_step)
    return call


def _generate_batch(pipe, batch, store, attention, spec, until_step, registry=None):
    from .noise_norm import record_noise_norms

    started = time.perf_counter()
    whole = until_step is None
    call = pipeline_call(pipe, batch, store.settings, whole, until_step)
    norm_spec = recording_spec(store, None, until_step, noise_norms=True)
    with ExitStack() as recordings:
        recording = recordings.enter_context(record(pipe, registry=registry, **attention)) if attention else None
        norms = (recordings.enter_context(record_noise_norms(pipe))
                 if spec == norm_spec or records_norms(pipe, store, until_step) else None)
        images = pipe(**call).images
    seconds = (time.perf_counter() - started) / len(batch)
    attended = recording.per_image() if recording is not None else [None] * len(batch)
    normed = norms.per_image() if norms is not None else [None] * len(batch)
    for i, (prompt, seed) in enumerate(batch):
        kept = [(spec, attended[i]), (norm_spec, None if normed[i] is None else {"noise_norm": normed[i]})]
        image = images[i] if whole and not store.image_path(prompt, seed).exists() else None
        store.save(prompt, seed, image=image, recordings=[(s, r) for s, r in kept if r is not None],
                   seconds=seconds, batch_size=len(batch))
