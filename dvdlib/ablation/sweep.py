"""Running ablations (paper §3.6): a `Sweep` generates and judges a plan's images for one model,
prompt set and seeds (resumable, batched, one run store per intervention); the sweep's scale
(`sweep_plan`, `on_model`) and the chapter's sets of sweeps (`sweeps_for`, `run_plans`, `judge_plan`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd

from .. import dvd, outcome
from ..attention import _suppressible, intervene_each, suppress_tokens_each
from ..generate import generate, pipeline_call
from ..outcome import NOT_MEMORIZED, UNCHANGED, DvDRule, MemorizedRule
from ..progress import task
from ..store import Store
from .interventions import NOT_COLLAPSED, Intervention, Job, Suppression, jobs, narrowed


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
        from ..tokens import concept_span, sequence_tokenizer

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
        """The sweep in words: "all heads of layers 1, 3, 6, factor 0 at step 1"."""
        from ..report import ranges

        def listed(word, values):
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            return f"{word}{'s' if len(values) > 1 else ''} " + ", ".join(map(str, values))

        layers = "every layer" if self.layers == "all" else listed("layer", self.layers)
        heads = "all heads" if self.heads == "all" else listed("head", self.heads)
        steps = sorted(int(s) for s in steps)
        return f"{heads} of {layers}, factor {factor:g} at step{'s' if len(steps) > 1 else ''} {ranges(steps)}"

    def prompts_text(self) -> str:
        """The rows swept, for the chapter's card: "at most 12 benchmark rows; memorized prompts: all, where
        the world has them (on at least two seeds)" (fewer rows where the prompt set has fewer)."""
        return (f"at most {self.n_prompts} benchmark rows; memorized prompts: {self.n_memorized or 'all'}, where the world "
                "has them (on at least two seeds)")

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

    from ..family import paper_layers

    return plan if plan.layers == "all" else replace(plan, layers=paper_layers(pipe, plan.layers, resolution))


def memorized_set(run, n: int | None = None) -> tuple[pd.DataFrame | None, str]:
    """The memorized control prompts of a run (its profile's ``memorized`` prompt-set role; paper
    §3.6), at most ``n``, and a sentence saying which. A world without memorized prompts (the toy
    world) gives (None, the reason)."""
    P = run.profile
    name = P.prompt_sets.get("memorized")
    if name is None:
        return None, f"profile `{P.name}` has no `memorized` prompt set"
    rows = run.prompts("memorized", n, tokenize=False)
    return rows, f"{len(rows)} prompts of the memorized set `{name}`"


def sweeps_for(run, benchmark: pd.DataFrame, memorized: pd.DataFrame | None, seeds) -> dict[str, Sweep]:
    """A `Sweep` of the run's model per set: ``"DvD"`` (the benchmark) and, where the world has
    them, ``"memorized"``. Memorization is judged by the similarity of a prompt's images across
    seeds, so the memorized sweep takes at least two seeds (the profile's first two when
    ``seeds`` has one)."""
    sweeps = {"DvD": run.sweep(benchmark, seeds)}
    if memorized is not None:
        sweeps["memorized"] = run.sweep(memorized, memorized_seeds(seeds, run.profile.seeds))
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


def judge_plan(sweeps: dict[str, Sweep], plans, plan: str, judge, questions, dvd_rule, mem_rule, similarity: str,
               require_baseline: bool = True) -> dict[str, pd.DataFrame]:
    """The outcomes of one plan (``"single-head"`` or ``"multi-head"``) per set."""
    out = {"DvD": sweeps["DvD"].judge_dvd(plans["DvD"][plan], judge, questions, dvd_rule, require_baseline)}
    if "memorized" in sweeps:
        out["memorized"] = sweeps["memorized"].judge_memorized(plans["memorized"][plan], mem_rule, similarity,
                                                               require_baseline)
    return out
