"""The statistics every chapter reports with its numbers: rates, differences, locations and
areas with 95% intervals and one-sided p-values, and the verdict rule that reads them.

Each helper returns the structured fields ``value``, ``n``, ``ci``, ``p`` (and ``test``) that
``Report.add(..., **fields)`` stores in the results JSON beside the printed string.

Verdict rule (`verdict`). Each claim has a direction (the paper's effect is a positive or a
negative quantity) and a no-effect value (0 for a difference, the chance level for a rate):

- **reproduced** — the 95% interval lies entirely on the paper's side of the no-effect value
  (for a test without an interval: one-sided p < 0.05 in the paper's direction);
- **not reproduced** — the estimate is at the no-effect value or on the other side;
- **inconclusive** — the estimate is on the paper's side but the interval includes no effect,
  or there is nothing to measure (no data, fewer than `MIN_N` prompts, the claim does not apply).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05
#: Fewer prompts than this (in the smaller set) give no verdict: "inconclusive, too few".
MIN_N = 5
N_RESAMPLES = 2000


def rate(hits: int, n: int) -> dict:
    """A rate ``hits / n`` with its Clopper–Pearson 95% interval (exact binomial; scipy)."""
    hits, n = int(hits), int(n)
    if n < 0 or not 0 <= hits <= max(n, 0):
        raise ValueError(f"a rate needs 0 ≤ hits ≤ n, got {hits}/{n}")
    if n == 0:
        return {"value": None, "n": 0, "ci": None, "hits": 0, "test": "rate"}
    ci = stats.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="exact")
    return {"value": hits / n, "n": n, "ci": [float(ci.low), float(ci.high)], "hits": hits, "test": "rate"}


def _bootstrap(data, statistic, seed: int) -> list | None:
    """Percentile bootstrap 95% interval (scipy), or None when every resample is the same."""
    res = stats.bootstrap(data, statistic, n_resamples=N_RESAMPLES, method="percentile",
                          confidence_level=0.95, random_state=np.random.default_rng(seed), vectorized=False)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return None if math.isnan(low) or math.isnan(high) else [low, high]


def difference(a, b, alternative: str = "greater", seed: int = 0) -> dict:
    """Mean of ``a`` minus mean of ``b`` (two independent samples, e.g. per-prompt DvD Scores of
    the benchmark and of the balanced set): percentile-bootstrap 95% interval and a one-sided
    Mann–Whitney U p-value (``alternative``: the paper's direction)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("difference() takes two 1-D samples")
    out = {"value": None, "n": [len(a), len(b)], "ci": None, "p": None, "test": "difference"}
    if len(a) == 0 or len(b) == 0:
        return out
    out["value"] = float(a.mean() - b.mean())
    if len(a) > 1 and len(b) > 1:
        if np.ptp(np.r_[a, b]) > 0:
            out["ci"] = _bootstrap((a, b), lambda x, y: np.mean(x) - np.mean(y), seed)
            out["p"] = float(stats.mannwhitneyu(a, b, alternative=alternative).pvalue)
        else:
            out["ci"], out["p"] = [0.0, 0.0], 1.0
    return out


def location(x, alternative: str = "less", statistic: str = "mean", seed: int = 0) -> dict:
    """Mean (or median) of one sample of paired changes, e.g. per-prompt attention change over an
    interval: percentile-bootstrap 95% interval and a one-sided Wilcoxon signed-rank p-value
    against zero (``alternative``: the paper's direction)."""
    x = np.asarray(x, float)
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    f = np.mean if statistic == "mean" else np.median
    out = {"value": None, "n": len(x), "ci": None, "p": None, "test": f"location ({statistic})"}
    if len(x) == 0:
        return out
    out["value"] = float(f(x))
    if len(x) > 1:
        if np.any(x != 0):
            out["ci"] = _bootstrap((x,), f, seed) if np.ptp(x) > 0 else [float(x[0])] * 2
            out["p"] = float(stats.wilcoxon(x, alternative=alternative).pvalue)
        else:
            out["ci"], out["p"] = [0.0, 0.0], 1.0
    return out


def auc(a, b, seed: int = 0) -> dict:
    """Area under the ROC curve of a score that should be higher in ``a`` (e.g. benchmark rows) than
    in ``b`` (control rows): P(a > b) + ½ P(a = b) = U / (n_a n_b), scale-free (no threshold); a
    percentile-bootstrap 95% interval and the one-sided Mann–Whitney p-value (no effect: 0.5)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = {"value": None, "n": [len(a), len(b)], "ci": None, "p": None, "test": "AUC (Mann–Whitney)"}
    if len(a) == 0 or len(b) == 0:
        return out
    area = lambda x, y: stats.mannwhitneyu(x, y).statistic / (len(x) * len(y))
    out["value"] = float(area(a, b))
    if len(a) > 1 and len(b) > 1:
        out["ci"] = _bootstrap((a, b), area, seed) if np.ptp(np.r_[a, b]) > 0 else [0.5, 0.5]
        out["p"] = float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)
    return out


def verdict(value, ci=None, p=None, direction: int = 1, null: float = 0.0, applies: bool = True) -> str:
    """The module's rule: ``reproduced`` / ``not reproduced`` / ``inconclusive`` for an effect
    expected on the ``direction`` side (+1 above, −1 below) of ``null``."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if not applies or value is None or (isinstance(value, float) and math.isnan(value)):
        return "inconclusive"
    if direction * (value - null) <= 0:
        return "not reproduced"
    if ci is not None:
        bound = ci[0] if direction == 1 else ci[1]
        return "reproduced" if direction * (bound - null) > 0 else "inconclusive"
    if p is not None:
        return "reproduced" if p < ALPHA else "inconclusive"
    return "inconclusive"
