"""Training-data diversity of a concept (paper §3.1, the paper's appendix): image embeddings of
the images associated with each concept, the mean pairwise **cosine distance** within the concept
(lower = less diverse), and per category the median over its concepts.

The encoder (`load_encoder`) is the paper's CLIP ViT-L/14, or the world's own: in a toy world,
whose images no CLIP was trained on, the penultimate features of the judge trained on that world
(`dvdlib.clip.JudgeFeatures`); under `smoke`, a tiny CLIP with random weights.

The paper embeds LAION images; LAION cannot be downloaded here, so the images come from a
*source* table (one row per image: ``concept``, ``category``, ``path``):

- `from_folders`: a folder per concept (``root/<concept>/*.jpg``), or per category and concept
  (``root/<category>/<concept>/*.jpg``) — e.g. a LAION shard the user downloaded elsewhere;
- `from_table`: a CSV or parquet file with columns ``path``, ``concept`` and ``category``;
- `generated`: images a text-to-image model generates for each concept's name (the `smoke`
  profile's stand-in: the *model's* output diversity, not its training data's);
- a world's own named sources (`dvdlib.worlds.World.image_sources`, e.g. the toy world's renders,
  whose diversity is known by construction: `with_built` adds what the world built into each
  concept, its paper category, rigid or flexible, and its number of variants).

On a world's own renders the statistic is checked against that built diversity (`variants_check`:
the rank correlation between measured diversity and variants over concepts), and the world's
rigid concepts stand beside the paper's categories (`counterparts`); `paragraph` says in words
what a run shows.
"""

from __future__ import annotations

import hashlib
import math
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist

from .clip import JUDGE_FEATURES, TINY_CLIP, JudgeFeatures, embed, load_clip
from .store import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SOURCE_COLUMNS = ("concept", "category", "path")
#: What a world's own source adds to a source table, per concept (`with_built`).
BUILT_COLUMNS = ("role", "rigid", "variants")
#: The paper's categories (§3.1), from least to most diverse in the paper.
PAPER_CATEGORIES = ("landmark", "character", "artist", "object")
#: Fewer concepts than this with a built diversity: the variants check is "underpowered" (a rank
#: correlation's interval needs four, and a verdict must survive leaving any one concept out).
MIN_CONCEPTS = 5


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
    """Per concept: its category, number of images and mean pairwise cosine distance (and, where
    ``table`` has them, what its world built into it: `BUILT_COLUMNS`).

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
                     "diversity": mean_pairwise_cosine_distance(e[index]),
                     **{c: table[c].iloc[index[0]] for c in BUILT_COLUMNS if c in table.columns}})
    return pd.DataFrame(rows)


def concept_table(per_concept: pd.DataFrame) -> pd.DataFrame:
    """`concept_diversity` for the page, least diverse first, diversity to four decimals; what a
    world built into a concept in words: the paper category it stands for, rigid or flexible, its
    variants ("fresh" for a flexible concept)."""
    out = per_concept.sort_values("diversity", kind="stable").set_index("concept")
    out["diversity"] = out["diversity"].map("{:.4f}".format)
    if is_built(out):
        out["kind"] = out["rigid"].map({True: "rigid", False: "flexible"})
        out["variants"] = [_variants(v).replace(" in every image", "") for v in out["variants"]]
        out = out.rename(columns={"role": "paper category"})[["category", "paper category", "kind", "variants",
                                                               "images", "diversity"]]
    return out


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


def load_encoder(run, name: str | None = None) -> SimpleNamespace:
    """The image encoder of a chapter's ``run`` (paper §3.1): ``name`` — a CLIP Hub id or folder,
    ``"tiny:clip"`` or ``"judge:features"`` (`dvdlib.clip.JudgeFeatures` of the profile's judge) —
    or, None, the world's (`dvdlib.worlds.World.clip`). Fields: ``name``, ``model`` and
    ``processor`` (what `embed_table` takes), ``key`` (what its cached embeddings are keyed by: a
    judge's by the digest of its weights), ``random`` (random weights), ``judge`` (the profile's
    judge is the encoder), ``label`` (the encoder in prose) and ``note`` (its line on the card)."""
    name = name or run.world.clip
    if name == JUDGE_FEATURES:
        judge = str(run.profile.judge)
        model = JudgeFeatures(run.judge)
        weights = sorted(Path(judge).glob("*.safetensors")) if Path(judge).is_dir() else []
        key = [name, judge, [hashlib.sha256(w.read_bytes()).hexdigest() for w in weights]]
        label = f"the penultimate features of the judge `{judge}`, a network trained on this world's images"
        note = (f"\n\n**Encoder:** `{name}` — the penultimate features of the profile's judge `{judge}` "
                f"({model.dim} values per image: the input of its last layer), a network trained on this world's "
                "images; not CLIP, so its distances are on its own scale, not the paper's.")
        return SimpleNamespace(name=name, model=model, processor=None, key=key, random=False, judge=True,
                               label=label, note=note)
    model, processor = load_clip(name, device=run.profile.device)
    label = "a tiny CLIP with random weights" if name == TINY_CLIP else f"CLIP `{name}`"
    return SimpleNamespace(name=name, model=model, processor=processor, key=name, random=name == TINY_CLIP,
                           judge=False, label=label, note="\n\n" + encoder_note(name))


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


def with_built(table: pd.DataFrame, world, paper_category: dict[str, str] | None = None) -> pd.DataFrame:
    """``table`` (a source table of ``world``'s concepts) with what the world built into each
    concept, the yardstick its measured diversity is checked against (`BUILT_COLUMNS`): ``role``,
    the paper category it stands for (its role in the world, renamed by ``paper_category``, e.g.
    world 1's {"style": "artist"}); ``rigid``, a fixed set of appearances; ``variants``, how many
    (a flexible concept, drawn fresh in every image: ``inf``). ``world``: a toy world's concept
    look-up (`dvdlib.scenes.concepts.ConceptLookup`)."""
    rename, out = paper_category or {}, table.copy()
    concepts = [world.concept(c) for c in out["concept"]]
    out["role"] = [rename.get(c.role, c.role) for c in concepts]
    out["rigid"] = [bool(c.rigid) for c in concepts]
    out["variants"] = [math.inf if c.variants is None else float(c.variants) for c in concepts]
    return out


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
    """Per category, the concepts' diversities (box + points), with the paper's median (◆); on a
    world's renders (`is_built`), `built_figure`."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, use_style

    if is_built(per_concept):
        return built_figure(per_concept, paper_medians)
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


#: The most concepts `built_figure` names (more overlap at book width).
MAX_NAMED = 8
#: One colour per paper category, in both panels of `built_figure`.
CATEGORY_COLORS = {"landmark": "#c0392b", "character": "#7b3294", "artist": "#e69f00", "object": "#2c7fb8"}


def built_figure(per_concept: pd.DataFrame, paper_medians: dict[str, float] | None = None):
    """A world's concepts (paper §3.1, checked against the built diversity): left, each concept's
    diversity over its number of variants (filled: rigid; open: flexible, drawn fresh in every
    image), coloured by the paper category it stands for, all but the objects named (the rigid ones
    only up to `MAX_NAMED` named concepts: beyond, their names would overlap); right, the paper's
    medians on LAION with CLIP ViT-L/14, on their own scale."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .plots import use_style

    use_style()
    levels = sorted(per_concept["variants"].unique())
    fig, (ax, right) = plt.subplots(1, 2, figsize=(8, 4), width_ratios=[3, 1])
    shift = {c: (i - 1.5) * 0.2 for i, c in enumerate(CATEGORY_COLORS)}
    named = per_concept["role"] != "object"  # the objects are named by the legend; the rest where they fit
    named &= ~per_concept["rigid"].astype(bool) | (named.sum() <= MAX_NAMED)
    for r, name in zip(per_concept.itertuples(), named):
        x, color = levels.index(r.variants) + shift.get(r.role, 0.0), CATEGORY_COLORS.get(r.role, "0.4")
        ax.plot(x, r.diversity, "o", ms=7, color=color, mfc=color if r.rigid else "white", mew=1.5)
        if name:
            ax.annotate(r.concept, (x, r.diversity), xytext=(6, 0), textcoords="offset points", va="center", fontsize=9)
    ax.set_xticks(range(len(levels)), [_variants(v).replace(" in every", "\nin every") for v in levels], fontsize=9)
    ax.set_xlim(-0.5, len(levels) - 0.5)
    ax.set_xlabel("variants the world built the concept with")
    ax.set_ylabel("mean pairwise cosine distance\nper concept (higher = more diverse)")
    ax.set_title("this run", loc="left")
    handles = [Line2D([], [], ls="", marker="o", color=c, label=k) for k, c in CATEGORY_COLORS.items()
               if k in set(per_concept["role"])]
    handles += [Line2D([], [], ls="", marker="o", color="0.3", label="rigid"),
                Line2D([], [], ls="", marker="o", color="0.3", mfc="white", label="flexible")]
    ax.legend(handles=handles, loc="upper left", frameon=False, fontsize=9)
    marked = [(c, v) for c, v in (paper_medians or {}).items()]
    for i, (c, v) in enumerate(marked):
        right.plot(i, v, "D", ms=7, color=CATEGORY_COLORS.get(c, "0.4"))
    right.set_xticks(range(len(marked)), [c for c, _ in marked], rotation=45, ha="right", fontsize=9)
    right.set_xlim(-0.6, len(marked) - 0.4)
    right.set_title("paper: LAION,\nCLIP ViT-L/14 medians", loc="left", fontsize=9)
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


# ----------------------------------------------------------------------------- a world's built diversity


def is_built(per_concept: pd.DataFrame) -> bool:
    """Whether the concepts carry what their world built into them (`with_built`)."""
    return all(c in per_concept.columns for c in BUILT_COLUMNS)


def counterparts(per_concept: pd.DataFrame) -> pd.DataFrame:
    """Per paper category (`PAPER_CATEGORIES`) found here, the concepts that stand for it (paper
    §3.1) and their median diversity. On a world's renders (`is_built`): its rigid concepts of that
    role — the paper's landmarks, characters and artists are the concepts that dominate — and its
    objects for "object"; otherwise the concepts of that category. Columns ``median``,
    ``concepts`` (names, least diverse first) and ``n``, in the paper's order."""
    rows = {}
    for category in PAPER_CATEGORIES:
        if is_built(per_concept):
            mask = (per_concept["role"] == category) & (per_concept["rigid"].astype(bool) | (category == "object"))
        else:
            mask = per_concept["category"] == category
        chosen = per_concept[mask].sort_values("diversity", kind="stable")
        if len(chosen):
            rows[category] = {"median": float(chosen["diversity"].median()), "concepts": list(chosen["concept"]),
                              "n": len(chosen)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["median", "concepts", "n"])


def order_text(medians: pd.Series, digits: int = 4) -> str:
    """Categories from least to most diverse, equal at ``digits`` decimals written "=":
    "landmark = artist < character < object"."""
    ranked = medians.round(digits).sort_values(kind="stable")
    out = str(ranked.index[0]) if len(ranked) else ""
    for (_, before), (name, value) in zip(ranked.items(), list(ranked.items())[1:]):
        out += f" {'=' if value == before else '<'} {name}"
    return out


def variants_check(per_concept: pd.DataFrame) -> dict:
    """The statistic against the diversity a world was built with (paper §3.1's measurement,
    checked where the truth is known): Spearman's ρ over concepts between the measured diversity
    and the number of variants (a flexible concept ranks above every finite count), its 95%
    interval and leave-one-out intervals (`dvdlib.stats.spearman`), and the book's verdict rule on
    it (`dvdlib.stats.decide`: ρ > 0 is the direction), as every claim of the book is read. Fewer
    than `MIN_CONCEPTS` concepts read "underpowered (n concepts)": a correlation over so few
    concepts is no verdict. Adds ``levels`` (distinct numbers of variants) and ``verdict``."""
    from . import stats

    rows = per_concept[per_concept["variants"].notna()]
    finite = rows["variants"][np.isfinite(rows["variants"])]
    top = (finite.max() if len(finite) else 0) + 1
    built = rows["variants"].where(np.isfinite(rows["variants"]), top)
    result = stats.spearman(built.to_numpy(float), rows["diversity"].to_numpy(float), labels=list(rows["concept"]))
    result["levels"] = int(built.nunique())
    if len(rows) < MIN_CONCEPTS or result["value"] is None:
        result["verdict"] = f"{stats.UNDERPOWERED} ({len(rows)} concepts)"
    else:
        result["verdict"] = stats.decide(result, null=0.0, direction=1)
    return result


#: The verdict rule's readings of the variants check in words (the claim is the statistic's, not the paper's).
READINGS = {"reproduced": "rises with the built diversity", "not reproduced": "falls as the built diversity rises"}


def variants_text(check: dict) -> str:
    """`variants_check` in a table cell: "ρ = +0.87 [+0.56, +0.97] over 21 concepts; rises with the
    built diversity" (the rule's reading, `READINGS`, or its own words)."""
    rho = "ρ undefined" if check["value"] is None else f"ρ = {_interval(check)}"
    return f"{rho} over {check['n']} concepts; {_reading(check)}"


def _reading(check: dict) -> str:
    needed = check.get("needed")
    if check["verdict"].startswith("underpowered") and needed and needed > check["n"]:
        return f"{check['verdict']}: the rule needs {needed} to find a ρ this strong 80% of the time"
    return READINGS.get(check["verdict"], check["verdict"])


def add_results(report, per_concept: pd.DataFrame, n_images: int, paper_numbers: dict | None = None) -> None:
    """The chapter's rows (paper §3.1), each beside the paper's number: per paper category the
    median here (``div_median_<category>``; on a world's renders, its counterparts' median, named),
    the order of the categories (``div_order``), on a world's renders the variants check
    (``div_variants``), the rigid concepts against their category words (``div_rigid_below_word``)
    and the images (``div_images``)."""
    from . import paper

    numbers = paper_numbers or paper.DIVERSITY
    medians = category_medians(per_concept)
    if not is_built(per_concept):
        add_category_medians(report, medians, numbers["medians"])
        report.add("div_order", "categories from least to most diverse", numbers["order"], order_text(medians))
    else:
        table = counterparts(per_concept)
        for category, value in numbers["medians"].items():
            stands = "objects" if category == "object" else f"rigid {category} concepts"
            ours = (f"{table.loc[category, 'median']:.4f} ({_names(table.loc[category, 'concepts'])})"
                    if category in table.index else "— (no counterpart in this world)")
            report.add(f"div_median_{category}", f"{category}: median diversity (this run: the world's {stands})",
                       value, ours)
        report.add("div_order", "categories from least to most diverse (this run: the world's counterparts)",
                   numbers["order"], order_text(table["median"]))
        check = variants_check(per_concept)
        report.add("div_variants", "measured diversity vs the variants each concept was built with (Spearman ρ "
                   "over concepts, 95% interval)", "— (LAION's diversity is not built)", variants_text(check), **check)
    report.add("div_rigid_below_word", "toy: rigid concept vs its category word", "rigid < category word (by construction)",
               rigid_text(medians))  # toy renders only: fixed appearances vs fresh ones
    report.add("div_images", "images (concepts)", "LAION images per concept", f"{n_images} ({len(per_concept)})")


def _names(names, most: int = 3) -> str:
    names = list(names)
    return ", ".join(names) if len(names) <= most else f"{len(names)} concepts"


def _variants(v: float) -> str:
    return "fresh in every image" if math.isinf(v) else f"{int(v)} variant{'s' if v != 1 else ''}"


# ----------------------------------------------------------------------------- the closing paragraph


def paragraph(per_concept: pd.DataFrame, encoder, generated: bool = False, paper_numbers: dict | None = None) -> str:
    """What this run shows, in Markdown sentences true of its numbers (paper §3.1): on a world's
    renders (`is_built`), the rigid concepts against the flexible ones, the variants check with its
    verdict, and the world's counterparts' order beside the paper's; otherwise the categories'
    order beside the paper's, and which paper categories the images lack. Then what the images
    (``generated``: the model's own) and the ``encoder`` (`load_encoder`: ``label``, ``random``)
    let it mean."""
    from . import paper

    numbers = paper_numbers or paper.DIVERSITY
    theirs = ", ".join(f"{c} {v:.4f}" for c, v in numbers["medians"].items())
    said = (f"The paper ranks its LAION categories {numbers['order']} (medians with CLIP ViT-L/14: {theirs}).")
    text = (_built_sentences(per_concept, encoder, said) if is_built(per_concept)
            else _category_sentences(per_concept, encoder, said, numbers))
    if generated:
        text.append("The images are the model's own generations, so they measure its output diversity, not "
                    "the diversity of its training data.")
    if encoder.random:
        text.append("The encoder's weights are random: its distances tell images apart and know nothing about "
                    "concepts, so this run shows that the procedure runs end to end, not how diverse any "
                    "concept is.")
    return " ".join(text)


def _category_sentences(per_concept, encoder, said, numbers) -> list[str]:
    medians = category_medians(per_concept)
    values = ", ".join(f"{c} {v:.4f}" for c, v in medians.round(4).sort_values(kind="stable").items())
    text = [f"Embedded with {encoder.label}, the {len(per_concept)} concepts of this run rank by their "
            f"categories' medians {order_text(medians)} ({values}).", said]
    missing = [c for c in numbers["medians"] if c not in medians.index]
    if missing:
        text.append(f"These images have the categories {', '.join(medians.index)}; the paper's "
                    f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no counterpart here.")
    else:
        same = order_text(medians.loc[list(numbers["medians"])]) == numbers["order"]
        text.append("Over the paper's four categories this run's order is the paper's." if same else
                    "Over the paper's four categories this run's order is not the paper's.")
    return text


def _built_sentences(per_concept, encoder, said) -> list[str]:
    rigid, flexible = per_concept[per_concept["rigid"].astype(bool)], per_concept[~per_concept["rigid"].astype(bool)]
    listed = ", ".join(f"{r.concept} {r.diversity:.4f} ({_variants(r.variants)})"
                       for r in rigid.sort_values("diversity", kind="stable").itertuples())
    if len(rigid) > MAX_NAMED:
        listed = (f"the {len(rigid)} rigid concepts' median is {rigid['diversity'].median():.4f} (from "
                  f"{rigid['diversity'].min():.4f} to {rigid['diversity'].max():.4f})")
    if len(rigid) and len(flexible):
        if rigid["diversity"].max() < flexible["diversity"].min():
            how = "every rigid concept comes out less diverse than every flexible one"
        elif rigid["diversity"].median() < flexible["diversity"].median():
            how = "the rigid concepts' median comes out below the flexible ones', though not every rigid concept does"
        else:
            how = "the rigid concepts do not come out less diverse than the flexible ones"
        text = [f"Embedded with {encoder.label}, {how}: {listed}, against a median of "
                f"{flexible['diversity'].median():.4f} over the {len(flexible)} flexible concepts (drawn fresh in "
                "every image)."]
    else:
        kind = "rigid" if len(rigid) else "flexible"
        text = [f"Embedded with {encoder.label}, the {len(per_concept)} concepts of this run are all {kind}, so no "
                f"rigid concept stands beside a flexible one; their median diversity is "
                f"{per_concept['diversity'].median():.4f}."]
    check = variants_check(per_concept)
    if check["value"] is None:
        text.append(f"The rank correlation with the number of variants the world built is undefined over these "
                    f"{check['n']} concepts (it needs at least four, and more than one level of each).")
    else:
        verdict = _reading(check)
        verdict = f"measured diversity {verdict}" if check["verdict"] in READINGS else verdict
        text.append(f"Over its {check['n']} concepts ({check['levels']} levels of built diversity) the measured "
                    f"diversity's rank correlation with the number of variants each concept was built with is "
                    f"Spearman ρ = {_interval(check)}; by the book's rule: {verdict}.")
    table = counterparts(per_concept)
    stands = "; ".join(f"{c}: {', '.join(table.loc[c, 'concepts'])}" for c in table.index)
    text.append(said)
    if len(table):
        variants = per_concept.set_index("concept")["variants"]
        built = pd.Series({c: float(np.median([variants[n] for n in table.loc[c, "concepts"]])) for c in table.index})
        listed = ", ".join(f"{c} {'fresh' if math.isinf(v) else f'{v:g}'}" for c, v in built.items())
        follows = "follows" if _consistent(table["median"], built) else "does not follow"
        text.append(f"This world's counterparts ({stands}) rank {order_text(table['median'])}, which {follows} the "
                    f"variants it built them with (median variants: {listed}); that is evidence about the world and the encoder, not "
                    "about LAION, and on the encoder's own scale, so only orders compare with the paper's, not values.")
    missing = [c for c in PAPER_CATEGORIES if c not in table.index]
    if len(table) and missing:
        text.append(f"The world's concepts stand for the paper's {', '.join(table.index)}; "
                    f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no counterpart in it.")
    elif missing:
        text.append("None of the world's concepts stands for one of the paper's categories.")
    return text


def _consistent(measured: pd.Series, built: pd.Series, digits: int = 4) -> bool:
    """Whether every pair of categories built apart (fewer variants / more) is measured in that order."""
    m = measured.round(digits)
    return all(m[a] < m[b] for a in built.index for b in built.index if built[a] < built[b])


def _interval(check: dict) -> str:
    from .stats import interval_text

    return interval_text(check, "{:+.2f}")
