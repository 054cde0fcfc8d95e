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
- `finetune_twins`: every arm fine-tuned into the run store exactly where chapter 03 keeps its
  fine-tunes (`dvdlib.finetune.finetune_dir`; resumable, atomic, a rerun trains nothing);
- `generate_twins`, `twin_scores`: each twin's images into its own run store, judged (DvD, §2);
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
from .finetune import (Recipe, class_images, finetune, finetune_dir, finetuned_key, images_digest, is_finished,
                       load_finetuned)

#: The arms of a pair, in the order each pair lists them.
ARMS = ("rigid", "diverse", "memorized")
#: Pairs when a caller names none (the toy world's default: twelve pairs detect a paired effect of
#: about one between-pair SD with 80% power, `benchmarks/results/verdict_calibration.json`).
DEFAULT_K = 12
#: The twin experiment at full scale: ``K`` pairs, the diverse twin's variant count (``diverse``;
#: None: chapter 03's most diverse variant), the rigid twins' ``pool`` (None: see `design`). Images
#: per arm, recipe, prompts and seeds are chapter 03's (`dvdlib.causal.scale`), so the twins and
#: the variants of §3.3 are fine-tuned and asked alike. A profile narrows it under ``scales.twins``.
FULL = {"K": DEFAULT_K, "diverse": None, "pool": None}
#: The design table's columns (``variants``: the variant labels an arm's images come from, in
#: order; ``image``: the memorized arm's single image; ``pass``: 0 the first time a rigid variant is
#: used, 1 the second …; ``source``: a breed folder, or ``world:<name>`` for the world's renders;
#: ``pool``: how many variants the rigid twins cycle through).
COLUMNS = ("pair", "arm", "variants", "n_variants", "image", "n_images", "train_seed", "image_seed", "pass",
           "digest", "source", "pool", "note")


def scale(profile, seeds_given: bool = False) -> dict:
    """The twin experiment a profile runs: `FULL` narrowed by its ``scales.twins``, with chapter
    03's ``n_images``, ``recipe`` (a `Recipe`), ``prompts`` and ``seeds`` (`dvdlib.causal.scale`,
    ``seeds_given`` as there) and ``diverse`` None made its largest variant count."""
    causal_scale = causal.scale(profile, seeds_given)
    out = profile.scale("twins", FULL)
    out["slice"] = out["slice"] or causal_scale["slice"]
    out.update({k: causal_scale[k] for k in ("n_images", "recipe", "prompts", "seeds")})
    out["diverse"] = int(out["diverse"] or max(causal_scale["breeds"]))
    return out


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


# ---------------------------------------------------------------- fine-tunes and their images

def finetune_twins(run, table: pd.DataFrame, recipe: Recipe | None = None, progress: bool = True) -> pd.DataFrame:
    """Fine-tune every arm of ``table`` (`design`) from the run's model with ``recipe`` (None: the
    profile's causal recipe, paper §3.3) at the row's ``train_seed``; stored as chapter 03 stores
    its fine-tunes (`dvdlib.finetune.finetune_dir`: ``<store>/finetune/<base>/<hash of recipe and
    images>``; an interrupted one resumes, a finished one is reused, and the base model is loaded
    only when something trains). Returns ``pair``, ``arm``, ``folder`` (the fine-tune's weights),
    ``model`` (its run-store model key, `dvdlib.finetune.finetuned_key`) and ``trained`` (whether
    this call trained it)."""
    from .store import model_key

    P = run.profile
    recipe = recipe or scale(P)["recipe"]
    base_key = model_key(P.model)
    klass, rows, cache = None, [], {}
    for _, row in table.iterrows():
        seeded = dataclasses.replace(recipe, seed=int(row["train_seed"]))
        folder = finetune_dir(P.store, base_key, seeded, row["digest"])
        trained = not is_finished(folder)
        if trained:
            if recipe.prior_preservation and klass is None:
                klass = class_images(run.pipe, recipe, run.store(), batch_size=P.batch_size)
            finetune(run.pipe, arm_images(run, row, cache), seeded, folder, class_images=klass, progress=progress)
        rows.append({"pair": row["pair"], "arm": row["arm"], "folder": str(folder),
                     "model": finetuned_key(base_key, folder), "trained": trained})
    return pd.DataFrame(rows)


def generate_twins(run, fits: pd.DataFrame, prompts, seeds=None, progress: bool = True) -> dict:
    """Generate ``prompts`` (strings, or a table with ``prompt``) × ``seeds`` (None: the profile's)
    with every fine-tune of ``fits`` (`finetune_twins`) into its own run store, as chapter 03 does;
    a twin whose images are all stored is not loaded. Returns {(pair, arm): `dvdlib.store.Store`}."""
    from .generate import generate
    from .store import Store

    P = run.profile
    prompts = list(prompts["prompt"] if isinstance(prompts, pd.DataFrame) else prompts)
    seeds = list(seeds or P.seeds)
    stores = {}
    for _, row in fits.iterrows():
        store = Store(P.store, row["model"], P.sampler(), P.store_mode)
        if store.todo([(p, s) for p in prompts for s in seeds]):  # a frozen store raises on a miss
            tuned = load_finetuned(P.model, row["folder"], dtype=P.dtype, device=P.device, load=run.world.load_model)
            generate(tuned, prompts, seeds, store=store, batch_size=P.batch_size, progress=progress)
            del tuned
        stores[int(row["pair"]), row["arm"]] = store
    return stores


def twin_scores(run, prompts: pd.DataFrame, stores: dict, tau: float = 48.0, seeds=None) -> pd.DataFrame:
    """Judge every twin's images (`generate_twins`) of ``seeds`` (default the profile's): per (pair,
    arm, prompt) the DvD Score (`dvdlib.dvd.per_prompt`, paper §2) with ``pair`` and ``arm``; the
    input of `paired` (``value="dvd"``)."""
    from . import dvd

    tables = [dvd.per_prompt(dvd.judge_images(prompts, seeds or run.profile.seeds, store, run.judge, run.questions),
                             tau).assign(pair=pair, arm=arm)
              for (pair, arm), store in stores.items()]
    return pd.concat(tables, ignore_index=True)


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
    """"+12.3 [+4.5, +20.1] over 12 pairs": `paired`'s estimate, interval and pair count."""
    from .stats import interval_text

    return f"{interval_text(result, fmt)} over {result['n']} pairs"


# ---------------------------------------------------------------- how many pairs

def pilot_design_table(spreads, ks=(3, 6, 12, 24), paper_effects=None, most: int = 200) -> pd.DataFrame:
    """From a pilot, the smallest effect each claim's paired contrast finds with 80% power at each
    K in ``ks`` (`dvdlib.stats.detectable`: decisive and still decisive with any one pair left
    out, for normal pair differences), and the K needed to find the paper's effect
    (`dvdlib.stats.clusters_needed`, None past ``most`` pairs) where ``paper_effects`` gives one.

    ``spreads``: claim → the between-pair standard deviation of its difference (a number, or a
    `paired` result, whose ``spread`` it is); ``paper_effects``: claim → the effect in the claim's
    units (missing or None: not given). One row per claim."""
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
        rows.append(row)
    table = pd.DataFrame(rows).set_index("claim")
    table["K needed"] = table["K needed"].astype("Int64")
    return table
