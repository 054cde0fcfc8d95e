"""The causal test of visual diversity (paper §3.3): DreamBooth fine-tunes of one base model on
the same number of images spread over 1 … 10 breeds, each then asked prompts that pair the new
token with another concept and judged; the less diverse the training images, the more the new
concept dominates (higher DvD Score).

- the scale a profile runs (`scale`, `recipe_for`), the training images of each variant (a folder
  of dog photos, one sub-folder per breed, `training_images`; or the world's own,
  `variant_images`), the prompts (`causal_prompts`);
- `finetune_variants`: at least three fine-tunes per variant, each with its own training seed
  (through the chapter's executor, `dvdlib.run.Run.finetune`); `generate_and_judge` asks every
  prompt of each (the twins' too); `variant_scores` reads the answers as DvD Scores;
- `trend`: the statistics with the fine-tune as the unit (Spearman over breeds with Fisher's z
  interval over fine-tunes, the least against the most diverse variant, the share of prompts that
  cross τ); `plot_by_variant`.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .finetune import Recipe


#: Image files a breed folder may hold.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


#: paper §3.3's full experiment: 120 images per variant, 1 / 2 / 3 / 5 / 10 breeds, every prompt
#: (``prompts`` None), the DreamBooth recipe (``recipe``: `Recipe` fields that differ from it).
#: ``seeds``: how many of the profile's seeds each prompt is generated with (None: all of them).
FULL = {"n_images": 120, "breeds": [1, 2, 3, 5, 10], "prompts": None, "recipe": {}, "replicates": 3, "seeds": None}
#: Fine-tunes per variant, each with its own training seed: the unit of the causal test's
#: statistics. A profile may narrow the prompts, never the replicates below this.
MIN_REPLICATES = 3


def scale(profile, seeds_given: bool = False) -> dict:
    """The causal experiment a profile runs: `FULL`, narrowed by the profile's ``scales.causal``
    (`dvdlib.profiles.Profile.scale`); ``recipe`` becomes a `Recipe`, ``seeds`` the list of seeds
    (every seed of the profile when the reader gave them, ``seeds_given``)."""
    out = profile.scale("causal", FULL)
    count = None if seeds_given else out["seeds"]
    out["seeds"] = list(profile.seeds[:int(count)] if count else profile.seeds)
    if int(out["replicates"]) < MIN_REPLICATES:
        raise ValueError(f"profile {profile.name!r}: scales.causal.replicates = {out['replicates']}; the causal test "
                         f"needs at least {MIN_REPLICATES} fine-tunes per variant (its statistics' unit)")
    out["recipe"] = Recipe(**out["recipe"])
    return out


def breed_folders(folder) -> dict[str, list[Path]]:
    """The images of a dog folder with one sub-folder per breed (e.g. ImageNet synsets), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no image folder {folder}: give a folder with one sub-folder of images per breed "
            f"(e.g. ImageNet dog synsets n02085620/, n02085782/, ...; chapter parameter `images`)")
    breeds = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
              for d in sorted(folder.iterdir()) if d.is_dir()}
    breeds = {b: files for b, files in breeds.items() if files}
    if not breeds:
        raise ValueError(f"{folder} has no sub-folder with images ({', '.join(IMAGE_SUFFIXES)}); "
                         "put each breed's images in its own sub-folder")
    return breeds


def per_breed(n_images: int, n_breeds: int) -> int:
    """Images per breed of a variant (paper §3.3: 120 images = 1 × 120 … 10 × 12)."""
    if n_breeds < 1 or n_images % n_breeds:
        raise ValueError(f"{n_images} images cannot be split evenly over {n_breeds} breeds; "
                         f"pick breed counts that divide {n_images}")
    return n_images // n_breeds


def pick_breeds(breeds: dict[str, list[Path]], n_breeds: int, n_images: int, seed: int = 0) -> list[tuple[str, Path]]:
    """(breed, image path) of one variant: the first ``n_breeds`` breeds of a seeded order (so a
    variant's breeds contain every less diverse variant's), the first ``n_images / n_breeds``
    images of each breed's seeded order."""
    k = per_breed(n_images, n_breeds)
    rng = np.random.default_rng(seed)
    order = [list(breeds)[i] for i in rng.permutation(len(breeds))]
    if n_breeds > len(order):
        raise ValueError(f"a variant of {n_breeds} breeds needs {n_breeds} breed folders; found {len(order)}")
    chosen = []
    for breed in order[:n_breeds]:
        files = breeds[breed]
        if len(files) < k:
            raise ValueError(f"breed {breed!r} has {len(files)} images; a {n_breeds}-breed variant of "
                             f"{n_images} images needs {k} per breed")
        order_in_breed = np.random.default_rng([seed, zlib.crc32(breed.encode())]).permutation(len(files))
        chosen += [(breed, files[i]) for i in order_in_breed[:k]]
    return chosen


def training_images(folder, n_breeds: int, n_images: int, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """The (breed, RGB image) pairs of one variant from a folder with a sub-folder per breed
    (`pick_breeds`)."""
    return [(b, Image.open(p).convert("RGB")) for b, p in pick_breeds(breed_folders(folder), n_breeds, n_images, seed)]


def recipe_for(scale: dict, **chosen) -> Recipe:
    """The scale's recipe with the chapter's non-None choices (``steps``, ``lr``, …) applied."""
    import dataclasses

    return dataclasses.replace(scale["recipe"], **{k: v for k, v in chosen.items() if v is not None})


#: What `dvd plan` says when it counts fine-tunes without the dog photos they train on.
STANDINS_NOTE = ("no dog photos given (`-p images`): the fine-tunes are counted from the recipe and image count, "
                 "keyed by stand-ins; they are computed once a folder is given")


def standin_images(n_breeds: int, n_images: int, seed: int = 0, size=None) -> list[tuple[str, str]]:
    """``n_images`` (breed, name) stand-ins spread over ``n_breeds`` breeds, in the form of
    `dvdlib.worlds.World.training_images`: the names key the fine-tunes a counting executor
    counts without the photos (`dvdlib.finetune.images_digest` hashes them)."""
    return [(f"breed {i % n_breeds}", f"dog photo {i // n_breeds} of breed {i % n_breeds}, seed {seed}")
            for i in range(n_images)]


def variant_images(run, images, breeds, n_images: int, seed: int = 0) -> dict[int, list]:
    """Per variant (breed count), its (breed, image) pairs: from the folder ``images`` (one
    sub-folder per breed), else the world's own (`dvdlib.worlds.World.training_images`, at the
    model's resolution). ``run`` is a chapter's executor; one that counts (`dvdlib.plan.Count`)
    without a folder for a world that has no renders gets `standin_images`."""
    P = run.profile
    if images:
        return {k: training_images(images, k, n_images, seed) for k in breeds}
    if run.world.training_images is None and getattr(run, "counting", False):
        run.skip(STANDINS_NOTE)
        return {k: standin_images(k, n_images, seed) for k in breeds}
    if run.world.training_images is None:
        raise ValueError(
            f"model {P.model!r} needs real dog photos to fine-tune on (paper §3.3: ImageNet dog images): pass "
            "a folder with one sub-folder of images per breed, e.g. `papermill ... -p images /data/imagenet_dogs` "
            "(at least 120 images in the breed used alone, 12 in each of 10 breeds)")
    return {k: run.world.training_images(k, n_images, seed, P.resolution_of(P.model)) for k in breeds}


def _number(x) -> str:
    """A recipe value as the methods page writes it: a small rate as "2e-4", a flag as on/off."""
    if isinstance(x, bool):
        return "on" if x else "off"
    if isinstance(x, float) and 0 < abs(x) < 0.01:
        mantissa, exponent = f"{x:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{x:g}" if isinstance(x, float) else str(x)


#: The recipe fields a reader compares, in words (paper §3.3: DreamBooth, its settings not given).
RECIPE_WORDS = {"lr": "learning rate", "batch_size": "batch size", "steps": "training steps",
                "instance_prompt": "instance prompt", "prior_preservation": "prior preservation"}


def recipe_table(recipe: Recipe, scale: dict, n_images: int, breeds, n_prompts: int, unit: str = "breed") -> pd.DataFrame:
    """The fine-tuning recipe and the experiment's size this run used, beside the paper's (paper
    §3.3: 120 images per variant, 1 … 10 breeds, 50 prompts, 10 seeds; DreamBooth, whose settings
    it does not give: there, the `paper` profile's default, `Recipe`'s and `FULL`'s)."""
    from . import paper

    default = Recipe()
    rows = {words: (f"not given (paper profile: {_number(getattr(default, field))})",
                         _number(getattr(recipe, field))) for field, words in RECIPE_WORDS.items()}
    rows.update({
        "images per variant": (str(paper.CAUSAL["n_images"]), str(n_images)),
        f"variants ({unit}s × images per {unit})": (
            f"{paper.CAUSAL['variants']} (paper profile: {variants_text(FULL['breeds'], FULL['n_images'])})",
            variants_text(breeds, n_images)),
        "fine-tunes per variant": ("not reported", str(scale["replicates"])),
        "test prompts": (str(paper.CAUSAL["n_prompts"]), str(n_prompts)),
        "seeds per prompt": (str(paper.CAUSAL["n_seeds"]), str(len(scale["seeds"]))),
    })
    table = pd.DataFrame(rows, index=["paper (§3.3)", "this run"]).T
    table.index.name = "DreamBooth recipe and scale"
    return table


def recipe_text(profile: str, recipe: Recipe, scale: dict, n_images: int, breeds, n_prompts: int,
                unit: str = "breed") -> str:
    """One sentence (Markdown) on the recipe and scale this run used (paper §3.3; `recipe_table`
    sets them beside the paper's)."""
    return (f"This run (profile `{profile}`) fine-tunes the base model {scale['replicates']} times on each of "
            f"{len(breeds)} variants of {n_images} images ({variants_text(breeds, n_images)}: {unit}s × images per {unit}) with learning rate "
            f"{_number(recipe.lr)}, batch {recipe.batch_size} and {recipe.steps} steps, instance prompt "
            f"\"{recipe.instance_prompt}\", prior preservation {_number(recipe.prior_preservation)}, then asks "
            f"{n_prompts} test prompts with {len(scale['seeds'])} seeds each.")


def images_note(run, images) -> str:
    """Where the training images come from, in words."""
    return f"dog photos from `{images}`, one sub-folder per breed" if images else run.world.training_images_note


def variants_text(breeds, n_images: int) -> str:
    """"1 × 120, 2 × 60": breeds × images per breed of each variant."""
    return ", ".join(f"{k} × {n_images // k}" for k in breeds)


def unit_word(run, images=None) -> str:
    """What a variant's images are spread over, in the reader's words: "breed" for dog photos
    (paper §3.3), else the world's own word (`dvdlib.worlds.World.training_images_unit`: "variant"
    for a toy world's fixed appearances)."""
    return "breed" if images else run.world.training_images_unit


def variant_name(breeds: int, unit: str = "breed") -> str:
    """"base" (0 breeds: the model before fine-tuning), "1 breed", "3 breeds" (or ``unit``s)."""
    return "base" if breeds == 0 else f"{breeds} {unit}{'s' if breeds > 1 else ''}"


def named(values: pd.Series, unit: str = "breed") -> pd.Series:
    """``values`` indexed by breed count, re-indexed by `variant_name` ("base", "3 variants")."""
    return values.rename(index=lambda k: variant_name(k, unit))


def training_grid(training: dict[int, list], n_images: int, per_variant: int, unit: str = "breed") -> list:
    """Rows of `dvdlib.plots.image_grid`: ``per_variant`` images of each variant, evenly spread."""
    return [(f"{variant_name(k, unit)} × {n_images // k} images",
             [(im, b) for b, im in shown[::max(1, len(shown) // per_variant)][:per_variant]])
            for k, shown in training.items()]


def finetune_variants(x, training: dict[int, list], recipe: Recipe, replicates: int = MIN_REPLICATES) -> dict:
    """Fine-tune the profile's model ``replicates`` times on each variant's images, each with its
    own training seed (``recipe.seed`` + 0, 1, …), through the executor ``x`` (`dvdlib.run.Run`
    trains what the store lacks; `dvdlib.plan.Count` counts it): the model per (breeds,
    replicate), (0, 0) the base model."""
    import dataclasses

    models = {(0, 0): x.profile.model}  # 0 breeds: the base model, never fine-tuned
    for k, shown in training.items():
        pictures = [im for _, im in shown]
        for r in range(replicates):
            models[k, r] = x.finetune(pictures, dataclasses.replace(recipe, seed=recipe.seed + r))
    return models


def generate_and_judge(x, prompts: pd.DataFrame, models: dict, seeds, noise_norms: bool = False) -> tuple[dict, dict]:
    """Every prompt × seed generated by each model of ``models`` (`finetune_variants`; the twins'
    `dvdlib.twins.finetune_arms`) and judged (paper §2): (its judge table, `dvdlib.dvd.judge_images`;
    its samples) per key of ``models``. ``noise_norms``: each run also keeps its noise-prediction
    norms in its samples (paper §3.7; the same whole run)."""
    judged, runs = {}, {}
    for fit, model in models.items():
        runs[fit] = x.generate(prompts.prompt, seeds, model=model, noise_norms=noise_norms)
        judged[fit] = x.judge_dvd(prompts, seeds, model=model)
    return judged, runs


def variant_scores(judged: dict, prompts: pd.DataFrame, tau: float = 48.0, unit: str = "breed") -> pd.DataFrame:
    """Per (fine-tune, prompt) the DvD Score (`dvdlib.dvd.per_prompt`) of the judge tables
    ``judged`` (`generate_and_judge`), with ``breeds``, ``replicate``, ``finetune`` (its label, in
    ``unit``s) and ``group``."""
    from . import dvd

    tables = [dvd.per_prompt(images, tau).assign(breeds=k, replicate=r, finetune=finetune_label(k, r, unit))
              for (k, r), images in judged.items()]
    return pd.concat(tables, ignore_index=True).merge(prompts[["case_num", "group"]], on="case_num")


def finetune_label(breeds: int, replicate: int, unit: str = "breed") -> str:
    """"base", "1 breed #0" (or ``unit``): one fine-tune, the unit of the causal statistics."""
    return "base" if breeds == 0 else f"{variant_name(breeds, unit)} #{replicate}"


def causal_prompts(run, n: int | None = None) -> pd.DataFrame:
    """The prompts of the causal test: the world's (`dvdlib.worlds.World.causal_prompts`; for
    Stable Diffusion the 50 of `dvdlib.bench.load_dreambooth_prompts`), ``n`` rows taken in turn
    from each group; ``nm_kind``, the other concept's kind (`dvdlib.dvd.question_groups`), is its
    group's."""
    from .bench import stratified

    table = run.world.causal_prompts()
    if "group" in table and "nm_kind" not in table:  # the other concept's kind is its group's (object, scene, style)
        table = table.assign(nm_kind=table["group"])
    return stratified(table, n, by="group") if n else table


def crossing_table(scores: pd.DataFrame, taus, unit: str = "breed") -> pd.DataFrame:
    """Per variant (rows, named by `variant_name`: "base", "3 breeds") and τ (columns): the share of
    prompts whose mean DvD reaches τ (paper §3.3: the low-diversity variants cross it)."""
    table = pd.DataFrame({f"τ = {t}": scores.groupby("breeds").dvd.apply(lambda s, t=t: (s >= t).mean()) for t in taus})
    table = named(table, unit)
    table.index.name = "variant"
    return table


def group_means(scores: pd.DataFrame, unit: str = "breed") -> pd.DataFrame:
    """Mean DvD per variant (rows, "base" first) and prompt group (columns: object, scene, style;
    paper §3.3's three groups), over prompts and fine-tunes."""
    table = named(scores.groupby(["breeds", "group"]).dvd.mean().unstack().round(1), unit)
    table.index.name = "variant"
    return table


def trend(scores: pd.DataFrame, tau: float = 48.0, seed: int = 0) -> dict:
    """The causal test's statistics, with the **fine-tune** as the unit.

    ``scores``: columns ``breeds`` (≥ 1 for the fine-tunes), ``prompt``, ``dvd`` (mean over seeds)
    and ``finetune`` (one label per fine-tune; without it each variant is one fine-tune). Each
    fine-tune's mean DvD over the prompts is one observation. Returns Spearman's ρ between breeds
    and those means with its one-sided p (H1: ρ < 0, DvD falls as diversity rises, descriptive) and
    its 95% interval over fine-tunes (``spearman``: `dvdlib.stats.spearman`; ``spearman_ci``); the
    least against the most diverse variant (``paired``: `dvdlib.stats.difference` of their
    fine-tunes' means, interval over fine-tunes, ``n`` the prompts and ``n_clusters`` the fine-tunes
    of each; ``differences``: per prompt, least − most, the
    replicates averaged, with the paired Wilcoxon p as a description); per variant the mean DvD and
    the share of prompts (replicates averaged) whose mean DvD reaches τ; ``per_finetune``. When
    every score is equal ρ is NaN and the p-values are 1: no evidence of a trend.
    """
    from scipy import stats as sps

    from .stats import difference, spearman

    scores = scores if "finetune" in scores else scores.assign(finetune=scores["breeds"].map(lambda k: finetune_label(k, 0)))
    tuned = scores[scores["breeds"] >= 1]
    if tuned["breeds"].nunique() < 2:
        raise ValueError("the trend needs at least two fine-tuned variants (breed counts)")
    units = tuned.groupby(["breeds", "finetune"], sort=True).dvd.mean().reset_index()
    if units["dvd"].nunique() > 1:
        rho, p_rho = sps.spearmanr(units["breeds"], units["dvd"], alternative="less")
    else:  # every score equal: ρ is undefined, and there is no evidence of a trend
        rho, p_rho = float("nan"), 1.0
    variants = sorted(units["breeds"].unique())
    rank = spearman(units["breeds"], units["dvd"], labels=units["finetune"])
    lo, hi = variants[0], variants[-1]
    by_prompt = tuned.groupby(["breeds", "prompt"]).dvd.mean().unstack(0)
    diff = (by_prompt[lo] - by_prompt[hi]).dropna()
    w_p = float(sps.wilcoxon(diff, alternative="greater").pvalue) if (diff != 0).any() else 1.0
    least, most = (units[units.breeds == k] for k in (lo, hi))
    paired = difference(least.dvd, most.dvd, alternative="greater", seed=seed,
                        clusters=(least.finetune.tolist(), most.finetune.tolist()))
    paired["n"] = [int(tuned[tuned.breeds == k].prompt.nunique()) for k in (lo, hi)]  # prompts; the units are n_clusters
    averaged = scores.groupby(["breeds", "prompt"]).dvd.mean().reset_index()
    per_variant = averaged.groupby("breeds").dvd.agg(mean="mean", crossing=lambda s: float((s >= tau).mean()))
    return {"spearman_rho": float(rho), "spearman_p": float(p_rho), "spearman_ci": rank["ci"], "spearman": rank,
            "n_finetunes": len(units),
            "least_breeds": int(lo), "most_breeds": int(hi), "paired_prompts": int(len(diff)),
            "mean_difference": paired["value"], "paired": paired, "differences": diff, "wilcoxon_p": w_p,
            "per_variant": per_variant, "per_finetune": units}


def rho_text(t: dict) -> str:
    """`trend`'s Spearman ρ in words: value, interval over fine-tunes, one-sided p."""
    if t["spearman_rho"] != t["spearman_rho"]:
        return "ρ undefined (every DvD Score equal), no trend"
    ci = t["spearman_ci"]
    return f"ρ = {t['spearman_rho']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") + f", p = {t['spearman_p']:.3g}"


def paired_text(t: dict) -> str:
    """`trend`'s least-vs-most contrast in words."""
    d = t["paired"]
    ci = f" [{d['ci'][0]:+.1f}, {d['ci'][1]:+.1f}]" if d["ci"] else ""
    return (f"{d['value']:+.1f}{ci} over {d['n_clusters'][0]} vs {d['n_clusters'][1]} fine-tunes; per prompt (replicates averaged) "
            f"Wilcoxon p = {t['wilcoxon_p']:.3g} over {t['paired_prompts']} prompts")


def plot_by_variant(scores: pd.DataFrame, tau: float = 48.0, n_images: int | None = None, unit: str = "breed"):
    """Per-prompt DvD per variant (base model = 0 breeds), mean ± s.e. and the points, with τ;
    ``unit``: what a variant's images are spread over (`unit_word`: dog breeds, a toy world's variants)."""
    import matplotlib.pyplot as plt

    from . import plots

    plots.use_style()
    order = sorted(scores["breeds"].unique())
    labels = [variant_name(b, unit) for b in order]
    fig, ax = plt.subplots(figsize=(1.3 * len(order) + 2.5, 3.6))
    for i, b in enumerate(order):
        v = scores.loc[scores["breeds"] == b, "dvd"].to_numpy()
        jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(v))
        ax.plot(i + jitter, v, ".", color=plots.CONTROL_COLOR if b == 0 else plots.BENCH_COLOR, alpha=0.4, ms=4)
        se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
        ax.errorbar(i, v.mean(), yerr=se, fmt="o", color="black", capsize=4, zorder=3)
        if "finetune" in scores and b > 0:  # each fine-tune's mean: the unit of the statistics
            means = scores[scores["breeds"] == b].groupby("finetune").dvd.mean()
            ax.plot(np.full(len(means), i + 0.28), means, "D", color=plots.BENCH_COLOR, mfc="white", ms=6,
                    label="one fine-tune's mean" if i == 1 else None)
    ax.axhline(tau, color="0.4", ls="--", lw=1)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.text(-0.55, tau + 1, f"τ = {tau:g}", va="bottom", ha="left", fontsize=8, color="0.3")
    ax.set_xticks(range(len(order)), labels)
    ax.set_ylim(-3, 103)
    each = f"{n_images} training images per fine-tune" if n_images else "the same training images in number"
    ax.set_xlabel(f"{unit}s the new concept was fine-tuned on ({each})")
    ax.set_ylabel("DvD Score per prompt\n(mean over seeds; black: mean ± s.e.)")
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="upper right", frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
