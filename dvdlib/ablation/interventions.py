"""What an ablation does (paper §3.6): an `Intervention` scales some heads' pre-softmax logits at
some steps, a `Suppression` takes a concept's tokens out (the positive control); a `Job` applies one
to some prompt-set rows; `single_head`, `multi_head` and `pair_jobs` build the paper's plans."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Iterable, Sequence

import pandas as pd

from ..layers import Layer, select
from ..outcome import MITIGATED, NOT_MEMORIZED


#: A DominanceBench row whose plain images are not collapsed (mean DvD < τ) in this run.
NOT_COLLAPSED = "not collapsed"


#: Outcomes that keep a row out of the rates: the plain generation shows nothing to mitigate.
EXCLUDED = (NOT_COLLAPSED, NOT_MEMORIZED)


#: Readings of "multi-head ablation" (paper §3.6 is terse): "layer" = all heads of one layer at once.
MULTI_HEAD_READINGS = ("layer",)


@dataclass(frozen=True)
class Intervention:
    """Heads (layer numbered from 1, head from 0) whose logits are multiplied by ``factor`` at
    ``steps`` (1 = the first denoising step), paper §3.6."""

    heads: tuple[tuple[int, int], ...]
    factor: float = 0.0
    steps: tuple[int, ...] = (1,)

    def __post_init__(self):
        heads = tuple(sorted({(int(layer), int(head)) for layer, head in self.heads}))
        if not heads:
            raise ValueError("an intervention needs at least one (layer, head)")
        steps = tuple(sorted({int(s) for s in self.steps}))
        if not steps or steps[0] < 1:
            raise ValueError(f"steps are numbered from 1 (the first denoising step); got {self.steps}")
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "factor", float(self.factor))

    @property
    def factors(self) -> dict[tuple[int, int], float]:
        """The ``heads`` argument of `dvdlib.attention.intervene`."""
        return {head: self.factor for head in self.heads}

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted({layer for layer, _ in self.heads}))

    @property
    def label(self) -> str:
        """``"L3.H5"``; several heads joined by ``+``."""
        return "+".join(f"L{layer}.H{head}" for layer, head in self.heads)

    def key(self) -> dict:
        """What keys this intervention's run store (JSON)."""
        return {"heads": [list(h) for h in self.heads], "factor": self.factor, "steps": list(self.steps)}


@dataclass(frozen=True)
class Suppression:
    """The positive control of a head ablation (paper §3.6): the tokens that spell ``concept`` (a
    row's dominant concept) suppressed in every cross-attention layer at ``steps``
    (`dvdlib.attention.suppress_tokens`: their logits get log(1 − ``strength``), −inf at strength 1,
    the other tokens renormalised; conditional branch only)."""

    concept: str
    strength: float = 1.0
    steps: tuple[int, ...] = (1,)

    def __post_init__(self):
        steps = tuple(sorted({int(s) for s in self.steps}))
        if not steps or steps[0] < 1:
            raise ValueError(f"steps are numbered from 1 (the first denoising step); got {self.steps}")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"strength must lie in [0, 1], got {self.strength}")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "strength", float(self.strength))

    #: no head is ablated, no layer singled out (the outcome tables' ``heads`` and ``layer``)
    heads = ()
    layers = ()

    @property
    def label(self) -> str:
        return f"suppress {self.concept!r}"

    def key(self) -> dict:
        """What keys this control's run store (JSON; no ``heads``: never a head ablation's store)."""
        return {"suppress": self.concept, "layers": "all", "strength": self.strength, "steps": list(self.steps)}


def from_key(key: dict) -> "Intervention | Suppression":
    """The intervention a run store's ``settings["intervention"]`` names (`Intervention.key`,
    `Suppression.key`)."""
    if "suppress" in key:
        return Suppression(key["suppress"], key["strength"], tuple(key["steps"]))
    return Intervention(tuple(map(tuple, key["heads"])), key["factor"], tuple(key["steps"]))


@dataclass(frozen=True)
class Job:
    """One intervention applied to some rows of a prompt set (their ``case_num``)."""

    intervention: Intervention
    cases: tuple


def _heads_of(layer: Layer, heads) -> list[int]:
    if heads == "all":
        return list(range(layer.heads))
    return [int(h) for h in heads if 0 <= int(h) < layer.heads]


def single_head(layers: list[Layer], which="all", heads="all", factor: float = 0.0, steps=(1,)) -> list[Intervention]:
    """One intervention per head of the ``which`` layers (paper numbers or "all"), paper §3.6.

    ``heads``: "all", or head indices to keep in each layer (a slice; indices a layer lacks are
    skipped)."""
    plan = [Intervention(((layer.index, h),), factor, steps) for layer in select(layers, which)
            for h in _heads_of(layer, heads)]
    if not plan:
        raise ValueError(f"no head {list(heads)} exists in layers {which}: see dvdlib.layers.registry(pipe)")
    return plan


def multi_head(layers: list[Layer], which="all", reading: str = "layer", factor: float = 0.0,
               steps=(1,)) -> list[Intervention]:
    """Several heads ablated together (paper §3.6, open). ``reading="layer"``: all heads of one
    layer at once, one intervention per layer of ``which``."""
    if reading not in MULTI_HEAD_READINGS:
        raise ValueError(f"unknown multi-head reading {reading!r}; known: {MULTI_HEAD_READINGS}")
    return [Intervention(tuple((layer.index, h) for h in range(layer.heads)), factor, steps)
            for layer in select(layers, which)]


def jobs(interventions: Iterable[Intervention], cases: Iterable) -> list[Job]:
    """Every intervention applied to every row."""
    cases = tuple(cases)
    return [Job(iv, cases) for iv in interventions]


def pair_jobs(single: pd.DataFrame, layer: int = 1, factor: float = 0.0, steps=(1,)) -> list[Job]:
    """Pairs of ``layer``'s heads that did not mitigate a row on their own, per row (paper §3.6:
    "pairwise ablation of non-mitigating layer-1 heads"). ``single``: a single-head outcome table
    (`Sweep.judge_dvd` / `judge_memorized`); excluded rows (nothing to mitigate) get no pairs."""
    rows = single[(single["layer"] == layer) & ~single["outcome"].isin(EXCLUDED)]
    by_pair: dict[Intervention, list] = {}
    for case, group in rows.groupby("case_num", sort=False):
        failed = sorted(head for (_, head), o in zip(group["heads"], group["outcome"]) if o != MITIGATED)
        for a, b in combinations(failed, 2):
            by_pair.setdefault(Intervention(((layer, a), (layer, b)), factor, steps), []).append(case)
    return [Job(iv, tuple(cases)) for iv, cases in by_pair.items()]


def narrowed(plan: Sequence[Job], cases) -> list[Job]:
    """The plan's jobs on those of their rows that are among ``cases`` (jobs left with none dropped)."""
    out = [Job(job.intervention, tuple(c for c in job.cases if c in cases)) for job in plan]
    return [job for job in out if job.cases]
