"""`dvd plan`'s prices (`dvdlib.plan`'s cost section) against a small plan priced by hand."""

import json
from types import SimpleNamespace

import pytest

from dvdlib import plan as planning
from dvdlib.plan import GENERATE, JUDGE, Plan, Work
from dvdlib.vqa import BATCH_SIZE

HOUR = 3600.0
#: Seconds per image measured at batches 1, 4 and 16 (10 steps, 64²): 0.6 h at batch 8, linear in 1/batch.
COSTS = {"device": "hand GPU",
         "generation": {"m": {"resolution": 64, "steps": 10, "batch": 16, "dtype": "float16",
                              "seconds_per_image": 0.5 * HOUR,
                              "seconds_per_image_by_batch": {"1": 2.0 * HOUR, "4": 0.8 * HOUR, "16": 0.5 * HOUR}}},
         "judge": {"model": "tiny", "seconds_per_question": 0.04 * HOUR,
                   "seconds_per_question_by_batch": {"1": 0.2 * HOUR, "10": 0.05 * HOUR, "20": 0.04 * HOUR}}}


def test_a_rate_between_measured_batches_is_linear_in_one_over_batch():
    by_batch = {"4": 0.8, "16": 0.5}
    # 1/8 lies two thirds of the way from 1/4 to 1/16: 0.8 + 2/3 × (0.5 − 0.8)
    assert planning.at_batch(by_batch, 8) == pytest.approx(0.6)
    assert planning.at_batch(by_batch, 8, interpolation="batch") == pytest.approx(0.7)  # a third of the way
    assert planning.at_batch(by_batch, 16) == 0.5 and planning.at_batch(by_batch, 4) == 0.8
    assert planning.at_batch(by_batch, 64) == 0.5 and planning.at_batch(by_batch, 2) == 0.8  # the nearest measured
    with pytest.raises(ValueError, match="interpolation"):
        planning.at_batch(by_batch, 8, interpolation="log")


def _settings(resolution: int) -> str:
    return json.dumps({"resolution": resolution, "steps": 10, "guidance": 7.5})


def _plan(store) -> Plan:
    """Rows A, B (2 seeds) and C (3 seeds) generated and judged plainly; A's ablation (known to be
    needed), C's (provisional: C not judged yet), memorized row M's (provisional, never judged);
    one 5-step image of F at 32²."""
    plain, ablated, first = "m/plain", "m/ablated", "m/first"
    seeds = {"A": [1, 2], "B": [1, 2], "C": [1, 2, 3]}
    items = []
    for prompt, ss in seeds.items():
        for s in ss:
            items.append(Work(GENERATE, "m", plain, _settings(64), prompt, s, unet_evals=20))
            items.append(Work(JUDGE, "m", plain, _settings(64), prompt, s, answers="judge:q", asks="dvd", questions=10))
    for prompt, provisional in (("A", False), ("C", True)):
        for s in seeds[prompt]:
            items.append(Work(GENERATE, "m", ablated, _settings(64), prompt, s, intervention="iv", unet_evals=20,
                              provisional=provisional))
            items.append(Work(JUDGE, "m", ablated, _settings(64), prompt, s, intervention="iv", answers="judge:q",
                              asks="dvd", questions=10, provisional=provisional))
    items += [Work(GENERATE, "m", ablated, _settings(64), "M", s, intervention="iv", unet_evals=20, provisional=True)
              for s in (1, 2, 3)]
    items.append(Work(GENERATE, "m", first, _settings(32), "F", 1, unet_evals=10))
    profile = SimpleNamespace(name="hand", description="priced by hand", batch_size=8, store=str(store), model="m")
    return Plan("06_hand", profile, items)


def _judge(store, p: Plan, answers: dict) -> None:
    """Store the plain answers (c, n) of some rows, as chapter 02 leaves them."""
    for w in p.items:
        if w.kind == JUDGE and not w.intervention and w.prompt in answers:
            path = store / f"{w.base}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            c, n = answers[w.prompt]
            path.write_text(json.dumps({w.answers: {"c": c, "n": n, "answers": []}}))


def test_a_small_plan_priced_by_hand(tmp_path):
    assert BATCH_SIZE == 20  # the judge's calls below: 20 pairs, and a call of 10 for C's third image
    p = _plan(tmp_path)
    # hours: an image 0.6 (batch 8); F's 0.6 × 10/20 evaluations × (32/64)² = 0.075; a call of 20 pairs
    # 20 × 0.04 = 0.8, of 10 pairs 10 × 0.05 = 0.5 (C: 3 images × 10 questions = calls of 20 and 10)
    plain = 7 * 0.6 + 0.075 + (0.8 + 0.8 + 1.3)
    a_ablated, c_ablated, m_ablated = 2 * 0.6 + 0.8, 3 * 0.6 + 1.3, 3 * 0.6
    upper = plain + a_ablated + c_ablated + m_ablated
    assert planning.seconds(p, COSTS)[0] / HOUR == pytest.approx(upper)  # 14.075
    assert [planning.call_sizes(ask, BATCH_SIZE) for ask in planning.judge_asks(p.items)] == [
        [20], [20], [20, 10], [20], [20, 10]]

    # no row judged in the store: the paper's share (every DominanceBench prompt ablated) for C, M in full
    shares, said = planning.expected_shares(p)
    assert shares == {("m", "C"): 1.0, ("m", "M"): 1.0}
    assert any("paper's share, 300 of 300" in s for s in said) and any("memorized" in s for s in said)
    assert planning.seconds(p, COSTS, shares)[0] / HOUR == pytest.approx(upper)

    # chapter 02's answers for A (collapsed: DvD 100) and B (not: DvD 0): C is expected at 1 of 2
    _judge(tmp_path, p, {"A": (5, 0), "B": (0, 5)})
    shares, said = planning.expected_shares(p)
    assert shares == {("m", "C"): 0.5, ("m", "M"): 1.0}
    assert any("1 of the 2 rows" in s and "50%" in s for s in said)
    expected = upper - 0.5 * c_ablated  # 12.525
    assert planning.seconds(p, COSTS, shares)[0] / HOUR == pytest.approx(expected)

    table = planning.cost_table([p], COSTS, gpus=2, source="hand.json")
    assert "| 06 hand | 16 | 310 | 120 | 7 | 12.5 | 14.1 | 6.3 |" in table  # 12.525 / 2 GPUs = 6.26
    assert "batches of 8" in table and "20 pairs per call" in table and "1 of the 2 rows" in table


def test_without_rates_by_batch_the_one_measured_rate_prices_everything(tmp_path):
    flat = {"device": "flat GPU", "generation": {"m": {"resolution": 64, "steps": 10, "batch": 16,
                                                       "dtype": "float16", "seconds_per_image": 1.0}},
            "judge": {"seconds_per_question": 0.1}}
    p = _plan(tmp_path)
    # 15 images of 20 evaluations, F's 10 evaluations at 32² (× 0.5 × 0.25); 12 images × 10 questions
    assert planning.seconds(p, flat)[0] == pytest.approx(15 * 1.0 + 0.125 + 120 * 0.1)
