"""Unselected prompts (the paper's ACCV version): does dominance hold on prompts that were never
chosen because they collapsed?

DominanceBench kept the candidates whose images collapsed under SD 1.4 (paper §3.2); the
unselected set writes DominanceBench's own concepts and objects into fixed templates and keeps
every prompt. Comparing the two (and the balanced control) asks how much of DominanceBench's DvD
comes from that selection. Prompts that share a concept are not independent (the concept is what
dominates), so every interval here resamples **concepts** (a cluster bootstrap: draw concepts with
replacement, keep all of a drawn concept's prompts), never single prompts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .dvd import per_prompt

#: The prompt sets compared, by the role a world gives them, in the order tables show them.
ROLES = ("unselected", "benchmark", "balanced")


def prompt_sets(run, n: int | None = None) -> pd.DataFrame:
    """The unselected, benchmark and balanced sets of ``run``'s world (at most ``n`` rows each), in
    one table: ``set``, ``case_num`` prefixed by the set ("unselected:12"), ``cluster`` (the set's
    own ``cluster`` column, else the concept, `dvdlib.stats.clusters_of`: for the balanced control
    the pair, both word orders together) and ``template`` (``template_id`` or
    ``template``, else the set's name). The balanced set's ``content_type`` becomes "balanced"."""
    tables = []
    for role in ROLES:
        table = run.prompts(role, n, tokenize=False)
        table = table.assign(content_type="balanced") if role == "balanced" else table
        tables.append(table.assign(
            set=role, case_num=role + ":" + table["case_num"].astype(str),
            cluster=table["cluster"] if "cluster" in table else stats.clusters_of(table, pair=role == "balanced"),
            template=(table["template_id"] if "template_id" in table else
                      table["template"].astype(str) if "template" in table else role)))
    return pd.concat(tables, ignore_index=True)


def shared_prompts(sets: pd.DataFrame, a: str = "unselected", b: str = "benchmark") -> int:
    """How many distinct prompts of set ``a`` occur in set ``b`` too."""
    return len(set(sets.prompt[sets.set == a]) & set(sets.prompt[sets.set == b]))


def scores(images: pd.DataFrame, sets: pd.DataFrame, tau: float) -> pd.DataFrame:
    """Per model and prompt-set row: mean DvD and DvD images (`dvdlib.dvd.per_prompt`), with the
    row's ``set``, ``cluster`` and ``template``."""
    per = pd.concat([per_prompt(g, tau).assign(model=m) for m, g in images.groupby("model", sort=False)],
                    ignore_index=True)
    return per.merge(sets[["case_num", "set", "cluster", "template"]], on="case_num")


def _joint_means(values, clusters, pool, draws) -> np.ndarray:
    """Resampled means of one set when ``draws`` index concepts of ``pool`` (a concept the set lacks
    adds nothing to it)."""
    sums = pd.DataFrame({"v": np.asarray(values, float), "c": np.asarray(clusters)}).groupby("c").v.agg(["sum", "size"])
    sums = sums.reindex(pool, fill_value=0)
    return sums["sum"].to_numpy()[draws].sum(1) / np.maximum(sums["size"].to_numpy()[draws].sum(1), 1)


def cluster_difference(a, a_clusters, b, b_clusters, seed: int = 0) -> dict:
    """Mean of ``a`` minus mean of ``b`` with a 95% cluster-bootstrap interval over concepts, and
    the structured fields of `dvdlib.report.Report.add` (``value``, ``n`` prompts, ``clusters``,
    ``ci``, ``test``). Sets that share concepts (DominanceBench and the unselected set are written
    from the same ones) are resampled **jointly**: one draw of concepts, each drawn concept bringing
    its prompts of both sets, so a concept's own level cancels. Sets with no concept in common (the
    balanced control) are resampled independently (`dvdlib.stats.difference` with clusters)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    shared = set(a_clusters) & set(b_clusters)
    counts = {"clusters": [len(set(a_clusters)), len(set(b_clusters))]}
    if not shared:
        out = stats.difference(a, b, clusters=(list(a_clusters), list(b_clusters)))
        return {**out, **counts, "test": "difference of means, cluster bootstrap over concepts"}
    out = {"value": None, "n": [len(a), len(b)], **counts, "ci": None,
           "test": "difference of means, cluster bootstrap over concepts (drawn jointly for both sets)"}
    if len(a) and len(b):
        out["value"] = float(a.mean() - b.mean())
        pool = sorted(set(a_clusters) | set(b_clusters), key=str)
        draws = np.random.default_rng(seed).integers(len(pool), size=(stats.N_RESAMPLES, len(pool)))
        resampled = _joint_means(a, a_clusters, pool, draws) - _joint_means(b, b_clusters, pool, draws)
        out["ci"] = [float(v) for v in np.percentile(resampled, [2.5, 97.5])]
    return out


def cluster_mean(values, clusters) -> dict:
    """A mean (of scores, or of booleans: a share) with its 95% cluster-bootstrap interval over
    concepts (`dvdlib.stats.cluster_interval`; None with a single concept)."""
    values = np.asarray(values, float)
    out = {"value": None, "n": len(values), "clusters": len(set(clusters)), "ci": None,
           "test": "mean, cluster bootstrap over concepts"}
    if len(values):
        out["value"] = float(values.mean())
        labels = np.asarray([str(c) for c in clusters])  # stats.cluster_interval matches labels as text
        out["ci"] = stats.cluster_interval([(values, labels)], np.mean)
    return out


def _format(d: dict, fmt: str) -> str:
    if d["value"] is None:
        return "—"
    text = fmt.format(d["value"])
    return text + (f" [{fmt.format(d['ci'][0])}, {fmt.format(d['ci'][1])}]" if d.get("ci") else "")


def rule_shares(table: pd.DataFrame, min_images: int) -> pd.DataFrame:
    """Per model and set: prompts, concepts, mean DvD and the share of prompts meeting the
    inclusion rule (at least ``min_images`` DvD images), each with its 95% interval over concepts."""
    rows = []
    for (model, name), g in table.groupby(["model", "set"], sort=False):
        rows.append({"model": model, "set": name, "prompts": len(g), "concepts": g.cluster.nunique(),
                     "mean DvD [95% CI]": _format(cluster_mean(g.dvd, g.cluster), "{:.1f}"),
                     f"meets the rule (≥ {min_images} DvD images) [95% CI]":
                         _format(cluster_mean(g.dvd_images >= min_images, g.cluster), "{:.0%}")})
    return pd.DataFrame(rows).set_index(["model", "set"])


def by_template(table: pd.DataFrame, min_images: int) -> pd.DataFrame:
    """Per model (when several are compared), set, category and template: prompts, mean and
    median DvD, share meeting the rule."""
    keys = (["model"] if table.model.nunique() > 1 else []) + ["set", "content_type", "template"]
    grouped = table.groupby(keys, sort=False)
    out = grouped.agg(**{"prompts": ("dvd", "size"), "mean DvD": ("dvd", "mean"), "median DvD": ("dvd", "median")})
    out["share meeting the rule"] = grouped.dvd_images.apply(lambda d: (d >= min_images).mean())
    return out.round({"mean DvD": 1, "median DvD": 1, "share meeting the rule": 2}).rename_axis(
        index={"content_type": "category"})


def selection_gaps(table: pd.DataFrame, model: str) -> dict[str, dict]:
    """Under ``model``, the two differences of mean per-prompt DvD that answer the selection-bias
    question, each with its interval over concepts: ``benchmark − unselected`` (what selection
    added) and ``unselected − balanced`` (whether dominance holds without selection)."""
    rows = table[table.model == model]
    side = {name: rows[rows.set == name] for name in ROLES}
    return {f"{a}_minus_{b}": cluster_difference(side[a].dvd, side[a].cluster, side[b].dvd, side[b].cluster)
            for a, b in (("benchmark", "unselected"), ("unselected", "balanced"))}


def describe(d: dict) -> str:
    """A difference with its interval: "+12.3 [+4.5, +20.1]"."""
    return _format(d, "{:+.1f}")
