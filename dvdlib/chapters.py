"""The book's chapters, each defined once: its name (the notebook ``chapters/<name>.ipynb``), its
work (what it generates, records, ablates and asks the judge, given the chapter's parameters), the
chapters whose stored work it reads, whether a fresh clone should start it early, whether the toy
findings snapshot runs it, and the result keys that other modules read from its results JSON.

A chapter's work runs on an executor: the chapter's `dvdlib.run.Run` computes it (what the store
lacks is made, the rest read) and returns what the notebook analyses; `dvdlib.plan.Count` counts it
(``dvd plan``), and `dvdlib.prefetch` computes what the count lists. Both run the *same* function,
so what is prefetched is what the chapter reads. Work that depends on results (chapter 06's rows
collapsed before ablation, chapter 08's flagged rows) asks the executor, which computes it or, when
counting, reads it from the store or says it cannot tell.

The book's scheduler (`dvdlib.scheduler`), the claims (`dvdlib.findings`), the toy findings
(`dvdlib.toy.snapshot`, `dvdlib.toy.findings`) and `dvd plan` read these definitions; none of them spells a chapter's name or a result key again.
Adding a chapter: write its notebook and one `Chapter` here, with its work (see the forking page).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

from .progress import gathered


@dataclass(frozen=True)
class Chapter:
    """One chapter: ``name`` its notebook's stem; ``reads_from`` the chapters whose stored work it
    reads (it starts after them when both run, so the work is done once), ``reads_only_if`` producer
    → (profile, the run's parameters) → whether such a run reads it (absent: always); ``long`` its place among
    the chapters a fresh clone, with no times of its own, starts first (None: not long);
    ``snapshot`` whether `dvd toy findings` runs it, with ``snapshot_parameters`` (the scale its
    verdicts need where the book runs less: the twins' K); ``keys`` role → the key of a results row that
    another module reads (`dvdlib.findings.CLAIMS`); ``work`` its work (executor, parameters →
    what it computed)."""

    name: str
    reads_from: tuple[str, ...] = ()
    reads_only_if: dict[str, Callable] = field(default_factory=dict, repr=False)
    long: int | None = None
    snapshot: bool = False
    snapshot_parameters: dict = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    work: Callable = field(default=None, repr=False)

    def parameters(self) -> tuple[str, ...]:
        """The chapter parameters its work takes (the notebook's parameters cell names them)."""
        return tuple(inspect.signature(self.work).parameters)[1:]

    def reads(self, profile, parameters: dict | None = None) -> tuple[str, ...]:
        """The chapters whose work a run with ``profile`` (a `dvdlib.profiles.Profile`) and the
        chapter ``parameters`` it is given reads (`reads_from`, less those `reads_only_if` rules out)."""
        return tuple(p for p in self.reads_from
                     if p not in self.reads_only_if or self.reads_only_if[p](profile, parameters or {}))

    def key(self, role: str) -> str:
        """The results key this chapter writes for ``role`` (an error naming the roles it has)."""
        if role not in self.keys:
            raise KeyError(f"chapter {self.name} records no {role!r}; it records {sorted(self.keys)}")
        return self.keys[role]


# --- each chapter's work: what it generates, records, ablates and asks (its analyses are its notebook's) ---

#: Every layer's attention at the first denoising step, and only that step (paper §3.4, §3.8).
FIRST_STEP = {"layers": "all", "steps": [1]}


def _dvd_benchmark(x, models=None):
    """Paper §2, §3.2: the benchmark and the balanced set, every seed, each model compared, judged."""
    import pandas as pd

    from . import dvd

    P = x.profile
    benchmark = x.prompts("benchmark", P.n_prompts, tokenize=False)
    balanced = x.prompts("balanced", P.n_prompts, tokenize=False).assign(content_type="balanced")
    prompt_sets = pd.concat([benchmark.assign(set="benchmark"), balanced.assign(set="balanced")], ignore_index=True)
    prompt_sets["case_num"] = prompt_sets["set"] + ":" + prompt_sets["case_num"].astype(str)
    images = dvd.generate_and_judge(x, prompt_sets, models or P.models)
    return SimpleNamespace(benchmark=benchmark, prompt_sets=prompt_sets, models=list(models or P.models), images=images)


def _training_diversity(x, image_source, per_category, categories, template, centred):
    """Paper §3.1: the images whose diversity is measured (with ``image_source`` "generated", the
    model's images of each concept, generated; ``generated`` says so); their embeddings are the notebook's."""
    from . import diversity

    P = x.profile
    images, provenance = diversity.source_table(x, image_source, per_category=per_category or max(2, P.n_prompts // 3),
                                                categories=categories, template=template, centred=centred)
    if x.counting:
        x.skip("the CLIP embeddings of its images (paper §3.1) are computed when it runs, cached in the "
               "run store: not counted")
    generated = (image_source or x.world.diversity_source) == "generated"
    return SimpleNamespace(images=images, provenance=provenance, generated=generated)


def _diversity_causal(x, seeds, images, n_images, breeds, train_steps, lr, prior_preservation, n_prompts):
    """Paper §3.3: at least three DreamBooth fine-tunes per variant (each its own training seed),
    every test prompt generated by each and by the base model, judged."""
    from . import causal

    S = causal.scale(x.profile, seeds_given=seeds is not None)
    recipe = causal.recipe_for(S, steps=train_steps, lr=lr, prior_preservation=prior_preservation)
    n_images, breeds = n_images or S["n_images"], sorted(breeds or S["breeds"])
    prompts = causal.causal_prompts(x, n_prompts or S["prompts"])
    training = causal.variant_images(x, images, breeds, n_images, seed=recipe.seed)
    with gathered(f"{len(training)} variants × {S['replicates']} fine-tunes and the base model"):  # one line
        models = causal.finetune_variants(x, training, recipe, S["replicates"])
        judged, _ = causal.generate_and_judge(x, prompts, models, S["seeds"])
    return SimpleNamespace(scale=S, recipe=recipe, n_images=n_images, breeds=breeds, prompts=prompts,
                           training=training, models=models, judged=judged)


def _focus_score(x, peak_layers, example_case):
    """Paper §3.4: the first step of every benchmark and control prompt, and one example recorded
    at the peak layers (SD 1.4's numbers, read on the model: `dvdlib.adapters.paper_layers`)."""
    from . import adapters, bench

    P = x.profile
    peak_layers = adapters.paper_layers(x.pipe, peak_layers, P.resolution)
    all_benchmark = x.prompts("benchmark")
    dominance, control = bench.stratified(all_benchmark, P.n_prompts), x.prompts("control", P.n_prompts)
    bench_samples = x.generate(dominance.prompt.unique(), P.seeds, attention=FIRST_STEP, until_step=1)
    control_samples = x.generate(control.prompt, P.seeds, attention=FIRST_STEP, until_step=1)
    row = bench.case(all_benchmark, example_case)  # the set's first row where it has no such case
    example = x.generate([row.prompt], P.seeds[:1], attention={"layers": peak_layers, "steps": [1], "maps": True})
    return SimpleNamespace(all_benchmark=all_benchmark, dominance=dominance, control=control, peak_layers=peak_layers,
                           bench_samples=bench_samples, control_samples=control_samples, example_row=row,
                           example=example[0] if example else None)


def _temporal_dynamics(x, dominant_layers, dominated_layers, example_content, example_object):
    """Paper §3.5: every step of the tracked layers (read on the model) for the benchmark and
    balanced sets, and the worked example."""
    from . import adapters, bench, temporal

    P = x.profile
    role_layers = {role: tuple(adapters.paper_layers(x.pipe, layers, P.resolution))
                   for role, layers in (("dominant", dominant_layers), ("dominated", dominated_layers))}
    options = temporal.record_options(role_layers)
    all_benchmark = x.prompts("benchmark")
    sets = {P.prompt_sets["benchmark"]: bench.stratified(all_benchmark, P.n_prompts),
            P.prompt_sets["balanced"]: x.prompts("balanced", P.n_prompts)}
    samples = {name: x.generate(rows.prompt.unique(), P.seeds, attention=options) for name, rows in sets.items()}
    row, _ = temporal.find_example(all_benchmark, example_content, example_object)
    (example,) = x.generate([row.prompt], P.seeds[:1], attention=options) or [None]
    return SimpleNamespace(all_benchmark=all_benchmark, sets=sets, role_layers=role_layers, samples=samples,
                           example_row=row, example=example)


def _head_ablation(x, sweep_layers, sweep_heads, n_prompts, n_memorized, sweep_seeds, factor, ablate_steps,
                   multi_head_reading, pair_layer, control_strength, tau, concept_min, object_min, similarity,
                   similarity_threshold, blank_std, require_baseline):
    """Paper §3.6: plain images of every row and seed, judged (DvD) or compared across seeds
    (memorized); the single-head and multi-head ablations and the positive controls (each DvD
    row's dominant concept suppressed, none where the family cannot) of the rows with something
    to mitigate (with ``require_baseline``: collapsed / reproduced before ablation), judged; then
    the pairs of layer ``pair_layer``'s heads that did not mitigate a row, judged."""
    from . import ablation, adapters
    from .outcome import DvDRule, MemorizedRule

    P = x.profile
    plan = ablation.on_model(ablation.sweep_plan(P, sweep_layers, sweep_heads, n_prompts, n_memorized, sweep_seeds),
                             x.pipe, P.resolution)
    pair_layer = adapters.paper_layers(x.pipe, [pair_layer], P.resolution)[0]
    single = ablation.single_head(x.layers, plan.layers, plan.heads, factor, ablate_steps)
    multi = ablation.multi_head(x.layers, plan.layers, multi_head_reading, factor, ablate_steps)
    benchmark = x.prompts("benchmark", plan.n_prompts, tokenize=False)
    memorized, memorized_note = ablation.memorized_set(x, plan.n_memorized)
    sweeps = ablation.sweeps_for(x, benchmark, memorized, plan.seeds)
    plans = ablation.plans_for(sweeps, single, multi)
    cost = ablation.cost_table(sweeps, plans)
    rules = dict(judge=x.judge, questions=x.questions, dvd_rule=DvDRule(tau=tau, concept_min=concept_min,
                 object_min=object_min), mem_rule=MemorizedRule(threshold=similarity_threshold, blank_std=blank_std),
                 similarity=similarity, require_baseline=require_baseline)
    ablation.run_plans(sweeps, plans, **rules)
    controls = ablation.suppressible_controls(x.pipe, benchmark, ablate_steps, P.steps, control_strength)
    ablation.run_controls(sweeps["DvD"], controls, **rules)
    single_out = ablation.judge_plan(sweeps, plans, "single-head", **rules)
    multi_out = ablation.judge_plan(sweeps, plans, "multi-head", **rules)
    pairs = ablation.pair_jobs(single_out["DvD"], layer=pair_layer, factor=factor, steps=ablate_steps)
    if x.counting and sweeps["DvD"].unjudged:
        x.skip(f"ablation: what depends on the outcomes of {sweeps['DvD'].unjudged} rows' ablations (the pairs of "
               "heads that did not mitigate, paper §3.6) is known once they are judged: not counted")
    sweeps["DvD"].run(pairs)
    pair_out = sweeps["DvD"].judge_dvd(pairs, x.judge, x.questions, rules["dvd_rule"], require_baseline)
    return SimpleNamespace(plan=plan, pair_layer=pair_layer, single=single, multi=multi, benchmark=benchmark,
                           memorized=memorized, memorized_note=memorized_note, sweeps=sweeps, plans=plans, cost=cost,
                           rules=rules, controls=controls, single_out=single_out, multi_out=multi_out, pairs=pairs,
                           pair_out=pair_out)


def _memorization(x, n_memorized, curve_steps):
    """Paper §3.7: noise-prediction norms of the memorized, benchmark and balanced prompts."""
    from . import memorization, noise_norm

    noise_norm.check_recordable(x.pipe)
    sets = memorization.prompt_sets(x, n_memorized)
    return SimpleNamespace(sets=sets, norms=memorization.norms_by_set(x, sets, until_step=curve_steps))


def _detection_replacement(x, models, detector_layers, threshold, combine, seed_reduce, validate_on, judge_concept):
    """Paper §3.8: the first step of the benchmark and balanced sets (the detector's scores), then
    every benchmark row (or those the detector flags) generated and judged before and after its
    concept is replaced by its category word, with each model compared."""
    from . import adapters, bench, detect, focus, replace, tokens

    P = x.profile
    detector_layers = adapters.paper_layers(x.pipe, detector_layers, P.resolution)
    benchmark = bench.stratified(x.prompts("benchmark"), P.n_prompts)
    balanced = x.prompts("balanced", P.n_prompts)
    samples = {name: x.generate(rows.prompt.unique(), P.seeds, attention=FIRST_STEP, until_step=1)
               for name, rows in (("benchmark", benchmark), ("balanced", balanced))}
    out = SimpleNamespace(benchmark=benchmark, balanced=balanced, samples=samples, detector_layers=detector_layers)
    if x.counting and validate_on != "all":
        x.skip("chapter 08: the rows the detector flags (validate_on='flagged') are known only after it runs: "
               "the replacement is not counted")
        return out
    if not x.counting:  # the detector's Focus Scores (per prompt and layer) decide which rows are flagged
        out.bench_pp, out.control_pp = (focus.per_prompt(focus.focus_table(samples[name], tokens.sequence_tokenizer(x.pipe),
                                                                           x.layers), seed_reduce)
                                        for name in ("benchmark", "balanced"))
        scores = detect.combined_scores(out.bench_pp, detector_layers, combine).loc[benchmark.prompt].values
        out.benchmark = benchmark = benchmark.assign(score=scores, flagged=scores > threshold)
    out.rows = replace.rows_to_replace(benchmark, validate_on)
    out.after_rows = replace.replaced(out.rows, x.world.category_words(), judge_concept)
    out.judged = replace.generate_and_judge(x, out.rows, out.after_rows, models or P.models)
    return out


def _unselected(x, models, fresh_seeds):
    """ACCV version: the unselected, benchmark and balanced sets, every model, judged; the
    benchmark again on the fresh seeds that did not select it."""
    from . import unselected

    sets, models = unselected.prompt_sets(x, x.profile.n_prompts), models or x.profile.models
    fresh = unselected.fresh_seeds(x.profile.seeds, fresh_seeds)
    images = unselected.generate_and_judge(x, sets, models, fresh)
    return SimpleNamespace(sets=sets, models=list(models), fresh=fresh, images=images)


def _three_concepts(x, cases, n_pilot, present_at, peak_layers):
    """ACCV version: the factorial and the pilot generated, each target's presence judged, and the
    first step of each prompt recorded at the peak layers."""
    from . import adapters, triplets

    P = x.profile
    designs = {name: triplets.design(x, role, n) for name, role, n in (
        ("factorial", "factorial", cases or max(1, P.n_prompts // 2)), ("pilot", "pilot", n_pilot or P.n_prompts))}
    out = SimpleNamespace(peak_layers=list(peak_layers))
    if any(not rows.empty for rows, _ in designs.values()):  # no model is loaded for a world without the sets
        out.peak_layers = adapters.paper_layers(x.pipe, peak_layers, P.resolution)  # SD 1.4's numbers, read on the model
    for name, (rows, why) in designs.items():
        images = triplets.generate_and_judge(x, rows, present_at)
        first = triplets.record_first_step(x, rows, out.peak_layers)
        setattr(out, name, SimpleNamespace(rows=rows, why=why, images=images, first_step=first))
    return out


def _twin_finetunes(x, seeds, n_seeds, images, K, train_steps, lr, n_prompts, exclude, dominant_layers,
                    dominated_layers, ablate, sweep_layers, factor, ablate_steps, pair_layer, tau):
    """Twin fine-tunes (paper §3.3's causal test, paired; §3.6–3.7's memorization as a third arm):
    K pairs of rigid, diverse and memorized DreamBooth fine-tunes of one new concept. Each twin's
    test prompts (without the other concepts in ``exclude``; None: the profile's) are generated
    once, recording the tracked layers at every step (§3.5; the same runs keep their
    noise-prediction norms, §3.7), and judged (§2); their first step is recorded in every layer
    (§3.4); the rigid and diverse twins' prompts are generated and judged again with
    the new token replaced by its category word (§3.8); with ``ablate`` (None: the profile's), the
    rigid twins' collapsed prompts are ablated head by head and layer by layer at ``ablate_steps``
    in ``sweep_layers`` (None: the profile's ablation sweep's), with the positive control, then the
    pairs of ``pair_layer``'s heads that did not mitigate a prompt alone (§3.6)."""
    from . import ablation, adapters, causal, temporal, twins
    from .outcome import DvDRule

    S = twins.scale(x.profile, seeds_given=seeds is not None, n_seeds=n_seeds)
    recipe = causal.recipe_for(S, steps=train_steps, lr=lr)
    table = twins.design(x, images, K=K if K is not None else S["K"], recipe=recipe)
    exclude = S["exclude"] if exclude is None else exclude
    prompts = twins.test_prompts(x, n_prompts or S["prompts"], exclude)
    role_layers = {role: tuple(adapters.paper_layers(x.pipe, layers, x.profile.resolution))
                   for role, layers in (("dominant", dominant_layers), ("dominated", dominated_layers))}
    after = twins.replaced_rows(prompts)
    with gathered(f"{table.pair.nunique()} pairs × {len(twins.ARMS)} twins"):  # one line on the page, not one a twin
        models = twins.finetune_arms(x, table, recipe)
        recorded = {arm: x.generate(prompts.prompt, S["seeds"], model=model, attention=temporal.record_options(role_layers))
                    for arm, model in models.items()}
        judged, runs = causal.generate_and_judge(x, prompts, models, S["seeds"], noise_norms=True)
        first_steps = {arm: x.generate(prompts.prompt, S["seeds"], model=model, attention=FIRST_STEP, until_step=1)
                       for arm, model in models.items()}
        replaced, _ = causal.generate_and_judge(x, after, {key: model for key, model in models.items()
                                                           if key[1] in twins.REPLACED_ARMS}, S["seeds"])
        sweep = ablation.on_model(ablation.sweep_plan(x.profile, sweep_layers), x.pipe, x.profile.resolution)
        interventions = {"single-head": ablation.single_head(x.layers, sweep.layers, sweep.heads, factor, ablate_steps),
                         "multi-head": ablation.multi_head(x.layers, sweep.layers, "layer", factor, ablate_steps)}
        rules = dict(judge=x.judge, questions=x.questions, dvd_rule=DvDRule(tau=tau), require_baseline=True)
        pair_layer = adapters.paper_layers(x.pipe, [pair_layer], x.profile.resolution)[0]
        ablated = twins.ablate(x, models, prompts, sweep.seeds, interventions, rules, ablate_steps, pair_layer=pair_layer,
                               factor=factor) if (S["ablate"] if ablate is None else ablate) else None
    return SimpleNamespace(scale=S, recipe=recipe, design=table, prompts=prompts, models=models, judged=judged,
                           runs=runs, first_steps=first_steps, role_layers=role_layers, recorded=recorded,
                           after=after, replaced=replaced, sweep=sweep, ablated=ablated, exclude=list(exclude))


def remedy_twin_pairs(profile, parameters: dict) -> int:
    """How many of chapter 12's twin pairs chapter 13 compares the remedies on: its ``twin_pairs``
    parameter, else the profile's ``scales.remedies`` ``twins`` (0, none, where it sets none)."""
    given = parameters.get("twin_pairs")
    return int(given if given is not None else profile.scales.get("remedies", {}).get("twins", 0))


def _remedies(x, seeds, n_prompts, detector_layers, rebalance_strength, rebalance_boost, rebalance_steps,
              rebalance_layers, ae_attn_res, ae_scale_factor, ae_max_iter_to_alter, weighting_weight, twin_pairs,
              twin_arms, twin_prompts, balanced_prompts):
    """Beyond the paper: the benchmark's first step recorded (the detector of §3.8 reads it), then
    every remedy of `dvdlib.remedies.compare` (none, §3.8's replacement, Attend-and-Excite,
    rebalancing, weighting) on the same prompts and seeds, each judged; then on chapter 12's twins
    of ``twin_arms`` (pairs 0 … ``twin_pairs`` − 1, ``twin_prompts`` of their test prompts, the first
    seed) and on ``balanced_prompts`` rows of the balanced set, the first seed (None: the profile's
    ``scales.remedies``, whose balanced rows default to the benchmark's count; 0 leaves a part out)."""
    from . import adapters, bench, causal, twins
    from .finetune import TOKEN
    from .remedies import compare

    P = x.profile
    S = P.scale("remedies", {"prompts": P.n_prompts, "seeds": len(P.seeds), "twins": 0,
                             "twin_arms": list(compare.TWIN_ARMS), "twin_prompts": None, "balanced": None,
                             "twin_snapshot": None})
    S.update({k: v for k, v in (("twin_arms", twin_arms), ("twin_prompts", twin_prompts),
                                ("balanced", balanced_prompts)) if v is not None})
    S["twins"] = remedy_twin_pairs(P, {"twin_pairs": twin_pairs})
    seeds = [int(s) for s in (seeds if seeds is not None else P.seeds[:S["seeds"]])]
    rows = bench.stratified(x.prompts("benchmark"), n_prompts or S["prompts"])
    detector_layers = adapters.paper_layers(x.pipe, detector_layers, P.resolution)
    samples = x.generate(rows.prompt.unique(), seeds, attention=FIRST_STEP, until_step=1)
    params = compare.parameters(rebalance_strength, rebalance_boost, rebalance_steps, rebalance_layers, ae_attn_res,
                                ae_scale_factor, ae_max_iter_to_alter, weighting_weight)
    judged = {name: x.remedy(rows, seeds, name, params[name]) for name in compare.NAMES}
    S["balanced"] = n_prompts or S["prompts"] if S["balanced"] is None else S["balanced"]  # None: as many as above
    balanced = bench.stratified(x.prompts("balanced"), S["balanced"]) if S["balanced"] else None
    balanced_judged = compare.joined({name: x.remedy(balanced, seeds[:1], name, params[name])
                                      for name in compare.BALANCED_NAMES}) if S["balanced"] else None
    twin = None
    if S["twins"]:
        T = twins.scale(P)
        recipe = causal.recipe_for(T)
        design = twins.design(x, None, K=S["twins"], recipe=recipe)
        design = design[design.arm.isin(S["twin_arms"])]
        with gathered(f"{S['twins']} pairs × {len(S['twin_arms'])} twins"):
            models = twins.finetune_arms(x, design, recipe)  # chapter 12's, stored: nothing is trained again
            trows = compare.twin_rows(twins.test_prompts(x, S["twin_prompts"] or T["prompts"], T["exclude"]), TOKEN)
            tparams = {**params, "replacement": {"words": {TOKEN: recipe.class_prompt}}}
            twin = SimpleNamespace(design=design, rows=trows, seeds=seeds[:1], recipe=recipe, exclude=T["exclude"],
                                   judged=compare.twin_judged(x, models, trows, seeds[:1], tparams))
    return SimpleNamespace(scale=S, seeds=seeds, rows=rows, detector_layers=detector_layers, samples=samples,
                           params=params, judged=judged, balanced=balanced, balanced_judged=balanced_judged, twin=twin)


def work(run, **params):
    """Run the work of ``run``'s chapter (``run.chapter``) with the chapter's parameters ``params``
    (those its work takes; the notebook passes its own values): what it computed."""
    chapter = BY_NAME[run.chapter]
    unknown = sorted(set(params) - set(chapter.parameters()))
    if unknown:
        raise TypeError(f"chapter {chapter.name}'s work takes {chapter.parameters()}, not {unknown}")
    return chapter.work(run, **params)



# Chapter 05's runs record attention over the whole schedule and keep their images and
# noise-prediction norms (`dvdlib.generate`): chapter 02's DvD images, chapter 06's baseline and
# chapter 07's norms of the same prompts; chapter 08's detector reads chapter 04's first steps;
# chapter 10 reads chapter 02's images and answers. The long ones (`benchmarks/book_time.py` on a
# quiet 2-core machine, world 2: chapter 03's fine-tunes 385 s; chapter 06's ablation 311 s, which
# starts after chapter 05's recordings, 150 s; chapter 11's factorial 273 s; on world 1 with --jobs 2,
# the twins' nine fine-tunes and their images 666 s beside chapter 03's 410 s) start first, in this
# order: the twins on one job while 03, 05 and then 06 run on the other.
TRAINING_DIVERSITY = Chapter("01_training_diversity", work=_training_diversity)
TEMPORAL = Chapter("05_temporal_dynamics", long=2, snapshot=True, work=_temporal_dynamics,
                   keys={"dominated_falls": "dominated_first", "dominated_below": "claim"})
DVD_BENCHMARK = Chapter("02_dvd_benchmark", reads_from=(TEMPORAL.name,), snapshot=True, work=_dvd_benchmark,
                        keys={"gap": "dvd_gap"})
CAUSAL = Chapter("03_diversity_causal", long=1, snapshot=True, work=_diversity_causal,
                 keys={"paired": "paired", "trend": "spearman"})
FOCUS = Chapter("04_focus_score", snapshot=True, work=_focus_score,
                keys={"layers_gap": "fs_layers_gap", "peak": "fs_peak_on_concept"})
ABLATION = Chapter("06_head_ablation", reads_from=(TEMPORAL.name,), long=3, snapshot=True, work=_head_ablation,
                   keys={"single": "single_dvd", "multi": "multi_dvd"})
MEMORIZATION = Chapter("07_memorization", reads_from=(TEMPORAL.name,), snapshot=True, work=_memorization,
                       keys={"bench_over_balanced": "bench_over_balanced"})
DETECTION = Chapter("08_detection_replacement", reads_from=(FOCUS.name,), snapshot=True, work=_detection_replacement,
                    keys={"gap": "det_gap", "matched": "det_matched", "auc": "det_auc", "replacement": "repl_*"})
TOY_FINDINGS = Chapter("09_toy_findings", work=lambda x: SimpleNamespace())  # reads a committed snapshot
UNSELECTED = Chapter("10_unselected_prompts", reads_from=(DVD_BENCHMARK.name,), work=_unselected)
THREE_CONCEPTS = Chapter("11_three_concepts", long=4, work=_three_concepts)
TWINS = Chapter("12_twin_finetunes", long=0, snapshot=True, work=_twin_finetunes,
                snapshot_parameters={"K": 12, "n_seeds": 5, "ablate": True},
                keys={"dvd": "twin_dvd", "memorized": "twin_memorized", "focus": "twin_focus", "peak": "twin_peak",
                      "norm": "twin_norm", "norm_memorized": "twin_norm_memorized", "falls": "twin_falls",
                      "below": "twin_below", "single": "twin_single_head", "multi": "twin_multi_head", "auc": "twin_auc",
                      "replacement": "twin_replacement"})
REMEDIES = Chapter("13_remedies", reads_from=(DETECTION.name, TWINS.name), snapshot=True, work=_remedies,
                   reads_only_if={TWINS.name: lambda profile, parameters: remedy_twin_pairs(profile, parameters) > 0},
                   snapshot_parameters={"twin_pairs": 12, "twin_arms": ["rigid", "memorized"], "twin_prompts": 12,
                                        "n_prompts": 16, "balanced_prompts": 12},
                   keys={f"{remedy}_{vs}": f"rem_twin_vs_{vs}_{remedy}_*" for remedy in ("replacement", "attend_excite",
                         "rebalance", "weighting") for vs in ("none", "replacement") if remedy != vs})

#: Every chapter, in the book's order.
ALL = (TRAINING_DIVERSITY, DVD_BENCHMARK, CAUSAL, FOCUS, TEMPORAL, ABLATION, MEMORIZATION, DETECTION, TOY_FINDINGS,
       UNSELECTED, THREE_CONCEPTS, TWINS, REMEDIES)
BY_NAME = {c.name: c for c in ALL}


def reads_from() -> dict[str, tuple[str, ...]]:
    """Chapter name → the chapters whose work it reads (only chapters that read any)."""
    return {c.name: c.reads_from for c in ALL if c.reads_from}


def long_chapters() -> tuple[str, ...]:
    """The long chapters' names, in the order a fresh clone starts them."""
    return tuple(c.name for c in sorted((c for c in ALL if c.long is not None), key=lambda c: c.long))


def snapshot_chapters() -> tuple[str, ...]:
    """The chapters `dvd toy findings` runs, in the book's order."""
    return tuple(c.name for c in ALL if c.snapshot)
