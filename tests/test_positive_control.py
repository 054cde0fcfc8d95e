"""The positive control of the head-ablation claims (paper §3.6): the dominant concept's tokens
suppressed in every cross-attention layer (`dvdlib.attention.suppress_tokens`), judged as the
ablations are, and its pass/fail rule (`dvdlib.ablation.power_check`)."""

import numpy as np
import pytest
import torch

from dvdlib import ablation, models
from dvdlib import stats as S
from dvdlib.ablation import Job, Suppression, Sweep
from dvdlib.attention import (TokenSuppression, TokenSuppressionEach, attention_probs, record, suppress_tokens,
                              suppress_tokens_each)
from dvdlib.generate import pipeline_call
from dvdlib.judge import load_questions
from dvdlib.layers import registry
from dvdlib.outcome import CORRUPTED, MITIGATED, UNCHANGED
from dvdlib.tokens import concept_span, sequence_tokenizer
from test_ablation import BENCH, SAMPLER, SEEDS, ScriptedJudge, fill

PROMPT = "Van Gogh Mug"


@pytest.fixture(scope="module")
def pipe():
    return models.load("smoke")


def images(pipe, pairs):
    return [np.asarray(im) for im in pipe(**pipeline_call(pipe, pairs, SAMPLER)).images]


# --- the intervention ------------------------------------------------------------------------------------

def test_suppression_off_is_bit_identical_to_plain_generation(pipe):
    span = concept_span(sequence_tokenizer(pipe), PROMPT, "van gogh")
    plain = images(pipe, [(PROMPT, 1825), ("Colosseum Carry-all Pouch", 410)])
    with suppress_tokens(pipe, span, strength=0.0):
        off = images(pipe, [(PROMPT, 1825), ("Colosseum Carry-all Pouch", 410)])
    with suppress_tokens(pipe, [], strength=1.0):  # nothing to suppress
        empty = images(pipe, [(PROMPT, 1825), ("Colosseum Carry-all Pouch", 410)])
    with suppress_tokens_each(pipe, [(span, (1,), 0.0), None]):
        each_off = images(pipe, [(PROMPT, 1825), ("Colosseum Carry-all Pouch", 410)])
    for got in (off, empty, each_off):
        assert all(np.array_equal(a, b) for a, b in zip(plain, got))
    with suppress_tokens(pipe, span):
        on = images(pipe, [(PROMPT, 1825)])
    assert np.abs(on[0].astype(int) - plain[0]).max() > 2  # at full strength the image changes
    assert all(type(layer.module.processor).__name__ != "ControlledProcessor" for layer in registry(pipe))


def test_suppression_in_a_sweep_off_equals_the_plain_store(pipe, tmp_path):
    rows = BENCH.iloc[:2]
    sweep = Sweep(pipe, rows, SEEDS, root=tmp_path, model="smoke", sampler=SAMPLER, batch_size=4)
    off = [Job(Suppression("colosseum", 0.0), (1,)), Job(Suppression("van gogh", 0.0), (2,))]
    on = [Job(Suppression("colosseum"), (1,)), Job(ablation.Intervention(((1, 0),)), (1,))]  # mixed in one batch
    sweep.run(off + on, progress=False)
    assert ablation.images_changed(sweep, off) == (0, 4)
    assert ablation.images_changed(sweep, on[:1]) == (2, 2)
    assert sweep.store(on[0].intervention).settings["intervention"] == {
        "suppress": "colosseum", "layers": "all", "strength": 1.0, "steps": [1]}
    # the head ablation batched beside the suppression is the image a batch of its own makes
    alone = Sweep(pipe, rows, SEEDS, root=tmp_path / "alone", model="smoke", sampler=SAMPLER)
    alone.run(on[1:], baseline=False, progress=False)
    a = np.asarray(alone.store(on[1].intervention).image(rows.prompt[0], SEEDS[0]), dtype=int)
    b = np.asarray(sweep.store(on[1].intervention).image(rows.prompt[0], SEEDS[0]), dtype=int)
    assert np.abs(a - b).max() <= 2


def test_suppression_removes_the_concepts_attention(pipe):
    """Recorded against the stock attention: the concept's tokens get no attention in the
    conditional branch, at every layer of the suppressed step, and only there."""
    span = concept_span(sequence_tokenizer(pipe), PROMPT, "van gogh")
    assert span == [1, 2]
    call = lambda: pipe(**pipeline_call(pipe, [(PROMPT, 1825)], SAMPLER))
    with record(pipe, layers="all", steps=[1, 2], branch="both") as stock:
        call()
    with record(pipe, layers="all", steps=[1, 2], branch="both") as cut, suppress_tokens(pipe, span, steps=[1]):
        call()
    for layer in range(1, 17):
        before, after = stock.share(layer, 1), cut.share(layer, 1)  # [uncond, cond] × tokens
        assert before[1, span].min() > 0 and np.all(after[1, span] == 0)
        np.testing.assert_allclose(after.sum(-1), 1, atol=1e-5)  # the rest renormalised
        others = [i for i in range(after.shape[-1]) if i not in span]
        assert np.all(after[1, others] >= 0) and after[1, others].sum() > before[1, others].sum() + 1e-3
        assert cut.share(layer, 2)[1, span].min() > 0  # step 2 is not suppressed
    # the first layer sees the same input either way: its unconditional branch is untouched
    np.testing.assert_allclose(cut.share(1, 1)[0], stock.share(1, 1)[0], atol=1e-6)


def test_suppressed_probabilities_are_the_stock_ones_renormalised(pipe):
    """Per pixel and head: strength 1 zeroes the positions and renormalises the rest; strength s
    scales them by 1 − s before renormalising (the softmax of logits + log(1 − s))."""
    layer = registry(pipe)[0]
    torch.manual_seed(0)
    hidden = torch.randn(2, 64, layer.module.to_q.in_features)
    context = torch.randn(2, 77, layer.module.to_k.in_features)
    stock, _ = attention_probs(layer.module, hidden, context)
    for strength in (1.0, 0.5):
        s = TokenSuppression([3, 4], strength)
        bias = s.bias_for(layer, 1, "cpu", 2, 77, guided=True)
        assert torch.all(bias[0] == 0)  # the unconditional half
        probs, _ = attention_probs(layer.module, hidden, context, logit_bias=bias)
        scaled = stock[1].clone()
        scaled[..., [3, 4]] *= 1 - strength
        torch.testing.assert_close(probs[1], scaled / scaled.sum(-1, keepdim=True), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(probs[0], stock[0])
    assert TokenSuppression([3], 1.0, steps=[1]).bias_for(layer, 2, "cpu", 2, 77, True) is None
    each = TokenSuppressionEach([TokenSuppression([3]), None, TokenSuppression([5])])
    bias = each.bias_for(layer, 1, "cpu", 6, 77, guided=True)
    assert torch.all(bias[:3] == 0) and bias[3 + 0, 3] == -np.inf and bias[3 + 2, 5] == -np.inf
    assert torch.isfinite(bias[3 + 2, 3]) and torch.all(bias[3 + 1] == 0)
    with pytest.raises(ValueError, match="strength"):
        TokenSuppression([3], 1.5)
    with pytest.raises(ValueError, match="per-image"):
        each.bias_for(layer, 1, "cpu", 4, 77, True)


def test_token_suppression_refuses_joint_attention():
    """Joint-attention families (SD3, FLUX) do not apply it: an error, never a silent no-op."""
    pipe = models.load("tiny:sd3")
    with pytest.raises(NotImplementedError, match="token suppression"):
        with suppress_tokens(pipe, [1]):
            pass


# --- the control's plan, keys and rule ----------------------------------------------------------------------

def test_control_jobs_one_per_dominant_concept_and_keys():
    first, diagnostic = ablation.control_jobs(BENCH, steps=[1], n_steps=25)
    assert [(j.intervention.concept, j.cases) for j in first] == [("colosseum", (1,)), ("van gogh", (2, 3))]
    assert {j.intervention.steps for j in first} == {(1,)} and {j.intervention.steps for j in diagnostic} == {(1, 2, 3, 4, 5)}
    assert len(ablation.control_jobs(BENCH, steps=[1], n_steps=9)) == 1  # steps 1–1: the same control once
    c = Suppression("van gogh", 1, [1])
    assert ablation.from_key(c.key()) == c and "heads" not in c.key()
    iv = ablation.Intervention(((1, 0),))
    assert ablation.from_key(iv.key()) == iv
    assert ablation.control_what(first) == ("suppressing the dominant concept's tokens in every cross-attention "
                                            "layer at step 1")
    assert ablation.control_what(diagnostic).endswith("at steps 1–5")


@pytest.mark.parametrize("hits, n", [(0, 12), (1, 12), (12, 12), (3, 7), (0, 1), (1, 1)])
def test_control_passes_on_the_clopper_pearson_lower_bound(hits, n):
    from scipy.stats import beta

    # the exact interval by hand: Beta quantiles (Clopper & Pearson 1934)
    low = 0.0 if hits == 0 else beta.ppf(0.025, hits, n - hits + 1)
    high = 1.0 if hits == n else beta.ppf(0.975, hits + 1, n - hits)
    if hits == 0:
        assert high == pytest.approx(1 - 0.025 ** (1 / n))
    if hits == 1:
        assert low == pytest.approx(1 - 0.975 ** (1 / n))
    if hits == n:
        assert low == pytest.approx(0.025 ** (1 / n))
    control = S.rate(hits, n)
    assert control["ci"] == pytest.approx([low, high], abs=1e-9)
    assert ablation.control_passes(control) == ("passed" if low > 0 else "failed")
    assert ablation.control_passes(control, min_lower=0.3) == ("passed" if low > 0.3 else "failed")


def test_control_rule_by_hand():
    assert ablation.CONTROL_MIN_LOWER == 0.0
    assert ablation.control_passes(S.rate(0, 0)) == "failed"  # no row: nothing could be seen
    assert ablation.control_passes(S.rate(1, 12)) == "passed"  # lower bound 0.0021 > 0
    assert ablation.control_passes(S.rate(1, 12), min_lower=0.05) == "failed"
    assert ablation.control_passes(S.rate(12, 12), min_lower=0.7) == "passed"  # 0.025^(1/12) = 0.735
    assert ablation.control_passes(S.rate(12, 12), min_lower=0.74) == "failed"
    assert ablation.control_text({**S.rate(3, 12), "what": "x"}) == "3/12 rows mitigated (25.0%; 95% CI 5.5%–57.2%)"


def power_of(tmp_path, control_counts, require_baseline=True, others=None):
    """`power_check` on hand-made stores: row 1 collapsed (plain c 5, n 0/1), rows 2–3 not; the
    colosseum suppression's images carry ``control_counts`` (``others``: the van gogh one's). No
    pipeline: an image that is not stored cannot be made."""
    sweep = Sweep(None, BENCH, SEEDS, root=tmp_path, model="fake", sampler=SAMPLER)
    fill(sweep, None, {"Colosseum Carry-all Pouch": [(5, 0), (5, 1)], "Van Gogh Mug": [(2, 2), (1, 3)]})
    controls = ablation.control_jobs(BENCH, steps=[1], n_steps=5)
    fill(sweep, controls[0][0].intervention, {"Colosseum Carry-all Pouch": control_counts})
    if others is not None:
        fill(sweep, controls[0][1].intervention, {"Van Gogh Mug": others})
    return ablation.power_check(sweep, controls, ScriptedJudge(), load_questions("paper"),
                                require_baseline=require_baseline)


def test_a_control_that_mitigates_passes(tmp_path):
    power, control, table = power_of(tmp_path, [(4, 4), (3, 3)])  # c, n ≥ 3, DvD 20 < 48: mitigated
    assert power == "passed"
    assert control == {"hits": 1, "n": 1, "value": 1.0, "ci": pytest.approx([0.025, 1.0]),
                       "what": "suppressing the dominant concept's tokens in every cross-attention layer at step 1"}
    assert list(table.index) == ["step 1"] and table["decides"].tolist() == ["yes"]
    # only the collapsed row's images; (5, 1) → (3, 3) moves no value by more than 2 of 255
    assert table["images changed (diagnostic)"].tolist() == ["1 of 2"]


@pytest.mark.parametrize("counts, outcome", [([(5, 0), (5, 1)], UNCHANGED), ([(0, 5), (1, 4)], CORRUPTED)])
def test_a_control_that_does_not_mitigate_fails_and_the_claim_has_no_verdict(tmp_path, counts, outcome):
    """A control that changes the images without bringing both concepts back (still collapsed, or
    the concept gone too) fails: every ablation claim then reads "no effect in this model"."""
    import pandas as pd

    power, control, table = power_of(tmp_path, counts)
    assert power == "failed" and control["hits"] == 0 and control["n"] == 1 and control["ci"][0] == 0.0
    claims = pd.DataFrame([{"case_num": 1, "intervention": "L3.H0", "outcome": MITIGATED},
                           {"case_num": 1, "intervention": "L12.H0", "outcome": UNCHANGED}])
    rows = BENCH[["case_num", "content"]]
    claim = ablation.versus_placebo(claims, power, rows, control=control)
    assert claim["power_check"] == "failed" and claim["control"] == control
    assert S.verdict(claim["ci"], claim.get("null"), power=claim["power_check"]) == S.NO_EFFECT
    shown = ablation.claims_with_control({"single head": claim})
    assert shown.loc["single head", "positive control"] == "0/1 rows mitigated (0.0%; 95% CI 0.0%–97.5%)"


def test_a_control_counts_every_row_when_the_baseline_is_not_required(tmp_path):
    """As the ablations do with ``require_baseline=False``: every row counts (the van gogh rows,
    never collapsed, stay unchanged here)."""
    power, control, table = power_of(tmp_path, [(4, 4), (3, 3)], require_baseline=False, others=[(5, 0), (5, 0)])
    assert (power, control["hits"], control["n"]) == ("passed", 1, 3)
    assert table["images changed (diagnostic)"].tolist() == ["3 of 4"]  # two prompts × two seeds


def test_the_plan_of_chapter_06_holds_its_controls_and_the_chapter_then_computes_nothing(tmp_path, monkeypatch):
    """`dvd prefetch 06` makes and judges the controls' images as the chapter does (every row
    counted, so that the chapter needs every control image): a chapter run after it writes nothing."""
    from pathlib import Path

    from test_plan import stored

    from dvdlib import plan as planning
    from dvdlib import prefetch as pf
    from dvdlib.scheduler import run_chapter

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    params = {"store": str(tmp_path / "store"), "require_baseline": False}  # the chapter's own parameters
    work = planning.plan("06", "smoke", params)
    controls = [w for w in work.items if '"suppress"' in w.intervention]
    assert {w.kind for w in controls} == {"generate", "judge"}
    assert len({w.intervention for w in controls}) % 2 == 0  # step 1 and steps 1–2, per concept
    pf.prefetch(["06_head_ablation"], "smoke", params, shard="0/1", log=lambda *_: None)
    assert work.todo() == []
    before = stored(tmp_path / "store")
    out = run_chapter(root / "chapters/06_head_ablation.ipynb", tmp_path / "06.ipynb", "smoke", cwd=root,
                      parameters={**params, "out_dir": str(tmp_path / "book")})
    assert out.ok, out.error
    assert stored(tmp_path / "store") == before
