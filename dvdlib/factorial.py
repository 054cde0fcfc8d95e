"""Three concepts in one prompt: the 2×2×2 factorial (the paper's ACCV version, §3.10 there).

Each of three slots holds a low-diversity named concept (1) or an ordinary object (0); matched
case k keeps the same concept and object per slot across the eight conditions. Per image, each
target is **present** when at least ``present_at`` of its five presence questions are answered
Yes (the concept's group for a named concept, the object group for an object; open choice,
default 3 of 5: a majority).

Effects are contrasts of presence computed **within each matched case**, for each slot's target:
the main effect of every slot's homogeneity (its own and the others'), the three two-way
interactions and the three-way interaction (effect codes ±1, each contrast Σ code · mean / 4).

**The unit of inference: crossed clusters.** Cases are not independent: in the authors' set each
named concept and each object of a slot appears in three of the thirty cases, and a case shares its
slot-1 items with two cases, its slot-2 items with two others and its slot-3 items with two more.
Every case is thus in one cluster of each of several *crossed* (not nested) factors — per slot its
named concept and its object, and its template (`case_clusters`, `row_clusters`). A mean over cases
(or prompts) gets its 95% interval from `crossed_mean`:

- the **multi-way cluster-robust variance** of Cameron, Gelbach & Miller (2011): by inclusion–
  exclusion over every set of factors, V = Σ (−1)^(|S|+1) V_S, where V_S is the one-way
  cluster-robust variance of the mean clustered on the intersection of the factors in S (with the
  small-sample factor G/(G−1); one-way with equal cluster sizes, it is exactly the Student-t
  variance over cluster means of `dvdlib.stats.one_sample`);
- **scaled for its bias**, computed from the design: every term's residuals share the grand mean,
  which leaves E[V] about 10% below the variance of the mean at the factorial's counts; V is
  divided by the smallest ratio E[V] / Var(mean) over the variance components (each factor's and
  the units' own), so that its expectation is at least the variance under any mix of them;
- **floored at the largest one-way variance**, the units' own (Student's t over units) included
  (CGM 2011 fall back on a one-way variance when theirs is not positive; here the floor always
  applies): the inclusion–exclusion difference is noisy when the case-level noise dominates (it
  can even be negative), and no one-way variance may be undercut;
- a **t interval with G − 1 degrees of freedom, G the smallest factor's cluster count** (CGM's
  recommendation): when one factor carries all the variation, the interval is about the
  Student-t interval over that factor's cluster means.

Why not the alternatives at these counts: an interval over cases as if independent excludes a true
null 22–27% of the time when the concepts vary (simulated at the factorial's 30 cases);
aggregating to one factor's cluster means leaves the other factors' sharing between those means
(two artists' means that share a landmark are correlated) and understates the variance; Owen's
(2007) pigeonhole bootstrap over three sparse factors of three cases per cluster overstates the
factors' variance about twofold and the case-level noise about fivefold. Simulated with no effect
(20,000 draws each), this rule excludes the null 1.5–4.7% of the time at the factorial's 30 cases
(10 clusters per slot; case-level noise only: 1.5%; one factor: 4.6%; three equal factors: 4.5%;
heavy-tailed factors: 3.5–3.8%) and 4.5–4.7% over its 240 prompts (each slot's target and the
template crossed); CGM's variance as it is (no scale, no floor) gives 5.6–7.1% at 30 cases, the
floor without the scale 5.5% with three equal factors (`tests/test_factorial_clusters.py` repeats
the check).

Factors that do not vary, factors whose clusters are single units (the unit level, already in the
sum) and repeats of another factor's partition (in the authors' set a slot's concept and object
always travel together) are dropped; with no factor left, units are independent and the interval
is Student's t over units.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from .stats import detectable, shifted

SLOTS = (1, 2, 3)
#: The effects estimated for each slot's target: three main effects, three two-way interactions and
#: the three-way interaction.
THREE_WAY = "×".join(f"h{j}" for j in SLOTS)
EFFECTS = (tuple(f"h{j}" for j in SLOTS) + tuple(f"h{a}×h{b}" for a, b in itertools.combinations(SLOTS, 2))
           + (THREE_WAY,))
ALPHA = 0.05
METHOD = ("t over crossed clusters: multi-way cluster-robust variance (Cameron–Gelbach–Miller), bias-scaled, "
          "floored at the largest one-way variance; G−1 df of the smallest factor")


def presence(yes_counts, present_at: int = 3) -> np.ndarray:
    """Present (bool) per image from the Yes count (0–5) of its target's five questions."""
    return np.asarray(yes_counts) >= present_at


def _codes(condition: str) -> dict[str, float]:
    """Effect codes (±1) of a condition "101": each slot's, and their products for the interactions."""
    h = {j: 2 * int(bit) - 1 for j, bit in zip(SLOTS, condition)}
    codes = {f"h{j}": h[j] for j in SLOTS}
    codes.update({f"h{a}×h{b}": h[a] * h[b] for a, b in itertools.combinations(SLOTS, 2)})
    codes[THREE_WAY] = math.prod(h.values())
    return codes


def case_contrasts(table: pd.DataFrame) -> pd.DataFrame:
    """Per matched case, slot and effect, the contrast of presence.

    ``table``: one row per image with ``case``, ``condition`` ("000" … "111") and ``present_1``,
    ``present_2``, ``present_3`` (bool or 0/1). Condition means are taken first (so seeds weigh
    alike in every condition); a main effect is mean(h = 1) − mean(h = 0), an interaction half the
    difference of the simple effects (the three-way: half the difference of the h1×h2 interaction
    at h3 = 1 and at h3 = 0), as in any 2^k design. Every case must have all 8 conditions."""
    need = {"case", "condition", *(f"present_{k}" for k in SLOTS)}
    missing = need - set(table.columns)
    if missing:
        raise ValueError(f"the factorial table needs columns {sorted(need)}; missing {sorted(missing)}")
    means = table.groupby(["case", "condition"])[[f"present_{k}" for k in SLOTS]].mean()
    counts = means.groupby(level="case").size()
    if (counts != 8).any():
        raise ValueError(f"every matched case needs all 8 conditions; incomplete: {counts[counts != 8].to_dict()}")
    codes = pd.DataFrame([_codes(c) for c in means.index.get_level_values("condition")], index=means.index)
    rows = []
    for k in SLOTS:
        for effect in EFFECTS:
            weighted = (means[f"present_{k}"] * codes[effect]).groupby(level="case").sum() / 4
            rows += [{"case": case, "slot": k, "effect": effect, "contrast": v} for case, v in weighted.items()]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ crossed clusters


def _template(rows: pd.DataFrame) -> pd.Series:
    return rows["template_id"].astype(str) if "template_id" in rows else pd.Series("", index=rows.index)


def row_clusters(rows: pd.DataFrame) -> pd.DataFrame:
    """Per design row (same index): the crossed clusters its prompt belongs to — each slot's target
    (``slot k``: "artist: van gogh", "object: mug") and the template (``template``)."""
    out = {f"slot {k}": rows[f"target{k}_type"].astype(str) + ": " + rows[f"target{k}"].astype(str) for k in SLOTS}
    return pd.DataFrame({**out, "template": _template(rows)}, index=rows.index)


def case_clusters(rows: pd.DataFrame) -> pd.DataFrame:
    """Per matched case (index ``case``): the crossed clusters a within-case contrast belongs to —
    per slot its named concept (``slot k named``) and its object (``slot k object``), and its
    template. A case whose slot never holds one of them gets "" there."""
    out = {}
    template = _template(rows)
    for case, group in rows.groupby("case", sort=False):
        labels = {"template": " + ".join(sorted(set(template[group.index])))}
        for k in SLOTS:
            for bit, part in ((1, "named"), (0, "object")):
                held = group.loc[group[f"target{k}_homogeneity"].astype(int) == bit]
                names = held[f"target{k}_type"] + ": " + held[f"target{k}"]
                labels[f"slot {k} {part}"] = " + ".join(sorted(set(names)))
        out[case] = labels
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("case")


Factor = tuple  # (name, integer codes 0..G−1 per unit, a name per cluster)


def _canonical(codes: np.ndarray) -> np.ndarray:
    """Codes renumbered 0, 1, … in order of first appearance (equal partitions get equal codes)."""
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.ravel()]


def _factors(clusters, n: int) -> list[Factor]:
    """A table of cluster labels (one column per factor, one row per unit) as factors."""
    if clusters is None:
        return []
    out = []
    for name in clusters.columns:
        labels = clusters[name].astype(str).to_numpy()
        levels, codes = np.unique(labels, return_inverse=True)
        names = [level if ": " in level else f"{name}: {level}" for level in levels]
        codes = codes.ravel()
        canon = _canonical(codes)
        order = np.empty(len(levels), dtype=np.int64)
        order[canon] = codes
        out.append((name, canon, [names[i] for i in order]))
    return out


def _informative(factors: list[Factor], keep=None) -> list[Factor]:
    """The factors (restricted to the units ``keep``) that carry information: factors with one
    cluster, or with a unit per cluster (the unit level, already in the sum), and repeats of an
    earlier factor's partition are dropped (a repeat's cluster names are joined to the kept one's)."""
    kept: dict[bytes, Factor] = {}
    for name, codes, names in factors:
        if keep is not None:
            present = np.unique(codes[keep])
            codes, names = codes[keep], names
            names = [names[i] for i in present]
            codes = np.searchsorted(present, codes)
        g = codes.max() + 1 if len(codes) else 0
        if g < 2 or g == len(codes):
            continue
        canon = _canonical(codes)
        order = np.empty(g, dtype=np.int64)
        order[canon] = codes
        names = [names[i] for i in order]
        key = canon.tobytes()
        if key in kept:
            first, kept_codes, kept_names = kept[key]
            kept[key] = (first, kept_codes, [f"{a} + {b}" for a, b in zip(kept_names, names)])
        else:
            kept[key] = (name, canon, names)
    return list(kept.values())


def _one_way(resid: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Cluster-robust variance of a mean (CR1: G/(G−1) Σ_g (Σ_{i∈g} r_i)² / N²) over the last axis."""
    g, n = codes.max() + 1, resid.shape[-1]
    sums = resid @ np.eye(g)[codes]
    return g / (g - 1) * (sums ** 2).sum(-1) / n ** 2


def _terms(parts: list[Factor], n: int) -> list[tuple[int, np.ndarray]]:
    """The inclusion–exclusion terms: (sign, cluster codes of the factors' intersection) per
    non-empty set of factors whose intersection has at least two clusters."""
    terms = []
    for size in range(1, len(parts) + 1):
        for subset in itertools.combinations(range(len(parts)), size):
            joint = np.zeros(n, dtype=np.int64)
            for i in subset:
                codes = parts[i][1]
                joint = np.unique(joint * (codes.max() + 1) + codes, return_inverse=True)[1].ravel()
            if joint.max() > 0:
                terms.append(((-1) ** (size + 1), joint))
    return terms


def _bias_scale(parts: list[Factor], terms, n: int) -> float:
    """1 / min over variance components c (each factor's and the units' own) of E[V]/Var(mean)
    under that component alone: dividing the inclusion–exclusion variance V by it makes its
    expectation at least the variance of the mean under any mix of the components (the terms'
    residuals share the grand mean, which leaves V about 10% short at the factorial's counts).
    0 when V is blind to some component (then the one-way floor alone is used).

    Under component c alone (unit effects shared within c's clusters, variance 1), a term
    clustered on g has E[Σ_g (Σ_{i∈g} r_i)²] = ‖Z_gᵀ (I − J/n) Z_c‖², and Var(mean) = Σ_c n_c² / n²."""
    ratios = []
    for c in [codes for _, codes, _ in parts] + [np.arange(n)]:
        gc = c.max() + 1
        size_c = np.bincount(c, minlength=gc).astype(float)
        truth = (size_c ** 2).sum() / n ** 2
        expected = 0.0
        for sign, joint in terms:
            g = joint.max() + 1
            size_g = np.bincount(joint, minlength=g).astype(float)
            shared = np.bincount(joint * gc + c, minlength=g * gc).astype(float)  # units in g ∩ c
            norm = ((shared ** 2).sum() - 2 * (size_g[joint] * size_c[c]).sum() / n
                    + (size_g ** 2).sum() * (size_c ** 2).sum() / n ** 2)
            expected += sign * g / (g - 1) * norm / n ** 2
        ratios.append(expected / truth)
    worst = min(ratios)
    return 1 / worst if worst > 1e-9 else 0.0


def _bounds(y: np.ndarray, parts: list[Factor]):
    n = y.shape[-1]
    if not parts:  # independent units: Student's t over them
        parts = [("unit", np.arange(n), [])]
    terms = _terms(parts, n)
    resid = y - y.mean(-1, keepdims=True)
    one_way = np.max([_one_way(resid, codes) for _, codes, _ in parts] + [_one_way(resid, np.arange(n))], axis=0)
    total = sum(sign * _one_way(resid, joint) for sign, joint in terms)
    se = np.sqrt(np.maximum(_bias_scale(parts, terms, n) * total, one_way))
    g = int(min(codes.max() + 1 for _, codes, _ in parts))
    half = stats.t.ppf(1 - ALPHA / 2, g - 1) * se
    centre = y.mean(-1)
    return centre - half, centre + half, se, g - 1, g


def crossed_bounds(values, clusters=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """The module's interval for the mean over the last axis of ``values`` (one row per
    simulation, or 1-D): lower and upper 95% bounds, standard error, degrees of freedom and the
    number of clusters G of the smallest factor. ``clusters``: a table with one column per factor
    and one row per unit (None: units independent)."""
    y = np.asarray(values, float)
    return _bounds(y, _informative(_factors(clusters, y.shape[-1])))


def crossed_mean(values, clusters=None) -> dict:
    """The mean of ``values`` over units (every unit weighs the same; NaN units left out) with its
    95% interval over crossed clusters (module docstring), in the fields of `dvdlib.stats`:
    ``value``, ``ci``, ``n`` (units), ``n_clusters`` (G of the smallest factor), ``clusters``
    (each factor's cluster count), ``method``, ``loo`` (of the intervals with one cluster of any
    factor left out, the lowest lower and the highest upper bound, as `dvdlib.stats.verdict`
    reads them), ``detectable`` (`dvdlib.stats.detectable` for G clusters with this standard
    error), ``p`` (two-sided, the same t statistic against 0; descriptive) and ``test``."""
    y = np.asarray(values, float)
    keep = ~np.isnan(y)
    y = y[keep]
    table = None if clusters is None else pd.DataFrame(clusters).iloc[np.flatnonzero(keep)].reset_index(drop=True)
    factors = _factors(table, len(y))
    parts = _informative(factors)
    out = {"value": float(y.mean()) if len(y) else None, "ci": None, "n": int(len(y)), "p": None,
           "n_clusters": int(len(y)), "clusters": {name: int(codes.max() + 1) for name, codes, _ in parts},
           "loo": None, "detectable": None, "method": METHOD if parts else "Student t over units",
           "test": "mean over units, crossed clusters"}
    if len(y) < 2:
        return out
    low, high, se, df, g = _bounds(y, parts)
    out.update(ci=[float(low), float(high)], n_clusters=g)
    se = float(se)
    out["p"] = float(2 * stats.t.sf(abs(y.mean()) / se, df)) if se > 0 else float(y.mean() == 0)
    if g >= 3:
        entries = []
        for _, codes, names in parts or [("unit", np.arange(len(y)), [f"unit {i + 1}" for i in range(len(y))])]:
            for level, name in enumerate(names):
                rest = codes != level
                if rest.sum() >= 2:
                    lo, hi, *_ = _bounds(y[rest], _informative(factors, rest))
                    entries.append({"cluster": name, "value": float(y[rest].mean()), "ci": [float(lo), float(hi)]})
        if entries:
            out["loo"] = {"low": min(entries, key=lambda e: e["ci"][0]), "high": max(entries, key=lambda e: e["ci"][1])}
        out["detectable"] = detectable((g,), (se * math.sqrt(g),))
    return out


def crossed_chance_share(hits, chance, clusters=None) -> dict:
    """The share of units with a hit (the first-step peak on a slot) against chance per unit (the
    share of the prompt's content tokens that spell that slot's target), as
    `dvdlib.stats.chance_share` but over crossed clusters: the excess (hit − chance) per unit, its
    `crossed_mean` interval, shifted by the mean chance (``null``); the interval excludes ``null``
    exactly when the excess over chance excludes 0."""
    hits, chance = np.asarray(hits, float), np.asarray(chance, float)
    if hits.shape != chance.shape or hits.ndim != 1:
        raise ValueError("crossed_chance_share() takes one hit and one chance level per unit")
    keep = ~(np.isnan(hits) | np.isnan(chance))
    if not keep.any():
        return {"value": None, "n": 0, "ci": None, "null": None, "n_clusters": 0, "method": METHOD,
                "test": "share vs chance per prompt, crossed clusters"}
    hits, chance = hits[keep], chance[keep]
    table = None if clusters is None else pd.DataFrame(clusters).iloc[np.flatnonzero(keep)].reset_index(drop=True)
    excess = crossed_mean(hits - chance, table)
    return {**shifted(excess, float(chance.mean())), "hits": int(hits.sum()), "share": float(hits.mean()),
            "test": "share vs chance per prompt, crossed clusters"}


def interval(result: dict, fmt: str = "{:.2f}") -> str:
    """"0.42 [0.31, 0.55]": an estimate with its interval ("—" when there is none)."""
    if result.get("value") is None:
        return "—"
    ci = result.get("ci")
    return fmt.format(result["value"]) + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")


# ------------------------------------------------------------------------------ the factorial's tables


EFFECT_COLUMNS = ["slot", "effect", "estimate", "ci_low", "ci_high", "p", "n_cases", "n_clusters", "method"]


def effects(table: pd.DataFrame, clusters: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per slot and effect: mean contrast over cases (`case_contrasts`) with its `crossed_mean`
    95% interval, the same t statistic's two-sided p (descriptive), the number of cases and of
    clusters (smallest factor). ``clusters``: `case_clusters` of the design (None: cases independent)."""
    if table.empty:  # a world that cannot run the design
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    contrasts = case_contrasts(table)
    rows = []
    for (slot, effect), group in contrasts.groupby(["slot", "effect"], sort=False):
        labels = None if clusters is None else clusters.loc[group["case"]].reset_index(drop=True)
        r = crossed_mean(group["contrast"].to_numpy(), labels)
        low, high = r["ci"] or (np.nan, np.nan)
        rows.append({"slot": slot, "effect": effect, "estimate": r["value"], "ci_low": low, "ci_high": high,
                     "p": np.nan if r["p"] is None else r["p"], "n_cases": r["n"], "n_clusters": r["n_clusters"],
                     "method": r["method"]})
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def survivors(table: pd.DataFrame) -> pd.DataFrame:
    """Share of images in which 0, 1, 2 or 3 targets are present, per condition."""
    if table.empty:
        return pd.DataFrame(columns=range(4)).rename_axis(columns="targets present")
    present = table[[f"present_{k}" for k in SLOTS]].astype(bool).sum(axis=1)
    shares = pd.crosstab(table["condition"], present, normalize="index")
    return shares.reindex(columns=range(4), fill_value=0.0).rename_axis(columns="targets present")
