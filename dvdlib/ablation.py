"""Head ablation (paper §3.6): sweep plans, their cost, a resumable runner and the per-layer rates.

An `Intervention` scales some heads' pre-softmax logits by a factor at some steps (default:
factor 0 — a uniform head — at the first step only, `dvdlib.attention.intervene`). A *plan* is a
list of `Job`\\ s, each one intervention applied to some prompt-set rows:

- `single_head`: one head at a time, every head of the chosen layers (the paper: layers 1–16);
- `multi_head`: several heads at once. the paper is terse; this book's reading (``reading="layer"``)
  ablates **all heads of one layer together**, one intervention per layer;
- `pair_jobs`: pairs of the heads of one layer (default layer 1) that did *not* mitigate a
  prompt on their own, for that prompt.

A claim about ablated heads comes with a **positive control** of the same kind (`Suppression`,
`control_jobs`, `power_check`): each collapsed row's dominant concept's tokens suppressed in every
cross-attention layer at the claim's steps, judged by the same judge and DvD rule on the same rows
and seeds. It must bring the dominated concept back in a measurable share of the collapsed rows;
otherwise no ablation of fewer heads could be seen to mitigate anything, and the claim is
inconclusive (`dvdlib.stats.verdict`).

`Sweep` runs a plan: each intervention's images live in their own run store, keyed by the
sampler settings *plus* the intervention (``settings["intervention"]``), so an intervened image
never collides with a plain one and each (prompt, seed, intervention) image is generated once;
a rerun generates only what is missing. `Sweep.cost` counts the generations before anything
runs. `Sweep.judge_dvd` / `Sweep.judge_memorized` turn the images into one outcome per (row,
intervention) with `dvdlib.outcome`; `per_prompt`, `layer_rates` and `shares` aggregate them.

Outcomes are judged against the plain (unablated) generation (``require_baseline=True``, the
default): a DominanceBench row whose plain images are not collapsed in this run is *not
collapsed*, a memorized prompt whose plain images do not reproduce is *not memorized*; both are
kept out of the rates (there is nothing to mitigate). With ``require_baseline=False`` every row
counts, as the paper's denominators (300, 500) suggest it did — where a row was never collapsed
or memorized, an ablation then "mitigates" what was never there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Iterable, Sequence

import pandas as pd

from . import dvd, outcome
from .attention import _suppressible, intervene_each, suppress_tokens_each
from .generate import generate, pipeline_call
from .layers import Layer, select
from .outcome import CORRUPTED, MITIGATED, NOT_MEMORIZED, OUTCOMES, UNCHANGED, DvDRule, MemorizedRule
from .progress import task
from .report import percent as as_percent
from .store import Store

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


class Sweep:
    """Runs and judges ablation jobs for one model, prompt set and seeds (resumable, paper §3.6).

    ``rows``: the prompt set, one row per ``case_num`` with its ``prompt`` (DominanceBench's
    columns for `judge_dvd`). ``root``/``model``/``sampler``: as for `dvdlib.store.Store`; the
    plain images are the ordinary store's (shared with the other chapters).
    """

    def __init__(self, pipe, rows: pd.DataFrame, seeds: Sequence[int], *, root, model: str, sampler: dict,
                 batch_size: int = 8, store_mode: str = "write"):
        for col in ("case_num", "prompt"):
            if col not in rows.columns:
                raise ValueError(f"the prompt set needs a '{col}' column (found {list(rows.columns)})")
        if rows["case_num"].duplicated().any():
            raise ValueError("case_num must identify one row of the prompt set; it repeats")
        self.pipe, self.rows, self.seeds = pipe, rows.set_index("case_num", drop=False), [int(s) for s in seeds]
        self.root, self.model, self.sampler, self.batch_size = root, model, dict(sampler), batch_size
        self.store_mode = store_mode
        self._stores: dict = {}
        self._tokenizer = None

    def store(self, intervention: Intervention | None = None) -> Store:
        """The run store of an intervention (None: the plain generation)."""
        key = None if intervention is None else intervention
        if key not in self._stores:
            settings = self.sampler if intervention is None else {**self.sampler, "intervention": intervention.key()}
            self._stores[key] = Store(self.root, self.model, settings, self.store_mode)
        return self._stores[key]

    def prompts(self, cases) -> list[str]:
        """The distinct prompt strings of some rows (rows may share a prompt: one image each)."""
        return list(dict.fromkeys(self.rows.loc[list(cases), "prompt"]))

    def cost(self, plan: Sequence[Job], baseline: bool = True) -> dict:
        """Generations a plan needs (one per distinct prompt × seed × intervention) and how many are stored."""
        wanted = [(None, p) for p in self.prompts(self.rows.index)] if baseline else []
        wanted += [(job.intervention, p) for job in plan for p in self.prompts(job.cases)]
        wanted = list(dict.fromkeys(wanted))
        total = len(wanted) * len(self.seeds)
        stored = sum(self.store(iv).has(p, s) for iv, p in wanted for s in self.seeds)
        return {"generations": total, "stored": stored, "to_generate": total - stored}

    def missing(self, plan: Sequence[Job]) -> list[tuple[Intervention, str, int]]:
        """The (intervention, prompt, seed) images a plan needs that are not stored, ordered by
        prompt and seed so that one batch holds different interventions of the same start."""
        wanted = self._wanted(plan)
        order = {p: i for i, p in enumerate(dict.fromkeys(p for _, p, _ in wanted))}
        by_store: dict = {}
        for iv, p, s in wanted:
            by_store.setdefault(iv, []).append((p, s))
        todo = [(iv, p, s) for iv, jobs in by_store.items()  # a frozen store raises on a miss
                for p, s in self.store(iv).todo(jobs, what=f"ablated images ({iv.label})")]
        return sorted(todo, key=lambda w: (order[w[1]], self.seeds.index(w[2])))

    def _wanted(self, plan: Sequence[Job]) -> list[tuple[Intervention, str, int]]:
        """Every distinct (intervention, prompt, seed) of a plan, in plan order."""
        return list(dict.fromkeys((job.intervention, p, s) for job in plan for p in self.prompts(job.cases)
                                  for s in self.seeds))

    def run(self, plan: Sequence[Job], baseline: bool = True, progress: bool = True) -> None:
        """Generate every image the plan needs (and the plain ones), skipping what is stored.

        Interventions are batched: one pipeline call holds up to ``batch_size`` (intervention,
        prompt, seed) images, each with its own head factors (`dvdlib.attention.intervene_each`),
        so B interventions of one prompt and seed cost about one batch of B images; each image is
        stored under its own intervention, as one intervention at a time would store it."""
        if self.pipe is not None and any(isinstance(job.intervention, Suppression) for job in plan):
            _suppressible(self.pipe)  # a family without token suppression raises before the store is read
        if baseline:
            self._plain()
        todo = self.missing(plan)
        stored = len(self._wanted(plan)) - len(todo)
        with task(len(todo), "ablated images", stored=stored, show=progress, unit="img") as update:
            for start in range(0, len(todo), self.batch_size):
                batch = todo[start:start + self.batch_size]
                self._generate_ablated(batch)
                update(len(batch))

    def _plain(self) -> None:
        """Generate the plain images that are not stored."""
        prompts, store = self.prompts(self.rows.index), self.store()
        if store.todo([(p, s) for p in prompts for s in self.seeds], what="plain images"):
            generate(self.pipe, prompts, self.seeds, store=store, batch_size=self.batch_size, progress=False)

    def positions(self, control: Suppression, prompt: str) -> list[int]:
        """The text positions of ``control``'s concept in ``prompt`` (`dvdlib.tokens.concept_span`
        with the pipeline's sequence tokenizer; a concept not in the prompt raises)."""
        from .tokens import concept_span, sequence_tokenizer

        if self._tokenizer is None:
            self._tokenizer = sequence_tokenizer(self.pipe)
        return concept_span(self._tokenizer, prompt, control.concept)

    def _generate_ablated(self, batch: list[tuple[Intervention | Suppression, str, int]]) -> None:
        """One pipeline call for ``batch``, each image under its own intervention (head ablation or
        token suppression), each stored."""
        from contextlib import ExitStack

        started = time.perf_counter()
        call = pipeline_call(self.pipe, [(p, s) for _, p, s in batch], self.sampler)
        heads = [(iv.factors, iv.steps) if isinstance(iv, Intervention) else None for iv, _, _ in batch]
        tokens = [(self.positions(iv, p), iv.steps, iv.strength) if isinstance(iv, Suppression) else None
                  for iv, p, _ in batch]
        with ExitStack() as stack:
            if any(h is not None for h in heads):
                stack.enter_context(intervene_each(self.pipe, heads))
            if any(t is not None for t in tokens):
                stack.enter_context(suppress_tokens_each(self.pipe, tokens))
            images = self.pipe(**call).images
        seconds = (time.perf_counter() - started) / len(batch)
        for image, (iv, prompt, seed) in zip(images, batch):
            self.store(iv).save(prompt, seed, image=image, seconds=seconds, batch_size=len(batch))

    # --- judging ------------------------------------------------------------------------------

    def _row(self, job: Job | None, case, result: str, **values) -> dict:
        iv = None if job is None else job.intervention
        return {"case_num": case, "prompt": self.rows.at[case, "prompt"],
                "intervention": "none" if iv is None else iv.label,
                "layer": iv.layers[0] if iv is not None and len(iv.layers) == 1 else None,
                "heads": None if iv is None else (iv.heads[0] if len(iv.heads) == 1 else iv.heads),
                **values, "outcome": result}

    def judge_dvd(self, plan: Sequence[Job], judge, questions, rule: DvDRule = DvDRule(),
                  require_baseline: bool = True) -> pd.DataFrame:
        """One row per (DominanceBench row, intervention): mean c, n, DvD and the outcome
        (`dvdlib.outcome.dvd_outcome`); with ``require_baseline``, rows whose plain images are not
        collapsed are *not collapsed*."""
        base = self._judged(None, list(self.rows.index), judge, questions, rule)
        self.baseline = base.reset_index()
        out = []
        for job in plan:
            counted = [c for c in job.cases if not require_baseline or base.at[c, "outcome"] == UNCHANGED]
            after = self._judged(job.intervention, counted, judge, questions, rule) if counted else None
            for case in job.cases:
                r = after.loc[case] if case in counted else None  # not collapsed: never ablated (`mitigable`)
                out.append(self._row(job, case, NOT_COLLAPSED if r is None else r.outcome,
                                     c=math.nan if r is None else r.c, n=math.nan if r is None else r.n,
                                     dvd=math.nan if r is None else r.dvd, dvd_before=base.at[case, "dvd"]))
        return _table(out)

    def _judged(self, intervention: Intervention | None, cases: list, judge, questions, rule: DvDRule) -> pd.DataFrame:
        """The DvD outcomes of some rows' images under an intervention (None: plain), by ``case_num``."""
        images = dvd.judge_images(self.rows.loc[cases].reset_index(drop=True), self.seeds, self.store(intervention),
                                  judge, questions)
        return outcome.dvd_outcomes(images, rule).set_index("case_num")

    def mitigable(self, judge, questions, rule: DvDRule = DvDRule()) -> list:
        """The rows whose plain images are collapsed (generated and judged here): the only ones an
        ablation can mitigate, and so the only ones `run_plans` ablates when the baseline is required."""
        self._plain()
        base = self._judged(None, list(self.rows.index), judge, questions, rule)
        return list(base.index[base["outcome"] == UNCHANGED])

    def reproduced(self, rule: MemorizedRule = MemorizedRule(), similarity: str | Callable = "pixels") -> list:
        """The memorized prompts whose plain images reproduce one image (the only ones to ablate)."""
        self._plain()
        embed = outcome.embedding(similarity)
        return [case for case, p in self.rows["prompt"].items() if self._similarity(None, p, embed)[0] >= rule.threshold]

    def _similarity(self, intervention: Intervention | None, prompt: str, embed) -> tuple[float, float]:
        """(mean pairwise similarity across seeds, pixel spread) of a prompt's images under an
        intervention (None: plain)."""
        store = self.store(intervention)
        shown = [store.image(prompt, s).convert("RGB") for s in self.seeds]
        return outcome.mean_pairwise_similarity(shown, embed), outcome.pixel_spread(shown)

    def judge_memorized(self, plan: Sequence[Job], rule: MemorizedRule = MemorizedRule(),
                        similarity: str | Callable = "pixels", require_baseline: bool = True) -> pd.DataFrame:
        """One row per (memorized prompt, intervention): mean pairwise similarity across seeds
        before and after, the intervened images' pixel spread and the outcome
        (`dvdlib.outcome.memorized_outcome`); with ``require_baseline``, prompts whose plain
        images do not reproduce are *not memorized*."""
        embed = outcome.embedding(similarity)
        cache: dict = {}

        def similarity_of(iv, prompt):
            if (iv, prompt) not in cache:
                cache[iv, prompt] = self._similarity(iv, prompt, embed)
            return cache[iv, prompt]

        before = {case: similarity_of(None, p)[0] for case, p in self.rows["prompt"].items()}
        self.baseline = pd.DataFrame({"case_num": list(before), "similarity": list(before.values())})
        out = []
        for job in plan:
            for case in job.cases:
                if require_baseline and before[case] < rule.threshold:  # never ablated (`reproduced`)
                    out.append(self._row(job, case, NOT_MEMORIZED, similarity_before=before[case],
                                         similarity=math.nan, spread=math.nan))
                    continue
                after, spread = similarity_of(job.intervention, self.rows.at[case, "prompt"])
                result = outcome.memorized_outcome(before[case] if require_baseline else None, after, spread, rule)
                out.append(self._row(job, case, result, similarity_before=before[case], similarity=after,
                                     spread=spread))
        return _table(out)


def _table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    if not len(table):
        return pd.DataFrame(columns=["case_num", "prompt", "intervention", "layer", "heads", "outcome"])
    table["layer"] = table["layer"].astype("Int64")
    return table


# --- aggregation ----------------------------------------------------------------------------------


def best(outcomes: Iterable[str]) -> str:
    """The best outcome of a row over interventions: mitigated > unchanged > corrupted
    ("per prompt, mitigated if any head mitigates"); an excluded row stays excluded."""
    outcomes = list(outcomes)
    excluded = [o for o in outcomes if o in EXCLUDED]
    if excluded:
        return excluded[0]
    unknown = set(outcomes) - set(OUTCOMES)
    if unknown or not outcomes:
        raise ValueError(f"outcomes must be among {OUTCOMES + EXCLUDED}; got {sorted(unknown) or 'none'}")
    return min(outcomes, key=OUTCOMES.index)


def per_prompt(table: pd.DataFrame) -> pd.DataFrame:
    """One row per prompt-set row: its best outcome over the table's interventions."""
    return table.groupby("case_num", sort=False).agg(prompt=("prompt", "first"), outcome=("outcome", best),
                                                     interventions=("outcome", "size")).reset_index()


def shares(table: pd.DataFrame, per: str = "prompt") -> pd.Series:
    """Share of each outcome (mitigated, unchanged, corrupted) among the rows with something to
    mitigate: ``per="prompt"`` — each row's best outcome over interventions; ``per="intervention"``
    — every (row, intervention) pair. The count is in ``.attrs["n"]``."""
    if per not in ("prompt", "intervention"):
        raise ValueError(f"per must be 'prompt' or 'intervention', got {per!r}")
    outcomes = (per_prompt(table) if per == "prompt" else table)["outcome"]
    kept = outcomes[~outcomes.isin(EXCLUDED)]
    result = pd.Series({o: (kept == o).mean() if len(kept) else float("nan") for o in OUTCOMES}, name="share")
    result.attrs["n"] = len(kept)
    return result


def mitigated_count(table: pd.DataFrame) -> tuple[int, int]:
    """(rows mitigated by at least one intervention, rows with something to mitigate)."""
    best_of = per_prompt(table)["outcome"]
    kept = best_of[~best_of.isin(EXCLUDED)]
    return int((kept == MITIGATED).sum()), len(kept)


def layer_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per layer of a single-head table: rows mitigated by at least one of its heads, and the rate
    among rows with something to mitigate (paper §3.6: DvD peaks at layer 3, memorization at 6)."""
    single = table[table["layer"].notna() & ~table["outcome"].isin(EXCLUDED)]
    any_head = single.groupby(["layer", "case_num"])["outcome"].agg(lambda o: (o == MITIGATED).any())
    rates = any_head.groupby(level="layer").agg(mitigated="sum", prompts="size").reset_index()
    rates["rate"] = rates["mitigated"] / rates["prompts"]
    return rates.astype({"layer": int, "mitigated": int, "prompts": int})


def peak_layer(rates: pd.DataFrame) -> int | None:
    """The layer with the highest mitigation rate (the first on ties; None when nothing is mitigated)."""
    rates = rates.dropna(subset=["rate"])
    if not len(rates) or rates["rate"].max() <= 0:
        return None
    return int(rates.loc[rates["rate"].idxmax(), "layer"])


def fraction_text(k: int, n: int) -> str:
    """``"145/300 (48%)"``; ``"0/0 (nothing to mitigate)"`` when no row counts."""
    return f"{k}/{n} ({as_percent(k / n)})" if n else "0/0 (nothing to mitigate)"


def shares_text(table: pd.DataFrame, per: str = "prompt", outcomes=(MITIGATED, UNCHANGED, CORRUPTED),
                percent: bool = False) -> str:
    """`shares` as one line: ``"mitigated 0.60; unchanged 0.20; corrupted 0.20 (of 300)"``."""
    s = shares(table, per)
    if not s.attrs["n"]:
        return "nothing to mitigate"
    return "; ".join(f"{o} {as_percent(s[o], 2)}" if percent else f"{o} {s[o]:.2f}" for o in outcomes) + f" (of {s.attrs['n']})"


# --- what a profile sweeps ------------------------------------------------------------------------

#: paper §3.6's full sweep: every head of layers 1–16, every prompt (``prompts``/``memorized``: rows
#: per set; None: the profile's ``n_prompts`` / all 500 memorized prompts), every seed (``seeds``:
#: how many of the profile's seeds, first first; None: all).
FULL = {"layers": "all", "heads": "all", "prompts": None, "memorized": None, "seeds": None}


def scale(profile) -> dict:
    """The sweep a profile runs by default: `FULL`, narrowed by the profile's ``scales.ablation``
    (`dvdlib.profiles.Profile.scale`)."""
    return profile.scale("ablation", FULL)


@dataclass(frozen=True)
class SweepPlan:
    """What chapter 06 sweeps: layers, heads, rows per set, seeds, and whether that is narrower
    than the paper's sweep (``narrowed``)."""

    layers: object
    heads: object
    n_prompts: int
    n_memorized: int | None
    seeds: list
    narrowed: bool

    def scope(self, factor: float, steps) -> str:
        from .report import ranges

        return (f"layers {self.layers if self.layers == 'all' else ranges(self.layers)}, "
                f"heads {self.heads}, factor {factor:g} at step(s) {steps}")

    def note(self, factor: float, steps) -> str:
        """The line under the profile card: the sweep, and whether it is a slice of the paper's."""
        return f"\n\n**Sweep:** {self.scope(factor, steps)}." + (
            " **This is a slice of the paper's sweep** (every head of layers 1–16, 300 + 500 prompts), "
            "chosen to keep this profile fast; set `sweep_layers`, `sweep_heads`, `n_prompts`, "
            "`n_memorized` to widen it." if self.narrowed else "")


def sweep_plan(profile, layers=None, heads=None, n_prompts=None, n_memorized=None, seeds=None) -> SweepPlan:
    """The chapter's choices (None: the profile's `scale`) as one `SweepPlan`."""
    S = scale(profile)
    return SweepPlan(layers if layers is not None else S["layers"], heads if heads is not None else S["heads"],
                     n_prompts or S["prompts"] or profile.n_prompts, n_memorized or S["memorized"],
                     seeds or profile.seeds[:S["seeds"]],
                     S["slice"] or layers is not None or heads is not None or seeds is not None)


def on_model(plan: SweepPlan, pipe, resolution: int | None = None) -> SweepPlan:
    """``plan`` with its layers (SD 1.4's numbers, or "all") read on ``pipe``'s registry
    (`dvdlib.adapters.paper_layers`: unchanged on a 16-layer model; paper §3.6's layers elsewhere)."""
    from dataclasses import replace

    from .adapters import paper_layers

    return plan if plan.layers == "all" else replace(plan, layers=paper_layers(pipe, plan.layers, resolution))


#: Where the paper finds the single-head effects (paper §3.6): the layers the hypothesis chooses.
#: Heads of the other layers are the placebo (`versus_placebo`).
EFFECT_LAYERS = (1, 2, 3, 4, 5, 6)


#: The positive control passes when the lower bound of its mitigated share's exact 95% interval
#: lies above this (`power_check`).
CONTROL_MIN_LOWER = 0.0


def control_jobs(rows: pd.DataFrame, steps=(1,), n_steps: int = 50, strength: float = 1.0) -> list[list[Job]]:
    """The positive controls of an ablation claim (paper §3.6), one job per dominant concept
    (``content``) over its rows: first at ``steps`` (the claim's; it decides, `power_check`), then
    over steps 1–k (k: a fifth of the schedule, at least the claim's last step; a diagnostic, left
    out when it equals the first)."""
    if "content" not in rows.columns:
        raise ValueError("the positive control suppresses each row's dominant concept: the rows need a 'content' column")
    rows = rows.drop_duplicates("case_num")
    steps = tuple(sorted({int(s) for s in steps}))
    k = max(max(steps), n_steps // 5)
    out = []
    for these in dict.fromkeys([steps, tuple(range(1, k + 1))]):
        out.append([Job(Suppression(concept, strength, these), tuple(group["case_num"]))
                    for concept, group in rows.groupby("content", sort=False)])
    return out


def control_what(plan: Sequence[Job]) -> str:
    """What a positive control does, in words (``control["what"]``)."""
    from .report import ranges

    if not plan:
        return "suppressing the dominant concept's tokens in every cross-attention layer (no row)"
    c = plan[0].intervention
    strength = "" if c.strength == 1 else f" (strength {c.strength:g})"
    return (f"suppressing the dominant concept's tokens{strength} in every cross-attention layer at "
            f"step{'s' if len(c.steps) > 1 else ''} {ranges(c.steps)}")


def control_passes(control: dict, min_lower: float = CONTROL_MIN_LOWER) -> str:
    """"passed" when the control's mitigated share has an exact (Clopper–Pearson) 95% interval whose
    lower bound lies above ``min_lower``, else "failed" (also when no row counts).

    Why the lower bound above 0 by default: the control only has to show that a mitigation *can be
    seen* here — that this model, judge and DvD rule register one when the dominant concept is
    taken out of the attention — not how strong it is; a rate whose interval excludes 0 says that,
    and a rate whose interval reaches 0 does not. With the exact interval this is "at least one
    collapsed row mitigated"; ``min_lower`` asks for more (e.g. 0.1: a tenth of the rows at least)."""
    ci = control.get("ci")
    return "passed" if ci is not None and ci[0] > min_lower else "failed"


def images_changed(sweep: Sweep, control, min_change: int = 2) -> tuple[int, int]:
    """(images whose pixels differ from the plain image by more than ``min_change`` of 255 anywhere,
    images compared): ``control`` an intervention over the sweep's rows and seeds, or a plan (jobs:
    each intervention over its rows)."""
    import numpy as np

    pairs = ([(job.intervention, p) for job in control for p in sweep.prompts(job.cases)]
             if isinstance(control, (list, tuple)) else [(control, p) for p in sweep.prompts(sweep.rows.index)])
    changed = total = 0
    for iv, prompt in dict.fromkeys(pairs):
        for seed in sweep.seeds:
            a = np.asarray(sweep.store().image(prompt, seed).convert("RGB"), dtype=np.int16)
            b = np.asarray(sweep.store(iv).image(prompt, seed).convert("RGB"), dtype=np.int16)
            changed += int(np.abs(a - b).max() > min_change)
            total += 1
    return changed, total


def power_check(sweep: Sweep, controls: list[list[Job]], judge, questions, rule: DvDRule = DvDRule(),
                require_baseline: bool = True, min_lower: float = CONTROL_MIN_LOWER) -> tuple[str, dict, pd.DataFrame]:
    """Run and judge the positive controls (`control_jobs`) on the sweep's rows and seeds, as the
    ablations are run and judged (same judge, DvD rule and rows: with ``require_baseline`` only
    the rows collapsed before ablation, `Sweep.mitigable`). Returns (the power check, "passed" or
    "failed" by `control_passes` on the first control; the first control's ``control`` field —
    hits, n, value, ci, what; a table of every control with, as a diagnostic only, how many of its
    images differ from the plain ones); "unavailable" where the model family has no token suppression."""
    from .report import ranges
    from .stats import rate

    keep = set(sweep.mitigable(judge, questions, rule)) if require_baseline else None
    fields, rows = [], []
    for i, plan in enumerate(controls):
        try:
            sweep.run(plan if keep is None else narrowed(plan, keep), progress=False)
        except NotImplementedError as missing:  # a joint-attention family: no token suppression yet
            field = {"hits": 0, "n": 0, "value": None, "ci": None, "what": f"none: {missing}"}
            return "unavailable", field, pd.DataFrame([{"positive control": field["what"]}])
        table = sweep.judge_dvd(plan, judge, questions, rule, require_baseline)
        hits, n = mitigated_count(table)
        r = rate(hits, n)
        field = {"hits": hits, "n": n, "value": r["value"], "ci": r["ci"], "what": control_what(plan)}
        fields.append(field)
        counted = narrowed(plan, set(table.case_num[~table.outcome.isin(EXCLUDED)]))
        changed, total = images_changed(sweep, counted)
        steps = plan[0].intervention.steps if plan else ()
        rows.append({"dominant concept suppressed at": f"step{'s' if len(steps) > 1 else ''} {ranges(steps)}",
                     "decides": "yes" if i == 0 else "no (diagnostic)", "mitigated": control_text(field),
                     "images changed (diagnostic)": f"{changed} of {total}"})
    return control_passes(fields[0], min_lower), fields[0], pd.DataFrame(rows).set_index("dominant concept suppressed at")


def control_text(control: dict) -> str:
    """``"3/12 rows mitigated (25.0%; 95% CI 5.5%–57.2%)"``; ``"no row to mitigate"`` when none counts."""
    if not control["n"]:
        return "no row to mitigate"
    low, high = control["ci"]
    return (f"{control['hits']}/{control['n']} rows mitigated ({as_percent(control['value'], 1)}; "
            f"95% CI {as_percent(low, 1)}–{as_percent(high, 1)})")


def claims_with_control(claims: dict[str, dict]) -> pd.DataFrame:
    """The ablation claims (name → `versus_placebo` fields) with their positive control beside each:
    rate in the hypothesis's layers, the placebo's, the interval, the power check and the control."""
    def pct(v):
        return "—" if v is None else as_percent(v)

    return pd.DataFrame([{"claim": name, "mitigated (effect layers)": pct(c.get("value")),
                          "placebo": pct(c.get("null")),
                          "95% CI": "—" if not c.get("ci") else f"{pct(c['ci'][0])} to {pct(c['ci'][1])}",
                          "power check": c.get("power_check"),
                          "positive control": control_text(c["control"]) if c.get("control") else "—"}
                         for name, c in claims.items()]).set_index("claim")


def versus_placebo(table: pd.DataFrame, power: str, rows: pd.DataFrame, hypothesis=EFFECT_LAYERS, seed: int = 0,
                   control: dict | None = None) -> dict:
    """An ablation claim against its placebo: per prompt with something to mitigate, whether one of
    the interventions in the ``hypothesis`` layers mitigates it, against whether one of as many
    interventions in the other swept layers does (same prompts and seeds; drawn with ``seed`` where
    one side has more), with the 95% interval over concepts (`dvdlib.stats.versus_placebo`;
    ``rows``: the prompt set, for each case's concept), the power check and, as ``control``, the
    positive control's rate (`power_check`). Without placebo interventions (a sweep inside the
    hypothesis's layers) the interval is None: inconclusive."""
    import numpy as np

    from .stats import clusters_of
    from .stats import versus_placebo as against

    kept = table[~table["outcome"].isin(EXCLUDED)]
    inside = kept["intervention"].map(lambda label: all(int(h.split(".")[0][1:]) in hypothesis for h in label.split("+")))
    labels = {side: sorted(kept.loc[inside == side, "intervention"].unique()) for side in (True, False)}
    k = min(len(labels[True]), len(labels[False]))
    rng = np.random.default_rng(seed)
    chosen = {side: set(rng.choice(labels[side], k, replace=False)) if k else set(labels[side]) for side in labels}
    cases = list(dict.fromkeys(kept["case_num"]))
    hit = {side: np.array([((kept.case_num == c) & kept.intervention.isin(chosen[side]) & (kept.outcome == MITIGATED)).any()
                           for c in cases], float) for side in labels}
    checks = {"power_check": power, **({"control": control} if control is not None else {})}
    if not cases:
        return {"value": None, "n": 0, "ci": None, "test": "rate vs placebo", **checks}
    if not k:
        return {"value": float(hit[True].mean()), "n": len(cases), "ci": None, "null": None, **checks,
                "test": "rate vs placebo: no placebo heads were swept (layers outside "
                        f"{min(hypothesis)}–{max(hypothesis)})"}
    concepts = clusters_of(rows.drop_duplicates("case_num").set_index("case_num").loc[cases])
    return {**against(hit[True], hit[False], clusters=concepts), **checks, "placebo_interventions": k}


def memorized_set(run, n: int | None = None) -> tuple[pd.DataFrame | None, str]:
    """The memorized control prompts of a run (its profile's ``memorized`` prompt-set role; paper
    §3.6), at most ``n``, and a sentence saying which. A world without memorized prompts (the toy
    world) gives (None, the reason)."""
    P = run.profile
    name = P.prompt_sets.get("memorized")
    if name is None:
        return None, (f"profile `{P.name}` has no memorized prompts (no `memorized` prompt set): "
                      "the memorization half is skipped")
    rows = run.prompts("memorized", n, tokenize=False)
    return rows, f"{len(rows)} prompts of the memorized set `{name}`"


def sweeps_for(run, benchmark: pd.DataFrame, memorized: pd.DataFrame | None, seeds) -> dict[str, Sweep]:
    """A `Sweep` of the run's model per set: ``"DvD"`` (the benchmark) and, where the world has
    them, ``"memorized"``. Memorization is judged by the similarity of a prompt's images across
    seeds, so the memorized sweep takes at least two seeds (the profile's first two when
    ``seeds`` has one)."""
    from .store import model_key

    P = run.profile
    common = dict(root=P.store, model=model_key(P.model), sampler=P.sampler(), batch_size=P.batch_size,
                  store_mode=P.store_mode)
    sweeps = {"DvD": Sweep(run.pipe, benchmark, seeds, **common)}
    if memorized is not None:
        sweeps["memorized"] = Sweep(run.pipe, memorized, memorized_seeds(seeds, P.seeds), **common)
    return sweeps


def memorized_seeds(seeds, profile_seeds) -> list:
    """The seeds of the memorized sweep: ``seeds``, or the profile's first two when ``seeds`` has
    fewer than two (similarity across seeds needs a pair)."""
    seeds = list(seeds)
    if len(seeds) >= 2:
        return seeds
    if len(profile_seeds) < 2:
        raise ValueError("the memorized sweep compares images across seeds: give the profile at least two seeds")
    return list(dict.fromkeys(seeds + list(profile_seeds)))[:2]


def plans_for(sweeps: dict[str, Sweep], single, multi) -> dict[str, dict[str, list[Job]]]:
    """Per set, the single-head and the multi-head plan over all its rows."""
    return {name: {"single-head": jobs(single, s.rows.index), "multi-head": jobs(multi, s.rows.index)}
            for name, s in sweeps.items()}


def cost_table(sweeps: dict[str, Sweep], plans) -> pd.DataFrame:
    """Generations per set and plan (plain first), made and stored, before anything runs."""
    return pd.DataFrame([{"set": name, "plan": "plain (no ablation)", **s.cost([])} for name, s in sweeps.items()]
                        + [{"set": name, "plan": f"{plan}: {len(jobs)} interventions", **sweeps[name].cost(jobs, baseline=False)}
                           for name, by_plan in plans.items() for plan, jobs in by_plan.items()])


def run_plans(sweeps: dict[str, Sweep], plans, judge=None, questions=None, dvd_rule=DvDRule(),
              mem_rule=MemorizedRule(), similarity: str | Callable = "pixels", require_baseline: bool = True) -> None:
    """Generate every plan of every set (resumable: only what is missing). With ``require_baseline``
    (and a ``judge``), only the rows with something to mitigate are ablated — collapsed
    (`Sweep.mitigable`) or reproduced (`Sweep.reproduced`) before any ablation; the others are
    *not collapsed* / *not memorized* whatever an ablation would do, so their images are not made."""
    for name, s in sweeps.items():
        keep = None
        if require_baseline and judge is not None:
            keep = set(s.mitigable(judge, questions, dvd_rule) if name == "DvD" else s.reproduced(mem_rule, similarity))
        for plan in plans[name].values():
            s.run(plan if keep is None else narrowed(plan, keep))


def narrowed(plan: Sequence[Job], cases) -> list[Job]:
    """The plan's jobs on those of their rows that are among ``cases`` (jobs left with none dropped)."""
    out = [Job(job.intervention, tuple(c for c in job.cases if c in cases)) for job in plan]
    return [job for job in out if job.cases]


def judge_plan(sweeps: dict[str, Sweep], plans, plan: str, judge, questions, dvd_rule, mem_rule, similarity: str,
               require_baseline: bool = True) -> dict[str, pd.DataFrame]:
    """The outcomes of one plan (``"single-head"`` or ``"multi-head"``) per set."""
    out = {"DvD": sweeps["DvD"].judge_dvd(plans["DvD"][plan], judge, questions, dvd_rule, require_baseline)}
    if "memorized" in sweeps:
        out["memorized"] = sweeps["memorized"].judge_memorized(plans["memorized"][plan], mem_rule, similarity,
                                                               require_baseline)
    return out


def baseline_counts(sweeps: dict[str, Sweep], similarity_threshold: float) -> pd.DataFrame:
    """How many rows are collapsed (DvD) or reproduced (memorized) before any ablation."""
    collapsed = sweeps["DvD"].baseline.outcome == "unchanged"
    before = {"DvD": pd.Series({"collapsed": int(collapsed.sum()), "not collapsed": int((~collapsed).sum())})}
    if "memorized" in sweeps:
        similar = sweeps["memorized"].baseline.similarity >= similarity_threshold
        before["memorized"] = pd.Series({"reproduced": int(similar.sum()), "not reproduced": int((~similar).sum())})
    return pd.DataFrame(before).fillna(0).astype(int).rename_axis("plain images")


def rates_by_set(single_out: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`layer_rates` per set, saying which sets have nothing to mitigate in this run."""
    rates = {name: layer_rates(table) for name, table in single_out.items()}
    for name, r in rates.items():
        if r.empty:
            print(f"{name}: no row has anything to mitigate in this run (see 'Before any ablation'): no rate to draw")
    return rates


def rates_table(rates: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The per-layer rates of every set side by side (one column group per set)."""
    return pd.concat({name: r.set_index("layer") for name, r in rates.items()}, axis=1).round(3)


def paper_peaks(rates: dict) -> dict[str, int]:
    """The paper's peak layer of each set in ``rates`` (DvD 3, memorized 6; paper §3.6)."""
    from .paper import ABLATION

    peaks = {"DvD": ABLATION["dvd_peak_layer"], "memorized": ABLATION["memorized_peak_layer"]}
    return {k: v for k, v in peaks.items() if k in rates}


def pairs_note(pairs: list[Job], layer: int, sweep: Sweep) -> str:
    """How many head pairs and (prompt, pair) combinations a pairwise plan holds, and its cost."""
    cost = sweep.cost(pairs, baseline=False)
    return (f"pairwise ablation: {len(pairs)} head pairs of layer {layer}, {sum(len(j.cases) for j in pairs)} "
            f"(prompt, pair) combinations; {cost['generations']:,} generations, {cost['stored']:,} of them stored")


def outcome_table(single_out, multi_out, pair_out, reading: str, pair_layer: int) -> pd.DataFrame:
    """The outcome shares of every plan (rows) with how many rows or pairs each counts."""
    rows = {}
    for name in single_out:
        rows[f"{name}: single head (per prompt)"] = shares(single_out[name])
        rows[f"{name}: multi-head, {reading} (per prompt)"] = shares(multi_out[name])
    rows[f"DvD: pairs of layer-{pair_layer} heads (per pair)"] = shares(pair_out, per="intervention")
    table = pd.DataFrame(rows).T[list(OUTCOMES)]
    table["counted"] = [s.attrs["n"] for s in rows.values()]
    return table


def paper_mitigated(table: pd.DataFrame) -> pd.Series:
    """The paper's mitigated share for each row of `outcome_table` it reports (paper §3.6)."""
    from .paper import ABLATION as A

    k, n = A["single_head_dvd"]
    km, nm = A["single_head_memorized"]
    known = {("DvD", "single"): k / n, ("memorized", "single"): km / nm, ("DvD", "multi"): 0.6,
             ("memorized", "multi"): 0.8, ("DvD", "pairs"): 0.0055}
    return pd.Series({row: value for row in table.index for (s, kind), value in known.items()
                      if row.startswith(f"{s}:") and kind in row})


def shown_pairs(table: pd.DataFrame, rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """Up to ``n`` rows of ``table`` (in its order) for a figure: one per (concept, object) pair,
    whichever word order (both orders draw near-identical images), a concept repeated only once
    every concept has a row. ``rows``: the prompt set (``content``, ``nm_word``) by ``case_num``."""
    pair = table.case_num.map(lambda c: frozenset((rows.at[c, "content"], rows.at[c, "nm_word"])))
    content = table.case_num.map(lambda c: rows.at[c, "content"])
    distinct = table[~pair.duplicated()]
    first = ~content[distinct.index].duplicated()
    return pd.concat([distinct[first], distinct[~first]]).head(n)


def plain_vs_ablated_rows(table: pd.DataFrame, sweep: Sweep, factor: float, steps, n: int) -> list:
    """Rows of `dvdlib.plots.image_grid`: ``n`` distinct pairs across concepts (`shown_pairs`; the
    most telling outcome first), each with two seeds plain and ablated by its single head."""
    table = table[~table.outcome.isin(EXCLUDED)]  # ablated images exist only for rows with something to mitigate
    table = table.assign(rank=table.outcome.map({o: i for i, o in enumerate(OUTCOMES)}).fillna(len(OUTCOMES)))
    ordered = table.sort_values(["rank", "dvd"], kind="stable").drop_duplicates("case_num")
    shown = shown_pairs(ordered, sweep.rows, n)
    grid = []
    for r in shown.itertuples():
        iv = Intervention((r.heads,), factor, steps)
        plain, ablated = sweep.store(), sweep.store(iv)
        images = [(plain.image(r.prompt, s), f"plain, seed {s}") for s in sweep.seeds[:2]]
        images += [(ablated.image(r.prompt, s), f"{iv.label}, seed {s}") for s in sweep.seeds[:2]]
        grid.append((f'"{r.prompt}" — {r.intervention}: {r.outcome} (c={r.c:.1f}, n={r.n:.1f}, '
                     f'DvD {r.dvd_before:.0f} → {r.dvd:.0f})', images))
    return grid


def effect_layers_text(rates: dict[str, pd.DataFrame]) -> str:
    """Per set, the layers with at least half its peak rate ("DvD: 1–3; memorized: 6"), or "none"."""
    from .report import ranges

    strong = {name: r[r.rate >= 0.5 * r.rate.max()].layer for name, r in rates.items() if r.rate.max() > 0}
    return "; ".join(f"{name}: {ranges(v)}" for name, v in strong.items()) or "none"


__all__ = ["CONTROL_MIN_LOWER", "CORRUPTED", "EFFECT_LAYERS", "EXCLUDED", "FULL", "Intervention", "Job", "MITIGATED",
           "NOT_COLLAPSED", "Suppression", "Sweep", "SweepPlan", "UNCHANGED", "baseline_counts", "best",
           "claims_with_control", "control_jobs", "control_passes", "control_text", "control_what", "cost_table",
           "effect_layers_text", "fraction_text", "from_key", "jobs",
           "judge_plan", "layer_rates", "narrowed", "on_model", "paper_mitigated", "memorized_set", "mitigated_count", "multi_head", "outcome_table", "pair_jobs",
           "pairs_note", "paper_peaks", "peak_layer", "per_prompt", "plain_vs_ablated_rows", "plans_for",
           "power_check", "rates_by_set", "run_plans", "scale", "versus_placebo", "images_changed", "shares", "shares_text", "shown_pairs", "single_head", "sweep_plan", "sweeps_for"]
