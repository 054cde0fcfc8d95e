"""The remedies' defaults are the tuning's choice (`dvdlib.remedies.tuning`,
``benchmarks/results/remedy_tuning.json``), chosen on twins no chapter scores; the choice rule by hand."""

import json
from pathlib import Path

import pandas as pd
import pytest

from dvdlib.remedies import attend_excite, rebalance, tuning, weighting

RESULT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "remedy_tuning.json"


def module_defaults() -> dict:
    return {"rebalance": {"strength": rebalance.STRENGTH, "boost": rebalance.BOOST, "steps": rebalance.K,
                          "layers": "all" if rebalance.DEFAULT_LAYERS == "all" else list(rebalance.DEFAULT_LAYERS)},
            "weighting": {"weight": weighting.WEIGHT},
            "attend_excite": {k: attend_excite.DEFAULTS[k] for k in ("scale_factor", "max_iter_to_alter")}}


def test_each_modules_defaults_are_the_tunings_choice():
    chosen = json.loads(RESULT.read_text())["chosen"]
    assert set(chosen) == set(tuning.GRID)
    for name, defaults in module_defaults().items():
        assert chosen[name]["params"] == defaults, name
        assert chosen[name]["params"] in tuning.GRID[name]  # a setting of the grid, not a later edit


def test_the_tuning_pairs_are_none_a_chapter_scores():
    from dvdlib import chapters
    from dvdlib.twins import DEFAULT_K

    scored = max(DEFAULT_K, chapters.REMEDIES.snapshot_parameters["twin_pairs"])
    assert min(tuning.TUNING_PAIRS) >= scored
    from dvdlib.profiles import load_profile

    toy = load_profile("toy")
    assert tuning.TUNING_SEED in toy.seeds and tuning.TUNING_SEED not in toy.seeds[:5]  # the twins' and remedies' seeds


def test_score_and_choice_by_hand():
    def table(both):  # (pair, arm) → both present per prompt
        return pd.DataFrame([{"pair": p, "arm": a, "c": 5 * b, "n": 5 * b} for (p, a), bs in both.items() for b in bs])

    plain = table({(12, "rigid"): [1, 0], (12, "memorized"): [0, 0]})
    s = tuning.score(table({(12, "rigid"): [1, 1], (12, "memorized"): [1, 0]}), plain)
    assert s["gain"] == pytest.approx((0.5 + 0.5) / 2) and s["plain"] == pytest.approx(0.25)
    assert tuning.choose([{"gain": 0.0}, {"gain": 0.2}, {"gain": 0.2}]) == 1  # the earlier of equal gains
    assert tuning.choose([{"gain": -0.1}, {"gain": 0.0}]) == 0  # nothing gains: the first (gentlest) setting


def test_the_chapters_parameters_are_the_modules_defaults():
    from dvdlib.plan import chapter_parameters

    given = chapter_parameters(Path(__file__).resolve().parents[1] / "chapters" / "13_remedies.ipynb")
    names = {"rebalance": {"strength": "rebalance_strength", "boost": "rebalance_boost", "steps": "rebalance_steps",
                           "layers": "rebalance_layers"},
             "weighting": {"weight": "weighting_weight"},
             "attend_excite": {"scale_factor": "ae_scale_factor", "max_iter_to_alter": "ae_max_iter_to_alter"}}
    for name, defaults in module_defaults().items():
        assert {k: given[v] for k, v in names[name].items()} == defaults, name
