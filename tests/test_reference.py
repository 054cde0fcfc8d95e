"""The reference comparison forgives what another CPU's rounding moves, and nothing more: a number
`CPU_NOISE` of its result's largest, a printed number one unit of its last digit."""

from reference import CPU_NOISE, compare, same_printed


def test_a_printed_number_may_move_one_unit_of_its_last_digit_and_no_more():
    assert same_printed("0.2611", "0.2610") and same_printed("-0.05 [-0.10, +0.01]", "-0.04 [-0.10, +0.01]")
    assert same_printed("+1.91e-07 [-2.55e-06, +2.93e-06] over 2 pairs", "+1.91e-07 [-2.55e-06, +2.94e-06] over 2 pairs")
    assert same_printed("-0.000 [-0.002, +0.001]", "+0.000 [-0.002, +0.001]")  # the same value
    assert not same_printed("0.2612", "0.2610")  # two units
    assert not same_printed("+2.93e-06", "+2.93e-07")  # another exponent
    assert not same_printed("0.261", "0.2610")  # another format
    assert not same_printed("12 of 40", "13 of 40") and not same_printed("3 pairs", "4 pairs")  # counts stay exact
    assert not same_printed("0.26: supported", "0.26: underpowered")  # words stay exact


def result(**numbers):
    return {"profile": {"name": "smoke", "seeds": 2}, "results": [{"key": "x", **numbers}]}


def test_a_number_may_move_a_small_share_of_its_results_largest():
    ref = result(value=1e-7, ci=[-1e-5, 2e-5])
    assert compare(ref, result(value=1e-7 + CPU_NOISE * 2e-5 * 0.9, ci=[-1e-5, 2e-5])) == []
    assert compare(ref, result(value=1e-7 + CPU_NOISE * 2e-5 * 1.1, ci=[-1e-5, 2e-5])) != []
    assert compare(ref, result(value=1e-7, ci=[-1e-5, 2e-5], extra=1)) == ["/results[0]/extra: only in one"]


def test_the_profile_compares_exactly():
    changed = result(value=1.0)
    changed["profile"]["seeds"] = 3
    assert compare(result(value=1.0), changed) == ["/profile/seeds: 2 vs 3"]
