"""The statistics every chapter reports with its numbers, and the one verdict rule that reads them.

Each helper returns the structured fields ``value``, ``n``, ``ci``, ``p`` and ``test`` that
``Report.add(..., **fields)`` stores in the results JSON beside the printed string. Prompts are not
independent (both word orders of a pair, many prompts about one concept), so the unit is the
**cluster** (``clusters``: one label per observation — the concept a prompt is about, a control
pair, a fine-tune, a twin pair; None: every observation its own cluster). Each cluster is reduced
to its summary (the mean of its observations) and the 95% interval is a **t interval over the
cluster summaries**: Student's for one sample or paired changes, Welch's for two independent
samples, a clustered DeLong variance (Obuchowski 1997) for an area under the ROC curve, Fisher's z
(Bonett–Wright variance) for Spearman's ρ over units. ``value`` is the estimate at the centre of
that interval: every cluster weighs the same. The fields add ``method``, ``n_clusters``,
``per_cluster``, ``loo`` (the intervals with one cluster left out that come closest to undoing a
verdict either way) and ``detectable`` (the smallest effect, in the claim's units, that the rule
finds with 80% power at this cluster count and spread).

Why this method (the methods page, "Intervals, tests and verdicts", says it for readers): a
percentile bootstrap over three clusters is the range of their means (every resample on one cluster
has chance 1/27 > 2.5%), and it is decisive about a quarter of the time with no effect at all.
Student's t on cluster means is exact for normal cluster means and, with unequal cluster sizes
(normal means of unequal variances), conservative at this level (Bakirov & Székely 2006); Welch's
correction keeps two samples of unequal spread near nominal. ``benchmarks/verdict_calibration.py``
shows the rule's false-decisive rate and power by simulation at 3–20 clusters.

The verdict rule (`verdict`): a claim has a direction (the paper's effect lies above or below a
null) and a null (0 for a difference, chance per prompt for a share, the placebo's rate for an
intervention). It reads the 95% interval only, never a p-value:

- **not applicable** — the measurement is tied to Stable Diffusion's scale (a threshold) and the
  model is another one;
- **inconclusive: the intervention has no effect in this model** — the claim is about an
  intervention and its positive control failed (it could not do what the claim needs); **…: no
  positive control on this model family** where none can run;
- **underpowered (n concepts)** — a side has fewer than `MIN_CLUSTERS` clusters: no verdict can
  survive leaving one of them out;
- **reproduced** / **not reproduced** — the interval excludes the null on the paper's side / the
  other side, *and still does* with any one cluster left out;
- **inconclusive: rests on <cluster>** — decisive, but not without that cluster;
- **inconclusive** — otherwise.

A quality gate passes when its rate reaches the required level; its exact Clopper–Pearson interval
is printed beside it (`gate_passes`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats

ALPHA = 0.05
#: The power at which `detectable` states the smallest effect the rule finds.
POWER_TARGET = 0.8
#: Fewer prompts than this (in the smaller set) give no verdict: "inconclusive, too few".
MIN_N = 5
#: Fewer clusters than this on a side: "underpowered". A t interval needs two cluster summaries,
#: and a verdict must survive leaving any one out.
MIN_CLUSTERS = 3
#: Draws of the simulation behind `detectable`; above ``LARGE`` clusters a side it leaves none out.
POWER_DRAWS = 2000
LARGE = 40
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_APPLICABLE = ("reproduced", "not reproduced", "inconclusive",
                                                           "not applicable")
UNDERPOWERED = "underpowered"
RESTS_ON = "inconclusive: rests on"
NO_EFFECT = "inconclusive: the intervention has no effect in this model"
#: Values of a claim's power check (claims.csv): its positive control did what the claim needs, did
#: not, cannot run on this model family, or the claim is not about an intervention.
POWER = ("passed", "failed", "unavailable", "n/a")
NO_CONTROL = "inconclusive: no positive control on this model family"


def rate(hits: int, n: int) -> dict:
    """A rate ``hits / n`` with its Clopper–Pearson 95% interval (exact binomial; scipy)."""
    hits, n = int(hits), int(n)
    if n < 0 or not 0 <= hits <= max(n, 0):
        raise ValueError(f"a rate needs 0 ≤ hits ≤ n, got {hits}/{n}")
    if n == 0:
        return {"value": None, "n": 0, "ci": None, "hits": 0, "test": "rate"}
    ci = stats.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="exact")
    return {"value": hits / n, "n": n, "ci": [float(ci.low), float(ci.high)], "hits": hits, "test": "rate"}


def gate_passes(value, required) -> bool:
    """A quality gate passes when its rate ``value`` reaches ``required`` (the interval is shown
    beside it, not read: a gate is a description of the model, not a claim about the paper)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value >= required


# ------------------------------------------------------------------------------ t intervals over clusters


def _labels(x, clusters) -> np.ndarray:
    """One cluster label per observation, as text (each observation its own cluster when None)."""
    if clusters is None:
        return np.arange(len(x)).astype(str)
    labels = np.asarray([str(c) for c in clusters])
    if len(labels) != len(x):
        raise ValueError(f"{len(labels)} cluster labels for {len(x)} observations")
    return labels


def summaries(x, clusters=None) -> tuple[list[str], np.ndarray]:
    """The clusters' names (in order of appearance) and each one's mean of its observations."""
    x = np.asarray(x, float)
    labels = _labels(x, clusters)
    names = [str(name) for name in dict.fromkeys(labels)]
    return names, np.array([x[labels == name].mean() for name in names], float)


def _t_quantile(df) -> np.ndarray:
    return stats.t.ppf(1 - ALPHA / 2, df)


def _one_sample_bounds(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Student-t 95% bounds of the mean of the last axis of ``m`` (≥ 2 values)."""
    g = m.shape[-1]
    half = _t_quantile(g - 1) * m.std(-1, ddof=1) / math.sqrt(g)
    centre = m.mean(-1)
    return centre - half, centre + half


def _welch(va, ga, vb, gb):
    """Welch's standard error and Satterthwaite's degrees of freedom from the sides' variances."""
    qa, qb = va / ga, vb / gb
    se2 = qa + qb
    with np.errstate(divide="ignore", invalid="ignore"):
        df = se2 ** 2 / (qa ** 2 / (ga - 1) + qb ** 2 / (gb - 1))
    df = np.where(se2 > 0, df, ga + gb - 2)
    return np.sqrt(se2), df


def _two_sample_bounds(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch-t 95% bounds of mean(a) − mean(b) over the last axes (each side ≥ 2 values)."""
    se, df = _welch(a.var(-1, ddof=1), a.shape[-1], b.var(-1, ddof=1), b.shape[-1])
    centre = a.mean(-1) - b.mean(-1)
    half = _t_quantile(df) * se
    return centre - half, centre + half


def _pair(low, high) -> list[float]:
    return [float(low), float(high)]


def _loo_one(m: np.ndarray) -> np.ndarray:
    """Every leave-one-out copy of the 1-D ``m``: row j without value j."""
    g = len(m)
    return np.array([np.delete(m, j) for j in range(g)])


def _extremes(entries: list[dict]) -> dict | None:
    """Of the leave-one-out results, the one with the lowest lower bound and the one with the highest
    upper bound: a verdict above (below) the null survives every omission exactly when it survives
    those."""
    entries = [e for e in entries if e["ci"] is not None]
    if not entries:
        return None
    return {"low": min(entries, key=lambda e: e["ci"][0]), "high": max(entries, key=lambda e: e["ci"][1])}


def one_sample(x, clusters=None) -> dict:
    """The mean over clusters of each cluster's mean with its Student-t 95% interval (fields
    ``value``, ``ci``, ``method``, ``n_clusters``, ``per_cluster`` where clusters are named, ``loo``,
    ``detectable``)."""
    names, m = summaries(x, clusters)
    out = {"value": float(m.mean()) if len(m) else None, "ci": None, "n_clusters": len(m), "loo": None,
           "per_cluster": dict(zip(names, map(float, m))) if clusters is not None else None,
           "method": "Student t over cluster means"}
    if len(m) >= 2:
        out["ci"] = _pair(*_one_sample_bounds(m))
    if len(m) >= 3:
        loo = _loo_one(m)
        low, high = _one_sample_bounds(loo)
        out["loo"] = _extremes([{"cluster": name, "value": float(row.mean()), "ci": _pair(lo, hi)}
                                for name, row, lo, hi in zip(names, loo, low, high)])
    out["spread"] = [float(m.std(ddof=1)) if len(m) > 1 else 0.0]
    out["detectable"] = detectable((len(m),), out["spread"])
    return out


def two_sample(a, b, clusters=(None, None)) -> dict:
    """The mean of ``a``'s cluster summaries minus ``b``'s with its Welch-t 95% interval (fields as
    `one_sample`; ``n_clusters`` per side, ``per_cluster`` of ``a``)."""
    (na, ma), (nb, mb) = summaries(a, clusters[0]), summaries(b, clusters[1])
    named = len(mb) and clusters[0] is not None
    out = {"value": float(ma.mean() - mb.mean()) if len(ma) and len(mb) else None, "ci": None,
           "n_clusters": [len(ma), len(mb)], "loo": None, "method": "Welch t over cluster means",
           "per_cluster": {k: float(v - mb.mean()) for k, v in zip(na, ma)} if named else None}
    if len(ma) >= 2 and len(mb) >= 2:
        out["ci"] = _pair(*_two_sample_bounds(ma, mb))
    if len(ma) >= 3 and len(mb) >= 3:
        entries = []
        for names, a_side, b_side in ((na, _loo_one(ma), mb), (nb, ma, _loo_one(mb))):  # one left out of a, of b
            low, high = _two_sample_bounds(a_side, b_side)
            value = a_side.mean(-1) - b_side.mean(-1)
            entries += [{"cluster": n, "value": float(v), "ci": _pair(lo, hi)}
                        for n, v, lo, hi in zip(names, value, low, high)]
        out["loo"] = _extremes(entries)
    spread = lambda m: float(m.std(ddof=1)) if len(m) > 1 else 0.0
    out["spread"] = [spread(ma), spread(mb)]
    out["detectable"] = detectable((len(ma), len(mb)), out["spread"])
    return out


def detectable(sizes, spreads, draws: int = POWER_DRAWS) -> float | None:
    """The smallest effect the rule finds with `POWER_TARGET` power: decisive, and still decisive
    with any one cluster left out, when the cluster summaries are normal with the given per-side
    ``spreads`` (standard deviations) and ``sizes`` (cluster counts; one side: a one-sample design).
    Simulated: shifting every draw by δ shifts every bound by δ, so the answer is a quantile of the
    draws' worst lower bound; it scales with the spreads (simulated once per count and ratio of
    spreads, to the nearest 0.1). None when a side has fewer than `MIN_CLUSTERS` clusters or no spread
    was measured."""
    sizes, spreads = tuple(int(g) for g in sizes), tuple(float(s) for s in spreads)
    if min(sizes) < MIN_CLUSTERS or not any(s > 0 for s in spreads):
        return None
    scale = max(spreads)
    return scale * _unit_detectable(sizes, tuple(round(10 * s / scale) / 10 for s in spreads), draws)


@functools.lru_cache(maxsize=4096)
def _unit_detectable(sizes: tuple, spreads: tuple, draws: int) -> float:
    rng = np.random.default_rng(0)
    sides = [rng.standard_normal((draws, g)) * s for g, s in zip(sizes, spreads)]
    if min(sizes) > LARGE:  # one of many normal clusters hardly moves a bound: the plain interval
        low = _one_sample_bounds(sides[0])[0] if len(sides) == 1 else _two_sample_bounds(*sides)[0]
        return float(np.quantile(-low, POWER_TARGET))
    if len(sides) == 1:
        (m,) = sides
        worst = np.minimum(_one_sample_bounds(m)[0], _leave_each_out(m, lambda r: _one_sample_bounds(r)[0]))
    else:
        a, b = sides
        worst = np.minimum.reduce([_two_sample_bounds(a, b)[0],
                                   _leave_each_out(a, lambda r: _two_sample_bounds(r, b)[0]),
                                   _leave_each_out(b, lambda r: _two_sample_bounds(a, r)[0])])
    return float(np.quantile(-worst, POWER_TARGET))


def clusters_needed(effect: float, sizes: tuple, spreads: tuple, most: int = 200) -> int | None:
    """The fewest clusters g such that, with every side grown to at least g clusters, the rule finds
    ``effect`` with 80% power at these ``spreads`` (`detectable`); None when over ``most``."""
    if effect is None or not effect or not any(s > 0 for s in spreads):
        return None
    for g in range(max(MIN_CLUSTERS, min(sizes)), most + 1):
        found = detectable(tuple(max(n, g) for n in sizes), spreads, draws=1000)
        if found is not None and found <= abs(effect):
            return g
    return None


def _leave_each_out(m: np.ndarray, bound) -> np.ndarray:
    """The smallest of ``bound`` over the copies of the draws ``m`` [draws, g] with one column left out."""
    return np.min([bound(np.delete(m, j, axis=-1)) for j in range(m.shape[-1])], axis=0)


# ------------------------------------------------------------------------------ estimates


def difference(a, b, alternative: str = "greater", seed: int = 0, clusters=None) -> dict:
    """Mean of ``a`` minus mean of ``b`` (two independent samples, e.g. per-prompt DvD Scores of
    the benchmark and of the balanced set), each reduced to its cluster means (``clusters``: a pair
    of label sequences; None: every prompt its own cluster), with the Welch-t interval over them;
    the one-sided Mann–Whitney U p-value (``alternative``) over prompts is descriptive only."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("difference() takes two 1-D samples")
    out = {"value": None, "n": [len(a), len(b)], "ci": None, "p": None, "test": "difference"}
    if len(a) == 0 or len(b) == 0:
        return out
    out.update(two_sample(a, b, clusters or (None, None)))
    if len(a) > 1 and len(b) > 1:
        out["p"] = float(stats.mannwhitneyu(a, b, alternative=alternative).pvalue) if np.ptp(np.r_[a, b]) > 0 else 1.0
    if clusters is not None:
        out["test"] = "difference of cluster means"
    return out


def location(x, alternative: str = "less", seed: int = 0, clusters=None) -> dict:
    """Mean of one sample of paired changes, e.g. per-prompt attention change over an interval:
    each cluster's mean, then the Student-t interval of their mean; the one-sided Wilcoxon
    signed-rank p-value over prompts (``alternative``) is descriptive only."""
    x = np.asarray(x, float)
    out = {"value": None, "n": len(x), "ci": None, "p": None, "test": "location (mean)"}
    if len(x) == 0:
        return out
    out.update(one_sample(x, clusters))
    if len(x) > 1:
        out["p"] = _wilcoxon(x, alternative)
    if clusters is not None:
        out["test"] = "location (mean of cluster means)"
    return out


def _wilcoxon(x: np.ndarray, alternative: str) -> float:
    """The signed-rank p-value: exact for up to 50 distinct nonzero values, else the normal
    approximation (scipy's permutation fallback for ties costs seconds and informs no verdict)."""
    if not np.any(x != 0):
        return 1.0
    nonzero = x[x != 0]
    exact = len(x) <= 50 and len(nonzero) == len(x) and len(np.unique(np.abs(nonzero))) == len(nonzero)
    return float(stats.wilcoxon(x, alternative=alternative, method="exact" if exact else "approx").pvalue)


def within(ci, bounds) -> list | None:
    """An interval cut to the values a quantity can take (a share: [0, 1]); a t interval over few
    clusters can reach past them, and no verdict against a null inside them changes."""
    return None if ci is None or bounds is None else [min(max(v, bounds[0]), bounds[1]) for v in ci]


def shifted(result: dict, base: float) -> dict:
    """``result`` (about an excess over a per-prompt baseline) moved onto the rate's scale, its
    intervals cut to [0, 1]."""
    move = lambda v: None if v is None else v + base
    pair = lambda ci: None if ci is None else within([move(v) for v in ci], (0.0, 1.0))
    out = {**result, "value": move(result["value"]), "ci": pair(result["ci"]), "null": base,
           "per_cluster": {k: v + base for k, v in (result.get("per_cluster") or {}).items()}}
    if result.get("loo"):
        out["loo"] = {side: {**e, "value": move(e["value"]), "ci": pair(e["ci"])} for side, e in result["loo"].items()}
    return out


def chance_share(hits, chance, clusters=None, seed: int = 0) -> dict:
    """The share of prompts with a hit (e.g. the peak token spells the concept) against chance
    per prompt (e.g. the share of the prompt's content tokens that spell the concept): the excess
    (hit − chance) per prompt, averaged per cluster, with its t interval, shifted by the mean chance
    (``null``); so the interval excludes ``null`` exactly when the excess over chance excludes 0."""
    hits, chance = np.asarray(hits, float), np.asarray(chance, float)
    if hits.shape != chance.shape or hits.ndim != 1:
        raise ValueError("chance_share() takes one hit and one chance level per prompt")
    if len(hits) == 0:
        return {"value": None, "n": 0, "ci": None, "null": None, "test": "share vs chance"}
    excess = location(hits - chance, seed=seed, clusters=clusters)
    out = shifted(excess, float(chance.mean()))
    out.pop("p", None)
    return {**out, "hits": int(hits.sum()), "share": float(hits.mean()),
            "test": "share vs chance per prompt" + (" (cluster means)" if clusters is not None else "")}


def versus_placebo(effect, placebo, clusters=None, seed: int = 0) -> dict:
    """An intervention's rate against its placebo's on the same prompts and seeds: ``effect`` and
    ``placebo`` one 0/1 (or share) per prompt; the paired difference per prompt, averaged per
    cluster, with its t interval, shifted by the placebo's rate (``null``)."""
    out = chance_share(effect, placebo, clusters, seed)
    return {**out, "test": "rate vs placebo, paired per prompt" + (" (cluster means)" if clusters is not None else "")}


def _placements(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: for each ``a`` the share of ``b`` below it (ties half), for each
    ``b`` the share of ``a`` above it; both average to the AUC."""
    gt = (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])
    return gt.mean(1), gt.mean(0)


def auc(a, b, seed: int = 0, clusters=None) -> dict:
    """Area under the ROC curve of a score that should be higher in ``a`` (e.g. benchmark rows) than
    in ``b`` (control rows): P(a > b) + ½ P(a = b) = U / (n_a n_b), scale-free. 95% interval: the
    clustered DeLong variance (Obuchowski 1997: each side's placement values averaged per cluster)
    with Welch's degrees of freedom over the cluster counts, clipped to [0, 1]; the one-sided
    Mann–Whitney p over rows is descriptive (no effect: 0.5)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = {"value": None, "n": [len(a), len(b)], "ci": None, "p": None, "test": "AUC (Mann–Whitney)"}
    if len(a) == 0 or len(b) == 0:
        return out
    ca, cb = clusters or (None, None)
    la, lb = _labels(a, ca), _labels(b, cb)
    out.update(_clustered_auc(a, la, b, lb))
    if len(a) > 1 and len(b) > 1:
        out["p"] = float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)
    if clusters is not None:
        out["test"] = "AUC (clustered DeLong)"
    return out


def _auc_interval(a, la, b, lb) -> tuple[float, list | None, tuple, tuple]:
    va, vb = _placements(a, b)
    value = float(va.mean())
    _, sa = summaries(va, la)
    _, sb = summaries(vb, lb)
    if len(sa) < 2 or len(sb) < 2:
        return value, None, (len(sa), len(sb)), (0.0, 0.0)
    se, df = _welch(sa.var(ddof=1), len(sa), sb.var(ddof=1), len(sb))
    half = float(_t_quantile(df) * se)
    return value, [max(0.0, value - half), min(1.0, value + half)], (len(sa), len(sb)), (float(sa.std(ddof=1)),
                                                                                           float(sb.std(ddof=1)))


def _clustered_auc(a, la, b, lb) -> dict:
    value, ci, sizes, spreads = _auc_interval(a, la, b, lb)
    names_a = [str(n) for n in dict.fromkeys(la)]
    out = {"value": value, "ci": ci, "n_clusters": list(sizes), "method": "clustered DeLong (Obuchowski), Welch t",
           "per_cluster": {n: float(_placements(a[la == n], b)[0].mean()) for n in names_a}, "loo": None,
           "spread": list(spreads), "detectable": detectable(sizes, spreads)}
    if min(sizes) >= MIN_CLUSTERS:
        entries = []
        for name in names_a:
            keep = la != name
            v, c, _, _ = _auc_interval(a[keep], la[keep], b, lb)
            entries.append({"cluster": name, "value": v, "ci": c})
        for name in map(str, dict.fromkeys(lb)):
            keep = lb != name
            v, c, _, _ = _auc_interval(a, la, b[keep], lb[keep])
            entries.append({"cluster": name, "value": v, "ci": c})
        out["loo"] = _extremes(entries)
    return out


def spearman(x, y, labels=None) -> dict:
    """Spearman's ρ between ``x`` and ``y`` over units (each pair one unit, e.g. a fine-tune), with
    Fisher's z interval under Bonett and Wright's (2000) variance (1 + ρ²/2)/(n − 3), leave-one-out
    intervals, the smallest |ρ| found with 80% power and the units that would find this ρ (``needed``;
    normal approximation at n − 1 units)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    names = [str(v) for v in (labels if labels is not None else range(len(x)))]
    out = {"value": None, "n": len(x), "ci": None, "n_clusters": len(x), "loo": None, "detectable": None,
           "method": "Fisher z (Bonett–Wright)", "test": "Spearman ρ over units"}

    def rho_ci(xs, ys):
        if len(xs) < 4 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
            return None, None
        rho = float(stats.spearmanr(xs, ys).statistic)
        se = math.sqrt((1 + rho ** 2 / 2) / (len(xs) - 3))
        z = math.atanh(max(min(rho, 1 - 1e-12), -1 + 1e-12))
        q = stats.norm.ppf(1 - ALPHA / 2)
        return rho, [math.tanh(z - q * se), math.tanh(z + q * se)]

    out["value"], out["ci"] = rho_ci(x, y)
    if len(x) >= 5 and out["ci"] is not None:
        entries = []
        for j, name in enumerate(names):
            keep = np.arange(len(x)) != j
            v, c = rho_ci(x[keep], y[keep])
            entries.append({"cluster": name, "value": v, "ci": c})
        out["loo"] = _extremes(entries)
        m = len(x) - 1  # a verdict must survive one unit left out
        out["detectable"] = float(math.tanh(_Z_POWER * math.sqrt(1 / (m - 3))))
        out["needed"] = spearman_needed(out["value"])
    return out


_Z_POWER = float(stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER_TARGET))


def spearman_needed(rho) -> int | None:
    """The units with which `spearman`'s rule finds ``rho`` with 80% power, one of them left out:
    (z / atanh|ρ|)² + 3, plus one (normal approximation); None for ρ = 0 or undefined."""
    if rho is None or not rho or rho != rho:
        return None
    return int(math.ceil((_Z_POWER / math.atanh(min(abs(rho), 1 - 1e-12))) ** 2 + 3)) + 1


def cluster_mean(values, clusters, bounds: tuple | None = None) -> dict:
    """A mean (of scores, or of booleans: a share) over concepts, each concept weighing the same,
    with its t interval over the concepts' means (`one_sample`), cut to ``bounds`` (e.g. (0, 1) for
    a share, (0, 100) for a DvD Score) where given."""
    values = np.asarray(values, float)
    out = {"value": None, "n": len(values), "ci": None, "test": "mean over cluster means"}
    if len(values):
        out.update(one_sample(values, clusters))
        if bounds is not None:
            out["ci"] = within(out["ci"], bounds)
    return out


def clusters_of(rows, pair: bool = False) -> list[str]:
    """The cluster of each prompt-set row: its concept (``content``), or with ``pair`` its two
    concepts in alphabetical order, so both word orders of a pair form one cluster (the control
    sets, where neither concept plays a role of its own)."""
    if pair:
        return [" + ".join(sorted((str(c).lower(), str(n).lower()))) for c, n in zip(rows["content"], rows["nm_word"])]
    return [str(c).lower() for c in rows["content"]]


def interval_text(result: dict, fmt: str = "{:+.4g}") -> str:
    """"+0.0123 [+0.0051, +0.0190]": a result's estimate with its 95% interval (none: the estimate alone)."""
    if result.get("value") is None:
        return "—"

    def shown(v) -> str:  # a value that rounds to zero reads "+0.00", never "-0.00"
        text = fmt.format(v)
        return fmt.format(0.0) if text.lstrip("+-").strip("0.") == "" and text.startswith("-") else text

    ci = result.get("ci")
    return shown(result["value"]) + (f" [{shown(ci[0])}, {shown(ci[1])}]" if ci else "")


# ------------------------------------------------------------------------------ the verdict rule


def _side(ci, null) -> int:
    """+1 when ``ci`` lies above ``null``, −1 below, 0 when it contains it (or is missing)."""
    if ci is None or any(v is None or math.isnan(v) for v in ci):
        return 0
    low, high = sorted(ci)
    return 1 if low > null else -1 if high < null else 0


def verdict(ci, null: float = 0.0, direction: int = 1, power: str = "n/a", applies: bool = True,
            scale_bound: bool = False, n_clusters=None, loo: dict | None = None, unit: str = "concepts") -> str:
    """The rule (module docstring): the 95% interval ``ci`` against ``null`` for an effect expected
    on the ``direction`` side (+1 above, −1 below); ``power`` the positive control's outcome
    (`POWER`); ``scale_bound``: the measurement uses a threshold on another model's scale;
    ``n_clusters`` (one count or one per side) and ``loo`` (`one_sample`'s leave-one-out extremes)
    make a verdict that too few clusters, or one cluster, carry read as such; ``unit`` names the
    clusters in "underpowered (n concepts)"."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if power not in POWER:
        raise ValueError(f"power must be one of {POWER}, got {power!r}")
    if scale_bound:
        return NOT_APPLICABLE
    if power == "failed":
        return NO_EFFECT
    if power == "unavailable":
        return NO_CONTROL
    if not applies or null is None:
        return INCONCLUSIVE
    if n_clusters is not None and min(np.atleast_1d(n_clusters)) < MIN_CLUSTERS:
        n = int(min(np.atleast_1d(n_clusters)))
        return f"{UNDERPOWERED} ({n} {unit if n != 1 else unit.removesuffix('s')})"
    side = _side(ci, null)
    if side == 0:
        return INCONCLUSIVE
    if loo is not None:
        weakest = loo["low"] if side == 1 else loo["high"]
        if _side(weakest["ci"], null) != side:
            return f"{RESTS_ON} {weakest['cluster']}"
    return REPRODUCED if side == direction else NOT_REPRODUCED


def decide(result: dict, null: float | None = None, direction: int = 1, unit: str = "concepts", **rule) -> str:
    """`verdict` on a result of this module (its ``ci``, ``null``, ``n_clusters`` and ``loo``)."""
    null = result.get("null", 0.0) if null is None else null
    return verdict(result.get("ci"), null, direction, n_clusters=result.get("n_clusters"), loo=result.get("loo"),
                   unit=unit, applies=result.get("value") is not None, **rule)
