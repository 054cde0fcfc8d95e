"""How the remedies' defaults are chosen: on twins that no chapter scores (beyond the paper).

Chapter 13 scores the remedies on chapter 12's twins (pairs 0 … K−1, K at most 12 in `dvd toy
findings`) and on the world's prompt sets. Their defaults are chosen here, on the twin design's
next pairs (`TUNING_PAIRS`: 12 and 13, the same design, recipe and prompts, their own fine-tunes
and training seeds) and at a seed that no chapter gives the twins or the remedies (`TUNING_SEED`),
so no default is tuned on the units it is then scored on.

Each remedy's `GRID` is tried on the tuning twins of `ARMS` (the arms where the new concept
dominates: the memorized twin most, the rigid one less); each setting's score is the share of
images with both concepts present (`dvdlib.remedies.compare.measured`) minus the plain images'
share, averaged over the tuning twins. The chosen setting is the best score; a tie goes to the
earlier setting of the grid, which lists each remedy's gentlest settings first. A remedy with no
setting above 0 keeps the first (the published or gentlest one) and the result says so.

``python benchmarks/remedy_tuning.py`` runs it and writes ``benchmarks/results/remedy_tuning.json``;
each module's defaults are that file's choice (``tests/test_remedy_defaults.py`` checks they agree).
"""

from __future__ import annotations

import itertools

import pandas as pd

#: the twin pairs the defaults are chosen on: the design's pairs after the twelve `dvd toy findings` scores
TUNING_PAIRS = (12, 13)
#: the arms tuned on: those made to dominate (chapter 12: memorized − rigid DvD reproduced)
ARMS = ("rigid", "memorized")
#: the seed the tuning images are drawn with: the toy profile's last, which no twin or remedy run takes
TUNING_SEED = 9675


def _settings(**axes) -> list[dict]:
    """Every combination of ``axes`` (name → values), the first values first."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*axes.values())]


#: each remedy's settings tried, gentlest (or the published one) first
GRID = {
    "rebalance": [dict(strength=s, boost=b, steps=k, layers=layers)
                  for layers in ([9, 10], "all") for k in (5, 12, 25) for s, b in ((0.5, 2.0), (1.0, 4.0), (1.0, 8.0))],
    "weighting": _settings(weight=[1.5, 2.0, 3.0, 4.0]),
    "attend_excite": _settings(scale_factor=[20.0, 200.0], max_iter_to_alter=[25]),
}


def score(judged: pd.DataFrame, plain: pd.DataFrame) -> dict:
    """A setting's score on the tuning twins: its both-present share minus the plain images' (each
    twin weighing the same), with each twin's two shares."""
    from .compare import measured

    mine = measured(judged).groupby(["pair", "arm"]).both.mean()
    base = measured(plain).groupby(["pair", "arm"]).both.mean()
    gain = (mine - base.reindex(mine.index))
    return {"gain": float(gain.mean()), "both": float(mine.mean()), "plain": float(base.mean()),
            "per_twin": {f"pair {p} {a}": round(float(v), 4) for (p, a), v in gain.items()}}


def choose(scores: list[dict]) -> int:
    """The index of the chosen setting: the highest gain, the earliest of equal gains; the first
    when none is above 0."""
    best = max(range(len(scores)), key=lambda i: (scores[i]["gain"], -i))
    return best if scores[best]["gain"] > 0 else 0
