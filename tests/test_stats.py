"""dvdlib.stats: t intervals over clusters against scipy and hand-computed values, the verdict rule
(underpowered, resting on one cluster), the detectable effect, and the rule's calibration by
simulation (fast, seeded; the full table is benchmarks/verdict_calibration.py's)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from dvdlib import stats as S

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import verdict_calibration as calibration  # noqa: E402


def test_rate_is_clopper_pearson_by_hand():
    r = S.rate(9, 10)
    assert r["value"] == 0.9 and r["n"] == 10 and r["hits"] == 9
    assert r["ci"] == pytest.approx([0.5550, 0.9975], abs=1e-4)  # exact binomial, tables
    zero = S.rate(0, 6)  # upper bound 1 − 0.025^(1/6)
    assert zero["ci"][0] == 0.0 and zero["ci"][1] == pytest.approx(1 - 0.025 ** (1 / 6), abs=1e-9)
    assert S.rate(0, 0)["value"] is None
    with pytest.raises(ValueError):
        S.rate(5, 3)


def test_gates_pass_on_the_rate_with_the_interval_beside_it():
    r = S.rate(92, 100)  # 92% against a required 90%, interval down to 84.8%
    assert S.gate_passes(r["value"], 0.9) and r["ci"][0] < 0.9
    assert not S.gate_passes(0.89, 0.9)
    assert not S.gate_passes(float("nan"), 0.5) and not S.gate_passes(None, 0.5)


def _clustered():
    """Three concepts of eight prompts each: one shows a large effect, two none at all."""
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(5.0, 0.5, 8), rng.normal(0.0, 0.5, 8), rng.normal(-0.3, 0.5, 8)]
    return x, ["mosaic"] * 8 + ["tower"] * 8 + ["robot"] * 8


def test_one_sample_interval_is_students_t_over_cluster_means():
    x, clusters = _clustered()
    r = S.location(x, alternative="greater", clusters=clusters)
    means = np.array([x[:8].mean(), x[8:16].mean(), x[16:].mean()])
    stock = sps.ttest_1samp(means, 0).confidence_interval(0.95)
    assert r["value"] == pytest.approx(means.mean()) and r["ci"] == pytest.approx([stock.low, stock.high])
    assert r["n"] == 24 and r["n_clusters"] == 3 and r["per_cluster"]["mosaic"] == pytest.approx(means[0])
    assert r["method"] == "Student t over cluster means"
    # by hand: mean ± t(0.975, 2) · sd / √3
    half = sps.t.ppf(0.975, 2) * means.std(ddof=1) / np.sqrt(3)
    assert r["ci"] == pytest.approx([means.mean() - half, means.mean() + half])
    # prompts as units would call it; the concepts do not
    assert S.decide(S.location(x, alternative="greater")) == "reproduced"
    assert S.decide(r) in ("inconclusive", "underpowered (3 concepts)") or S.decide(r).startswith(S.RESTS_ON)


def test_unequal_clusters_weigh_the_same():
    x = np.r_[np.ones(10), np.zeros(2)]
    r = S.location(x, clusters=["a"] * 10 + ["b"] * 2)
    assert r["value"] == 0.5 and r["n_clusters"] == 2


def test_two_sample_interval_is_welchs_t_over_cluster_means():
    rng = np.random.default_rng(0)
    a, ca = rng.normal(1, 1, 30), np.repeat(list("abcde"), 6)
    b, cb = rng.normal(0, 2, 28), np.repeat(list("pqrstuv"), 4)
    d = S.difference(a, b, clusters=(ca, cb))
    ma = np.array([a[ca == k].mean() for k in "abcde"])
    mb = np.array([b[cb == k].mean() for k in "pqrstuv"])
    stock = sps.ttest_ind(ma, mb, equal_var=False).confidence_interval(0.95)
    assert d["ci"] == pytest.approx([stock.low, stock.high]) and d["value"] == pytest.approx(ma.mean() - mb.mean())
    assert d["n"] == [30, 28] and d["n_clusters"] == [5, 7] and d["method"] == "Welch t over cluster means"
    assert S.clusters_of({"content": ["Box", "ball"], "nm_word": ["ball", "BOX"]}, pair=True) == ["ball + box"] * 2


def test_difference_of_separated_samples_and_equal_samples():
    d = S.difference([3, 4, 5], [0, 1, 2])
    assert d["value"] == 3.0 and d["p"] == pytest.approx(1 / 20)  # exact one-sided Mann–Whitney (descriptive)
    assert d["ci"][0] > 0
    same = S.difference([1, 1], [1, 1])
    assert same["value"] == 0.0 and same["ci"] == [0.0, 0.0] and same["p"] == 1.0


def test_leave_one_out_names_the_cluster_a_verdict_rests_on():
    # five concepts; one carries a larger effect, the other four a small, tight one
    x = np.r_[np.full(4, 2.0), np.repeat([1.0, 1.2, 0.9, 1.1], 4)]
    labels = np.repeat(["mosaic", "tower", "robot", "kite", "box"], 4)
    r = S.location(x, clusters=labels)
    # without any one of them (the mosaic included) the interval still lies above 0: the verdict survives
    assert r["ci"][0] > 0 and r["loo"]["low"]["ci"][0] > 0 and S.decide(r) == "reproduced"
    # decisive with all five, but not without the kite (four clusters leave a wider t interval)
    y = np.repeat([1.0, 0.6, 0.05, 0.7, 0.65], 4)
    fragile = S.location(y, clusters=labels)
    lows = {k: S.location(y[labels != k], clusters=labels[labels != k])["ci"][0] for k in dict.fromkeys(labels)}
    assert fragile["loo"]["low"]["ci"][0] == pytest.approx(min(lows.values()))
    assert fragile["loo"]["low"]["cluster"] == min(lows, key=lows.get) == "kite"
    assert fragile["ci"][0] > 0 > lows["kite"] and S.decide(fragile) == f"{S.RESTS_ON} kite"


@pytest.mark.parametrize("args, expected", [
    (([0.1, 0.5],), "reproduced"),
    (([-0.1, 0.5],), "inconclusive"),
    (([-0.4, -0.1],), "not reproduced"),  # the interval excludes the null on the other side
    (([-0.4, -0.1], 0.0, -1), "reproduced"),
    (([0.45, 0.9], 0.5), "inconclusive"),  # a rate against a chance level of 0.5
    (([0.55, 0.95], 0.5), "reproduced"),
    ((None,), "inconclusive"),  # no interval: never a verdict from a p-value
])
def test_verdict_reads_the_interval_only(args, expected):
    assert S.verdict(*args) == expected


def test_verdict_underpowered_no_effect_not_applicable():
    assert S.verdict([0.1, 0.5], n_clusters=2) == "underpowered (2 concepts)"
    assert S.verdict([0.1, 0.5], n_clusters=[3, 2], unit="fine-tunes") == "underpowered (2 fine-tunes)"
    assert S.verdict([0.1, 0.5], n_clusters=[3, 3]) == "reproduced"
    assert S.verdict([0.4, 0.6], applies=False) == "inconclusive"
    assert S.verdict([-0.1, 0.0], power="failed") == S.NO_EFFECT
    assert S.verdict([-5.0, -1.0], scale_bound=True) == "not applicable"
    with pytest.raises(ValueError):
        S.verdict([0, 1], power="maybe")


def test_chance_null_is_per_prompt():
    """'tower and ball': one content token of three spells the concept, so chance is 1/3, not 1/2."""
    hits = np.r_[np.ones(7), np.zeros(17)]
    r = S.chance_share(hits, np.full(24, 1 / 3), clusters=np.repeat(["tower", "robot", "mosaic"], 8))
    assert r["value"] == pytest.approx(7 / 24) and r["null"] == pytest.approx(1 / 3) and r["n_clusters"] == 3
    assert S.decide(r) != "reproduced"
    mixed = S.chance_share([1, 1, 0, 1], [0.5, 0.25, 0.5, 0.25])
    assert mixed["null"] == pytest.approx(0.375) and mixed["value"] == 0.75 and mixed["share"] == 0.75
    all_hit = S.chance_share(np.ones(12), np.full(12, 0.25), clusters=np.repeat(list("abcd"), 3))
    assert all_hit["ci"] == pytest.approx([1.0, 1.0]) and S.decide(all_hit) == "reproduced"


def test_placebo_is_the_null_of_an_intervention_rate():
    effect = np.array([1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1])
    r = S.versus_placebo(effect, effect.copy(), clusters=np.repeat(list("abcd"), 3))
    assert r["value"] == r["null"] and S.decide(r) == "inconclusive"
    better = S.versus_placebo(np.ones(12), np.zeros(12), clusters=np.repeat(list("abcd"), 3))
    assert better["null"] == 0.0 and S.decide(better) == "reproduced"


def test_auc_clustered_delong():
    assert S.auc([3, 4, 5], [0, 1, 2])["value"] == 1.0
    assert S.auc([1, 2], [1, 2])["value"] == 0.5  # ties count half
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, 40), rng.normal(0, 1, 40)
    ca, cb = np.repeat(list("abcdefgh"), 5), np.repeat(list("pqrstuvw"), 5)
    r = S.auc(a, b, clusters=(ca, cb))
    va = np.array([(a[:, None] > b[None, :]).mean(1)[ca == k].mean() for k in "abcdefgh"])
    vb = np.array([(a[:, None] > b[None, :]).mean(0)[cb == k].mean() for k in "pqrstuvw"])
    se = np.sqrt(va.var(ddof=1) / 8 + vb.var(ddof=1) / 8)  # Obuchowski's clustered DeLong variance
    assert r["value"] == pytest.approx(va.mean()) and (r["ci"][1] - r["ci"][0]) / 2 == pytest.approx(
        sps.t.ppf(0.975, (se ** 2) ** 2 / ((va.var(ddof=1) / 8) ** 2 / 7 + (vb.var(ddof=1) / 8) ** 2 / 7)) * se)
    assert r["n_clusters"] == [8, 8] and r["loo"] is not None


def test_spearman_fisher_z():
    x, y = np.repeat([1, 3, 10], 3), np.array([40, 35, 38, 20, 15, 18, 14, 16, 12.0])
    r = S.spearman(x, y)
    rho = sps.spearmanr(x, y).statistic
    se = np.sqrt((1 + rho ** 2 / 2) / 6)
    assert r["value"] == pytest.approx(rho)
    assert r["ci"] == pytest.approx(list(np.tanh(np.arctanh(rho) + np.array([-1, 1]) * 1.959964 * se)), abs=1e-6)
    assert r["n_clusters"] == 9 and r["detectable"] is not None


def test_detectable_has_the_power_it_claims():
    """At the detectable effect, simulated fresh data are decisive (with any cluster left out) in
    about 80% of draws; it scales with the spread and needs at least three clusters."""
    d = S.detectable((6,), (1.0,))
    assert S.detectable((6,), (2.0,)) == pytest.approx(2 * d)
    assert S.detectable((2,), (1.0,)) is None and S.detectable((6,), (0.0,)) is None
    rng = np.random.default_rng(5)
    hits = [S.decide(S.one_sample(rng.normal(d, 1.0, 6), clusters=list("abcdef"))) == "reproduced" for _ in range(600)]
    assert abs(np.mean(hits) - 0.8) < 0.06
    two = S.detectable((5, 7), (1.0, 0.5))
    hits = [S.decide(S.two_sample(rng.normal(two, 1.0, 5), rng.normal(0, 0.5, 7), (list("abcde"), list("pqrstuv"))))
            == "reproduced" for _ in range(600)]
    assert abs(np.mean(hits) - 0.8) < 0.06
    assert S.clusters_needed(d, (3,), (1.0,)) == 6


@pytest.mark.parametrize("design", calibration.DESIGNS)
def test_rule_is_calibrated_with_no_effect(design):
    """No effect: decisive at most 5% (+ Monte-Carlo error) at 3–20 clusters a side, unequal sizes."""
    draws = 150
    limit = 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / draws)
    rng = np.random.default_rng([7, calibration.DESIGNS.index(design)])
    for g in calibration.COUNTS:
        rate = np.mean([S.decide(r) in calibration.DECISIVE
                        for r in (calibration.result(design, g, 0.0, rng) for _ in range(draws))])
        assert rate <= limit, (design, g, rate)


def test_one_concept_carrying_the_effect_is_no_verdict_and_a_uniform_one_is():
    rng = np.random.default_rng(11)
    carried = [S.decide(calibration.result("one-sample", 3, 1.0, rng, carrier=True)) for _ in range(100)]
    assert np.mean([v == "reproduced" for v in carried]) <= 0.05
    # the earlier percentile bootstrap was fooled by exactly this (its range of three means)
    fooled = [calibration.bootstrap_decisive(*calibration._sample(rng, 3, 0.0), rng) for _ in range(300)]
    assert np.mean(fooled) > 0.15
    strong = [S.decide(calibration.result("one-sample", 12, 2.0, rng)) for _ in range(50)]
    assert np.mean([v == "reproduced" for v in strong]) > 0.9


def test_committed_calibration_table_holds():
    """The methods page's table: every design and count, false-decisive within 5% + its Monte-Carlo error."""
    result = json.loads((REPO / "benchmarks" / "results" / "verdict_calibration.json").read_text())
    rows, draws = result["rows"], result["draws"]
    assert {(r["design"], r["clusters a side"]) for r in rows} == {(d, g) for d in calibration.DESIGNS
                                                                    for g in calibration.COUNTS}
    limit = 0.05 + 1.96 * np.sqrt(0.05 * 0.95 / draws)
    assert all(r["decisive, no effect"] <= limit for r in rows)
    page = (REPO / "book" / "_calibration.md").read_text()
    assert page == calibration.markdown(rows, draws)


def test_two_sample_leave_one_out_is_each_side_recomputed():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1, 1, 20), rng.normal(0, 2, 24)
    ca, cb = np.repeat(list("abcde"), 4), np.repeat(list("pqrstu"), 4)
    r = S.two_sample(a, b, (ca, cb))
    again = {k: S.two_sample(a[ca != k], b, (ca[ca != k], cb))["ci"] for k in "abcde"}
    again.update({k: S.two_sample(a, b[cb != k], (ca, cb[cb != k]))["ci"] for k in "pqrstu"})
    low, high = min(again, key=lambda k: again[k][0]), max(again, key=lambda k: again[k][1])
    assert r["loo"]["low"]["cluster"] == low and r["loo"]["low"]["ci"] == pytest.approx(again[low])
    assert r["loo"]["high"]["cluster"] == high and r["loo"]["high"]["ci"] == pytest.approx(again[high])


def test_an_estimate_that_rounds_to_zero_reads_without_a_minus():
    said = S.interval_text({"value": -6.9e-18, "ci": [-0.1316, 0.1316]}, "{:+.2f}")
    assert said == "+0.00 [-0.13, +0.13]"
    assert S.interval_text({"value": -0.004, "ci": None}, "{:+.2f}") == "+0.00"
    assert S.interval_text({"value": -0.0123, "ci": [-0.02, -0.001]}, "{:+.3f}") == "-0.012 [-0.020, -0.001]"
