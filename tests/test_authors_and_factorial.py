"""The authors' instrument read from their release (parsed, never run), and the three-concept
factorial's statistics on hand-made data."""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvdlib import authors, factorial
from dvdlib.judge import questions_from_dict

RELEASE = Path(__file__).parent / "fixtures" / "authors_release"


def test_authors_questions_are_parsed_not_run_and_joined_exactly_as_theirs():
    data = authors.read_questions(RELEASE)
    qs = questions_from_dict(data, name="authors")
    art = qs.concept_questions("van gogh", "artist")
    assert art[0] == ("Does the picture recall the manner of van gogh?" " Say 'Yes' if it even loosely recalls the "
                      "painter, an exact match is not needed. /no_think")  # their f"{question}{tail}"
    assert qs.object_questions("mousepad")[0] == "Is a mousepad present? Answer only 'Yes' or 'No'. /no_think"
    assert qs.concept_questions("colosseum", "landmark")[4].endswith("background? Answer only 'Yes' or 'No'. /no_think")
    assert set(qs.categories) == {"artist", "landmark", "character"}


def test_authors_answer_rule_and_pixel_limits():
    assert authors.is_yes("  YES.") and authors.is_yes("yes")
    assert not authors.is_yes('"Yes"')  # theirs does not strip punctuation before the word
    assert not authors.is_yes("No") and not authors.is_yes("")
    assert authors.PIXEL_LIMITS == (200704, 1003520)


def test_authors_folder_errors_say_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="HayeonJeong/DominanceBench"):
        authors.read_questions(tmp_path)
    broken = tmp_path / "dvd_score"
    broken.mkdir()
    (broken / "questions.py").write_text("ARTIST_QUESTIONS = []\n")
    with pytest.raises(ValueError, match="LANDMARK_QUESTIONS"):
        authors.read_questions(tmp_path)


def _design(effect_of: dict, cases: int = 6, seeds: int = 4, noise: float = 0.0, rng=None) -> pd.DataFrame:
    """Images of a 2³ design where P(present_k) = 0.5 + Σ effect_of[(k, 'hj')] · (h_j − 1/2)."""
    rng = rng or np.random.default_rng(0)
    rows = []
    for case in range(cases):
        shift = noise * rng.standard_normal()
        for bits in itertools.product((0, 1), repeat=3):
            for seed in range(seeds):
                row = {"case": case, "condition": "".join(map(str, bits))}
                for k in (1, 2, 3):
                    p = 0.5 + shift + sum(e * (bits[j - 1] - 0.5) for (kk, j), e in effect_of.items() if kk == k)
                    row[f"present_{k}"] = float(np.clip(p, 0, 1))  # expected presence: exact contrasts
                rows.append(row)
    return pd.DataFrame(rows)


def test_contrasts_recover_hand_made_effects():
    # slot 3's target loses 0.4 of presence when slot 1 holds a named concept; nothing else moves
    table = _design({(3, 1): -0.4})
    c = factorial.case_contrasts(table).groupby(["slot", "effect"])["contrast"].mean()
    assert c[(3, "h1")] == pytest.approx(-0.4)
    assert all(abs(v) < 1e-12 for (slot, effect), v in c.items() if (slot, effect) != (3, "h1"))


def test_interaction_is_half_the_difference_of_simple_effects():
    rows = []
    for case in range(3):
        for bits in itertools.product((0, 1), repeat=3):
            y = 1.0 if bits[0] and bits[1] else 0.0  # present only when slots 1 and 2 are both named
            rows.append({"case": case, "condition": "".join(map(str, bits)), "present_1": y, "present_2": 0, "present_3": 0})
    c = factorial.case_contrasts(pd.DataFrame(rows)).groupby(["slot", "effect"])["contrast"].mean()
    # simple effect of h1: 1 at h2 = 1, 0 at h2 = 0 → interaction (1 − 0) / 2; main effect of h1: 0.5
    assert c[(1, "h1×h2")] == pytest.approx(0.5)
    assert c[(1, "h1")] == pytest.approx(0.5)


def test_effects_interval_and_t_test_without_clusters_use_cases_as_units():
    rng = np.random.default_rng(3)
    table = _design({(2, 2): 0.3}, cases=12, noise=0.05, rng=rng)
    table["present_2"] += rng.normal(0, 0.1, len(table))  # image-level noise within cases
    out = factorial.effects(table).set_index(["slot", "effect"])
    own = out.loc[(2, "h2")]
    assert own["n_cases"] == 12 and own["n_clusters"] == 12 and own["ci_low"] > 0 and own["p"] < 0.01
    null = out.loc[(2, "h1")]  # same noisy target, no effect of slot 1
    assert null["ci_low"] < 0 < null["ci_high"] and null["p"] > 0.05
    assert len(out) == 3 * len(factorial.EFFECTS) and (2, "h1×h2×h3") in out.index


def test_incomplete_cases_and_missing_columns_are_errors():
    table = _design({})
    with pytest.raises(ValueError, match="all 8 conditions"):
        factorial.case_contrasts(table[table["condition"] != "111"])
    with pytest.raises(ValueError, match="present_3"):
        factorial.case_contrasts(table.drop(columns="present_3"))


def test_survivors_per_condition():
    table = pd.DataFrame({"condition": ["000", "000", "111", "111"], "present_1": [1, 1, 1, 0],
                          "present_2": [1, 0, 0, 0], "present_3": [1, 0, 0, 0]})
    s = factorial.survivors(table)
    assert s.loc["000", 3] == 0.5 and s.loc["000", 1] == 0.5 and s.loc["111", 0] == 0.5
