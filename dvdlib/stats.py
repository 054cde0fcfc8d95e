"""The statistics every chapter reports with its numbers, and the one verdict rule that reads them.

Each helper returns the structured fields ``value``, ``n``, ``ci``, ``p`` and ``test`` that
``Report.add(..., **fields)`` stores in the results JSON beside the printed string; given
``clusters`` (one label per observation: the concept a prompt is about, both word orders of a pair
together, or a fine-tune), the 95% interval comes from a bootstrap over **clusters** and the fields
add ``n_clusters``, ``per_cluster`` (the estimate within each cluster) and ``without`` (the
estimate and interval without the one cluster whose removal moves the estimate most).

The verdict rule (`verdict`; the book states it once, on its methods page, "Intervals, tests and
verdicts"). A claim has a direction (the paper's effect lies above or below a null) and a null:
0 for a difference, the chance level per prompt for a share (`chance_share`), the placebo's rate for
an intervention (`versus_placebo`). It reads the 95% interval only, never a p-value:

- **not applicable** — the measurement is tied to Stable Diffusion's scale (a threshold) and the
  model is another one; the scale-free result is reported instead;
- **inconclusive: the intervention has no effect in this model** — the claim is about an
  intervention and its positive control (the strongest version of the intervention) changed no
  image;
- **reproduced** — the interval excludes the null on the paper's side;
- **not reproduced** — the interval excludes the null on the other side;
- **inconclusive** — otherwise: the interval contains the null, or there is no interval, or
  fewer than `MIN_N` prompts.

A quality gate passes when its interval's lower bound reaches the required level (`gate_passes`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05
#: Fewer prompts than this (in the smaller set) give no verdict: "inconclusive, too few".
MIN_N = 5
N_RESAMPLES = 2000
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_APPLICABLE = ("reproduced", "not reproduced", "inconclusive",
                                                           "not applicable")
NO_EFFECT = "inconclusive: the intervention has no effect in this model"
#: Values of a claim's power check (claims.csv): its positive control changed images, changed
#: none, or the claim is not about an intervention.
POWER = ("passed", "failed", "n/a")


def rate(hits: int, n: int) -> dict:
    """A rate ``hits / n`` with its Clopper–Pearson 95% interval (exact binomial; scipy)."""
    hits, n = int(hits), int(n)
    if n < 0 or not 0 <= hits <= max(n, 0):
        raise ValueError(f"a rate needs 0 ≤ hits ≤ n, got {hits}/{n}")
    if n == 0:
        return {"value": None, "n": 0, "ci": None, "hits": 0, "test": "rate"}
    ci = stats.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="exact")
    return {"value": hits / n, "n": n, "ci": [float(ci.low), float(ci.high)], "hits": hits, "test": "rate"}


def gate_passes(ci_low, required) -> bool:
    """A quality gate passes when the lower bound of its rate's 95% interval reaches ``required``."""
    return ci_low is not None and not (isinstance(ci_low, float) and math.isnan(ci_low)) and ci_low >= required


# ------------------------------------------------------------------------------ the cluster bootstrap


def _labels(x, clusters) -> np.ndarray:
    """One cluster label per observation (each observation its own cluster when None)."""
    if clusters is None:
        return np.arange(len(x)).astype(str)
    labels = np.asarray([str(c) for c in clusters])
    if len(labels) != len(x):
        raise ValueError(f"{len(labels)} cluster labels for {len(x)} observations")
    return labels


def _groups(x: np.ndarray, labels: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    labels = np.asarray(labels).astype(str)  # any label type; named as text
    names = list(dict.fromkeys(labels))
    return names, [x[labels == name] for name in names]


def _resample(groups: list[np.ndarray], rng, n: int) -> list[np.ndarray]:
    """``n`` bootstrap samples: the clusters drawn with replacement, each with all its observations."""
    picks = rng.integers(0, len(groups), size=(n, len(groups)))
    return [np.concatenate([groups[i] for i in row]) for row in picks]


def _percentile(values) -> list | None:
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], float)
    if len(values) == 0:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def cluster_interval(samples: list[tuple[np.ndarray, np.ndarray]], statistic, seed: int = 0) -> list | None:
    """Percentile-bootstrap 95% interval of ``statistic(*arrays)`` over ``samples``, each a pair
    (values, cluster labels); every sample resamples its own clusters (a stratified bootstrap, the
    samples independent). None when a sample has a single cluster (nothing to resample)."""
    grouped = [_groups(np.asarray(x, float), np.asarray(c)) for x, c in samples]
    if any(len(g) < 2 for _, g in grouped):
        return None
    rng = np.random.default_rng(seed)
    draws = [_resample(g, rng, N_RESAMPLES) for _, g in grouped]
    return _percentile([statistic(*arrays) for arrays in zip(*draws)])


def _cluster_fields(samples, statistic, seed, per_cluster_of: int = 0) -> dict:
    """``n_clusters``, ``per_cluster`` (the statistic within each cluster of sample
    ``per_cluster_of``, the other samples whole) and ``without`` (estimate and interval without the
    cluster whose removal moves the estimate most)."""
    labels = [np.asarray(c).astype(str) for _, c in samples]  # any label type; named as text
    names = list(dict.fromkeys(labels[per_cluster_of]))
    full = float(statistic(*(np.asarray(x, float) for x, _ in samples)))

    def restricted(keep):
        parts = [(np.asarray(x, float)[keep], c[keep]) if i == per_cluster_of else (np.asarray(x, float), c)
                 for i, ((x, _), c) in enumerate(zip(samples, labels))]
        return parts

    per_cluster = {}
    for name in names:
        parts = restricted(labels[per_cluster_of] == name)
        per_cluster[name] = float(statistic(*(x for x, _ in parts)))
    out = {"n_clusters": [len(set(c)) for c in labels] if len(samples) > 1 else len(names),
           "per_cluster": per_cluster, "without": None}
    if len(names) > 2:
        drops = {}
        for name in names:
            parts = restricted(labels[per_cluster_of] != name)
            drops[name] = float(statistic(*(x for x, _ in parts)))
        most = max(drops, key=lambda k: abs(drops[k] - full))
        parts = restricted(labels[per_cluster_of] != most)
        out["without"] = {"cluster": most, "value": drops[most], "ci": cluster_interval(parts, statistic, seed)}
    return out


# ------------------------------------------------------------------------------ estimates


def difference(a, b, alternative: str = "greater", seed: int = 0, clusters=None) -> dict:
    """Mean of ``a`` minus mean of ``b`` (two independent samples, e.g. per-prompt DvD Scores of
    the benchmark and of the balanced set). 95% interval: a bootstrap over ``clusters`` (a pair of
    label sequences, one per sample; None: every prompt its own cluster), each sample resampled
    on its own; the one-sided Mann–Whitney U p-value (``alternative``) is descriptive only."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("difference() takes two 1-D samples")
    ca, cb = (None, None) if clusters is None else clusters
    out = {"value": None, "n": [len(a), len(b)], "ci": None, "p": None, "test": "difference"}
    if len(a) == 0 or len(b) == 0:
        return out
    mean_gap = lambda x, y: float(np.mean(x) - np.mean(y))
    out["value"] = mean_gap(a, b)
    samples = [(a, _labels(a, ca)), (b, _labels(b, cb))]
    if len(a) > 1 and len(b) > 1:
        if np.ptp(np.r_[a, b]) > 0:
            out["ci"] = cluster_interval(samples, mean_gap, seed)
            out["p"] = float(stats.mannwhitneyu(a, b, alternative=alternative).pvalue)
        else:
            out["ci"], out["p"] = [0.0, 0.0], 1.0
    if clusters is not None:
        out.update(_cluster_fields(samples, mean_gap, seed), test="difference (cluster bootstrap)")
    return out


def location(x, alternative: str = "less", statistic: str = "mean", seed: int = 0, clusters=None) -> dict:
    """Mean (or median) of one sample of paired changes, e.g. per-prompt attention change over an
    interval. 95% interval: a bootstrap over ``clusters`` (None: every prompt its own); the
    one-sided Wilcoxon signed-rank p-value against zero (``alternative``) is descriptive only."""
    x = np.asarray(x, float)
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    f = np.mean if statistic == "mean" else np.median
    out = {"value": None, "n": len(x), "ci": None, "p": None, "test": f"location ({statistic})"}
    if len(x) == 0:
        return out
    out["value"] = float(f(x))
    samples = [(x, _labels(x, clusters))]
    if len(x) > 1:
        if np.any(x != 0):
            out["ci"] = cluster_interval(samples, f, seed) if np.ptp(x) > 0 else [float(x[0])] * 2
            out["p"] = float(stats.wilcoxon(x, alternative=alternative).pvalue)
        else:
            out["ci"], out["p"] = [0.0, 0.0], 1.0
    if clusters is not None:
        out.update(_cluster_fields(samples, f, seed), test=f"location ({statistic}, cluster bootstrap)")
    return out


def chance_share(hits, chance, clusters=None, seed: int = 0) -> dict:
    """The share of prompts with a hit (e.g. the peak token spells the concept) against chance
    per prompt (e.g. the share of the prompt's content tokens that spell the concept): ``value``
    the observed share, ``null`` the mean chance, ``ci`` the interval of the share by a bootstrap
    over ``clusters`` of the per-prompt excess (hit − chance), shifted by the mean chance, so the
    interval excludes ``null`` exactly when the excess over chance excludes 0."""
    hits, chance = np.asarray(hits, float), np.asarray(chance, float)
    if hits.shape != chance.shape or hits.ndim != 1:
        raise ValueError("chance_share() takes one hit and one chance level per prompt")
    if len(hits) == 0:
        return {"value": None, "n": 0, "ci": None, "null": None, "test": "share vs chance"}
    excess = location(hits - chance, seed=seed, clusters=clusters)
    base = float(chance.mean())
    shift = lambda v: None if v is None else v + base
    out = {**excess, "value": float(hits.mean()), "null": base, "hits": int(hits.sum()),
           "ci": None if excess["ci"] is None else [shift(v) for v in excess["ci"]],
           "test": "share vs chance per prompt" + (" (cluster bootstrap)" if clusters is not None else "")}
    out.pop("p", None)
    if clusters is not None:
        out["per_cluster"] = {k: v + base for k, v in excess["per_cluster"].items()}
        if excess.get("without"):
            w = excess["without"]
            out["without"] = {**w, "value": w["value"] + base, "ci": None if w["ci"] is None else [v + base for v in w["ci"]]}
    return out


def versus_placebo(effect, placebo, clusters=None, seed: int = 0) -> dict:
    """An intervention's rate against its placebo's on the same prompts and seeds: ``effect`` and
    ``placebo`` one 0/1 (or share) per prompt, ``value`` the effect's rate, ``null`` the placebo's,
    ``ci`` the interval of the effect's rate by a bootstrap over ``clusters`` of the paired
    per-prompt difference, shifted by the placebo's rate."""
    effect, placebo = np.asarray(effect, float), np.asarray(placebo, float)
    out = chance_share(effect, placebo, clusters, seed)
    return {**out, "test": "rate vs placebo, paired per prompt" + (" (cluster bootstrap)" if clusters is not None else "")}


def auc(a, b, seed: int = 0, clusters=None) -> dict:
    """Area under the ROC curve of a score that should be higher in ``a`` (e.g. benchmark rows) than
    in ``b`` (control rows): P(a > b) + ½ P(a = b) = U / (n_a n_b), scale-free (no threshold); a
    95% interval by a bootstrap over ``clusters`` (a pair of label sequences; None: prompts) and the
    one-sided Mann–Whitney p-value (descriptive; no effect: 0.5)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = {"value": None, "n": [len(a), len(b)], "ci": None, "p": None, "test": "AUC (Mann–Whitney)"}
    if len(a) == 0 or len(b) == 0:
        return out
    area = lambda x, y: float(stats.mannwhitneyu(x, y).statistic / (len(x) * len(y)))
    out["value"] = area(a, b)
    ca, cb = (None, None) if clusters is None else clusters
    samples = [(a, _labels(a, ca)), (b, _labels(b, cb))]
    if len(a) > 1 and len(b) > 1:
        out["ci"] = cluster_interval(samples, area, seed) if np.ptp(np.r_[a, b]) > 0 else [0.5, 0.5]
        out["p"] = float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)
    if clusters is not None:
        out.update(_cluster_fields(samples, area, seed), test="AUC (cluster bootstrap)")
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
    text = fmt.format(result["value"])
    ci = result.get("ci")
    return text + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")


# ------------------------------------------------------------------------------ the verdict rule


def verdict(ci, null: float = 0.0, direction: int = 1, power: str = "n/a", applies: bool = True,
            scale_bound: bool = False) -> str:
    """The rule (module docstring): the 95% interval ``ci`` against ``null`` for an effect expected
    on the ``direction`` side (+1 above, −1 below); ``power`` the positive control's outcome
    (`POWER`); ``scale_bound``: the measurement uses a threshold on another model's scale."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if power not in POWER:
        raise ValueError(f"power must be one of {POWER}, got {power!r}")
    if scale_bound:
        return NOT_APPLICABLE
    if power == "failed":
        return NO_EFFECT
    if not applies or ci is None or null is None or any(v is None or math.isnan(v) for v in ci):
        return INCONCLUSIVE
    low, high = sorted(ci)
    if (direction == 1 and low > null) or (direction == -1 and high < null):
        return REPRODUCED
    if (direction == 1 and high < null) or (direction == -1 and low > null):
        return NOT_REPRODUCED
    return INCONCLUSIVE
