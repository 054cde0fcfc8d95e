"""What a chapter computes, as data: its work items under a profile, before anything runs.

A `Work` is one unit the run store keeps: one generation of (model, sampler, intervention,
prompt, seed, recording), or one judge answer set of (image, questions). Its ``key`` is the
store's own: the file the store checks (``<model>/<settings hash>/<prompt hash>/<seed>.png`` or
``.attn-<spec hash>.npz``), or the record and the answer key the chapter reads
(``...<seed>.json#judge:...``). `plan(chapter, profile, params)` lists a chapter's work with the
parameters the chapter itself reads (its parameters cell's defaults, then ``params``), built by
the same library calls the chapter makes, so the plan and the chapter cannot drift; `Plan.todo`
keeps what the store lacks. `counts` gives UNet evaluations (steps × 2 under classifier-free
guidance, paper §2's sampler), images and judge calls; `dvdlib.prefetch` computes a plan.

Work a plan cannot know before part of it has run is read from the store where it holds what
decides it (chapter 06: which rows are collapsed before ablation, which heads did not mitigate
them), else counted as an upper bound marked ``provisional`` (`dvdlib.prefetch` plans again once it
is known) or, where no bound is useful (chapter 06's pairs of heads, chapter 08's
``validate_on="flagged"``, chapters 01 and 03 on data and fine-tunes), left out and named in
`Plan.not_counted`: never guessed.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from . import chapters as CH
from .store import digest, model_key, plain, slug

#: Work kinds: a generation (image, attention or noise norms) or a judge's answers about one image.
GENERATE, JUDGE = "generate", "judge"


@dataclass(frozen=True)
class Work:
    """One unit of stored work (generation or judge answers), keyed as `dvdlib.store.Store` keys it.

    ``options``: JSON of the `dvdlib.generate.generate` options (``attention``, ``until_step``,
    ``noise_norms``); ``intervention``: JSON of an `dvdlib.ablation.Intervention`'s
    or `dvdlib.ablation.Suppression`'s key (paper §3.6) or ""; for judge work, ``answers`` is the
    record key, ``asks`` the library function that asks ("dvd": `dvdlib.dvd.judge_images`, "presence":
    `dvdlib.triplets.judge_presence`), ``row`` the prompt-set row as JSON and ``questions`` how
    many questions the image is asked."""

    kind: str
    model: str
    store: str
    settings: str
    prompt: str
    seed: int
    options: str = "{}"
    intervention: str = ""
    answers: str = ""
    asks: str = ""
    row: str = ""
    questions: int = 0
    #: the stored file's ending after ``<seed>``: ".png", ".attn-<spec hash>.npz" (set when built)
    artifact: str = field(default="", compare=False)
    #: what the image's UNet runs cost: steps run × (2 under classifier-free guidance)
    unet_evals: int = field(default=0, compare=False)
    #: needed only if results not yet stored say so (counted as an upper bound, not computed yet)
    provisional: bool = field(default=False, compare=False)

    @cached_property
    def spec(self) -> dict | None:
        """The recording spec that keys the stored attention (`dvdlib.generate.recording_spec`)."""
        from .generate import recording_spec

        o = json.loads(self.options)
        holder = SimpleNamespace(settings=json.loads(self.settings))
        return recording_spec(holder, o.get("attention"), o.get("until_step"), o.get("noise_norms", False))

    @cached_property
    def wants_image(self) -> bool:
        return json.loads(self.options).get("until_step") is None

    @property
    def base(self) -> str:
        """``<model>/<settings hash>/<prompt hash>/<seed>``: where the store keeps this (prompt, seed)."""
        return f"{self.store}/{digest(self.prompt)}/{self.seed}"

    @property
    def key(self) -> str:
        """The store's key of this work: the file `Store.has` checks last, or record#answer-key."""
        if self.kind == JUDGE:
            return f"{self.base}.json#{self.answers}"
        return f"{self.base}{self.artifact}"

    @cached_property
    def shard_key(self) -> str:
        """What places this work in a shard: its model, sampler (any intervention left out) and
        prompt. Every seed, recording and intervention of a prompt lands in one shard, so the judge
        asks all its seeds in one call (as the chapters do) about images the same process made, and
        work that depends on a prompt's results (`provisional`) is planned where they are made: no
        shard waits on another."""
        sampler = {k: v for k, v in json.loads(self.settings).items() if k != "intervention"}
        return f"{self.store.split('/')[0]}/{digest(sampler)}/{digest(self.prompt)}"

    def files(self) -> list[str]:
        """The store files a generation writes (image, attention), store-relative."""
        if self.kind == JUDGE:
            return [f"{self.base}.json"]
        out = [f"{self.base}.png"] if self.wants_image else []
        return out + ([f"{self.base}.attn-{digest(self.spec)}.npz"] if self.spec else [])

    def done(self, root: str | Path) -> bool:
        """Whether the store under ``root`` already holds this work."""
        root = Path(root)
        if self.kind == GENERATE:
            return all((root / f).exists() for f in self.files())
        record = root / f"{self.base}.json"
        if not record.exists():
            return False
        return isinstance(json.loads(record.read_text()).get(self.answers), dict)


@dataclass
class Plan:
    """A chapter's work under a profile (``items``, without repeats) and what it leaves uncounted."""

    chapter: str
    profile: object
    items: list[Work]
    not_counted: list[str] = field(default_factory=list)
    #: the chapter's `dvdlib.run.Run` (what `dvdlib.prefetch` loads models and the judge from)
    run: object = field(default=None, repr=False)

    def todo(self) -> list[Work]:
        """The work the store lacks, of what is known to be needed (not `Work.provisional`)."""
        return [w for w in self.items if not w.provisional and not w.done(self.profile.store)]

    def counts(self) -> dict:
        """UNet evaluations, images (generations) and judge calls (image × question) of the plan."""
        gens = [w for w in self.items if w.kind == GENERATE]
        return {"unet_evals": sum(w.unet_evals for w in gens), "generations": len(gens),
                "images": sum(w.wants_image for w in gens),
                "judge_calls": sum(w.questions for w in self.items if w.kind == JUDGE)}


# --- building work ----------------------------------------------------------------------------------


class PlanRun:
    """What a plan function reads of a chapter's run: its `dvdlib.run.Run` (profile, world,
    stores, questions, prompt sets), never loading a model: prompt sets are read untokenized."""

    def __init__(self, run, params: dict):
        self.run, self.params, self.profile, self.world = run, params, run.profile, run.world
        self.items: dict[str, Work] = {}
        self.not_counted: list[str] = []
        self._keys: dict = {}

    def prompts(self, role: str, n: int | None = None, tokenize: bool = True):
        return self.run.prompts(role, n, tokenize=False)

    @cached_property
    def questions(self):
        return self.run.questions

    @cached_property
    def judge_name(self) -> str:
        """The name the profile's judge stores its answers under (its world's `judge_name`)."""
        return self.world.judge_name(self.profile.judge)

    def _store(self, model: str, intervention: dict | None):
        if model not in self._keys:
            self._keys[model] = model_key(model)
        key = self._keys[model]
        settings = self.profile.sampler(model)
        if intervention is not None:
            settings = {**settings, "intervention": intervention}
        return f"{slug(key)}/{digest({'model': key, **settings})}", json.dumps(settings, sort_keys=True)

    def generate(self, prompts, seeds, *, model: str | None = None, attention: dict | None = None,
                 until_step: int | None = None, noise_norms: bool = False,
                 intervention: dict | None = None, provisional: bool = False) -> None:
        """The work of `dvdlib.generate.generate` (same arguments) into ``model``'s store
        (``provisional``: needed only if results not yet stored say so)."""
        P, model = self.profile, model or self.profile.model
        store, settings = self._store(model, intervention)
        if until_step is not None and until_step >= P.steps:
            until_step = None  # the whole schedule, as `generate` stores it
        options = {"attention": plain(attention) if attention else None,
                   "until_step": until_step, "noise_norms": noise_norms}
        steps = min(until_step or P.steps, P.steps)
        evals = steps * (2 if P.guidance > 1 else 1)
        options = json.dumps(options, sort_keys=True)
        iv = json.dumps(intervention, sort_keys=True) if intervention else ""
        first = Work(GENERATE, model, store, settings, "", 0, options, iv)
        artifact = f".attn-{digest(first.spec)}.npz" if first.spec else ".png"
        for prompt in dict.fromkeys(prompts):
            for seed in seeds:
                self._add(Work(GENERATE, model, store, settings, prompt, int(seed), options, iv, artifact=artifact,
                               unet_evals=evals, provisional=provisional))

    def judge_dvd(self, rows, seeds, *, model: str | None = None, intervention: dict | None = None,
                  provisional: bool = False) -> None:
        """The work of `dvdlib.dvd.judge_images`: ten questions per (row, seed), paper §2."""
        from .dvd import _key, question_groups
        from .judge import QUESTIONS_PER_SET

        Q, model = self.questions, model or self.profile.model
        store, settings = self._store(model, intervention)
        judge = SimpleNamespace(name=self.judge_name)
        for row in rows.itertuples():
            key = _key(judge, Q, row.content, row.nm_word, question_groups(row, Q))
            self._judge(model, store, settings, row.prompt, seeds, key, "dvd", row._asdict(), 2 * QUESTIONS_PER_SET,
                        intervention, provisional)

    def judge_presence(self, rows, seeds, *, model: str | None = None) -> None:
        """The work of `dvdlib.triplets.judge_presence`: five questions per target and (row, seed)."""
        from .judge import QUESTIONS_PER_SET
        from .triplets import TRIPLET_SLOTS, _key

        model = model or self.profile.model
        store, settings = self._store(model, None)
        judge = SimpleNamespace(name=self.judge_name)
        for row in rows.to_dict("records"):
            for k in TRIPLET_SLOTS:
                key = _key(judge, self.questions, row[f"target{k}"], row[f"target{k}_type"])
                self._judge(model, store, settings, row["prompt"], seeds, key, "presence", row, QUESTIONS_PER_SET, None)

    def _judge(self, model, store, settings, prompt, seeds, key, asks, row, questions, intervention, provisional=False):
        row = json.dumps(plain({k: v for k, v in row.items() if k != "Index"}), sort_keys=True, default=str)
        for seed in seeds:
            self._add(Work(JUDGE, model, store, settings, prompt, int(seed),
                           intervention=json.dumps(intervention, sort_keys=True) if intervention else "",
                           answers=key, asks=asks, row=row, questions=questions, provisional=provisional))

    def _add(self, work: Work) -> None:
        known = self.items.get(work.key)
        if known is None or known.provisional and not work.provisional:
            self.items[work.key] = work

    def skip(self, what: str) -> None:
        """Name work this plan does not count (it depends on results, data or training)."""
        self.not_counted.append(what)


# --- chapters -----------------------------------------------------------------------------------------

#: chapter stem → plan function(PlanRun); a chapter missing here has no plan yet.
CHAPTERS: dict[str, Callable] = {}


def chapter(name: str):
    def register(fn):
        CHAPTERS[name] = fn
        return fn
    return register


@chapter(CH.TRAINING_DIVERSITY.name)
def _training_diversity(r: PlanRun) -> None:
    r.skip("chapter 01 (paper §3.1) embeds training images you provide; without them (image_source "
           "'generated') its generations come from a concept table read at run time: not counted")


@chapter(CH.DVD_BENCHMARK.name)
def _dvd_benchmark(r: PlanRun) -> None:
    """Paper §2, §3.2: the benchmark and the balanced set, every seed, each model compared, judged."""
    import pandas as pd

    P = r.profile
    benchmark = r.prompts("benchmark", P.n_prompts)
    balanced = r.prompts("balanced", P.n_prompts).assign(content_type="balanced")
    rows = pd.concat([benchmark.assign(set="benchmark"), balanced.assign(set="balanced")], ignore_index=True)
    rows["case_num"] = rows["set"] + ":" + rows["case_num"].astype(str)
    _generate_and_judge(r, rows, r.params.get("models") or P.models)


def _generate_and_judge(r: PlanRun, rows, models) -> None:
    """The work of `dvdlib.dvd.generate_and_judge`."""
    for model in models:
        r.generate(rows.prompt.unique(), r.profile.seeds, model=model)
        r.judge_dvd(rows, r.profile.seeds, model=model)


@chapter(CH.CAUSAL.name)
def _diversity_causal(r: PlanRun) -> None:
    r.skip("chapter 03 (paper §3.3) generates with models it fine-tunes first (DreamBooth): not counted")


FIRST_STEP = {"layers": "all", "steps": [1]}


@chapter(CH.FOCUS.name)
def _focus_score(r: PlanRun) -> None:
    """Paper §3.4: the first step of every benchmark and control prompt, and one full example
    recorded at the peak layers read on the model (`dvdlib.adapters.paper_layers`)."""
    from . import adapters, bench

    P, p = r.profile, r.params
    peak_layers = adapters.paper_layers(model_pipe(r), p["peak_layers"], P.resolution)
    all_benchmark = r.prompts("benchmark")
    r.generate(bench.stratified(all_benchmark, P.n_prompts).prompt.unique(), P.seeds, attention=FIRST_STEP, until_step=1)
    r.generate(r.prompts("control", P.n_prompts).prompt, P.seeds, attention=FIRST_STEP, until_step=1)
    row = bench.case(all_benchmark, p["example_case"])
    r.generate([row.prompt], P.seeds[:1], attention={"layers": peak_layers, "steps": [1], "maps": True})


@chapter(CH.TEMPORAL.name)
def _temporal_dynamics(r: PlanRun) -> None:
    """Paper §3.5: every step of the tracked layers (read on the model, `dvdlib.adapters.paper_layers`)
    for the benchmark and balanced sets."""
    from . import adapters, bench, temporal

    P, p, pipe = r.profile, r.params, model_pipe(r)
    options = temporal.record_options({role: tuple(adapters.paper_layers(pipe, p[f"{role}_layers"], P.resolution))
                                       for role in ("dominant", "dominated")})
    all_benchmark = r.prompts("benchmark")
    for rows in (bench.stratified(all_benchmark, P.n_prompts), r.prompts("balanced", P.n_prompts)):
        r.generate(rows.prompt.unique(), P.seeds, attention=options)
    row, _ = temporal.find_example(all_benchmark, p["example_content"], p["example_object"])
    r.generate([row.prompt], P.seeds[:1], attention=options)


@chapter(CH.ABLATION.name)
def _head_ablation(r: PlanRun) -> None:
    """Paper §3.6, as the chapter runs it (its layers read on the model, `dvdlib.ablation.on_model`):
    plain images of every row and seed, judged (DvD) or compared across seeds (memorized); the
    single-head and multi-head ablations and the positive controls (each DvD row's dominant concept
    suppressed, `dvdlib.ablation.control_jobs`; none where the family cannot suppress) of the rows
    ablated — with ``require_baseline`` only those collapsed / reproduced before ablation — and the
    pairs of layer ``pair_layer``'s heads that did not mitigate a row. Which rows and pairs is read
    from the store (`_ablated`, `_pairs`); a row it cannot tell yet is counted as an upper bound
    (`Work.provisional`), its pairs not at all."""
    from dataclasses import replace

    from . import ablation, adapters
    from .attention import _suppressible
    from .layers import registry
    from .outcome import DvDRule, MemorizedRule

    P, p = r.profile, r.params
    pipe, steps, factor = model_pipe(r), p["ablate_steps"], p["factor"]
    sweep = ablation.sweep_plan(P, p["sweep_layers"], p["sweep_heads"], p["n_prompts"], p["n_memorized"], p["sweep_seeds"])
    sweep = ablation.on_model(sweep, pipe, P.resolution)
    pair_layer = adapters.paper_layers(pipe, [p["pair_layer"]], P.resolution)[0]
    layers = registry(pipe, P.resolution)
    single = ablation.single_head(layers, sweep.layers, sweep.heads, factor, steps)
    multi = ablation.multi_head(layers, sweep.layers, p["multi_head_reading"], factor, steps)
    benchmark = r.prompts("benchmark", sweep.n_prompts)
    memorized, _ = ablation.memorized_set(r, sweep.n_memorized)
    frozen = SimpleNamespace(profile=replace(P, store_mode="frozen"), pipe=None)  # reads the store, computes nothing
    sweeps = ablation.sweeps_for(frozen, benchmark, memorized, sweep.seeds)
    rules = SimpleNamespace(judge=SimpleNamespace(name=r.judge_name), questions=r.questions,
                            dvd=DvDRule(tau=p["tau"], concept_min=p["concept_min"], object_min=p["object_min"]),
                            memorized=MemorizedRule(threshold=p["similarity_threshold"], blank_std=p["blank_std"]),
                            similarity=p["similarity"], require_baseline=p["require_baseline"])
    try:
        _suppressible(pipe)
        controls = ablation.control_jobs(benchmark, steps, P.steps, p["control_strength"])
    except NotImplementedError:  # the chapter's positive control is "unavailable": it makes no image
        controls = []
    unknown, unpaired = 0, 0
    for name, s in sweeps.items():
        r.generate(s.prompts(s.rows.index), s.seeds)
        if name == "DvD":
            r.judge_dvd(s.rows, s.seeds)
        state = {case: _ablated(s, name, case, rules) for case in s.rows.index}
        unknown += sum(v is None for v in state.values())
        jobs = ablation.jobs([*single, *multi], s.rows.index)
        if name == "DvD":
            jobs += [job for control in controls for job in control]
        for job in jobs:
            for provisional in (False, True):
                cases = [c for c in job.cases if state[c] is (None if provisional else True)]
                if cases:
                    _ablation_work(r, s, name, job.intervention, cases, provisional)
        if name == "DvD":
            for case in [c for c, v in state.items() if v is not False]:
                pairs = _pairs(s, case, single, pair_layer, factor, steps, rules) if state[case] else None
                unpaired += pairs is None
                for job in pairs or []:
                    _ablation_work(r, s, name, job.intervention, job.cases, False)
    if unknown:
        r.skip(f"chapter 06: which of {unknown} rows are ablated (with require_baseline, those collapsed / "
               "reproduced before ablation) is known once their plain images are judged: all are counted, an "
               "upper bound (dvd prefetch computes them once known)")
    if unpaired:
        r.skip(f"chapter 06: pairs of non-mitigating layer-{pair_layer} heads (paper §3.6) depend on the single-head "
               f"outcomes, not yet stored for {unpaired} rows: not counted")
    if str(p["similarity"]).startswith("clip:"):
        r.skip("chapter 06: CLIP embeddings of the memorized images (similarity 'clip:...'): not counted; every "
               "memorized row's ablations are counted (those not reproduced before ablation are not needed)")


def _ablation_work(r: PlanRun, s, name: str, iv, cases, provisional: bool) -> None:
    """The images of rows ``cases`` of sweep ``s`` under intervention ``iv``, judged on the DvD set."""
    rows = s.rows.loc[list(cases)]
    r.generate(s.prompts(rows.index), s.seeds, intervention=iv.key(), provisional=provisional)
    if name == "DvD":
        r.judge_dvd(rows, s.seeds, intervention=iv.key(), provisional=provisional)


def _one_row(s, case):
    """Sweep ``s`` on its row ``case`` alone (the same stores)."""
    from .ablation import Sweep

    return Sweep(s.pipe, s.rows.loc[[case]].reset_index(drop=True), s.seeds, root=s.root, model=s.model,
                 sampler=s.sampler, batch_size=s.batch_size, store_mode=s.store_mode)


def _ablated(s, name: str, case, rules) -> bool | None:
    """Whether chapter 06 ablates row ``case`` of the (frozen) sweep ``s``: every row without
    ``require_baseline``, else a row collapsed (DvD) or reproduced (memorized, pixel similarity)
    before ablation, read from the store as `dvdlib.ablation.run_plans` reads it; None while the
    store lacks its plain images or answers. A CLIP similarity is not computed here: True."""
    from .store import StoreMiss

    if not rules.require_baseline or name != "DvD" and str(rules.similarity).startswith("clip:"):
        return True
    one = _one_row(s, case)
    try:
        if name == "DvD":
            return bool(one.mitigable(rules.judge, rules.questions, rules.dvd))
        return bool(one.reproduced(rules.memorized, rules.similarity))
    except StoreMiss:
        return None


def _pairs(s, case, single, layer: int, factor, steps, rules):
    """The pairs of ``layer``'s heads chapter 06 ablates on row ``case`` (`dvdlib.ablation.pair_jobs`
    over its single-head outcomes, read from the store); None while the store lacks them."""
    from . import ablation
    from .store import StoreMiss

    one = _one_row(s, case)
    heads = ablation.jobs([iv for iv in single if iv.layers == (layer,)], one.rows.index)
    try:
        table = one.judge_dvd(heads, rules.judge, rules.questions, rules.dvd, rules.require_baseline)
    except StoreMiss:
        return None
    return ablation.pair_jobs(table, layer=layer, factor=factor, steps=steps)


@chapter(CH.MEMORIZATION.name)
def _memorization(r: PlanRun) -> None:
    """Paper §3.7: noise-prediction norms of the memorized, benchmark and balanced prompts."""
    from . import memorization

    for prompts in memorization.prompt_sets(r, r.params["n_memorized"]).values():
        r.generate(prompts, r.profile.seeds, noise_norms=True, until_step=r.params["curve_steps"])


@chapter(CH.DETECTION.name)
def _detection_replacement(r: PlanRun) -> None:
    """Paper §3.8: first steps of the benchmark and balanced sets; every benchmark row generated
    and judged before and after its concept is replaced, with each model compared."""
    from . import bench, replace

    P, p = r.profile, r.params
    benchmark = bench.stratified(r.prompts("benchmark"), P.n_prompts)
    balanced = r.prompts("balanced", P.n_prompts)
    for rows in (benchmark, balanced):
        r.generate(rows.prompt.unique(), P.seeds, attention=FIRST_STEP, until_step=1)
    if p["validate_on"] != "all":
        r.skip("chapter 08: the rows the detector flags (validate_on='flagged') are known only after it runs: "
               "the replacement is not counted")
        return
    rows = replace.rows_to_replace(benchmark, "all")
    after = replace.replaced(rows, r.world.category_words(), p["judge_concept"])
    for model in p.get("models") or P.models:
        r.generate(list(dict.fromkeys([*rows.prompt, *after.prompt])), P.seeds, model=model)
        r.judge_dvd(rows, P.seeds, model=model)
        r.judge_dvd(after, P.seeds, model=model)


@chapter(CH.TOY_FINDINGS.name)
def _toy_findings(r: PlanRun) -> None:
    """Chapter 09 reads a committed snapshot: no work."""


@chapter(CH.UNSELECTED.name)
def _unselected(r: PlanRun) -> None:
    """ACCV version: the unselected, benchmark and balanced sets, every model, judged; the benchmark
    again on the fresh seeds that did not select it (`dvdlib.unselected.generate_and_judge`)."""
    from . import unselected

    sets, models = unselected.prompt_sets(r, r.profile.n_prompts), r.params.get("models") or r.profile.models
    _generate_and_judge(r, sets, models)
    fresh, benchmark = unselected.fresh_seeds(r.profile.seeds, r.params.get("fresh_seeds")), sets[sets.set == "benchmark"]
    for model in models:
        r.generate(benchmark.prompt.unique(), fresh, model=model)
        r.judge_dvd(benchmark, fresh, model=model)


@chapter(CH.THREE_CONCEPTS.name)
def _three_concepts(r: PlanRun) -> None:
    """ACCV version: the factorial and the pilot generated, each target's presence judged, and the
    first step of each prompt recorded for its peak slot."""
    from . import triplets

    P, p = r.profile, r.params
    for role, n in (("factorial", p["cases"] or max(1, P.n_prompts // 2)), ("pilot", p["n_pilot"] or P.n_prompts)):
        rows, _ = triplets.design(r, role, n)
        if rows.empty:
            continue
        r.generate(rows["prompt"].unique(), P.seeds)
        r.judge_presence(rows, P.seeds)
        r.generate(rows["prompt"].unique(), P.seeds, attention={"layers": list(p["peak_layers"]), "steps": [1]}, until_step=1)


def model_pipe(r: PlanRun):
    """The profile's model as a plan reads it (its layers and family, `dvdlib.adapters`): for a
    UNet whose config is known (the packaged SD 1.4 / 2.1 / XL configs, a folder's own) a stand-in
    holding that UNet built on the meta device, no weights read; else the world's model loaded
    (the small ones)."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    from .models import SD14, SD21, SDXL, resolve_id, unet_config

    model = r.profile.model
    known = {SD14: "sd1.4", SD21: "sd2.1", SDXL: "sdxl", "random:sd1.4": "sd1.4", "random:sd2.1": "sd2.1"}
    name = model if model.startswith("random:") else resolve_id(model) if not Path(model).exists() else model
    config = None
    if name in known:
        config = unet_config(known[name])
    elif (Path(model) / "unet" / "config.json").is_file():
        config = json.loads((Path(model) / "unet" / "config.json").read_text())
    if config is None:
        return r.run.pipe
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    return SimpleNamespace(unet=unet, vae_scale_factor=8)  # any pipeline with a UNet reads as SD's (layers alike)


def unet_layers(r: PlanRun):
    """The cross-attention layers (`dvdlib.layers`) of the profile's model (`model_pipe`)."""
    from .layers import registry

    return registry(model_pipe(r), r.profile.resolution_of(r.profile.model))


# --- parameters and the entry point ---------------------------------------------------------------------


def chapter_parameters(source: str | Path) -> dict:
    """A chapter's parameters with their defaults, read from its ``parameters`` cell."""
    import papermill as pm

    out = {}
    for name, info in pm.inspect_notebook(str(source)).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[name] = info["default"]
    return out


def chapter_source(name: str, chapters_dir: str | Path = "chapters") -> Path:
    """The chapter notebook ``name`` names (file, stem or number prefix, as `dvd book --only`)."""
    from .book import chapter_sources

    found = chapter_sources(chapters_dir, only=[name])
    if len(found) != 1:
        raise ValueError(f"{name!r} names {len(found)} chapters ({', '.join(s.stem for s in found)}): give one")
    return found[0]


def plan(name: str, profile: str = "toy", params: dict | None = None, chapters_dir: str | Path = "chapters") -> Plan:
    """The `Plan` of chapter ``name`` (``"02"``, ``"02_dvd_benchmark"``) under ``profile`` with the
    chapter parameters ``params`` (others keep the chapter's defaults; unknown ones are an error)."""
    from .profiles import Profile, load_profile
    from .run import Run

    source = chapter_source(name, chapters_dir)
    if source.stem not in CHAPTERS:
        raise ValueError(f"chapter {source.stem} has no plan (planned: {', '.join(CHAPTERS)})")
    defaults = chapter_parameters(source)
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"{source.stem} has no parameter {', '.join(map(repr, unknown))}; "
                         f"its parameters are: {', '.join(defaults)}")
    values = {**defaults, **params, "profile": profile}
    fields = set(Profile.__dataclass_fields__) - {"name", "models"}
    overrides = {k: v for k, v in values.items() if k in fields}
    run = Run(load_profile(profile, **overrides), source.stem, out_dir=values.get("out_dir", "book"))
    r = PlanRun(run, values)
    CHAPTERS[source.stem](r)
    return Plan(source.stem, run.profile, list(r.items.values()), r.not_counted, run)


# --- cost ---------------------------------------------------------------------------------------------

#: Where the GPU benchmark writes its measurements (``benchmarks/gpu.sh``; key ``costs``).
COSTS_FILE = "benchmarks/results/gpu.json"


def load_costs(path: str | Path = COSTS_FILE) -> dict | None:
    """The measured costs (``costs`` of the GPU benchmark's result: seconds per image per model,
    seconds per judge question), or None when no measurement exists at ``path``."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    costs = data.get("costs", data)
    if "generation" not in costs or "judge" not in costs:
        raise ValueError(f"{path}: expected a 'costs' object with 'generation' and 'judge' (from benchmarks/gpu.sh)")
    return costs


def _measured(costs: dict, model: str) -> dict | None:
    """The generation measurement of ``model``: its own id, else the random-weight model of its
    architecture (same cost: SD 1.4 → ``random:sd1.4``, SD 2.1 → ``random:sd2.1``)."""
    from .models import SD14, SD21, resolve_id

    gen = costs["generation"]
    if model in gen:
        return gen[model]
    name = resolve_id(model) if not Path(model).exists() else model
    return gen.get(name) or gen.get({SD14: "random:sd1.4", SD21: "random:sd2.1"}.get(name, ""))


def seconds(p: Plan, costs: dict | None) -> tuple[float | None, list[str]]:
    """GPU-seconds of a plan on one GPU from measured costs, and what could not be priced.

    A generation costs the measured seconds per image scaled to its UNet evaluations (steps run ×
    2 under guidance, against the benchmark's steps × 2) and to its pixels (resolution², against
    the benchmark's): where a chapter's sampler differs from the benchmark's (first steps only,
    another resolution) the cost is scaled, not measured; decoding and model loading are not
    counted. A judge call costs the measured seconds per question."""
    if costs is None:
        return None, ["no measurement (run benchmarks/gpu.sh)"]
    total, missing = 0.0, set()
    for w in p.items:
        if w.kind == JUDGE:
            total += w.questions * costs["judge"]["seconds_per_question"]
            continue
        m = _measured(costs, w.model)
        if m is None:
            missing.add(w.model)
            continue
        resolution = json.loads(w.settings)["resolution"]
        total += m["seconds_per_image"] * w.unet_evals / (2 * m["steps"]) * (resolution / m["resolution"]) ** 2
    return (None if missing else total), [f"no measurement for {m}" for m in sorted(missing)]


def cost_table(plans: list[Plan], costs: dict | None, gpus: int = 8, source: str = COSTS_FILE) -> str:
    """A Markdown table of the plans: generations, images, UNet evaluations, judge calls and GPU-hours
    on 1 and ``gpus`` GPUs (shards of equal size assumed), a total row, then what is not counted."""
    head = (f"| chapter | generations | images | UNet evaluations | judge calls | GPU-hours, 1 GPU "
            f"| GPU-hours, {gpus} GPUs (wall) |\n|---|--:|--:|--:|--:|--:|--:|")
    def hours(x):
        return "unknown" if x is None else f"{x / 3600:,.1f}"

    def line(name, p, s):
        c = p.counts()
        shown = ("not counted", "not counted") if not p.items and p.not_counted else (hours(s), hours(None if s is None else s / gpus))
        return (f"| {name} | {c['generations']:,} | {c['images']:,} | {c['unet_evals']:,} | {c['judge_calls']:,} | "
                f"{shown[0]} | {shown[1]} |")

    lines, notes = [head], []
    for p in plans:
        s, missing = seconds(p, costs) if p.items else (0.0, [])
        lines.append(line(p.chapter, p, s))
        notes += [f"- {p.chapter}: {m}" for m in p.not_counted] + [f"- {p.chapter}: {m}" for m in missing if costs]
    union = Plan("all", None, list({w.key: w for p in plans for w in p.items}.values()))
    lines.append(line("**all** (shared work once)", union, seconds(union, costs)[0] if union.items else 0.0))
    profile = plans[0].profile if plans else None
    out = "\n".join(lines)
    if profile is not None:
        out = f"Profile `{profile.name}` ({profile.description}).\n\n" + out
    if costs is None:
        out += (f"\n\nGPU-hours unknown: no measurement at {source} (run benchmarks/gpu.sh on the GPU, "
                "or pass --costs FILE); the counts above need none.")
    else:
        out += (f"\n\nFrom measured costs on {costs.get('device', 'the benchmark device')} ({source}): seconds per "
                "image scaled by UNet evaluations and resolution² where a chapter's sampler differs from the "
                f"benchmark's; seconds per judge question × questions. {gpus} GPUs: the 1-GPU hours / {gpus} "
                "(shards by hash are near equal); the measured seconds per image include its VAE decode; model "
                "loading not counted.")
    if notes:
        out += "\n\nNot counted (known only at run time):\n" + "\n".join(notes)
    return out
