"""The causal test of visual diversity (paper §3.3): DreamBooth fine-tunes of one base model on
the same number of images spread over 1 … 10 breeds, each then asked prompts that pair the new
token with another concept and judged; the less diverse the training images, the more the new
concept dominates (higher DvD Score).

- the scale a profile runs (`scale`, `recipe_for`), the training images of each variant (a folder
  of dog photos, one sub-folder per breed, `training_images`; or the world's own,
  `variant_images`), the prompts (`causal_prompts`);
- `finetune_variants`: one fine-tune per variant (`dvdlib.finetune`), every prompt generated;
- `trend`: the statistics (Spearman over breeds, a paired one-sided Wilcoxon test between the
  least and the most diverse variant, the share of prompts that cross τ); `plot_by_variant`.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .finetune import Recipe, class_images, finetune, finetune_dir, finetuned_key, images_digest, load_finetuned


#: Image files a breed folder may hold.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


#: paper §3.3's full experiment: 120 images per variant, 1 / 2 / 3 / 5 / 10 breeds, every prompt
#: (``prompts`` None), the DreamBooth recipe (``recipe``: `Recipe` fields that differ from it).
FULL = {"n_images": 120, "breeds": [1, 2, 3, 5, 10], "prompts": None, "recipe": {}}


def scale(profile) -> dict:
    """The causal experiment a profile runs: `FULL`, narrowed by the profile's ``scales.causal``
    (`dvdlib.profiles.Profile.scale`); ``recipe`` becomes a `Recipe`."""
    out = profile.scale("causal", FULL)
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


def variant_images(run, images, breeds, n_images: int, seed: int = 0) -> dict[int, list]:
    """Per variant (breed count), its (breed, image) pairs: from the folder ``images`` (one
    sub-folder per breed), else the world's own (`dvdlib.worlds.World.training_images`, at the
    model's resolution). ``run`` is a `dvdlib.run.Run`."""
    P = run.profile
    if images:
        return {k: training_images(images, k, n_images, seed) for k in breeds}
    if run.world.training_images is None:
        raise ValueError(
            f"model {P.model!r} needs real dog photos to fine-tune on (paper §3.3: ImageNet dog images): pass "
            "a folder with one sub-folder of images per breed, e.g. `papermill ... -p images /data/imagenet_dogs` "
            "(at least 120 images in the breed used alone, 12 in each of 10 breeds)")
    return {k: run.world.training_images(k, n_images, seed, P.resolution_of(P.model)) for k in breeds}


def images_note(run, images) -> str:
    """Where the training images come from, in words."""
    return f"dog photos from `{images}`, one sub-folder per breed" if images else run.world.training_images_note


def variants_text(breeds, n_images: int) -> str:
    """"1 × 120, 2 × 60": breeds × images per breed of each variant."""
    return ", ".join(f"{k} × {n_images // k}" for k in breeds)


def variant_name(breeds: int) -> str:
    """"base" (0 breeds: the model before fine-tuning), "1 breed", "3 breeds"."""
    return "base" if breeds == 0 else f"{breeds} breed{'s' if breeds > 1 else ''}"


def training_grid(training: dict[int, list], n_images: int, per_variant: int) -> list:
    """Rows of `dvdlib.plots.image_grid`: ``per_variant`` images of each variant, evenly spread."""
    return [(f"{variant_name(k)} × {n_images // k} images",
             [(im, b) for b, im in shown[::max(1, len(shown) // per_variant)][:per_variant]])
            for k, shown in training.items()]


def finetune_variants(run, training: dict[int, list], recipe: Recipe, prompts: pd.DataFrame) -> dict:
    """Fine-tune the run's model on each variant's images (stored, resumable), generate every
    prompt with every seed from each fine-tune and from the base model; per variant (0: the base)
    the run store of its images."""
    from .generate import generate
    from .store import Store, model_key

    P, base = run.profile, run.pipe
    base_key = model_key(P.model)
    runs = {0: run.store()}  # 0 breeds: the base model, never fine-tuned
    klass = class_images(base, recipe, runs[0], batch_size=P.batch_size) if recipe.prior_preservation else None
    for k, shown in training.items():
        pictures = [im for _, im in shown]
        folder = finetune_dir(P.store, base_key, recipe, images_digest(pictures))
        finetune(base, pictures, recipe, folder, class_images=klass)
        runs[k] = Store(P.store, finetuned_key(base_key, folder), P.sampler())
        tuned = load_finetuned(P.model, folder, dtype=P.dtype, device=P.device, load=run.world.load_model)
        generate(tuned, prompts.prompt, P.seeds, store=runs[k], batch_size=P.batch_size)
        del tuned
    generate(base, prompts.prompt, P.seeds, store=runs[0], batch_size=P.batch_size)
    return runs


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


def crossing_table(scores: pd.DataFrame, taus) -> pd.DataFrame:
    """Per variant (rows, 0 = base) and τ (columns): the share of prompts whose mean DvD reaches τ."""
    table = pd.DataFrame({f"τ = {t}": scores.groupby("breeds").dvd.apply(lambda s, t=t: (s >= t).mean()) for t in taus})
    table.index.name = "breeds (0 = base)"
    return table


def trend(scores: pd.DataFrame, tau: float = 48.0) -> dict:
    """The causal test's statistics on per-prompt DvD Scores of the fine-tuned variants.

    ``scores``: columns ``breeds`` (≥ 1), ``prompt``, ``dvd`` (mean over seeds). Returns
    Spearman's ρ between breeds and DvD over all (variant, prompt) pairs with its one-sided p
    (H1: ρ < 0, DvD falls as diversity rises), the paired one-sided Wilcoxon signed-rank test of
    the least against the most diverse variant over prompts (H1: least > most; ``differences``:
    per prompt, least − most), and per variant
    the mean DvD and the share of prompts whose mean DvD reaches τ. When every score is equal
    (or every pair tied), ρ is NaN and the p-values are 1: no evidence of a trend.
    """
    from scipy import stats

    tuned = scores[scores["breeds"] >= 1]
    if tuned["breeds"].nunique() < 2:
        raise ValueError("the trend needs at least two fine-tuned variants (breed counts)")
    if tuned["dvd"].nunique() > 1:
        rho, p_rho = stats.spearmanr(tuned["breeds"], tuned["dvd"], alternative="less")
    else:  # every score equal: ρ is undefined, and there is no evidence of a trend
        rho, p_rho = float("nan"), 1.0
    lo, hi = tuned["breeds"].min(), tuned["breeds"].max()
    wide = tuned.pivot_table(index="prompt", columns="breeds", values="dvd").dropna()
    diff = wide[lo] - wide[hi]
    if (diff != 0).any():
        w = stats.wilcoxon(wide[lo], wide[hi], alternative="greater")
        statistic, p_w = float(w.statistic), float(w.pvalue)
    else:  # every prompt tied: no evidence either way
        statistic, p_w = float("nan"), 1.0
    per_variant = scores.groupby("breeds").dvd.agg(mean="mean", crossing=lambda s: float((s >= tau).mean()))
    return {"spearman_rho": float(rho), "spearman_p": float(p_rho),
            "least_breeds": int(lo), "most_breeds": int(hi), "paired_prompts": int(len(wide)),
            "mean_difference": float(diff.mean()), "differences": diff, "wilcoxon_statistic": statistic, "wilcoxon_p": p_w,
            "per_variant": per_variant}


def plot_by_variant(scores: pd.DataFrame, tau: float = 48.0, n_images: int | None = None):
    """Per-prompt DvD per variant (base model = 0 breeds), mean ± s.e. and the points, with τ."""
    import matplotlib.pyplot as plt

    from . import plots

    plots.use_style()
    order = sorted(scores["breeds"].unique())
    labels = ["base" if b == 0 else f"{b} breed{'s' if b > 1 else ''}" for b in order]
    fig, ax = plt.subplots(figsize=(1.3 * len(order) + 2.5, 3.6))
    for i, b in enumerate(order):
        v = scores.loc[scores["breeds"] == b, "dvd"].to_numpy()
        jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(v))
        ax.plot(i + jitter, v, ".", color=plots.CONTROL_COLOR if b == 0 else plots.BENCH_COLOR, alpha=0.4, ms=4)
        se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
        ax.errorbar(i, v.mean(), yerr=se, fmt="o", color="black", capsize=4, zorder=3)
    ax.axhline(tau, color="0.4", ls="--", lw=1)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.text(-0.55, tau + 1, f"τ = {tau:g}", va="bottom", ha="left", fontsize=8, color="0.3")
    ax.set_xticks(range(len(order)), labels)
    ax.set_ylim(-3, 103)
    each = f"{n_images} training images in every variant" if n_images else "the same training images in number"
    ax.set_xlabel(f"breeds the new concept was fine-tuned on ({each})")
    ax.set_ylabel("DvD Score per prompt\n(mean over seeds; black: mean ± s.e.)")
    fig.tight_layout()
    return fig
