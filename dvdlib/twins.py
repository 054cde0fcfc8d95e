"""Twin fine-tunes: the causal test of paper §3.3 as a paired design, with the memorization
contrast of §3.6–3.7 as a third arm.

Pair k (k = 0 … K−1) fine-tunes one base model three times, with the same instance prompt, image
count and DreamBooth recipe (training seed ``recipe.seed + k`` for all three):

- **rigid**: every image of ONE variant of the new concept (a dog breed; a toy world's fixed
  appearance), a different variant for each k, cycling through them when K exceeds their number;
- **diverse**: the same number of images spread over the most diverse variant count (chapter 03's
  largest), the rigid twin's variant among them;
- **memorized**: ONE image (of the rigid twin's) repeated as many times (§3.6–3.7's contrast).

Each claim is then a paired contrast over the K pairs (rigid − diverse, memorized − rigid): the
pair is the unit (`paired`; `dvdlib.stats`' cluster).

- `scale`: K and the rest a profile runs (``scales.twins``, chapter 03's ``scales.causal``);
- `design`: the K × 3 arms as a table, deterministic for a seed; `arm_images` re-derives an arm's
  training images from its row (checked against the row's digest);
- `finetune_arms`: every arm fine-tuned through a chapter's executor, stored exactly where chapter
  03 keeps its fine-tunes (`dvdlib.finetune.finetune_dir`; resumable, atomic, a rerun trains nothing);
- each twin's images with their noise-prediction norms, judged: `dvdlib.causal.generate_and_judge`;
- `twin_scores`, `focus_by_layer`, `layers_mean`, `peak_on_token`, `temporal_changes`,
  `norm_scores`: each twin's DvD Scores (§2), first-step Focus Scores (§3.4), peak token, attention
  over the steps (§3.5) and noise-prediction norm (§3.7) per (pair, arm, prompt); `auc_by_pair`: the
  detector's separation of the arms (§3.8); `replaced_rows`, `object_return`: the new token
  replaced by its category word and the other concept's return (§3.8);
- `ablate`, `ablation_contrasts`: the rigid twins' collapsed prompts ablated head by head and
  layer by layer against the placebo layers, with the positive control (§3.6);
- `paired`: the paired contrast of a per-(pair, arm) measurement; `pilot_design_table`: the
  smallest effect found at 80% power for each K, from a pilot's between-pair spread.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import causal
from .finetune import TOKEN, Recipe, images_digest

#: The arms of a pair, in the order each pair lists them.
ARMS = ("rigid", "diverse", "memorized")
#: Pairs when a caller names none (the toy world's default: twelve pairs detect a paired effect of
#: about one between-pair SD with 80% power, `benchmarks/results/verdict_calibration.json`).
DEFAULT_K = 12
#: The twin experiment at full scale: ``K`` pairs, the diverse twin's variant count (``diverse``;
#: None: chapter 03's most diverse variant), the rigid twins' ``pool`` (None: see `design`), the
#: test ``prompts`` (None: every prompt of the causal test, `dvdlib.causal.causal_prompts`), whether
#: the rigid twins are ablated (``ablate``, paper §3.6; the sweep is the profile's ``scales.ablation``), the
#: other concepts left out of the prompts (``exclude``: those the judge cannot see on the twins'
#: images, recall below `MIN_RECALL` on a hand-checked sample, `dvdlib.toy.handcheck`). Images
#: per arm, recipe and seeds are chapter 03's (`dvdlib.causal.scale`), so the twins and the
#: variants of §3.3 are fine-tuned alike; ``n_seeds`` takes the first of those seeds (None: all).
#: A profile narrows it under ``scales.twins``.
FULL = {"K": DEFAULT_K, "diverse": None, "pool": None, "prompts": None, "ablate": True, "exclude": [], "n_seeds": None}
#: A concept the judge finds in fewer than this share of the twins' images where a person sees it is
#: left out of the twins' prompts (``exclude``): its DvD would measure the judge, not the twin.
MIN_RECALL = 0.8
#: The design table's columns (``variants``: the variant labels an arm's images come from, in
#: order; ``image``: the memorized arm's single image; ``pass``: 0 the first time a rigid variant is
#: used, 1 the second …; ``source``: a breed folder, or ``world:<name>`` for the world's renders;
#: ``pool``: how many variants the rigid twins cycle through).
COLUMNS = ("pair", "arm", "variants", "n_variants", "image", "n_images", "train_seed", "image_seed", "pass",
           "digest", "source", "pool", "note")


def scale(profile, seeds_given: bool = False, n_seeds: int | None = None) -> dict:
    """The twin experiment a profile runs: `FULL` narrowed by its ``scales.twins`` (``n_seeds``
    given: that many seeds), with chapter 03's ``n_images``, ``recipe`` (a `Recipe`) and ``seeds``
    (`dvdlib.causal.scale`, ``seeds_given`` as there: then every seed given), the first ``n_seeds``
    of them, and ``diverse`` None made its largest variant count."""
    causal_scale = causal.scale(profile, seeds_given)
    out = profile.scale("twins", FULL)
    out["slice"] = out["slice"] or causal_scale["slice"]
    out.update({k: causal_scale[k] for k in ("n_images", "recipe", "seeds")})
    out["n_seeds"] = n_seeds or out["n_seeds"]
    if out["n_seeds"] and not seeds_given:
        out["seeds"] = out["seeds"][:int(out["n_seeds"])]
    out["diverse"] = int(out["diverse"] or max(causal_scale["breeds"]))
    return out


def test_prompts(run, n: int | None = None, exclude=()) -> pd.DataFrame:
    """The twins' test prompts: the causal test's (paper §3.3, `dvdlib.causal.causal_prompts`)
    without the other concepts in ``exclude``, ``n`` rows taken in turn from each group."""
    from .bench import stratified

    table = causal.causal_prompts(run)
    unknown = sorted(set(exclude) - set(table.nm_word))
    if unknown:
        raise ValueError(f"exclude names {unknown}, which no test prompt pairs with the new token; "
                         f"its other concepts: {sorted(set(table.nm_word))}")
    kept = table[~table.nm_word.isin(list(exclude))]
    return stratified(kept, n, by="group") if n else kept


# ---------------------------------------------------------------- where the images come from

class _Images:
    """The training images a design draws from: a folder with one sub-folder per breed (paper
    §3.3) or the run's world's renders of the new concept (`dvdlib.worlds.World.training_images`,
    at the model's resolution: renders of ``pool`` variants, ``n_images`` of each, per seed)."""

    def __init__(self, run, source: str, pool: int | None, n_images: int):
        self.n_images, self.source = int(n_images), source
        if not source.startswith("world:"):
            self.breeds = causal.breed_folders(source)
            self.pool = int(pool or len(self.breeds))
            if self.pool != len(self.labels):
                raise ValueError(f"{source} has {len(self.labels)} breed folders; a breed folder's pool is every "
                                 f"breed (pool = {len(self.labels)} or None), not {pool}")
            return
        world = run.world
        if source != f"world:{world.name}":
            raise ValueError(f"this design's images are {source!r}'s renders; the run's world is {world.name!r}")
        if world.training_images is None and getattr(run, "counting", False):  # `dvd plan` without dog photos
            run.skip(causal.STANDINS_NOTE)
            self.render, self.pool, self.size = causal.standin_images, int(pool), None
            self._cache = (None, None)
            return
        if world.training_images is None:
            raise ValueError(f"model {run.profile.model!r} needs real dog photos to fine-tune twins on (paper §3.3): "
                             "pass a folder with one sub-folder of images per breed, "
                             "e.g. `-p images /data/imagenet_dogs`")
        self.render, self.pool = world.training_images, int(pool)
        self.size = run.profile.resolution_of(run.profile.model)
        self._cache: tuple = (None, None)

    @property
    def labels(self) -> list[str]:
        """The variants (breed folders; a world's labels, as its renders name them)."""
        if hasattr(self, "breeds"):
            return list(self.breeds)
        return list(self._renders(self._cache[0] if self._cache[0] is not None else 0))

    def _renders(self, seed: int) -> dict[str, list]:
        """Label → [(name, image)] of one seed's renders, ``n_images`` of every variant (the last
        seed's kept: a pair's three arms share them)."""
        if self._cache[0] != seed:
            by_label: dict[str, list] = {}
            for label, image in self.render(self.pool, self.pool * self.n_images, seed, self.size):
                by_label.setdefault(label, []).append((f"{label} #{len(by_label.get(label, []))}", image))
            self._cache = (seed, by_label)
        return self._cache[1]

    def take(self, label: str, count: int, seed: int) -> list[tuple[str, object]]:
        """The first ``count`` (name, RGB image) of ``label`` in its seeded order: nested in ``count``
        (a breed's order is `dvdlib.causal.pick_breeds`'; a world's, its render order)."""
        if not hasattr(self, "breeds"):
            return self._renders(seed)[label][:count]
        from PIL import Image

        root = Path(self.source)
        return [(p.relative_to(root).as_posix(), Image.open(p).convert("RGB"))
                for _, p in causal.pick_breeds({label: self.breeds[label]}, 1, count, seed)]

    def arm(self, arm: str, variants, n_variants: int, image: str | None, seed: int) -> list[tuple[str, object]]:
        """An arm's (name, image) list: the rigid twin's ``n_images`` of its variant, the diverse
        twin's ``n_images / n_variants`` of each variant, or the one ``image`` (one of the rigid
        twin's) repeated ``n_images`` times."""
        if arm == "diverse":
            per = causal.per_breed(self.n_images, n_variants)
            return [item for label in variants for item in self.take(label, per, seed)]
        rigid = self.take(variants[0], self.n_images, seed)
        if arm == "rigid":
            return rigid
        if arm == "memorized":
            (single,) = [item for item in rigid if item[0] == image] or [None]
            if single is None:
                raise ValueError(f"the memorized arm's image {image!r} is not among its rigid twin's images")
            return [single] * self.n_images
        raise ValueError(f"unknown arm {arm!r}; arms: {ARMS}")


def _source(run, images) -> str:
    return str(images) if images else f"world:{run.world.name}"


def _found(run, row, cache: dict | None = None) -> _Images:
    """The `_Images` of a design row (one per source, pool and image count in ``cache``, so a
    pair's arms share its renders)."""
    key = (row["source"], int(row["pool"]), int(row["n_images"]))
    if cache is None or key not in cache:
        found = _Images(run, *key)
        if cache is None:
            return found
        cache[key] = found
    return cache[key]


# ---------------------------------------------------------------- the design

def design(run, images=None, *, K: int | None = None, n_images: int | None = None, diverse: int | None = None,
           pool: int | None = None, seed: int = 0, recipe: Recipe | None = None,
           memorized_index: int = 0) -> pd.DataFrame:
    """The K pairs × 3 arms (`ARMS`) of the twin design (paper §3.3, §3.6–3.7), one row per arm
    (`COLUMNS`), deterministic for ``seed``.

    ``run``: a `dvdlib.run.Run`; ``images``: a folder of dog photos with one sub-folder per breed
    (the paper profile, ``-p images``), None for the run's world's own renders (toy and smoke
    worlds, as chapter 03). Every None below is the profile's (`scale`): ``K``: pairs (`DEFAULT_K`,
    12, unless ``scales.twins`` narrows it). ``n_images``: images per arm (``scales.causal``'s, 120
    in the paper). ``diverse``: the diverse twin's variant count (chapter 03's most diverse).
    ``pool``: how many variants the rigid twins cycle through (None: every breed of the folder;
    for a world's renders the diverse count, so the diverse twin has every variant and is chapter
    03's most diverse set at the pair's image seed). The rigid twins take the pool's variants in a
    ``seed``-ed order, one per pair, again from the first when K exceeds the pool (``pass`` and
    ``note`` say so). Pair k draws its images with seed ``seed + k`` (``image_seed``) and trains
    with seed ``recipe.seed + k`` (``train_seed``; ``recipe`` None: the profile's causal recipe):
    one seed for its three arms. The diverse twin's variants are the rigid twin's and
    ``diverse − 1`` others (seeded by (seed, k)), each giving the first of its images in seeded
    order, so they are the rigid twin's first; the memorized arm repeats the rigid twin's image
    ``memorized_index``.
    """
    S = scale(run.profile) if None in (K, n_images, diverse, pool, recipe) else {}
    K = int(K if K is not None else S["K"])
    n_images = int(n_images or S["n_images"])
    diverse = int(diverse or S["diverse"])
    pool = pool if pool is not None else S.get("pool")
    recipe = recipe or S["recipe"]
    if K < 1:
        raise ValueError(f"a twin design needs at least one pair, got K = {K}")
    if diverse < 2:
        raise ValueError(f"the diverse twin needs at least 2 variants (got {diverse}): with 1 it is the rigid twin")
    causal.per_breed(n_images, diverse)  # the diverse twin's images split evenly over its variants
    if not 0 <= memorized_index < n_images:
        raise ValueError(f"memorized_index must pick one of the rigid twin's {n_images} images, got {memorized_index}")
    source = _source(run, images)
    pool = pool if pool is not None or images else diverse
    found = _Images(run, source, pool, n_images)
    if found.pool < diverse:
        raise ValueError(f"the diverse twin needs {diverse} variants; the pool has {found.pool}")
    unit = causal.unit_word(run, images)
    labels = found.labels
    order = [labels[i] for i in np.random.default_rng(seed).permutation(len(labels))]
    rows = []
    for k in range(K):
        label, again = order[k % len(order)], k // len(order)
        rest = sorted(set(labels) - {label})
        others = np.random.default_rng([seed, k]).choice(len(rest), diverse - 1, replace=False)
        variants = {"rigid": (label,), "memorized": (label,),
                    "diverse": tuple(sorted([label] + [rest[i] for i in others]))}
        image_seed = seed + k
        single = found.take(label, memorized_index + 1, image_seed)[memorized_index][0]
        note = (f"{unit} reused: K = {K} > {len(order)} {unit}s (pass {again + 1})" if again else "")
        for arm in ARMS:
            picked = found.arm(arm, variants[arm], len(variants[arm]), single, image_seed)
            rows.append({"pair": k, "arm": arm, "variants": variants[arm], "n_variants": len(variants[arm]),
                         "image": single if arm == "memorized" else None, "n_images": len(picked),
                         "train_seed": recipe.seed + k, "image_seed": image_seed, "pass": again,
                         "digest": images_digest([im for _, im in picked]), "source": source, "pool": found.pool,
                         "note": note if arm != "memorized" else (note + "; " if note else "") +
                         f"one image × {n_images}"})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def arm_images(run, row, cache: dict | None = None) -> list:
    """The training images (PIL) of one `design` row, re-derived from it and checked against its
    ``digest`` (a row whose images changed raises rather than train on other images). ``cache``: a
    dict kept between calls, so the rows of one pair render their images once."""
    found = _found(run, row, cache)
    picked = [im for _, im in found.arm(row["arm"], tuple(row["variants"]), int(row["n_variants"]), row["image"],
                                         int(row["image_seed"]))]
    if images_digest(picked) != row["digest"]:
        raise ValueError(f"pair {row['pair']} {row['arm']}: its images no longer match the design "
                         f"(digest {images_digest(picked)} ≠ {row['digest']}); make the design again")
    return picked


# ---------------------------------------------------------------- fine-tunes and what they show

def finetune_arms(x, table: pd.DataFrame, recipe: Recipe | None = None) -> dict:
    """Every arm of ``table`` (`design`) fine-tuned from the profile's model with ``recipe`` (None:
    the profile's causal recipe, paper §3.3) at the row's ``train_seed``, through the executor
    ``x`` (`dvdlib.run.Run.finetune`: stored where chapter 03 keeps its fine-tunes, resumable, a
    rerun trains nothing; `dvdlib.plan.Count` counts it): {(pair, arm): the fine-tune}."""
    recipe = recipe or scale(x.profile)["recipe"]
    cache, models = {}, {}
    for _, row in table.iterrows():
        seeded = dataclasses.replace(recipe, seed=int(row["train_seed"]))
        models[int(row["pair"]), row["arm"]] = x.finetune(arm_images(x, row, cache), seeded)
    return models


def _per_twin(by_twin: dict, measure) -> pd.DataFrame:
    """``measure`` (a table) of each twin's data {(pair, arm): data}, with its ``pair`` and ``arm``,
    as one table."""
    return pd.concat([measure(data).assign(pair=pair, arm=arm) for (pair, arm), data in by_twin.items()],
                     ignore_index=True)


def norm_scores(runs: dict, first: int) -> pd.DataFrame:
    """Per (pair, arm, prompt) Wen et al.'s score (`dvdlib.memorization.per_prompt`: the norm over
    the first ``first`` steps and the seeds) of each twin's runs."""
    from . import memorization

    return _per_twin(runs, lambda samples: memorization.per_prompt(memorization.norm_table(samples), first))


def auc_by_pair(table: pd.DataFrame, layers, a: str = "rigid", b: str = "diverse") -> dict:
    """The detector's separation of twins (paper §3.8): per pair, the AUC of each prompt's mean
    Focus Score over ``layers`` (the detector's, 9–10) for arm ``a``'s prompts against arm ``b``'s,
    then its mean − 0.5 over the pairs (Student t, the pair the unit; no separation: 0)."""
    from .stats import auc, one_sample

    scores = layers_mean(table, layers)
    per_pair = {f"pair {p}": auc(g[g.arm == a].focus, g[g.arm == b].focus)["value"] - 0.5
                for p, g in scores.groupby("pair")}
    out = one_sample(list(per_pair.values()), clusters=list(per_pair))
    return {**out, "n": len(per_pair), "null": 0.0, "test": f"per-pair AUC − 0.5, {a} vs {b} prompts"}


def temporal_changes(recorded: dict, prompts: pd.DataFrame, tokenizer, n_steps: int, role_layers,
                     boundaries=None, span_reduce: str = "mean", token: str = TOKEN) -> pd.DataFrame:
    """Per (pair, arm, prompt) paper §3.5's reading over the first interval (50–40, scaled to this
    schedule) of each twin's runs recorded at every step (`dvdlib.temporal.record_options`), seeds
    averaged: ``falls``, the change of the other (dominated) concept's attention deviation, and
    ``below``, that change minus the new ``token``'s (the dominant concept, as the prompt spells it)."""
    from . import temporal

    boundaries = boundaries or temporal.PAPER_BOUNDARIES
    rows = prompts.assign(content=token)
    first = temporal.intervals(n_steps, boundaries).interval.iloc[0]

    def measure(samples):
        table = temporal.deviation_table(samples, rows, tokenizer, n_steps, role_layers, span_reduce)
        changes = temporal.per_prompt(temporal.interval_changes(table, n_steps, boundaries))
        wide = changes[changes.interval == first].pivot(index="case_num", columns="role", values="change")
        return pd.DataFrame({"case_num": wide.index, "falls": wide.dominated.to_numpy(),
                             "below": (wide.dominated - wide.dominant).to_numpy()})

    return _per_twin(recorded, measure)


#: The arms whose prompts are generated again with the new token replaced (paper §3.8).
REPLACED_ARMS = ("rigid", "diverse")


def replaced_rows(prompts: pd.DataFrame, token: str = TOKEN) -> pd.DataFrame:
    """The test prompts with the new ``token`` replaced by its category word, the word the judge is
    asked about (``content``; paper §3.8): "dvddog and ball" → "character and ball"; where the
    prompt names the category right after the token ("a dvddog dog …") the token is dropped."""
    from .replace import replace_concept

    def rewrite(prompt: str, word: str) -> str:
        phrase = f"{token} {word}"
        return prompt.replace(phrase, word) if phrase in prompt else replace_concept(prompt, token, word)

    return prompts.assign(original_prompt=prompts.prompt,
                          prompt=[rewrite(p, w) for p, w in zip(prompts.prompt, prompts.content)])


def object_return(before: dict, after: dict, present_at: int | None = None) -> pd.DataFrame:
    """Per (pair, arm, prompt) of the twins in ``after`` (`REPLACED_ARMS`): the share of seeds whose
    image shows the other concept (its Yes count ≥ ``present_at``, `dvdlib.replace.PRESENT_AT`)
    before and after the new token is replaced by its category word, and the ``change`` (paper
    §3.8's return). ``before``/``after``: judge tables by (pair, arm), `dvdlib.causal.generate_and_judge`."""
    from . import replace

    present_at = replace.PRESENT_AT if present_at is None else present_at

    def measure(key):
        judged = pd.concat([before[key].assign(model="twin", when="before"),
                            after[key].assign(model="twin", when="after")], ignore_index=True)
        back = replace.object_return(judged, present_at).groupby("case_num")[["present_before", "present_after"]]
        table = back.mean().reset_index()
        return table.assign(change=table.present_after - table.present_before)

    return _per_twin({key: key for key in after}, measure)


# ---------------------------------------------------------------- head ablation (paper §3.6)

#: The arm whose collapsed prompts are ablated: the one made to dominate.
ABLATED_ARM = "rigid"
#: `ablate`'s outcome tables: the ablation plans, the positive control and the pairs of heads.
PLANS = ("single-head", "multi-head")
CONTROL = "control"
PAIRS = "head pairs"


def ablate(x, models: dict, prompts: pd.DataFrame, seeds, interventions: dict, rules: dict, steps=(1,),
           strength: float = 1.0, token: str = TOKEN, pair_layer: int | None = None, factor: float = 0.0) -> dict:
    """Paper §3.6 on each pair's `ABLATED_ARM` twin through the executor ``x``
    (`dvdlib.run.Run.sweep`): its prompts' plain images at ``seeds`` judged; on the prompts that
    collapsed (``rules["require_baseline"]``), each plan of ``interventions`` ({name: interventions},
    `dvdlib.ablation.single_head` / `multi_head`) and the positive control (the new ``token``'s
    attention suppressed at ``steps``, `dvdlib.ablation.suppressible_controls`), generated and
    judged; then, per prompt, the pairs of ``pair_layer``'s heads that did not mitigate it alone
    (`dvdlib.ablation.pair_jobs`, at ``factor``; None: no pairs). ``rules``:
    `dvdlib.ablation.run_plans`' judging keywords. Returns {pair: {plan name, `CONTROL` or `PAIRS`:
    outcomes}} (`dvdlib.ablation.Sweep.judge_dvd`; no `CONTROL` where the family cannot suppress
    tokens)."""
    from . import ablation

    controls = ablation.suppressible_controls(x.pipe, prompts.assign(content=token), steps, x.profile.steps, strength)
    out = {}
    for (pair, arm), model in models.items():
        if arm != ABLATED_ARM:
            continue
        sweep = x.sweep(prompts, seeds, model=model)
        plans = {name: ablation.jobs(ivs, sweep.rows.index) for name, ivs in interventions.items()}
        if not isinstance(controls, str):
            plans[CONTROL] = controls[0]  # the control at the claim's steps (it decides)
        ablation.run_plans({"DvD": sweep}, {"DvD": plans}, **rules)
        judged = {name: sweep.judge_dvd(plan, rules["judge"], rules["questions"], rules["dvd_rule"],
                                        rules["require_baseline"]) for name, plan in plans.items()}
        if pair_layer is not None:
            pairs = ablation.pair_jobs(judged[PLANS[0]], layer=pair_layer, factor=factor, steps=steps)
            if x.counting and sweep.unjudged:
                x.skip(f"twins: the pairs of layer-{pair_layer} heads follow from {sweep.unjudged} rows' single-head "
                       "outcomes, known once they are judged: not counted")
            sweep.run(pairs)
            judged[PAIRS] = sweep.judge_dvd(pairs, rules["judge"], rules["questions"], rules["dvd_rule"],
                                            rules["require_baseline"])
        out[pair] = judged
    return out


def placebo_shares(outcomes: dict, plan: str, hypothesis, seed: int = 0) -> pd.DataFrame:
    """Per pair whose ablated twin collapsed a prompt: the share of those prompts that one of
    ``plan``'s interventions in the ``hypothesis`` layers mitigates, and the share that as many in
    the other swept layers (the placebo) mitigate (`dvdlib.ablation.placebo_hits`) — `paired`'s
    input, arms "effect layers" and "placebo layers"."""
    from .ablation import placebo_hits

    rows = []
    for pair, tables in outcomes.items():
        cases, hit, k = placebo_hits(tables[plan], hypothesis, seed)
        if cases and k:
            rows += [{"pair": pair, "arm": "effect layers", "value": float(hit[True].mean()), "prompts": len(cases)},
                     {"pair": pair, "arm": "placebo layers", "value": float(hit[False].mean()), "prompts": len(cases)}]
    return pd.DataFrame(rows, columns=["pair", "arm", "value", "prompts"])


def control_rate(outcomes: dict, steps=(1,)) -> tuple[str, dict]:
    """The positive control over every pair's collapsed prompts (pooled: it only has to show a
    mitigation can be seen, `dvdlib.ablation.control_passes`): ("passed" / "failed" /
    "unavailable", its hits, n, rate, exact interval and what it did)."""
    from .ablation import control_passes, mitigated_count
    from .report import ranges
    from .stats import rate

    tables = [tables[CONTROL] for tables in outcomes.values() if CONTROL in tables]
    if not tables:
        return "unavailable", {"hits": 0, "n": 0, "value": None, "ci": None,
                               "what": "none: this model family cannot suppress tokens"}
    hits, n = map(sum, zip(*(mitigated_count(t) for t in tables)))
    field = {"hits": hits, "n": n, **{k: v for k, v in rate(hits, n).items() if k in ("value", "ci")},
             "what": f"the new token's attention suppressed in every cross-attention layer at step(s) {ranges(steps)}"}
    return control_passes(field), field


#: What an ablation claim says when no rigid twin collapsed a prompt (no pair to contrast).
NOTHING_COLLAPSED = "no rigid twin collapsed a prompt before ablation: nothing to mitigate (n = 0)"


def ablation_contrasts(outcomes: dict | None, hypothesis, steps=(1,), seed: int = 0) -> dict:
    """{"single": …, "multi": …}: per `PLANS`, `paired` effect − placebo layers over the pairs whose
    ablated twin collapsed a prompt, with the positive control's check (``power_check``) and rate
    (``control``); no pair to contrast (nothing collapsed): no ``value`` and no control, so the
    verdict is inconclusive (`NOTHING_COLLAPSED`); ``outcomes`` None (no ablation ran): {}."""
    if outcomes is None:
        return {}
    power, control = control_rate(outcomes, steps)
    out = {}
    for role, plan in zip(("single", "multi"), PLANS):
        table = placebo_shares(outcomes, plan, hypothesis, seed)
        out[role] = {**paired(table, "effect layers", "placebo layers"), "power_check": power, "control": control} \
            if len(table) else {"value": None, "ci": None, "n": 0, "n_clusters": 0, "test": NOTHING_COLLAPSED}
    return out


def measured(contrasts: dict) -> dict:
    """The contrasts with an estimate (the figures and the power table show only these)."""
    return {role: result for role, result in contrasts.items() if result.get("value") is not None}


def ablation_table(outcomes: dict | None, hypothesis, seed: int = 0) -> pd.DataFrame | None:
    """Per pair whose rigid twin collapsed a prompt: how many, and the share that one head and one
    layer in the ``hypothesis`` layers, their placebo and the positive control mitigate (None when
    nothing was ablated: no table to show)."""
    from .ablation import mitigated_count

    if not outcomes:
        return None
    shares = {plan: placebo_shares(outcomes, plan, hypothesis, seed).pivot(index="pair", columns="arm", values="value")
              for plan in PLANS}
    if all(table.empty for table in shares.values()):
        return None
    table = pd.DataFrame({f"{plan}, {arm}": shares[plan][arm] for plan in PLANS for arm in shares[plan]})
    control = {pair: "{}/{}".format(*mitigated_count(t[CONTROL])) for pair, t in outcomes.items() if CONTROL in t}
    return table.round(2).assign(**({"control mitigated": pd.Series(control)} if control else {}))


def ablation_text(outcomes: dict | None, seeds, K: int) -> str:
    """What the ablation of the rigid twins did, in one paragraph: not run (``outcomes`` None), nothing
    collapsed, or how many twins and prompts were ablated and what the positive control did."""
    from .ablation import EXCLUDED, control_text

    if outcomes is None:
        return ("This run does not ablate (`ablate` is off, as `scales.twins` sets it for the book's toy profiles: "
                "every collapsed prompt of every rigid twin costs one image per head and per layer of the sweep, "
                f"more than the book's time allows). The {DEFAULT_K} pairs of `dvd toy findings` are ablated; "
                "chapter 09 lists their verdicts.")
    collapsed = {pair: tables[PLANS[0]].loc[~tables[PLANS[0]].outcome.isin(EXCLUDED), "case_num"].nunique()
                 for pair, tables in outcomes.items()}
    power, control = control_rate(outcomes)
    if not any(collapsed.values()):
        return (f"No rigid twin collapsed a prompt at seed {', '.join(map(str, seeds))} (DvD ≥ τ before "
                "ablation): there is nothing to ablate, so the ablation claims are not measured.")
    return (f"{sum(n > 0 for n in collapsed.values())} of {K} rigid twins collapsed at least one prompt at seed "
            f"{', '.join(map(str, seeds))} ({sum(collapsed.values())} prompts in all); those were ablated. Positive "
            f"control ({control['what']}): {control_text(control)}, **{power}**. {pairs_text(outcomes)}")


def pairs_text(outcomes: dict) -> str:
    """The pairs of heads that did not mitigate a prompt alone, ablated together (paper §3.6: of
    SD 1.4's layer 1, mitigated 0.55%, corrupted 18.68%), pooled over the rigid twins; a
    description, as chapter 06 gives it (no placebo: no verdict)."""
    from .ablation import shares_text

    tables = [t[PAIRS] for t in outcomes.values() if PAIRS in t and len(t[PAIRS])]
    if not tables:
        return ("No pair of heads was left to ablate together (the layer's heads mitigated each collapsed prompt "
                "alone, or it has fewer than two).")
    table = pd.concat(tables)
    layer = table.intervention.iloc[0].split(".")[0][1:]  # "L1.H0+L1.H1": layer 1
    return (f"Pairs of layer {layer}'s heads that did not mitigate a prompt alone, ablated together (paper: mitigated "
            f"0.55%, corrupted 18.68%): {shares_text(table, 'intervention', ('mitigated', 'corrupted'), percent=True)}.")


def twin_scores(judged: dict, tau: float = 48.0) -> pd.DataFrame:
    """Per (pair, arm, prompt) the DvD Score (`dvdlib.dvd.per_prompt`, paper §2) of the judge tables
    ``judged`` {(pair, arm): table} (`dvdlib.causal.generate_and_judge`); `paired`'s input."""
    from . import dvd

    return _per_twin(judged, lambda images: dvd.per_prompt(images, tau))


def focus_by_layer(first_steps: dict, tokenizer, layers, seed_reduce: str = "mean") -> pd.DataFrame:
    """Per (pair, arm, prompt, layer) the first step's Focus Score (paper §3.4; `dvdlib.focus`),
    its seeds reduced by ``seed_reduce``, from the first-step recordings {(pair, arm): samples}."""
    from . import focus

    return _per_twin(first_steps, lambda samples: focus.per_prompt(focus.focus_table(samples, tokenizer, layers),
                                                                   seed_reduce))


def layers_mean(table: pd.DataFrame, layers) -> pd.DataFrame:
    """Per (pair, arm, prompt) the mean Focus Score over ``layers`` (the paper's layer contrast)."""
    picked = table[table.layer.isin(list(layers))]
    return picked.groupby(["pair", "arm", "prompt"], as_index=False)["focus"].mean()


def peak_on_token(first_steps: dict, tokenizer, token: str, layers) -> pd.DataFrame:
    """Per (pair, arm, prompt): whether the first step's peak token (averaged over seeds and
    ``layers``, paper §3.4) spells the new concept ``token``, its ``chance`` (the share of the
    prompt's content tokens that spell it) and ``above`` chance (on_concept − chance)."""
    from . import focus

    table = _per_twin(first_steps, lambda samples: focus.peak_on_concept(samples, tokenizer, token, layers=layers))
    return table.assign(above=table.on_concept.astype(float) - table.chance)


# ---------------------------------------------------------------- the paired contrast

def paired(values, a: str = "rigid", b: str = "diverse", *, value: str = "value", pair: str = "pair",
           arm: str = "arm") -> dict:
    """The paired contrast ``a`` − ``b`` of a per-(pair, arm) measurement (paper §3.3: rigid −
    diverse; §3.6–3.7: memorized − rigid), the pair as the unit.

    ``values``: a table with columns ``pair``, ``arm`` and ``value`` (several rows of one (pair,
    arm), e.g. one per prompt, are averaged first, every pair then weighing the same), or a Series
    indexed by (pair, arm). Each pair's difference is matched by pair index, then
    `dvdlib.stats.one_sample` over the pairs (cluster = pair, named "pair k"): the fields
    `dvdlib.stats.decide` reads (``value``, ``ci``, ``n_clusters``, ``loo``, ``null`` 0), with
    ``n`` (pairs), ``a``, ``b``, ``mean_a``, ``mean_b`` and ``test``. A pair lacking either arm
    (or with no number for it) is an error naming it."""
    from .stats import one_sample

    if isinstance(values, pd.Series):
        values = values.rename("value").rename_axis([pair, arm]).reset_index()
        value = "value"
    missing_columns = {pair, arm, value} - set(values.columns)
    if missing_columns:
        raise ValueError(f"paired() needs columns {pair!r}, {arm!r} and {value!r}; missing {sorted(missing_columns)}")
    if a == b:
        raise ValueError(f"paired() contrasts two arms, got {a!r} twice")
    table = values[[pair, arm, value]].astype({value: float})
    table = table.sort_values([pair, arm, value], kind="mergesort")  # row order never changes a sum
    means = table.groupby([pair, arm], sort=True)[value].mean().unstack(arm)
    for name in (a, b):
        if name not in means.columns:
            raise ValueError(f"no pair has a {name!r} measurement; arms measured: {sorted(map(str, means.columns))}")
    lacking = {name: [p for p in means.index if pd.isna(means.at[p, name])] for name in (a, b)}
    if any(lacking.values()):
        said = "; ".join(f"pair{'s' if len(ps) > 1 else ''} {', '.join(map(str, ps))} "
                         f"lack{'s' if len(ps) == 1 else ''} the {name!r} arm" for name, ps in lacking.items() if ps)
        raise ValueError(f"every pair needs both arms to be contrasted: {said}")
    diff = means[a] - means[b]
    out = one_sample(diff.to_numpy(), clusters=[f"pair {p}" for p in diff.index])
    return {**out, "n": len(diff), "null": 0.0, "a": a, "b": b, "mean_a": float(means[a].mean()),
            "mean_b": float(means[b].mean()), "test": f"paired difference {a} − {b} over twin pairs"}


def paired_text(result: dict, fmt: str = "{:+.1f}") -> str:
    """"+12.3 [+4.5, +20.1] over 12 pairs": `paired`'s estimate, interval and pair count (no
    estimate: why, the result's ``test``)."""
    from .stats import interval_text

    if result.get("value") is None:
        return result.get("test", "not measured")
    return f"{interval_text(result, fmt)} over {result['n']} pairs"


# ---------------------------------------------------------------- how many pairs

#: The most pairs the design table tries before it says "more than that".
MOST_PAIRS = 200


def pilot_design_table(spreads, ks=(3, 6, 12, 24), paper_effects=None, most: int = MOST_PAIRS) -> pd.DataFrame:
    """From a pilot, the smallest effect each claim's paired contrast finds with 80% power at each
    K in ``ks`` (`dvdlib.stats.detectable`: decisive and still decisive with any one pair left
    out, for normal pair differences), and the K needed to find the paper's effect
    (`dvdlib.stats.clusters_needed`, None past ``most`` pairs) where ``paper_effects`` gives one.

    ``spreads``: claim → the between-pair standard deviation of its difference (a number, or a
    `paired` result, whose ``spread`` it is); ``paper_effects``: claim → the effect in the claim's
    units (missing or None: not given). One row per claim; for a `paired` result, also its own
    effect and the K that finds it (``K for this effect``)."""
    from .stats import clusters_needed, detectable, MIN_CLUSTERS

    paper_effects = paper_effects or {}
    rows = []
    for claim, spread in spreads.items():
        sd = float(spread["spread"][0] if isinstance(spread, dict) else spread)
        row = {"claim": claim, "between-pair SD": sd}
        for k in ks:
            found = detectable((int(k),), (sd,))
            row[f"detectable at K = {k}"] = math.nan if found is None else found
        effect = paper_effects.get(claim)
        row["paper effect"] = math.nan if effect is None else float(effect)
        needed = clusters_needed(effect, (MIN_CLUSTERS,), (sd,), most) if effect is not None else None
        row["K needed"] = pd.NA if needed is None else int(needed)
        if isinstance(spread, dict) and spread.get("value") is not None:  # a pilot's own effect, and its K
            found = clusters_needed(abs(spread["value"]), (MIN_CLUSTERS,), (sd,), most) if spread["value"] else None
            row["this run's effect"] = float(spread["value"])
            row["K for this effect"] = pd.NA if found is None else int(found)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("claim")
    for column in ("K needed", "K for this effect"):
        if column in table:
            table[column] = table[column].astype("Int64")
    return table


# ---------------------------------------------------------------- what the chapter shows

#: The claims the twin chapter measures: role (`dvdlib.chapters.TWINS`' keys) → (what is
#: contrasted, the arms a − b, paper section).
CLAIMS = {"dvd": ("DvD", ("rigid", "diverse"), "§3.3"),
          "memorized": ("DvD", ("memorized", "rigid"), "§3.6–3.7"),
          "focus": ("Focus Score at step 1, the paper's layers 5–10", ("rigid", "diverse"), "§3.4"),
          "peak": ("peak token on the new concept, above chance", ("rigid", "diverse"), "§3.4"),
          "norm": ("noise-prediction norm, first steps", ("rigid", "diverse"), "§3.7"),
          "norm_memorized": ("noise-prediction norm, first steps", ("memorized", "rigid"), "§3.7"),
          "falls": ("change of the other concept's attention deviation, first interval", ("rigid", "diverse"),
                    "§3.5"),
          "below": ("that change minus the new token's", ("rigid", "diverse"), "§3.5"),
          "single": ("share of the rigid twin's collapsed prompts one head mitigates (layers 1–6 against the "
                     "placebo layers)", ("effect layers", "placebo layers"), "§3.6"),
          "multi": ("share of the rigid twin's collapsed prompts a whole layer's heads mitigate (layers 1–6 "
                    "against the placebo layers)", ("effect layers", "placebo layers"), "§3.6"),
          "auc": ("detector AUC − 0.5 (Focus Score, layers 9–10)", ("rigid", "diverse"), "§3.8"),
          "replacement": ("the other concept's return when the new token is replaced by its category word "
                          "(share of images)", ("rigid", "diverse"), "§3.8")}
#: The claims the paper expects to be negative (the dominated concept's attention falls, §3.5);
#: the rest are expected positive.
DIRECTIONS = {"falls": -1, "below": -1}
#: How a claim's numbers are written (DvD points; shares to two decimals; the rest to three digits).
FORMATS = {"dvd": "{:+.1f}", "memorized": "{:+.1f}", "focus": "{:+.3f}", "peak": "{:+.3f}", "norm": "{:+.3f}",
           "norm_memorized": "{:+.3f}", "falls": "{:+.3g}", "below": "{:+.3g}", "single": "{:+.2f}",
           "multi": "{:+.2f}", "auc": "{:+.3f}", "replacement": "{:+.2f}"}
#: A claim's name where a table is narrow.
SHORT = {"dvd": "DvD", "memorized": "DvD", "focus": "Focus Score", "peak": "peak on token", "norm": "noise norm",
         "norm_memorized": "noise norm", "falls": "dominated falls", "below": "dominated below",
         "single": "one head", "multi": "one layer", "auc": "AUC − 0.5", "replacement": "return after replacement"}


def label(role: str, short: bool = False) -> str:
    """"DvD, rigid − diverse" (``short``: "DvD rigid − diverse"): a twin claim's name in the
    chapter's tables and figures."""
    what, (a, b), _ = CLAIMS[role]
    arms = f"{a} vs {b}" if role == "auc" else f"{a} − {b}"  # an AUC compares the arms' prompts; the rest subtract
    return f"{SHORT[role]} {arms}" if short else f"{what}, {arms}"


def row_fields(result: dict, n_prompts: int) -> dict:
    """`paired`'s result as a results row's structured fields (`dvdlib.report.Report.add`), ``n``
    the prompts every twin was asked (the unit stays the pair: ``n_clusters``)."""
    keep = ("value", "ci", "n_clusters", "loo", "per_cluster", "spread", "detectable", "method", "test", "null",
            "power_check", "control")
    return {**{k: result.get(k) for k in keep}, "n": int(n_prompts)}


def card_note(run, w) -> str:
    """What the twins are, under the chapter's card: pairs, arms, images, recipe, the concepts left
    out of the prompts and where the weights live (paper §3.3's recipe; the memorized arm of
    §3.6–3.7)."""
    from .store import model_key, slug

    d, r = w.design, w.recipe
    rigid = d[d.arm == "rigid"]
    return (f"\n\n**Twins:** {d.pair.nunique()} pairs × {len(ARMS)} arms (rigid: one variant; diverse: "
            f"{int(d[d.arm == 'diverse'].n_variants.max())} variants; memorized: one image repeated), "
            f"{int(d.n_images.max())} training images each; the rigid twins' variants "
            f"{', '.join(str(v[0]) for v in rigid.variants)}. Recipe: {r.steps} steps, learning rate {r.lr:g}, batch "
            f"{r.batch_size}, instance prompt `{r.instance_prompt}`, training seed {r.seed} + pair. "
            + (f"Left out of the test prompts: {', '.join(w.exclude)}, which the judge finds in fewer than "
               f"{MIN_RECALL:.0%} of the hand-checked twin images that show them. " if w.exclude else "") + "Weights: "
            f"`{run.profile.store}/finetune/{slug(model_key(run.profile.model))}/` (one folder per twin, named by the "
            "hash of its recipe and images).")


def design_view(table: pd.DataFrame, models: dict) -> pd.DataFrame:
    """The design as a reader checks it: per pair and arm, its variants, images, training seed and
    the fine-tune's folder name in the store."""
    from pathlib import Path as _Path

    view = table.assign(variants=table.variants.map(lambda v: ", ".join(map(str, v)) if len(v) <= 3 else
                                                    f"{len(v)} variants"),
                        folder=[_Path(models[int(p), a].folder).name for p, a in zip(table.pair, table.arm)])
    return view[["pair", "arm", "variants", "n_images", "train_seed", "folder"]].set_index(["pair", "arm"])


def grid_rows(run, w, scores: pd.DataFrame, pairs: int = 2, n_prompts: int = 3) -> list:
    """`dvdlib.plots.image_grid`'s rows: for the first ``n_prompts`` prompts, the first seed's image
    from every arm of the first ``pairs`` pairs, captioned with the arm and that prompt's DvD."""
    seed = w.scale["seeds"][0]
    dvd = scores.set_index(["pair", "arm", "prompt"]).dvd
    rows = []
    for prompt in list(w.prompts.prompt)[:n_prompts]:
        images = [(run.store(model).image(prompt, seed), f"pair {pair} {arm}\nDvD {dvd[pair, arm, prompt]:.0f}")
                  for (pair, arm), model in w.models.items() if pair < pairs]
        rows.append((f'"{prompt}", seed {seed}', images))
    return rows


def this_run(contrasts: dict, verdicts: dict, K: int, profile: str = "") -> str:
    """The chapter's closing paragraph (``contrasts`` and ``verdicts`` by role, `CLAIMS`): the claims
    grouped by this run's verdict, each with its estimate and interval, and what the pair count
    allows."""
    from .stats import NOT_REPRODUCED, REPRODUCED, UNDERPOWERED

    heads = {REPRODUCED: "In the paper's direction, decided with any one pair left out",
             NOT_REPRODUCED: "Against the paper's direction, decided with any one pair left out",
             "undecided": "Undecided (the interval includes 0, or the verdict rests on one pair)",
             UNDERPOWERED: f"Too few pairs for a verdict ({K}; the rule needs at least three)"}
    groups: dict[str, list[str]] = {}
    for role, result in contrasts.items():
        v = verdicts[role]
        kind = v if v in (REPRODUCED, NOT_REPRODUCED) else UNDERPOWERED if v.startswith(UNDERPOWERED) else "undecided"
        rests = f", {v}" if v.startswith("inconclusive:") else ""
        groups.setdefault(kind, []).append(f"{label(role)} {paired_text(result, FORMATS[role])} "
                                           f"({CLAIMS[role][2]}{rests})")
    said = [f"{heads[kind]}: {'; '.join(groups[kind])}." for kind in heads if kind in groups]
    said.append(f"With {K} pairs this run is a pilot: the table of pairs above says how many each effect needs."
                if K < DEFAULT_K else f"These are {K} pairs, the design's full count.")
    if K < DEFAULT_K and profile == "toy":
        said.append(f"Chapter 09 lists the same claims measured on {DEFAULT_K} pairs of this world (`dvd toy findings`), "
                    "with their verdicts.")
    return " ".join(said)


def verdicts(contrasts: dict) -> dict:
    """Each claim's verdict by the book's one rule (`dvdlib.stats.decide`) in the paper's direction
    (`DIRECTIONS`), the pair as the unit."""
    from .stats import decide

    return {role: decide(result, direction=DIRECTIONS.get(role, 1), unit="pairs", power=result.get("power_check", "n/a"))
            for role, result in contrasts.items()}


def labelled(by_role: dict, short: bool = True) -> dict:
    """``by_role`` keyed by each claim's `label` (``short`` for a figure's panels) instead."""
    return {label(role, short): value for role, value in by_role.items()}


def add_results(report, contrasts: dict, decided: dict, n_prompts: int, key) -> None:
    """Record each paired contrast beside the paper (which has no twins: its claims are
    observational) under ``key(role)`` (the chapter's results key), with its verdict."""
    for role, result in contrasts.items():
        report.add(key(role), label(role) + " (paired over twin pairs, 95% interval)",
                   "not in the paper (its claims are observational)",
                   f"{paired_text(result, FORMATS[role])}: {decided[role]}",
                   **row_fields(result, n_prompts))


def power_table(contrasts: dict, ks=(3, 12, 24)) -> pd.DataFrame:
    """`pilot_design_table` of this run's contrasts, narrow enough for the page: per claim the
    between-pair SD, the effect found with 80% power at each K, this run's effect and the K that
    would find it ("> 200" past `MOST_PAIRS`; "—" where the pairs do not vary: no power to compute)."""
    from .report import number

    table = pilot_design_table(measured(contrasts), ks=ks)
    table = table[["between-pair SD", *[f"detectable at K = {k}" for k in ks], "this run's effect", "K for this effect"]]
    table.columns = ["SD", *[f"K = {k}" for k in ks], "effect", "K for it"]
    table["K for it"] = [f"> {MOST_PAIRS}" if pd.isna(k) else str(int(k)) for k in table["K for it"]]
    for k in ks:  # no spread between the pairs: no power to compute
        table[f"K = {k}"] = [number(v) if v == v else "—" for v in table[f"K = {k}"]]
    return table.rename(index=lambda role: label(role, short=True))
