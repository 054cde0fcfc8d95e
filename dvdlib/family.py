"""What the core asks of a model family, and the families known (paper §3.4–§3.6).

The paper studies Stable Diffusion 1.4's 16 cross-attention layers. Another family keeps the
questions but changes what answers them: which modules are the "layers" (in forward order), how
a concept's words map into the sequence the attention sees, how attention is recorded and how a
head is scaled. `Adapter` is that interface; the core (`layers`, `tokens`, `attention`,
`generate`, `models`) and the analyses read a pipeline through it and never import a family.
The families live a layer above, in `dvdlib.adapters`, which `register`s one `Adapter` per family
when imported (``import dvdlib`` imports it). `of(pipe)` finds a pipeline's adapter once and keeps
it on the pipeline (`dvdlib.models.prepare` does so when a model is loaded).
"""

from __future__ import annotations

import math

#: SD 1.4's cross-attention layers (paper §3.4), and its lower-resolution semantic layers among them.
PAPER_LAYERS, PAPER_SEMANTIC = 16, (8, 9, 10)

#: The attribute of a pipeline that keeps its adapter once found (`of`).
ATTRIBUTE = "_dvd_adapter"


class Adapter:
    """One architecture family: its registry, tokenizers, processors and tiny test pipeline."""

    #: short name of the family ("sd", "sdxl", "sd3", "flux")
    family = ""
    #: the diffusers pipeline classes of the family (class names)
    pipelines: tuple[str, ...] = ()
    #: the pipeline attribute that holds the denoiser ("unet" or "transformer")
    denoiser_name = "unet"
    #: what one "layer" and one "head" are in this family (shown by the chapters)
    layer_meaning = ""
    head_meaning = ""
    #: what stands for the paper's "lower-resolution semantic layers" 8–10 of SD 1.4
    semantic_meaning = ""

    def matches(self, pipe) -> bool:
        return type(pipe).__name__ in self.pipelines

    def denoiser(self, pipe):
        """The module whose forward pass is one denoising step (UNet or transformer)."""
        return getattr(pipe, self.denoiser_name)

    def layers(self, pipe, resolution: int | None = None) -> list:
        """The attention layers the book reads, in forward order, numbered from 1."""
        raise NotImplementedError

    def semantic_layers(self, layers: list) -> tuple[int, ...]:
        """The layer numbers that stand for SD 1.4's layers 8–10 in this family."""
        raise NotImplementedError

    def processor(self, layer, stock, control):
        """The processor that records / scales ``layer`` (and hands other calls to ``stock``)."""
        raise NotImplementedError

    def sequence_tokenizer(self, pipe):
        """A tokenizer whose positions are those of the text sequence the attention sees
        (`dvdlib.tokens` reads concept spans and content positions through it)."""
        return pipe.tokenizer

    def tokenizers(self, pipe) -> dict:
        """Every tokenizer of the pipeline by name (for the span checks)."""
        return {"tokenizer": pipe.tokenizer}

    def timestep_scale(self, pipe) -> float:
        """The factor from the timestep the denoiser gets to the scheduler's timesteps."""
        return 1.0

    def latent_shape(self, pipe, resolution: int) -> tuple[int, ...]:
        """The shape of one image's initial noise at ``resolution`` pixels."""
        side = resolution // pipe.vae_scale_factor
        return (1, self.denoiser(pipe).config.in_channels, side, side)

    def build_tiny(self):
        """A tiny random-weight pipeline of the family, built offline (for the tests)."""
        raise NotImplementedError

    def paper_layers(self, layers: list, numbers) -> tuple[int, ...]:
        """SD 1.4's layer numbers (paper §3.4–§3.8) read on this registry: the same numbers where it
        has SD's 16 layers; else layers 8–10 (any of them) stand for `semantic_layers`, and any
        other number p for the layers at its relative depth (`relative_depth`; the one layer
        whose depth range holds p when a short registry has none there)."""
        numbers = [int(n) for n in numbers]
        bad = [n for n in numbers if not 1 <= n <= PAPER_LAYERS]
        if bad:
            raise ValueError(f"SD 1.4 has layers 1–{PAPER_LAYERS}, not {bad}: give the paper's layer numbers")
        if len(layers) == PAPER_LAYERS:
            return tuple(numbers)
        found: set[int] = set()
        for n in numbers:
            found |= set(self.semantic_layers(layers) if n in PAPER_SEMANTIC else
                         relative_depth(len(layers), (n, n)) or (math.ceil(n * len(layers) / PAPER_LAYERS),))
        return tuple(sorted(found))

    def describe(self, pipe, resolution: int | None = None, **chosen) -> str:
        """Which of the book's definitions change in this family (Markdown, for the chapters);
        ``chosen`` names the chapter's layer choices in SD 1.4's numbers (``peak=[8, 9, 10]``) and
        says which layers of this model read them (`paper_layers`)."""
        layers = self.layers(pipe, resolution)
        semantic = ", ".join(map(str, self.semantic_layers(layers)))
        text = (f"**Model family: {self.family}.** {len(layers)} {self.layer_meaning}. A *head* is "
                f"{self.head_meaning} The paper's lower-resolution semantic layers (SD 1.4's 8–10) are "
                f"here {self.semantic_meaning}: layers {semantic}.")
        if chosen:
            from .report import ranges

            read = "; ".join(f"{name.replace('_', ' ')}: all" if numbers == "all" else
                             f"{name.replace('_', ' ')}: SD 1.4's {ranges(numbers)} → {_layers_word(self.paper_layers(layers, numbers))}"
                             for name, numbers in chosen.items())
            text += f" This chapter's layer choices, in the paper's numbering, are read here as: {read}."
        return text


#: The registered adapters, in the order `of` tries them (`register`), and those that also read a
#: pipeline no adapter matches when it has their denoiser.
_ADAPTERS: list[Adapter] = []
_FALLBACKS: list[Adapter] = []


def register(adapter: Adapter, *, fallback: bool = False) -> Adapter:
    """Make a family's adapter known to the core (`of` tries adapters in the order registered; a
    family registered again keeps its place, with the new adapter). ``fallback``: it also reads any
    pipeline that no adapter matches and that has its denoiser (SD's: any pipeline with a UNet)."""
    for known in (_ADAPTERS, _FALLBACKS):
        for i, other in enumerate(known):
            if other.family == adapter.family:
                known[i] = adapter
    if all(other is not adapter for other in _ADAPTERS):
        _ADAPTERS.append(adapter)
    if fallback and all(other is not adapter for other in _FALLBACKS):
        _FALLBACKS.append(adapter)
    return adapter


def adapters() -> list[Adapter]:
    """The registered adapters, in the order `of` tries them."""
    return list(_ADAPTERS)


def of(pipe) -> Adapter:
    """The adapter of a pipeline: found once (by its class; any other pipeline with a fallback
    adapter's denoiser, e.g. a UNet, is read as that family's) and kept on the pipeline."""
    kept = getattr(pipe, "__dict__", {}).get(ATTRIBUTE)
    if kept is not None:
        return kept
    found = next((a for a in _ADAPTERS if a.matches(pipe)), None)
    found = found or next((a for a in _FALLBACKS if hasattr(pipe, a.denoiser_name)), None)
    if found is None:
        raise ValueError(f"no adapter for {type(pipe).__name__}: dvdlib knows {[a.family for a in _ADAPTERS]}; "
                         "see the book's page 'Forking a chapter for a new model' to write one")
    try:
        setattr(pipe, ATTRIBUTE, found)
    except (AttributeError, TypeError):  # an object that keeps no attributes: found again next time
        pass
    return found


def by_family(family: str) -> Adapter:
    """The adapter of a family name ("sd", "sdxl", "sd3", "flux")."""
    for adapter in _ADAPTERS:
        if adapter.family == family:
            return adapter
    raise ValueError(f"unknown model family {family!r}; known: {[a.family for a in _ADAPTERS]}")


def relative_depth(n: int, paper=(8, 10), of: int = PAPER_LAYERS) -> tuple[int, ...]:
    """Layers 1..n at the relative depth of the paper's layers ``paper`` out of ``of`` (SD 1.4's
    8–10 of 16): layer i when ⌈i·of/n⌉ falls in that range (each layer stands for one of SD's)."""
    return tuple(i for i in range(1, n + 1) if paper[0] <= math.ceil(i * of / n - 1e-9) <= paper[1])


def paper_layers(pipe, numbers, resolution: int | None = None) -> list[int]:
    """SD 1.4's layer numbers read on ``pipe``'s registry (`Adapter.paper_layers`): unchanged on a
    16-layer model, the adapter's equivalent blocks elsewhere (paper §3.4–§3.8)."""
    adapter = of(pipe)
    return list(adapter.paper_layers(adapter.layers(pipe, resolution), numbers))


def paper_layer_sets(pipe, sets, resolution: int | None = None) -> list[list[int]]:
    """`paper_layers` of each set of SD 1.4's layer numbers (paper §3.8's detector grid), sets
    that land on the same layers of ``pipe`` kept once, in order."""
    adapter = of(pipe)
    registry = adapter.layers(pipe, resolution)
    found = {tuple(adapter.paper_layers(registry, numbers)): None for numbers in sets}
    return [list(layers) for layers in found]


def describe(pipe, resolution: int | None = None, **chosen) -> str:
    """The model-family note a chapter shows (`Adapter.describe`)."""
    return of(pipe).describe(pipe, resolution, **chosen)


def _layers_word(numbers) -> str:
    """"layer 1" or "layers 8–10" (`dvdlib.report.ranges`)."""
    from .report import ranges

    numbers = list(numbers)
    return f"layer {numbers[0]}" if len(numbers) == 1 else f"layers {ranges(numbers)}"
