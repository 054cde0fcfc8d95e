"""How far the book's verdict rule can be trusted: its false-decisive rate with no effect and its
power at a one-SD effect, by simulation, per design and cluster count.

    python benchmarks/verdict_calibration.py              # 1,000 draws a cell, about ten minutes on one core
    python benchmarks/verdict_calibration.py --draws 300  # quicker, wider Monte-Carlo error

Data as the chapters have them: clusters (concepts) of 2–12 prompts each, unequal; a prompt's value
is its cluster's effect (normal, SD 1) plus its own noise (normal, SD 1). Designs, each read through
`dvdlib.stats` exactly as a chapter calls it and judged by `dvdlib.stats.decide`:

- **one-sample**: `location` of per-prompt changes over the clusters;
- **paired**: `location` of the difference of two conditions measured on the same prompts (each
  condition with its own cluster and prompt noise, sharing a cluster effect);
- **two-sample**: `difference` of two sets with as many clusters each (benchmark vs control);
- **share vs chance**: `chance_share` of 0/1 hits against a chance of 1/3 per prompt, each
  cluster's hit probability 1/3 + normal(0, 0.15) clipped to [0, 1] (skewed, discrete data).

A "decisive" verdict is reproduced or not reproduced. The columns: with no effect, how often the
rule is decisive (the target is at most 5%); how often the t interval alone would be (without the
leave-one-out requirement); how often the percentile bootstrap over clusters that the book used
before was; with one cluster carrying an effect of one SD on average (one-sample only), how often
the rule says reproduced; and the power at a uniform one-SD effect (one SD of the cluster means;
0.15 for shares). Results go to ``benchmarks/results/verdict_calibration.json`` (the benchmarks
page) and ``book/_calibration.md`` (the methods page includes it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from dvdlib import stats as S  # noqa: E402

DESIGNS = ("one-sample", "paired", "two-sample", "share vs chance")
COUNTS = (3, 4, 5, 8, 12, 20)
DECISIVE = (S.REPRODUCED, S.NOT_REPRODUCED)
CHANCE, SHARE_SD = 1 / 3, 0.15


def _clusters(rng, g):
    sizes = rng.integers(2, 13, g)
    return sizes, np.repeat([f"c{i}" for i in range(g)], sizes)


def _sample(rng, g, effect, carrier=False):
    """Per-prompt values of ``g`` clusters: cluster effect + prompt noise, shifted by ``effect`` (in
    every cluster, or with ``carrier`` all in the first one, g × effect)."""
    sizes, labels = _clusters(rng, g)
    shift = np.zeros(g)
    if carrier:
        shift[0] = g * effect
    else:
        shift[:] = effect
    return np.repeat(rng.standard_normal(g) + shift, sizes) + rng.standard_normal(sizes.sum()), labels


def one_sd(design: str) -> float:
    """One standard deviation of a cluster summary (clusters of 2–12 prompts; shares: ``SHARE_SD``)."""
    inverse_size = np.mean(1 / np.arange(2, 13))
    if design == "share vs chance":
        return SHARE_SD
    if design == "paired":  # difference of two conditions: cluster noise and prompt noise twice
        return float(np.sqrt(2 + 2 * inverse_size))
    return float(np.sqrt(1 + inverse_size))


def result(design: str, g: int, effect: float, rng, carrier=False) -> dict:
    """One simulated claim read as the chapters read it."""
    if design == "one-sample":
        x, labels = _sample(rng, g, effect, carrier)
        return S.location(x, clusters=labels)
    if design == "paired":
        sizes, labels = _clusters(rng, g)
        shared = np.repeat(rng.standard_normal(g), sizes)
        before = shared + np.repeat(rng.standard_normal(g), sizes) + rng.standard_normal(sizes.sum())
        after = shared + np.repeat(rng.standard_normal(g) + effect, sizes) + rng.standard_normal(sizes.sum())
        return S.location(after - before, clusters=labels)
    if design == "two-sample":
        a, la = _sample(rng, g, effect)
        b, lb = _sample(rng, g, 0.0)
        return S.difference(a, b, clusters=(la, lb))
    sizes, labels = _clusters(rng, g)
    p = np.clip(CHANCE + effect + SHARE_SD * rng.standard_normal(g), 0, 1)
    hits = rng.random(sizes.sum()) < np.repeat(p, sizes)
    return S.chance_share(hits.astype(float), np.full(sizes.sum(), CHANCE), clusters=labels)


def bootstrap_decisive(res_values, labels, rng, resamples=400) -> bool:
    """The earlier rule: a 95% percentile bootstrap over clusters excludes 0 (for comparison only)."""
    names = list(dict.fromkeys(labels))
    means = np.array([res_values[labels == n].mean() for n in names])
    draws = means[rng.integers(0, len(names), (resamples, len(names)))].mean(1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return low > 0 or high < 0


def cell(design: str, g: int, draws: int, seed: int = 0) -> dict:
    """The rule's rates for one design and cluster count."""
    rng = np.random.default_rng([seed, DESIGNS.index(design), g])
    null = [result(design, g, 0.0, rng) for _ in range(draws)]
    step = one_sd(design)
    powered = [result(design, g, step, rng) for _ in range(draws)]
    row = {"design": design, "clusters a side": g,
           "decisive, no effect": np.mean([S.decide(r, null=r.get("null", 0.0)) in DECISIVE for r in null]),
           "t alone, no effect": np.mean([S._side(r["ci"], r.get("null", 0.0)) != 0 for r in null]),
           "power at 1 SD": np.mean([S.decide(r, null=r.get("null", 0.0)) == S.REPRODUCED for r in powered])}
    if design == "one-sample":
        row["old bootstrap, no effect"] = np.mean([bootstrap_decisive(*_sample(rng, g, 0.0), rng) for _ in range(draws)])
        row["one carries it: reproduced"] = np.mean(
            [S.decide(result(design, g, step, rng, carrier=True)) == S.REPRODUCED for _ in range(draws)])
    return {k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()}


def table(draws: int, designs=DESIGNS, counts=COUNTS) -> list[dict]:
    return [cell(d, g, draws) for d in designs for g in counts]


def markdown(rows: list[dict], draws: int) -> str:
    """The methods page's table (percentages), with its Monte-Carlo error."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    pct = lambda v: "" if v is None else (f"{100 * v:.1f}%" if isinstance(v, float) else str(v))
    mc = 100 * 1.96 * np.sqrt(0.05 * 0.95 / draws)
    lines = [f"Simulated by `benchmarks/verdict_calibration.py` ({draws:,} draws a cell; Monte-Carlo "
             f"error at 5%: ±{mc:.1f} points).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(pct(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv=None):
    from result_file import write_result

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "verdict_calibration.json"))
    parser.add_argument("--page", default=str(ROOT / "book" / "_calibration.md"))
    args = parser.parse_args(argv)
    rows = table(args.draws)
    Path(args.page).write_text(markdown(rows, args.draws), encoding="utf-8")
    page = args.page
    del args.page
    write_result(args.out, "verdict_calibration.py", args, title="The verdict rule's calibration (simulation)",
                 device="CPU", draws=args.draws, rows=rows,
                 notes="false-decisive rate with no effect (target ≤ 5%), and power at a one-SD effect; the "
                       f"methods page includes {Path(page).name}")


if __name__ == "__main__":
    main()
