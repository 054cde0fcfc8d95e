"""Unselected prompts (the paper's ACCV version): does dominance hold on prompts that were never
chosen because they collapsed?

DominanceBench kept the candidates whose images collapsed under SD 1.4 on the ten seeds of the
authors' release (paper §2, §3.2: at least 7 of 10 DvD images); the unselected set writes
DominanceBench's own concepts and objects into fixed templates and keeps every prompt. Comparing
the two (and the balanced control) asks how much of DominanceBench's DvD comes from that selection.
Scored again on the seeds that selected it, DominanceBench keeps the luck of those seeds too
(regression to the mean), so it is also scored on **fresh seeds** (`fresh_seeds`) that selected
nothing: selection seeds − fresh seeds is the selection effect, and benchmark − unselected on the
fresh seeds is the comparison free of it.

Prompts that share a concept are not independent (the concept is what dominates), so the unit of
every interval here is the **concept** (`dvdlib.stats`: t intervals over cluster means). Two sets
written from the same concepts are **paired by concept**: each concept's mean on one side minus its
mean on the other, then the mean of those differences with its Student-t interval over concepts
(`paired_by_concept`); sets with no concept in common (the balanced control, whose unit is its pair
of concepts) are two independent samples of cluster means (`dvdlib.stats.difference`, Welch's t).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd

from . import stats
from .dvd import per_prompt

#: The prompt sets compared, by the role a world gives them, in the order tables show them.
ROLES = ("unselected", "benchmark", "balanced")
#: The two seed sets: the profile's seeds (the ones that selected DominanceBench under ``paper``)
#: and the fresh seeds that selected nothing; the ``seeds`` column of `scores`.
SELECTION, FRESH = "selection", "fresh"
#: The recipe of the default fresh seeds: ``random.Random(FRESH_RECIPE).randint(1, 10000)`` in turn,
#: skipping the selection seeds and repeats. The paper's ten seeds are the same draws from
#: ``random.Random(42)`` (paper §2); 43 is the next generator. Its first ten draws are
#: 632, 4688, 2359, 7579, 6061, 1578, 7426, 9811, 8164, 9978.
FRESH_RECIPE = 43


def fresh_seeds(selection, seeds=None) -> list[int]:
    """Seeds that did not select DominanceBench: ``seeds`` when given (an error when one of them is
    a selection seed), else as many as ``selection`` drawn by `FRESH_RECIPE`.

    The **selection seeds** are the profile's seeds: under ``paper`` (and ``smoke``, the first two
    of them) the ten seeds of the authors' release, 1825, 410, 4507, 4013, 3658, 2287, 1680, 8936,
    1425, 9675 (paper §2), the seeds on which SD 1.4's images decided which candidates entered
    DominanceBench (paper §3.2). Under ``toy`` they are the same ten, but the toy benchmark was never
    filtered on them, so there the selection effect is a placebo (expected 0)."""
    selection = [int(s) for s in selection]
    if seeds is None:
        draw, out = random.Random(FRESH_RECIPE), []
        while len(out) < len(selection):
            s = draw.randint(1, 10000)
            if s not in selection and s not in out:
                out.append(s)
        return out
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"fresh seeds must be distinct and at least one, got {seeds}")
    shared = sorted(set(seeds) & set(selection))
    if shared:
        raise ValueError(f"fresh seeds {shared} are selection seeds (the profile's {selection}): "
                         "fresh seeds must be seeds that did not select the benchmark")
    return seeds


def min_images(n_images: int, min_share: float) -> int:
    """The inclusion rule's count: at least ``min_share`` of ``n_images`` (7 of 10, paper §3.2)."""
    return math.ceil(round(min_share * n_images, 9))


def prompt_sets(run, n: int | None = None) -> pd.DataFrame:
    """The unselected, benchmark and balanced sets of ``run``'s world (at most ``n`` rows each), in
    one table: ``set``, ``case_num`` prefixed by the set ("unselected:12"), ``cluster`` (the set's
    own ``cluster`` column, else the concept, `dvdlib.stats.clusters_of`: for the balanced control
    the pair, both word orders together; lower case, so that one concept is one label in every set)
    and ``template`` (``template_id`` or ``template``, else the set's name). The balanced set's
    ``content_type`` becomes "balanced"."""
    tables = []
    for role in ROLES:
        table = run.prompts(role, n, tokenize=False)
        table = table.assign(content_type="balanced") if role == "balanced" else table
        cluster = (table["cluster"].astype(str).str.lower() if "cluster" in table else
                   stats.clusters_of(table, pair=role == "balanced"))
        tables.append(table.assign(
            set=role, case_num=role + ":" + table["case_num"].astype(str), cluster=cluster,
            template=(table["template_id"] if "template_id" in table else
                      table["template"].astype(str) if "template" in table else role)))
    return pd.concat(tables, ignore_index=True)


def set_table(sets: pd.DataFrame, same: bool) -> pd.DataFrame:
    """Per set and category: prompts, concepts and templates (`prompt_sets`), the unselected set and
    the benchmark once where they are the same prompts (`once`)."""
    return once(sets, same).groupby(["set", "content_type"], sort=False).agg(
        prompts=("prompt", "size"), concepts=("cluster", "nunique"), templates=("template", "nunique"))


def shared_prompts(sets: pd.DataFrame, a: str = "unselected", b: str = "benchmark") -> int:
    """How many distinct prompts of set ``a`` occur in set ``b`` too."""
    return len(set(sets.prompt[sets.set == a]) & set(sets.prompt[sets.set == b]))


def identical(sets: pd.DataFrame, a: str = "unselected", b: str = "benchmark") -> bool:
    """Whether sets ``a`` and ``b`` are the same prompts (the toy world's: its benchmark analogue was
    never filtered either), so that comparing them on the same seeds gives 0 by construction."""
    pa, pb = set(sets.prompt[sets.set == a]), set(sets.prompt[sets.set == b])
    return bool(pa) and pa == pb


def generate_and_judge(run, sets: pd.DataFrame, models, fresh) -> pd.DataFrame:
    """`dvdlib.dvd.generate_and_judge` of every set on the profile's seeds (``seeds`` "selection"),
    and of the benchmark set on the ``fresh`` seeds too ("fresh"), one model at a time: one
    judged-image table with ``model`` and ``seeds`` columns. Images and answers are the store's
    (keyed by prompt and seed), so nothing is made twice."""
    P, judged = run.profile, []
    benchmark = sets[sets.set == "benchmark"]
    for name in models:
        run.generate(sets.prompt.unique(), P.seeds, model=name)
        run.generate(benchmark.prompt.unique(), fresh, model=name)
        judged += [run.judge_dvd(sets, P.seeds, model=name).assign(model=name, seeds=SELECTION),
                   run.judge_dvd(benchmark, fresh, model=name).assign(model=name, seeds=FRESH)]
    return pd.concat(judged, ignore_index=True)


#: How each (set, seeds) is named in figures, in the order tables and figures show them.
GROUPS = {("unselected", SELECTION): "unselected", ("benchmark", SELECTION): "benchmark, selection seeds",
          ("benchmark", FRESH): "benchmark, fresh seeds", ("balanced", SELECTION): "balanced"}


def scores(images: pd.DataFrame, sets: pd.DataFrame, tau: float) -> pd.DataFrame:
    """Per model, seed set and prompt-set row: mean DvD and DvD images (`dvdlib.dvd.per_prompt`),
    with the row's ``set``, ``cluster`` and ``template``, the ``seeds`` it was scored on and its
    ``group`` (`GROUPS`). Images without a ``seeds`` column count as the selection seeds."""
    images = images if "seeds" in images else images.assign(seeds=SELECTION)
    per = pd.concat([per_prompt(g, tau).assign(model=m, seeds=s)
                     for (m, s), g in images.groupby(["model", "seeds"], sort=False)], ignore_index=True)
    out = per.merge(sets[["case_num", "set", "cluster", "template"]], on="case_num")
    return out.assign(group=[GROUPS.get((a, s), f"{a}, {s} seeds") for a, s in zip(out.set, out.seeds)])


# ------------------------------------------------------------------------------ comparisons


def per_concept_differences(a, a_clusters, b, b_clusters) -> tuple[pd.Series, int]:
    """Each concept of both sides: the mean of its ``a`` values minus the mean of its ``b`` values
    (a Series, concept → difference, in ``a``'s order), and how many concepts only one side has
    (left out: a concept is compared with itself, never with another)."""
    mean = lambda v, c: pd.Series(np.asarray(v, float)).groupby(np.asarray([str(x) for x in c]), sort=False).mean()
    ma, mb = mean(a, a_clusters), mean(b, b_clusters)
    shared = [c for c in ma.index if c in mb.index]
    return (ma[shared] - mb[shared]).rename("difference"), len(set(ma.index) ^ set(mb.index))


def paired_by_concept(a, a_clusters, b, b_clusters, alternative: str = "greater") -> dict:
    """Mean of ``a`` minus mean of ``b`` where the two sides share concepts: the per-concept
    differences (`per_concept_differences`), then their mean with its Student-t 95% interval over
    concepts (`dvdlib.stats.location`); a concept's own level cancels. Fields of
    `dvdlib.report.Report.add`: ``value``, ``ci``, ``n_clusters`` (concepts compared), ``method``,
    ``loo``, ``detectable``, ``per_cluster``, ``n`` (prompts per side), ``concepts_left_out``,
    ``test``; the Wilcoxon p over concepts (``alternative``) is descriptive only."""
    diffs, left_out = per_concept_differences(a, a_clusters, b, b_clusters)
    out = stats.location(diffs.to_numpy(), alternative=alternative, clusters=list(diffs.index))
    return {**out, "n": [len(a), len(b)], "concepts_left_out": left_out,
            "test": "mean of per-concept differences (paired by concept), Student t over concepts"}


def independent(a, a_clusters, b, b_clusters, alternative: str = "greater") -> dict:
    """Mean of ``a`` minus mean of ``b`` for sets with no concept in common: each side's cluster
    means, Welch's t interval (`dvdlib.stats.difference` with clusters)."""
    out = stats.difference(np.asarray(a, float), np.asarray(b, float), alternative=alternative,
                           clusters=(list(a_clusters), list(b_clusters)))
    return {**out, "test": "difference of cluster means (independent sets), Welch t over concepts "
                           "(the balanced control's clusters: pairs of concepts)"}


def compare(a: pd.DataFrame, b: pd.DataFrame, alternative: str = "greater") -> dict:
    """``a``'s mean DvD minus ``b``'s (rows of `scores`): `paired_by_concept` when they share a
    concept, else `independent`."""
    if set(a.cluster) & set(b.cluster):
        return paired_by_concept(a.dvd, a.cluster, b.dvd, b.cluster, alternative)
    return independent(a.dvd, a.cluster, b.dvd, b.cluster, alternative)


#: The comparisons of `selection_gaps`: key → (quantity, short name, (set, seeds) of a, (set, seeds) of b).
COMPARISONS = {
    "selection_effect": ("benchmark mean DvD, selection seeds − fresh seeds (the selection effect)",
                         "selection effect: benchmark, selection − fresh seeds", ("benchmark", SELECTION), ("benchmark", FRESH)),
    "selection_gap": ("mean DvD, benchmark on fresh seeds − unselected", "benchmark (fresh seeds) − unselected",
                      ("benchmark", FRESH), ("unselected", SELECTION)),
    "selection_gap_selection_seeds": ("mean DvD, benchmark on selection seeds − unselected",
                                      "benchmark (selection seeds) − unselected",
                                      ("benchmark", SELECTION), ("unselected", SELECTION)),
    "unselected_vs_balanced": ("mean DvD, unselected − balanced", "unselected − balanced",
                               ("unselected", SELECTION), ("balanced", SELECTION)),
}
#: The comparisons that set the benchmark against the unselected set (none where they are the same prompts).
VERSUS_UNSELECTED = ("selection_gap", "selection_gap_selection_seeds")


def selection_gaps(table: pd.DataFrame, model: str, same_prompts: bool = False) -> dict[str, dict]:
    """Under ``model``, the differences of mean DvD that answer the selection-bias question, each
    with its 95% interval over concepts (`COMPARISONS`; `compare`): the **selection effect**
    (DominanceBench on the seeds that selected it − on fresh seeds: regression to the mean, paired
    by prompt and so by concept), **benchmark − unselected** on fresh seeds (what selecting
    collapsed prompts added, the headline) and on the selection seeds (that, plus the selection
    effect), and **unselected − balanced** (whether dominance holds without selection). With
    ``same_prompts`` (`identical` sets) the benchmark − unselected comparisons are left out."""
    rows = table[table.model == model]
    side = lambda key: rows[(rows.set == key[0]) & (rows.seeds == key[1])]
    return {key: compare(side(a), side(b)) for key, (_, _, a, b) in COMPARISONS.items()
            if not (same_prompts and key in VERSUS_UNSELECTED)}


def report_gaps(report, gaps: dict[str, dict], paper: str) -> None:
    """Record each comparison of ``gaps`` (`selection_gaps`) with its fields for the verdict rule;
    one left out there (the sets are the same prompts) has no row: `scope` says so once."""
    for key, (quantity, *_) in COMPARISONS.items():
        if key in gaps:
            report.add(key, quantity + " [95% CI over concepts]", paper, describe(gaps[key]), **gaps[key])


def describe(d: dict) -> str:
    """A difference with its interval: "+12.3 [+4.5, +20.1]"."""
    return stats.interval_text(d, "{:+.1f}")


def gap_table(gaps: dict[str, dict]) -> pd.DataFrame:
    """The comparisons of `selection_gaps` as a table: estimate [95% CI], the concepts compared
    (paired; with those only one side has, left out) or the clusters per side (independent), the
    smallest effect the rule would find with 80% power, and how the interval was made."""
    rows = []
    for key, d in gaps.items():
        k, paired = d.get("n_clusters"), "concepts_left_out" in d
        if paired:
            count = f"{k} paired" + (f" ({d['concepts_left_out']} on one side only, left out)" if d["concepts_left_out"] else "")
        else:
            count = " vs ".join(map(str, k)) if isinstance(k, (list, tuple)) else str(k)
        rows.append({"comparison": COMPARISONS[key][1], "mean DvD difference [95% CI]": describe(d), "concepts": count,
                     "detectable (80% power)": "—" if d.get("detectable") is None else f"{d['detectable']:.1f}",
                     "interval": "per-concept differences, Student t" if paired else "cluster means, Welch t"})
    return pd.DataFrame(rows).set_index("comparison")


# ------------------------------------------------------------------------------ tables and figures


def rule_shares(table: pd.DataFrame, min_share: float) -> pd.DataFrame:
    """Per model, set and seed set: prompts, concepts, mean DvD and the share of prompts meeting the
    inclusion rule (at least ``min_share`` of their images DvD images), each a mean over concepts
    with its 95% t interval over them (`dvdlib.stats.cluster_mean`)."""
    rows = []
    for (model, name, seeds), g in table.groupby(["model", "set", "seeds"], sort=False):
        need = g.images.map(lambda n: min_images(n, min_share))
        rows.append({"model": model, "set": name, "seeds": seeds, "prompts": len(g), "concepts": g.cluster.nunique(),
                     "mean DvD over concepts [95% CI]": stats.interval_text(stats.cluster_mean(g.dvd, g.cluster, (0, 100)), "{:.1f}"),
                     "rule": f"≥ {need.iloc[0]} of {g.images.iloc[0]}",
                     "meets the rule, share over concepts [95% CI]":
                         stats.interval_text(stats.cluster_mean(g.dvd_images >= need, g.cluster, (0, 1)), "{:.0%}")})
    return _in_order(pd.DataFrame(rows)).set_index(["model", "set", "seeds"])


def report_by_model(report, shares: pd.DataFrame, paper: str) -> None:
    """Record the unselected set's mean DvD and share meeting the rule per model (`rule_shares`, on
    the selection seeds), with ``paper`` (what the paper reports) beside them."""
    per_model = {m: shares.loc[(m, "unselected", SELECTION)] for m in shares.index.unique("model")}
    for key, quantity, column in (("unselected_mean_by_model", "mean DvD over concepts per model",
                                   "mean DvD over concepts [95% CI]"),
                                  ("unselected_rule_by_model", "share meeting the rule, per model",
                                   "meets the rule, share over concepts [95% CI]")):
        report.add(key, f"unselected: {quantity} [95% CI]", paper,
                   "; ".join(f"{m}: {row[column]}" for m, row in per_model.items()))


#: The name of the unselected set where it is the benchmark set too (`identical`), in tables and figures.
ONE_SET = "unselected = benchmark"


def once(frame: pd.DataFrame, same: bool) -> pd.DataFrame:
    """``frame`` (columns or index levels ``set`` and, where it has one, ``seeds``) with the
    unselected set and the benchmark shown once where they are the same prompts (``same``:
    `identical`), so that no row or box repeats another: the benchmark's rows on the selection seeds
    (all of them, without a ``seeds`` level) are left out and both sets are named `ONE_SET`, a
    ``group`` column with them ("unselected = benchmark, fresh seeds"); unchanged otherwise."""
    if not same:
        return frame
    indexed = "set" in frame.index.names
    flat = frame.reset_index() if indexed else frame
    seeds = flat["seeds"] if "seeds" in flat else SELECTION
    flat = flat[~((flat["set"] == "benchmark") & (seeds == SELECTION))]
    flat = flat.assign(set=flat["set"].replace({"unselected": ONE_SET, "benchmark": ONE_SET}))
    if "group" in flat:
        named = flat["set"] == ONE_SET
        flat = flat.assign(group=flat["group"].where(~named, ONE_SET + ", " + flat["seeds"] + " seeds"))
    return flat.set_index(list(frame.index.names)) if indexed else flat


def _in_order(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (with ``model``, ``set``, ``seeds``) by model (first seen first), then as `GROUPS`
    (`ONE_SET` where the unselected set on those seeds would be)."""
    rank = {key: i for i, key in enumerate(GROUPS)}
    rank.update({(ONE_SET, SELECTION): rank[("unselected", SELECTION)], (ONE_SET, FRESH): rank[("benchmark", FRESH)]})
    models = {m: i for i, m in enumerate(dict.fromkeys(rows.model))}
    key = [(models[m], rank.get((a, s), len(rank))) for m, a, s in zip(rows.model, rows.set, rows.seeds)]
    return rows.iloc[sorted(range(len(rows)), key=key.__getitem__)]


def by_template(table: pd.DataFrame, min_images: int) -> pd.DataFrame:
    """Per model (when several are compared), set, category and template: prompts, mean and
    median DvD, share meeting the rule."""
    keys = (["model"] if table.model.nunique() > 1 else []) + ["set", "content_type", "template"]
    grouped = table.groupby(keys, sort=False)
    out = grouped.agg(**{"prompts": ("dvd", "size"), "mean DvD": ("dvd", "mean"), "median DvD": ("dvd", "median")})
    out["share meeting the rule"] = grouped.dvd_images.apply(lambda d: (d >= min_images).mean())
    return out.round({"mean DvD": 1, "median DvD": 1, "share meeting the rule": 2}).rename_axis(
        index={"content_type": "category"})


def category_labels(table: pd.DataFrame, order, by: str = "group") -> list[str]:
    """Each category's axis label with its prompt count per ``by`` value present in it (in the
    table's order): "landmark\\n(n = 8 each)", "balanced\\n(n = 12)", "artist\\n(n = 2 / 3)"; n
    counts prompts (one point each), as the prompt-set table counts them, never images or concepts."""
    groups = list(dict.fromkeys(table[by]))
    labels = []
    for c in order:
        counts = [int(((table.content_type == c) & (table[by] == g)).sum()) for g in groups]
        counts = [k for k in counts if k]
        text = (f"n = {counts[0]} each" if len(counts) > 1 and len(set(counts)) == 1 else
                "n = " + " / ".join(map(str, counts)) if counts else "n = 0")
        labels.append(f"{c}\n({text})")
    return labels


def category_figure(table: pd.DataFrame, order, title: str):
    """Per-prompt DvD by category (`dvdlib.plots.dvd_by_category`, paper §3.2's figure for the ACCV
    sets), one colour per ``group`` of one model's `scores` (a set on a seed set; pass it through
    `once` where two sets are the same prompts), each category labelled with its prompts per group."""
    from . import plots

    table = _in_order(table)
    fig = plots.dvd_by_category(table.assign(model=table.group), order=order)
    ax = fig.axes[0]
    ax.set_xticks(range(len(order)), category_labels(table, order))
    ax.set_title(title, fontsize=10)
    width, height = fig.get_size_inches()
    fig.set_size_inches(max(width, 6.0), height + 0.5)  # the legend under the axes, whose width it leaves whole
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ what the page says


def scope(sets: pd.DataFrame, same: bool) -> str:
    """The paragraph under the chapter's opening (ACCV version, `identical`): the comparisons this
    run makes, or, where the unselected set and the benchmark are the same prompts (``same``), that
    those comparing them do not apply in this world and what the page measures instead."""
    count = {role: sets.prompt[sets.set == role].nunique() for role in ROLES}
    if same:
        return ("**Not applicable in this world: DominanceBench against the unselected set.** Here the two are the "
                f"same {count['unselected']} prompts: the unselected set was never filtered by what the model draws, "
                "so neither was this benchmark, and on the same seeds the two differ by 0 by construction. This page "
                f"shows them once, as *{ONE_SET}*, and leaves every comparison of the two out. It measures the "
                f"unselected set against the balanced control ({count['balanced']} prompts), and the set on the "
                "profile's seeds against fresh seeds: a placebo here, since no seed selected anything (0 expected).")
    shared = shared_prompts(sets)
    common = f"{shared} prompts in common" if shared else "no prompt in common"
    return (f"This run compares the three sets: the unselected set ({count['unselected']} prompts), DominanceBench "
            f"({count['benchmark']} prompts; {common} with the unselected set) on the profile's seeds and on fresh "
            f"seeds, and the balanced control ({count['balanced']} prompts).")


def overlap(sets: pd.DataFrame, same: bool) -> str:
    """The sentence under the prompt-set table: how many unselected prompts the benchmark holds too."""
    if same:
        return f"The benchmark set is the unselected set here, so the table shows it once, as *{ONE_SET}*."
    n, shared = sets.prompt[sets.set == "unselected"].nunique(), shared_prompts(sets)
    return (f"{shared} of the {n} unselected prompts are benchmark prompts too." if shared else
            f"The benchmark set holds none of the {n} unselected prompts.")


#: What each comparison of `COMPARISONS` asks, as the page lists it (`comparisons`).
ASKS = {"selection_effect": "**selection effect** (DominanceBench on the selection seeds − on fresh seeds): how much "
                            "of its score is the luck of the seeds that chose it",
        "selection_gap": "**benchmark − unselected on fresh seeds** (the headline): what choosing collapsed prompts "
                         "added, free of that luck",
        "selection_gap_selection_seeds": "**benchmark − unselected on the selection seeds**: the same with the "
                                         "selection effect in it",
        "unselected_vs_balanced": "**unselected − balanced**: whether dominance holds on prompts nobody chose; an "
                                  "interval above zero says the concepts dominate without selection"}


def comparisons(gaps: dict[str, dict]) -> str:
    """The comparisons this run makes (the keys of ``gaps``) in one sentence, in `COMPARISONS`' order."""
    items = [ASKS[key] for key in COMPARISONS if key in gaps]
    return "This run's comparisons: " + "; ".join(items) + "."


#: How a verdict of the book's one rule (`dvdlib.stats.verdict`) opens its sentence, as chapter 09 words it.
OPENINGS = {"reproduced": "Reproduced", "not reproduced": "Against the paper's direction",
            "inconclusive": "Inconclusive", "underpowered": "Underpowered"}
#: The same rule on a difference the paper states no direction for (what selection added).
SIDES = {"reproduced": "its interval lies above 0", "not reproduced": "its interval lies below 0"}


def _reading(d: dict) -> tuple[str, str]:
    """The rule's verdict on a difference against 0 (`dvdlib.stats.decide`, the effect expected above
    0) as (kind, why): kind a key of `OPENINGS`, why the reason for a verdict that does not decide."""
    v = stats.decide(d, null=0.0, direction=1, unit="concepts")
    kind = next(k for k in ("not reproduced", "reproduced", "inconclusive", "underpowered") if v.startswith(k))
    if v.startswith(stats.UNDERPOWERED):
        sides = [str(int(k)) for k in np.atleast_1d(d["n_clusters"])]
        count = (f"{' vs '.join(sides)} clusters" if len(sides) > 1 else
                 f"{sides[0]} concept" + ("" if sides[0] == "1" else "s"))
        return kind, (f"{count}, and a verdict needs at least {stats.MIN_CLUSTERS} a side, so that it survives "
                      "leaving any one out")
    if v.startswith(stats.RESTS_ON):
        return kind, f"its interval excludes 0, but not with {v[len(stats.RESTS_ON):].strip()} left out"
    if kind == "inconclusive":
        power = ("" if d.get("detectable") is None else
                 f"; at this spread the rule finds a difference of ±{d['detectable']:.1f} with 80% power")
        return kind, "its interval includes 0" + power
    return kind, ""


def this_run(gaps: dict[str, dict], shares: pd.DataFrame, model: str, profile, same: bool) -> str:
    """The closing paragraph (paper's ACCV version) from this run's comparisons ``gaps``
    (`selection_gaps` under ``model``) and ``shares`` (`rule_shares`): the unselected set against the
    balanced control read as the paper's claim by the book's one rule, the differences the paper
    states no direction for by the same rule's sides, the unselected set's level per model, that the
    paper releases no results for these sets, and what the profile lets them say."""
    said = [f"Under `{model}` (differences of mean DvD, 95% intervals over concepts; the book's one rule decides "
            "only where an interval excludes 0 with any one concept left out too):"]
    if "unselected_vs_balanced" in gaps:
        kind, why = _reading(gaps["unselected_vs_balanced"])
        said.append(f"**{OPENINGS[kind]}:** the paper's claim that dominance holds on prompts nobody chose, the "
                    f"unselected set minus the balanced control: {describe(gaps['unselected_vs_balanced'])}"
                    + (f" — {why}." if why else "."))
    for key, what in (("selection_gap", "DominanceBench on fresh seeds minus the unselected set (what selection "
                                        "added)"),
                      ("selection_gap_selection_seeds", "the same on the selection seeds"),
                      ("selection_effect", "the selection effect (DominanceBench on the selection seeds minus on "
                                           "fresh seeds" + ("; a placebo here, 0 expected)" if same else ")"))):
        if key in gaps:
            kind, why = _reading(gaps[key])
            said.append(f"{what[0].upper() + what[1:]}: {describe(gaps[key])} — {SIDES.get(kind, f'{kind}: {why}')}.")
    said.append(_levels(shares))
    said.append("The paper releases no results for these sets, so no paper number stands beside these.")
    said.append(_profile_reading(profile, model))
    return " ".join(said)


def _levels(shares: pd.DataFrame) -> str:
    """The unselected set's mean DvD and share meeting the inclusion rule (`rule_shares`), per model."""
    models = list(shares.index.unique("model"))
    parts = [(f"under `{m}` " if len(models) > 1 else "") + f"{row['mean DvD over concepts [95% CI]']} mean DvD, "
             f"{row['meets the rule, share over concepts [95% CI]']} of its prompts meeting the inclusion rule"
             for m in models for row in [shares.loc[(m, "unselected", SELECTION)]]]
    return "On the unselected set (means over concepts, 95% intervals): " + "; ".join(parts) + "."


def _profile_reading(profile, model: str) -> str:
    """What a profile lets this chapter's readings say."""
    name, world = getattr(profile, "name", str(profile)), getattr(profile, "world", "")
    if name == "smoke":
        return ("Under `smoke` the model and the judge have random weights: these readings show that the procedure "
                "runs end to end, and nothing about the paper.")
    if world in ("toy", "toy2"):
        return "These are readings of the toy world's model, not of Stable Diffusion."
    return f"These are readings of `{model}` under the profile `{name}`."
