"""The three-concept factorial's intervals over crossed clusters (dvdlib.factorial.crossed_mean):
hand-computed values on a 2×2 design, the authors' design's factors, a no-effect simulation at
the chapter's counts, the chance level of the first-step peak and the three-way interaction."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dvdlib import bench, factorial, triplets
from dvdlib.tokens import clip_tokenizer

#: Two crossed factors of two clusters each, one unit per cell.
TWO_BY_TWO = pd.DataFrame({"A": list("aabb"), "B": list("xyxy")})


def test_two_way_variance_by_hand():
    # y = 0, 1, 1, 2 (additive in A and B): mean 1, residuals −1, 0, 0, 1.
    # V_A = G/(G−1) Σ_g (Σ r)² / N² = 2 · ((−1)² + 1²) / 16 = 0.25; V_B the same;
    # V_AB (the units) = 4/3 · (1 + 0 + 0 + 1) / 16 = 1/6; CGM: 0.25 + 0.25 − 1/6 = 1/3.
    # Bias scale: under A's component alone E[V] = 0.5 + 0 − 1/6 = 1/3 against Var(mean) = 0.5
    # (ratio 2/3; B's the same, the units' 1), so V = (1/3) / (2/3) = 0.5 ≥ the floor 0.25.
    r = factorial.crossed_mean([0, 1, 1, 2], TWO_BY_TWO)
    half = stats.t.ppf(0.975, 1) * math.sqrt(0.5)  # G − 1 = 1 degree of freedom
    assert r["value"] == 1 and r["ci"] == pytest.approx([1 - half, 1 + half])
    assert r["n_clusters"] == 2 and r["clusters"] == {"A": 2, "B": 2}
    # y = 0, 1, 2, 4: V_A = 1.5625, V_B = 0.5625, V_AB = 0.72917 → (1.5625 + 0.5625 − 0.72917) · 1.5
    _, _, se, df, g = factorial.crossed_bounds([0, 1, 2, 4], TWO_BY_TWO)
    assert se == pytest.approx(math.sqrt((1.5625 + 0.5625 - 4 / 3 * 8.75 / 16) * 1.5)) and (df, g) == (1, 2)
    # y = 0, 1, 1, 0 (pure interaction): V_A = V_B = 0, CGM negative: the units' own variance, 1/12
    _, _, se, _, _ = factorial.crossed_bounds([0, 1, 1, 0], TWO_BY_TWO)
    assert se == pytest.approx(math.sqrt(1 / 12))


def test_independent_units_give_students_t_and_uninformative_factors_are_dropped():
    y = np.array([0.1, 0.4, 0.35, 0.8, 0.5])
    r = factorial.crossed_mean(y, pd.DataFrame({"same": ["s"] * 5, "own": list("abcde")}))
    t = stats.ttest_1samp(y, 0).confidence_interval()
    assert r["ci"] == pytest.approx([t.low, t.high]) and r["method"] == "Student t over units"
    assert r["n_clusters"] == 5 and r["p"] == pytest.approx(stats.ttest_1samp(y, 0).pvalue)
    assert factorial.crossed_mean([0.3, np.nan], None)["ci"] is None  # one unit left: no interval


def test_the_authors_factorial_has_three_crossed_factors_of_ten():
    rows = bench.load_factorial()
    clusters = factorial.case_clusters(rows)
    assert len(clusters) == 30 and clusters.loc[1, "slot 1 named"] == "artist: van gogh"
    r = factorial.crossed_mean(np.random.default_rng(0).random(30), clusters)
    # a slot's concept and object travel together (one partition); the template is the case itself
    assert r["clusters"] == {"slot 1 named": 10, "slot 2 named": 10, "slot 3 named": 10} and r["n_clusters"] == 10
    names = {r["loo"]["low"]["cluster"], r["loo"]["high"]["cluster"]}
    assert all(" + object: " in n for n in names)
    prompts = factorial.crossed_mean(np.random.default_rng(1).random(240), factorial.row_clusters(rows))
    assert prompts["clusters"] == {"slot 1": 20, "slot 2": 20, "slot 3": 20, "template": 30}


def _null_rate(clusters: pd.DataFrame, spread: dict, noise: float, reps: int = 2000, seed: int = 0):
    """Share of ``reps`` no-effect draws whose interval excludes 0: cluster effects N(0, spread²)
    per factor, N(0, noise²) per unit; beside it, the rate of an interval over units as if independent."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((reps, len(clusters))) * noise
    for name, sd in spread.items():
        codes = np.unique(clusters[name], return_inverse=True)[1].ravel()
        y += (rng.standard_normal((reps, codes.max() + 1)) * sd)[:, codes]
    low, high, *_ = factorial.crossed_bounds(y, clusters)
    naive_low, naive_high, *_ = factorial.crossed_bounds(y, None)
    return np.mean((low > 0) | (high < 0)), np.mean((naive_low > 0) | (naive_high < 0))


def test_no_effect_excludes_the_null_at_most_five_percent_at_the_chapters_counts():
    limit = 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000)  # 5% plus three Monte Carlo errors
    cases = factorial.case_clusters(bench.load_factorial())
    slots = {f"slot {k} named": 1.0 for k in (1, 2, 3)}
    for spread, noise in (({}, 1.0), ({"slot 1 named": 1.0}, 0.3), (slots, 0.3), (slots, 1.0)):
        rate, naive = _null_rate(cases, spread, noise)
        assert rate <= limit, (spread, noise, rate)
        if spread:  # the check can fail: cases treated as independent exclude the null far too often
            assert naive > 0.15, (spread, naive)
    prompts = factorial.row_clusters(bench.load_factorial())
    rate, naive = _null_rate(prompts, {"slot 1": 1, "slot 2": 1, "slot 3": 1, "template": 1}, 0.5)
    assert rate <= limit and naive > 0.3
    pilot = factorial.row_clusters(bench.load_pilot())
    rate, naive = _null_rate(pilot, {"slot 1": 1, "slot 2": 1, "slot 3": 1, "template": 1}, 0.5)
    assert rate <= limit and naive > 0.15


def test_chance_level_of_the_peak_slot_by_hand():
    prompt = "a poster combining Van Gogh painting style, Eiffel Tower, and Batman"
    # content tokens: a · poster · combining · van · gogh · painting · style · , · eiffel · tower · , · and
    # · batman (13)
    chance = triplets.slot_chance(clip_tokenizer(), prompt, {1: "van gogh", 2: "eiffel tower", 3: "batman"})
    assert chance == pytest.approx({1: 2 / 13, 2: 2 / 13, 3: 1 / 13})
    # excess over chance 0.75, −0.25, 0.5, −0.5: mean 0.125, sd √(1.0625/3); shifted by the mean chance 0.375
    r = factorial.crossed_chance_share([1, 0, 1, 0], [0.25, 0.25, 0.5, 0.5])
    half = stats.t.ppf(0.975, 3) * math.sqrt(1.0625 / 3) / 2
    assert r["value"] == pytest.approx(0.5) and r["null"] == pytest.approx(0.375)
    assert factorial.crossed_mean(np.array([0.75, -0.25, 0.5, -0.5]))["ci"] == pytest.approx([0.125 - half, 0.125 + half])
    assert r["ci"] == [0.0, 1.0] and r["share"] == 0.5  # 0.5 ± 0.95, cut to the shares a rate can take


def test_peak_against_chance_over_the_named_slots():
    rows = pd.DataFrame({"case_num": [1, 2, 3, 4], "condition": ["100", "001", "000", "110"], "case": [1, 2, 3, 4],
                         "prompt": "p", "template_id": "t",
                         **{f"target{k}": [f"c{k}{i}" for i in range(4)] for k in (1, 2, 3)},
                         **{f"target{k}_type": ["object"] * 4 for k in (1, 2, 3)},
                         **{f"target{k}_homogeneity": [int(c[k - 1]) for c in ["100", "001", "000", "110"]]
                            for k in (1, 2, 3)}})
    peaks = pd.DataFrame({"case_num": [1, 2, 3, 4], "condition": rows.condition, "peak_slot": [1, 2, 1, 2],
                          "chance_1": [0.2, 0.2, 0.2, 0.2], "chance_2": [0.3, 0.3, 0.3, 0.3], "chance_3": 0.1})
    named = triplets.peak_chance(peaks, rows)["any named concept"]
    # prompt 3 names nothing; prompts 1 and 4 peak on a named slot, 2 on an object; chance 0.2, 0.1, 0.5
    assert named["n"] == 3 and named["share"] == pytest.approx(2 / 3)
    assert named["null"] == pytest.approx(0.8 / 3) and named["value"] == pytest.approx(2 / 3)


def test_three_way_interaction_by_hand():
    # presence of slot 1's target: 1 exactly where h1·h2·h3 = +1 (conditions 111, 100, 010, 001)
    rows = [{"case": case, "condition": "".join(map(str, bits)), "present_2": 0, "present_3": 0,
             "present_1": float(sum(bits) % 2 == 1)}
            for case in range(3) for bits in itertools.product((0, 1), repeat=3)]
    c = factorial.case_contrasts(pd.DataFrame(rows)).groupby(["slot", "effect"])["contrast"].mean()
    # h1×h2 at h3 = 1: (y111 − y011 − y101 + y001) / 2 = (1 − 0 − 0 + 1) / 2 = 1; at h3 = 0:
    # (y110 − y010 − y100 + y000) / 2 = (0 − 1 − 1 + 0) / 2 = −1; three-way: (1 − (−1)) / 2 = 1
    assert c[(1, "h1×h2×h3")] == pytest.approx(1.0)
    assert all(abs(c[(1, e)]) < 1e-12 for e in factorial.EFFECTS if e != "h1×h2×h3")
    assert factorial.EFFECTS[-1] == factorial.THREE_WAY == "h1×h2×h3"


def test_effects_read_the_crossed_clusters_of_the_cases():
    rows = bench.load_factorial()
    clusters = factorial.case_clusters(rows)
    rng = np.random.default_rng(4)
    artist = dict(zip(sorted(set(clusters["slot 1 named"])), rng.normal(0, 0.3, 10)))
    table = []
    for case in clusters.index:
        for bits in itertools.product((0, 1), repeat=3):
            p = 0.5 + 0.3 * bits[0] * (1 + artist[clusters.loc[case, "slot 1 named"]])  # own effect varies by artist
            table.append({"case": case, "condition": "".join(map(str, bits)), "present_1": p, "present_2": 0.5,
                          "present_3": 0.5})
    out = factorial.effects(pd.DataFrame(table), clusters).set_index(["slot", "effect"])
    own = out.loc[(1, "h1")]
    assert own["n_cases"] == 30 and own["n_clusters"] == 10 and own["ci_low"] > 0
    naive = factorial.effects(pd.DataFrame(table)).set_index(["slot", "effect"]).loc[(1, "h1")]
    # three cases per artist: over cases as if independent, the interval is too narrow
    assert naive["n_clusters"] == 30 and own["ci_high"] - own["ci_low"] > 1.3 * (naive["ci_high"] - naive["ci_low"])
