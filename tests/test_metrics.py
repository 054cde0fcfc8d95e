"""The Focus Score and its building blocks (paper §3.4): dvdlib.metrics,
against values worked out by hand below."""
import math

import numpy as np
import pytest

from dvdlib.metrics import entropy, focus_score, normalized_entropy, peak_token

LOG2, LOG3, LOG4 = math.log(2), math.log(3), math.log(4)


# entropy ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 10, 77])
def test_entropy_of_uniform_is_log_n(n):
    assert entropy(np.full(n, 1 / n)) == pytest.approx(math.log(n), rel=1e-12)


def test_entropy_of_one_hot_is_zero():
    assert entropy(np.eye(77)[5]) == 0.0  # zeros contribute nothing (0 · log 0 = 0)
    assert entropy([0.0, 1.0]) == 0.0


def test_entropy_by_hand():
    # H([1/2, 1/4, 1/4]) = 1/2·log 2 + 2 · 1/4·log 4 = 1/2·log 2 + log 2 = 1.5·log 2
    assert entropy([0.5, 0.25, 0.25]) == pytest.approx(1.5 * LOG2, rel=1e-12)
    # weights are renormalised first: [2, 1, 1] is the same distribution
    assert entropy([2.0, 1.0, 1.0]) == pytest.approx(1.5 * LOG2, rel=1e-12)
    # H([0.6, 0.2, 0.2]) = −(0.6·log 0.6 + 2·0.2·log 0.2)
    assert entropy([0.6, 0.2, 0.2]) == pytest.approx(-(0.6 * math.log(0.6) + 0.4 * math.log(0.2)), rel=1e-12)
    assert entropy([0.6, 0.2, 0.2]) == pytest.approx(0.9502705, abs=1e-7)


@pytest.mark.parametrize("bad", [[], [0.0, 0.0], [0.5, -0.1, 0.6], [[0.5, 0.5], [0.5, 0.5]]])
def test_entropy_rejects(bad):
    with pytest.raises(ValueError):
        entropy(np.asarray(bad, dtype=float))


def test_normalized_entropy():
    assert normalized_entropy(np.full(77, 1 / 77)) == pytest.approx(1.0, rel=1e-12)
    assert normalized_entropy(np.eye(4)[2]) == 0.0
    # 1.5·log 2 / log 3
    assert normalized_entropy(np.array([0.5, 0.25, 0.25])) == pytest.approx(1.5 * LOG2 / LOG3, rel=1e-12)
    assert normalized_entropy(np.array([0.5, 0.25, 0.25])) == pytest.approx(0.9463946, abs=1e-7)
    with pytest.raises(ValueError, match="at least two"):
        normalized_entropy(np.array([1.0]))


# peak token -----------------------------------------------------------------------------------------

def test_peak_token_only_among_content_positions():
    a = np.zeros(77)
    a[0] = 0.9  # the start token: the largest value, but not a content position
    a[[1, 2, 3]] = [0.06, 0.02, 0.02]
    assert peak_token(a, [1, 2, 3]) == 1
    b = np.zeros(77)
    b[4], b[5], b[3], b[7] = 0.5, 0.2, 0.1, 0.15  # position 4 is larger, but not in J
    assert peak_token(b, [3, 5, 7]) == 5  # the position in the prompt, not the index into J (1)
    assert peak_token(b, [7, 3]) == 7
    assert peak_token(list(b), (3, 7)) == 7


# Focus Score ------------------------------------------------------------------------------------------

def hand_example():
    a = np.zeros(77)
    a[0] = 0.9
    a[[1, 2, 3]] = [0.06, 0.02, 0.02]
    return a


def test_focus_score_by_hand():
    # peak p = 1 (a_p = 0.06); mean of the others = (0.02 + 0.02) / 2 = 0.02 → contrast 0.04.
    # q = [0.06, 0.02, 0.02] / 0.10 = [0.6, 0.2, 0.2]; H(q) = −(0.6·log 0.6 + 2·0.2·log 0.2);
    # normalised by log |J| = log 3.
    h_q = -(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2))
    expected = (0.06 - 0.02) / (h_q / LOG3)
    assert focus_score(hand_example(), [1, 2, 3]) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.0462442, abs=1e-7)
    # the start token's mass plays no part: moving it elsewhere outside J changes nothing
    a = hand_example()
    a[0], a[40] = 0.0, 0.9
    assert focus_score(a, [1, 2, 3]) == pytest.approx(expected, rel=1e-9)


def test_focus_score_others_and_normalise():
    a = np.zeros(77)
    a[0] = 0.81
    a[[2, 3, 4, 5]] = [0.06, 0.10, 0.02, 0.01]  # peak at position 3
    positions = [2, 3, 4, 5]
    assert peak_token(a, positions) == 3
    # the others: 0.06, 0.02, 0.01 → mean 0.03, median 0.02
    q = np.array([0.06, 0.10, 0.02, 0.01]) / 0.19
    h_norm = -(q * np.log(q)).sum() / LOG4
    assert focus_score(a, positions, normalise=False) == pytest.approx(0.10 - 0.03, rel=1e-9)
    assert focus_score(a, positions, others="median", normalise=False) == pytest.approx(0.10 - 0.02, rel=1e-9)
    assert focus_score(a, positions) == pytest.approx(0.07 / h_norm, rel=1e-9)
    assert focus_score(a, positions, others="median") == pytest.approx(0.08 / h_norm, rel=1e-9)
    with pytest.raises(ValueError, match="others"):
        focus_score(a, positions, others="max")


def test_focus_score_limits():
    a = np.zeros(77)
    a[[1, 2, 3, 4]] = 0.05
    assert focus_score(a, [1, 2, 3, 4]) == pytest.approx(0.0, abs=1e-15)  # uniform over J: no contrast
    b = np.zeros(77)
    b[[1, 2]] = [0.3, 0.0]
    assert focus_score(b, [1, 2]) == float("inf")  # all of J's mass on one token: H(q) = 0
    # a more concentrated prompt scores higher than a flatter one with the same peak contrast order
    flat, sharp = np.zeros(77), np.zeros(77)
    flat[[1, 2, 3]] = [0.04, 0.03, 0.03]
    sharp[[1, 2, 3]] = [0.08, 0.01, 0.01]
    assert focus_score(sharp, [1, 2, 3]) > focus_score(flat, [1, 2, 3]) > 0


@pytest.mark.parametrize("positions", [[1], []])
def test_focus_score_needs_two_content_tokens(positions):
    with pytest.raises(ValueError, match="at least two content tokens"):
        focus_score(hand_example(), positions)
    with pytest.raises(ValueError, match="at least two content tokens"):
        peak_token(hand_example(), positions)


def test_focus_score_rejects_2d_input():
    with pytest.raises(ValueError, match="one attention value per token position"):
        focus_score(np.zeros((2, 77)), [1, 2, 3])
    with pytest.raises(ValueError, match="one attention value per token position"):
        peak_token(np.zeros((8, 77)), [1, 2, 3])


def test_focus_score_with_a_boolean_mask_is_used_as_a_mask_or_rejected():
    a = hand_example()
    mask = np.zeros(77, dtype=bool)
    mask[[1, 2, 3]] = True
    try:
        got = focus_score(a, mask)
    except ValueError:
        return
    assert got == pytest.approx(focus_score(a, [1, 2, 3]), rel=1e-9)


# DvD Score (paper §2) -------------------------------------------------------------------------------

from dvdlib.metrics import dvd_score, is_dvd_image, meets_inclusion  # noqa: E402


@pytest.mark.parametrize("c, n, expected", [
    (5, 0, 100.0),          # concept fully there, object gone: 5·5/25·100
    (0, 0, 0.0),            # no concept: nothing dominates
    (5, 5, 0.0),            # both fully there: composed
    (4, 1, 64.0),           # 4·4/25·100
    (3, 2, 36.0),           # 3·3/25·100
    (2, 4, 8.0),            # 2·1/25·100
])
def test_dvd_score_by_hand(c, n, expected):
    assert dvd_score(c, n) == pytest.approx(expected)


def test_dvd_score_rejects_impossible_counts():
    with pytest.raises(ValueError, match="between 0 and 5"):
        dvd_score(6, 0)
    with pytest.raises(ValueError, match="object_yes"):
        dvd_score(3, -1)


def test_dvd_image_threshold_and_inclusion_rule():
    assert is_dvd_image(48.0) and not is_dvd_image(47.99)          # τ = 48 is inclusive
    assert is_dvd_image(40.0, tau=40) and not is_dvd_image(60.0, tau=64)
    seven = [64.0] * 7 + [0.0] * 3                                  # 7 of 10 DvD images
    assert meets_inclusion(seven) and not meets_inclusion([64.0] * 6 + [47.0] * 4)
    assert not meets_inclusion(seven, tau=80) and meets_inclusion(seven, min_images=7)


def test_adjusted_p_by_hand():
    from dvdlib.metrics import adjusted_p

    p = [0.01, 0.04, 0.03]
    # BH: sorted 0.01, 0.03, 0.04 → ×3/1, ×3/2, ×3/3 = 0.03, 0.045, 0.04 → monotone from the top: 0.03, 0.04, 0.04
    assert adjusted_p(p, "bh") == pytest.approx([0.03, 0.04, 0.04])
    assert adjusted_p(p, "bonferroni") == pytest.approx([0.03, 0.12, 0.09])
    assert adjusted_p([0.5, 0.9], "bonferroni") == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="'bh' or 'bonferroni'"):
        adjusted_p(p, "holm")
