"""Training-data diversity of a concept (paper §3.1, the paper's appendix): CLIP ViT-L/14 image
embeddings of the images associated with each concept, the mean pairwise **cosine distance**
within the concept (lower = less diverse), and per category the median over its concepts.

The paper embeds LAION images; LAION cannot be downloaded here, so the images come from a
*source* table (one row per image: ``concept``, ``category``, ``path``):

- `from_folders`: a folder per concept (``root/<concept>/*.jpg``), or per category and concept
  (``root/<category>/<concept>/*.jpg``) — e.g. a LAION shard the user downloaded elsewhere;
- `from_table`: a CSV or parquet file with columns ``path``, ``concept`` and ``category``;
- `generated`: images a text-to-image model generates for each concept's name (the `smoke`
  profile's stand-in: the *model's* output diversity, not its training data's);
- a world's own named sources (`dvdlib.worlds.World.image_sources`, e.g. the toy world's renders,
  whose diversity is known by construction).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist

from .clip import TINY_CLIP, embed
from .store import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SOURCE_COLUMNS = ("concept", "category", "path")


# ----------------------------------------------------------------------------- the statistic


def mean_pairwise_cosine_distance(embeddings) -> float:
    """Mean of 1 − cos(e_i, e_j) over all pairs i < j of the rows of ``embeddings`` [n, d]
    (paper §3.1, open: the mean over pairs). Needs at least two non-zero rows."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or len(e) < 2:
        raise ValueError(f"need at least two embeddings [n, d] for a pairwise distance, got shape {e.shape}")
    if (np.linalg.norm(e, axis=1) == 0).any():
        raise ValueError("an embedding is all zeros: its cosine distance is undefined")
    return float(pdist(e, metric="cosine").mean())


def concept_diversity(embeddings, table: pd.DataFrame) -> pd.DataFrame:
    """Per concept: its category, number of images and mean pairwise cosine distance.

    ``embeddings`` [len(table), d] row-aligned with ``table`` (columns ``concept``, ``category``).
    A concept with fewer than two images is an error naming it.
    """
    e = np.asarray(embeddings)
    if len(e) != len(table):
        raise ValueError(f"{len(e)} embeddings for {len(table)} images: they must be row-aligned")
    rows = []
    for (category, concept), index in table.groupby(["category", "concept"], sort=False).indices.items():
        if len(index) < 2:
            raise ValueError(f"concept {concept!r} ({category}) has {len(index)} image(s); the pairwise "
                             "distance needs at least two: add images or drop the concept")
        rows.append({"concept": concept, "category": category, "images": len(index),
                     "diversity": mean_pairwise_cosine_distance(e[index])})
    return pd.DataFrame(rows)


def category_medians(per_concept: pd.DataFrame) -> pd.Series:
    """Per category, the median of its concepts' diversities (paper §3.1, open: the median)."""
    return per_concept.groupby("category", sort=False)["diversity"].median()


def embed_table(table: pd.DataFrame, model, processor, *, cache: str | Path | None = None,
                key: str = "", batch_size: int = 32) -> np.ndarray:
    """Embeddings of every ``path`` of a source table, row-aligned. With ``cache`` (a folder), the
    embeddings of each concept are kept in ``<cache>/<digest of key>/<digest of the concept's
    files>.npy`` (each file by path, size and modification time; atomic writes), so a rerun or an
    interrupted run embeds only the concepts not yet done. ``key`` names the encoder."""
    from .store import digest

    if table.empty:
        raise ValueError("the image table is empty: no images to embed")
    parts = {}
    for concept, index in table.groupby("concept", sort=False).indices.items():
        paths = [str(p) for p in table["path"].iloc[index]]
        files = [(p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in paths]
        file = Path(cache) / digest(key) / f"{digest([concept, files])}.npy" if cache else None
        if file is not None and file.exists():
            parts[concept] = np.load(file)
            continue
        parts[concept] = embed(paths, model, processor, batch_size)
        if file is not None:
            atomic_write(file, lambda p, e=parts[concept]: np.save(p, e, allow_pickle=False))
    out = np.zeros((len(table), next(iter(parts.values())).shape[1]), dtype=np.float32)
    for concept, index in table.groupby("concept", sort=False).indices.items():
        out[index] = parts[concept]
    return out


# ----------------------------------------------------------------------------- image sources


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def from_folders(root: str | Path, categories: dict[str, str] | None = None) -> pd.DataFrame:
    """A source table from ``root/<category>/<concept>/<images>`` or ``root/<concept>/<images>``.

    In the one-level layout, ``categories`` maps each concept folder to its category (a concept
    it does not name is an error). Folders without images are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist: point the chapter's `image_source` "
                                "at a folder with one sub-folder of images per concept")
    rows = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if _images_in(sub):  # root/<concept>/images
            if categories is None or sub.name not in categories:
                raise ValueError(f"no category for concept folder {sub.name!r}: pass categories={{concept: category}} "
                                 "or lay the images out as root/<category>/<concept>/")
            rows += [(sub.name, categories[sub.name], str(p)) for p in _images_in(sub)]
        for concept in sorted(p for p in sub.iterdir() if p.is_dir()):  # root/<category>/<concept>/images
            rows += [(concept.name, sub.name, str(p)) for p in _images_in(concept)]
    if not rows:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root} in root/<concept>/ or "
                         "root/<category>/<concept>/ folders")
    return pd.DataFrame(rows, columns=list(SOURCE_COLUMNS))


def from_table(path: str | Path) -> pd.DataFrame:
    """A source table from a CSV or parquet file with columns ``path``, ``concept``, ``category``;
    relative paths are taken from the file's folder. Missing image files are an error listing them."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        try:
            table = pd.read_parquet(path)
        except ImportError as error:
            raise ImportError(f"reading {path} needs a parquet engine: `pip install pyarrow` (or give a CSV)") from error
    elif path.suffix.lower() in (".csv", ".tsv"):
        table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
    else:
        raise ValueError(f"{path}: the image table must be .csv, .tsv or .parquet")
    missing = [c for c in SOURCE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; it needs {list(SOURCE_COLUMNS)}, has {list(table.columns)}")
    table = table[list(SOURCE_COLUMNS)].astype(str).copy()
    table["path"] = [str(p if Path(p).is_absolute() else path.parent / p) for p in table["path"]]
    absent = [p for p in table["path"] if not Path(p).is_file()]
    if absent:
        raise FileNotFoundError(f"{len(absent)} image(s) listed in {path} do not exist, e.g. {absent[:3]}")
    return table


def benchmark_concepts(benchmark: pd.DataFrame, per_category: int) -> pd.DataFrame:
    """Up to ``per_category`` concepts per category from a DominanceBench-like table: the
    ``content`` of each ``content_type``, and the ``nm_word`` objects as category "object"
    (paper §3.1 compares the three concept categories with objects). Columns concept, category."""
    rows = [(c, t) for c, t in zip(benchmark["content"], benchmark["content_type"])]
    rows += [(o, "object") for o in benchmark["nm_word"]]
    table = pd.DataFrame(rows, columns=["concept", "category"])
    table = table.drop_duplicates("concept")
    return table.groupby("category", sort=False).head(per_category).reset_index(drop=True)


def generated(x, concepts: pd.DataFrame, seeds, template: str = "{concept}") -> pd.DataFrame:
    """A source table of images the profile's model generates for each concept (prompt
    ``template`` with the concept's name), one per seed, through the executor ``x``
    (`dvdlib.run.Run.generate`: stored, resumable; counting, an empty table)."""
    prompts = [template.format(concept=c) for c in concepts["concept"]]
    x.generate(list(dict.fromkeys(prompts)), seeds)
    if x.counting:
        return pd.DataFrame(columns=list(SOURCE_COLUMNS))
    store = x.store()
    return pd.DataFrame([(c, cat, str(store.image_path(p, s)))
                         for c, cat, p in zip(concepts["concept"], concepts["category"], prompts) for s in seeds],
                        columns=list(SOURCE_COLUMNS))


def source_table(run, source: str | None = None, *, per_category: int = 2,
                 categories: dict[str, str] | None = None, template: str = "{concept}",
                 centred: bool = True) -> tuple[pd.DataFrame, str]:
    """(source table, one line saying where its images come from) for a chapter's ``source``
    (None: the world's `~dvdlib.worlds.World.diversity_source`): ``"generated"`` (the run's model
    draws ``per_category`` concepts per category of its benchmark set, one image per seed), a
    named source of the run's world (e.g. the toy world's ``"toy"``, ``centred`` or placed as in
    training), a folder (`from_folders`, with ``categories`` for the one-level layout) or a
    CSV/parquet (`from_table`). ``run``: a chapter's executor (`dvdlib.run.Run`, or
    `dvdlib.plan.Count`, which counts the generations)."""
    profile, source = run.profile, source or run.world.diversity_source
    if source == "generated":
        concepts = benchmark_concepts(run.prompts("benchmark", tokenize=False), per_category)
        table = generated(run, concepts, profile.seeds, template)
        return table, (f"images **generated by the model `{profile.model}`** for the prompt "
                       f"`{template}` ({len(profile.seeds)} seeds per concept): the model's output diversity, "
                       "not its training data's")
    if source in run.world.image_sources:
        return run.world.image_sources[source](profile, centred=centred)
    path = Path(source)
    if path.is_dir():
        return from_folders(path, categories), f"images from the folder `{path}`"
    if path.is_file():
        return from_table(path), f"images listed in `{path}`"
    named = ", ".join(repr(n) for n in ["generated", *run.world.image_sources])
    raise ValueError(f"image source {source!r} is neither {named}, a folder nor a CSV/parquet file")


def figure(per_concept: pd.DataFrame, paper_medians: dict[str, float] | None = None, order=None):
    """Per category, the concepts' diversities (box + points), with the paper's median (◆)."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, use_style

    use_style()
    found = list(dict.fromkeys(per_concept["category"]))
    order = [c for c in (order or []) if c in found] + [c for c in found if c not in (order or [])]
    fig, ax = plt.subplots(figsize=(min(1.5 * len(order) + 2, 8), 3.6))  # ≤ 8 in: legible at book width
    values = [per_concept.loc[per_concept["category"] == c, "diversity"].to_numpy() for c in order]
    parts = ax.boxplot(values, positions=range(len(order)), widths=0.5, patch_artist=True, showfliers=False,
                       medianprops={"color": "black"})
    for box in parts["boxes"]:
        box.set(facecolor="0.85")
    for i, v in enumerate(values):
        ax.plot(np.full(len(v), i), v, ".", color="0.3", ms=5)
    marked = [(i, paper_medians[c]) for i, c in enumerate(order) if paper_medians and c in paper_medians]
    if marked:
        ax.plot(*zip(*marked), "D", color=BENCH_COLOR, ms=7, label="paper's median (LAION, CLIP ViT-L/14)")
        ax.legend(loc="upper left", frameon=False, fontsize=8)
    ax.set_xticks(range(len(order)), [textwrap.fill(c, 14) for c in order], fontsize=8 if len(order) > 5 else None)
    ax.set_ylabel("mean pairwise cosine distance\nper concept (higher = more diverse)")
    fig.tight_layout()
    return fig


def add_category_medians(report, medians: pd.Series, paper_medians: dict[str, float]) -> None:
    """One results row per paper category: its median here beside the paper's (``div_median_<category>``)."""
    for category, value in paper_medians.items():
        ours = f"{medians[category]:.4f}" if category in medians else "— (no such category here)"
        report.add(f"div_median_{category}", f"{category}: median diversity", value, ours)


def rigid_text(medians: pd.Series) -> str:
    """`rigid_vs_category_word` in words: "landmark: 0.100 < 0.300; …", or a dash when no source
    has both kinds of category (toy renders only)."""
    rigid = rigid_vs_category_word(medians)
    return ("; ".join(f"{role}: {r:.3f} {'<' if r < w else '≥'} {w:.3f}" for role, (r, w) in rigid.items())
            or "— (no toy renders in this source)")


def encoder_note(encoder: str) -> str:
    """The line that names the image encoder (and says when its weights are random)."""
    return f"**Encoder:** `{encoder}`" + (" — a tiny CLIP with **random weights** (random features, no knowledge of concepts)."
                                          if encoder == TINY_CLIP else ".")


def rigid_vs_category_word(medians: pd.Series) -> dict[str, tuple[float, float]]:
    """For every role with both a "<role> (rigid)" and a "<role> (category word)" category (the
    toy world's, `toy_renders`): (rigid median, category-word median). Empty for other sources."""
    return {c[:-len(" (rigid)")]: (float(medians[c]), float(medians[c.replace("(rigid)", "(category word)")]))
            for c in medians.index if c.endswith(" (rigid)") and c.replace("(rigid)", "(category word)") in medians.index}
