"""dvdlib.ablation: plans, cost, the resumable runner, judging and the per-layer rates (paper §3.6)."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dvdlib import ablation, models
from dvdlib.ablation import NOT_COLLAPSED, Intervention, Job, Sweep
from dvdlib.judge import load_questions
from dvdlib.layers import registry
from dvdlib.outcome import CORRUPTED, MITIGATED, NOT_MEMORIZED, UNCHANGED
from dvdlib.findings import unwritten_claims

SEEDS = [1825, 410]
SAMPLER = {"resolution": 64, "steps": 2, "guidance": 7.5, "eta": 0.0, "dtype": "float32", "sampler": "DDIM",
           "negative_prompt": ""}


@pytest.fixture(scope="module")
def pipe():
    return models.load("smoke")


# --- interventions and plans -------------------------------------------------------------------------

def test_intervention_normalises_and_keys():
    iv = Intervention([(3, 1), (1, 0), (3, 1)], factor=0, steps=[2, 1])
    assert iv.heads == ((1, 0), (3, 1)) and iv.steps == (1, 2) and iv.factor == 0.0
    assert iv.layers == (1, 3) and iv.label == "L1.H0+L3.H1"
    assert iv.factors == {(1, 0): 0.0, (3, 1): 0.0}
    assert iv.key() == {"heads": [[1, 0], [3, 1]], "factor": 0.0, "steps": [1, 2]}
    assert iv == Intervention(((1, 0), (3, 1)), 0.0, (1, 2))  # same heads → same store
    assert Intervention(((1, 0),)).steps == (1,)  # the paper's default: the first step only
    with pytest.raises(ValueError, match="at least one"):
        Intervention(())
    with pytest.raises(ValueError, match="numbered from 1"):
        Intervention(((1, 0),), steps=[0])


def test_single_and_multi_head_plans(pipe):
    layers = registry(pipe)  # smoke: 16 layers × 2 heads
    plan = ablation.single_head(layers)
    assert len(plan) == 32 and plan[0] == Intervention(((1, 0),)) and plan[-1] == Intervention(((16, 1),))
    sliced = ablation.single_head(layers, which=[1, 3], heads=[1, 5], factor=0.5, steps=[1, 2])
    assert [iv.heads for iv in sliced] == [((1, 1),), ((3, 1),)]  # head 5 does not exist: skipped
    assert all(iv.factor == 0.5 and iv.steps == (1, 2) for iv in sliced)
    with pytest.raises(ValueError, match="no head"):
        ablation.single_head(layers, heads=[5])
    with pytest.raises(ValueError, match="no cross-attention layer"):
        ablation.single_head(layers, which=[17])
    multi = ablation.multi_head(layers, which=[2, 6])
    assert [iv.heads for iv in multi] == [((2, 0), (2, 1)), ((6, 0), (6, 1))]
    with pytest.raises(ValueError, match="unknown multi-head reading"):
        ablation.multi_head(layers, reading="random")
    assert ablation.jobs(sliced, [7, 8]) == [Job(sliced[0], (7, 8)), Job(sliced[1], (7, 8))]


def single_table(rows):
    """A single-head outcome table from (case, layer, head, outcome)."""
    return pd.DataFrame([{"case_num": c, "prompt": f"p{c}", "intervention": f"L{l}.H{h}", "layer": l,
                          "heads": (l, h), "outcome": o} for c, l, h, o in rows])


def test_pair_jobs_pair_the_non_mitigating_heads_of_a_row():
    table = single_table([
        (1, 1, 0, MITIGATED), (1, 1, 1, UNCHANGED), (1, 1, 2, CORRUPTED),  # heads 1, 2 failed → (1, 2)
        (2, 1, 0, UNCHANGED), (2, 1, 1, UNCHANGED), (2, 1, 2, CORRUPTED),  # all failed → 3 pairs
        (3, 1, 0, NOT_COLLAPSED), (3, 1, 1, NOT_COLLAPSED),                # nothing to mitigate
        (4, 2, 0, UNCHANGED), (4, 2, 1, UNCHANGED),                        # another layer
    ])
    pairs = {job.intervention.heads: job.cases for job in ablation.pair_jobs(table, layer=1)}
    assert pairs == {((1, 0), (1, 1)): (2,), ((1, 0), (1, 2)): (2,), ((1, 1), (1, 2)): (1, 2)}
    assert [j.cases for j in ablation.pair_jobs(table, layer=2)] == [(4,)]


# --- aggregation ---------------------------------------------------------------------------------------

def test_best_outcome_order():
    assert ablation.best([CORRUPTED, UNCHANGED, MITIGATED]) == MITIGATED
    assert ablation.best([CORRUPTED, UNCHANGED]) == UNCHANGED
    assert ablation.best([CORRUPTED]) == CORRUPTED
    assert ablation.best([NOT_MEMORIZED, NOT_MEMORIZED]) == NOT_MEMORIZED
    with pytest.raises(ValueError, match="outcomes must be"):
        ablation.best(["fixed"])


def test_rates_and_shares_by_hand():
    table = single_table([
        (1, 1, 0, MITIGATED), (1, 1, 1, UNCHANGED), (1, 3, 0, UNCHANGED), (1, 3, 1, UNCHANGED),
        (2, 1, 0, CORRUPTED), (2, 1, 1, UNCHANGED), (2, 3, 0, MITIGATED), (2, 3, 1, MITIGATED),
        (3, 1, 0, CORRUPTED), (3, 1, 1, CORRUPTED), (3, 3, 0, CORRUPTED), (3, 3, 1, UNCHANGED),
        (4, 1, 0, NOT_COLLAPSED), (4, 1, 1, NOT_COLLAPSED), (4, 3, 0, NOT_COLLAPSED), (4, 3, 1, NOT_COLLAPSED),
    ])
    # per prompt: 1 mitigated (L1.H0), 2 mitigated (layer 3), 3 unchanged (L3.H1), 4 excluded
    assert ablation.per_prompt(table)["outcome"].tolist() == [MITIGATED, MITIGATED, UNCHANGED, NOT_COLLAPSED]
    assert ablation.mitigated_count(table) == (2, 3)
    rates = ablation.layer_rates(table)
    assert rates["layer"].tolist() == [1, 3]
    assert rates["mitigated"].tolist() == [1, 1] and rates["prompts"].tolist() == [3, 3]
    np.testing.assert_allclose(rates["rate"], [1 / 3, 1 / 3])
    per_prompt = ablation.shares(table)
    assert per_prompt.to_dict() == pytest.approx({MITIGATED: 2 / 3, UNCHANGED: 1 / 3, CORRUPTED: 0.0})
    assert per_prompt.attrs["n"] == 3
    # per (prompt, intervention): 3 mitigated, 5 unchanged, 4 corrupted of 12
    pairs = ablation.shares(table, per="intervention")
    assert pairs.to_dict() == pytest.approx({MITIGATED: 3 / 12, UNCHANGED: 5 / 12, CORRUPTED: 4 / 12})
    assert pairs.attrs["n"] == 12
    with pytest.raises(ValueError, match="per must be"):
        ablation.shares(table, per="layer")


# --- judging, on hand-made stores ----------------------------------------------------------------------

class ScriptedJudge:
    """Yes to the first k concept questions and the first m object questions, k and m read from the
    image's red and green values (as in tests/test_dvd.py)."""

    name = "scripted"

    def ask(self, images, questions):
        out = []
        for image in images:
            k, m = (int(v) for v in np.asarray(image)[0, 0, :2])
            out.append(["Yes"] * k + ["No"] * (5 - k) + ["yes"] * m + ["no"] * (5 - m))
        return out


def counts_image(c, n):
    return Image.fromarray(np.full((8, 8, 3), [c, n, 0], np.uint8))


BENCH = pd.DataFrame([
    {"case_num": 1, "content_type": "landmark", "content": "colosseum", "nm_word": "pouch",
     "prompt": "Colosseum Carry-all Pouch"},
    {"case_num": 2, "content_type": "artist", "content": "van gogh", "nm_word": "mug", "prompt": "Van Gogh Mug"},
    {"case_num": 3, "content_type": "artist", "content": "van gogh", "nm_word": "tote bag",
     "prompt": "Van Gogh Mug"},  # the same prompt string with another object (as in DominanceBench)
])


def fill(sweep, intervention, counts):
    store = sweep.store(intervention)
    for prompt, pairs in counts.items():
        for seed, (c, n) in zip(SEEDS, pairs):
            store.save(prompt, seed, image=counts_image(c, n))


def test_judge_dvd_against_the_plain_generation(tmp_path):
    sweep = Sweep(None, BENCH, SEEDS, root=tmp_path, model="fake", sampler=SAMPLER)
    a, b = Intervention(((1, 0),)), Intervention(((3, 1),))
    fill(sweep, None, {"Colosseum Carry-all Pouch": [(5, 0), (5, 1)],  # plain: collapsed (DvD 100, 80)
                       "Van Gogh Mug": [(2, 2), (1, 3)]})              # plain: not collapsed (DvD 24, 8)
    fill(sweep, a, {"Colosseum Carry-all Pouch": [(4, 4), (3, 3)], "Van Gogh Mug": [(5, 0), (5, 0)]})
    fill(sweep, b, {"Colosseum Carry-all Pouch": [(0, 0), (1, 0)]})
    plan = [Job(a, (1, 2, 3)), Job(b, (1,))]
    table = sweep.judge_dvd(plan, ScriptedJudge(), load_questions("paper"))
    assert table[["case_num", "intervention", "layer", "outcome"]].values.tolist() == [
        [1, "L1.H0", 1, MITIGATED],      # c 3.5, n 3.5, DvD (16 + 24)/2 = 20
        [2, "L1.H0", 1, NOT_COLLAPSED],  # collapsed only after the ablation: nothing was there to mitigate
        [3, "L1.H0", 1, NOT_COLLAPSED],
        [1, "L3.H1", 3, CORRUPTED]]      # c 0.5, DvD (0 + 20)/2 = 10: the landmark is gone too
    np.testing.assert_array_equal(table["dvd"], [20.0, np.nan, np.nan, 10.0])  # rows not collapsed are not judged
    assert table["dvd_before"].tolist() == [90.0, 16.0, 16.0, 90.0]
    assert sweep.baseline["outcome"].tolist() == [UNCHANGED, CORRUPTED, CORRUPTED]
    assert ablation.mitigated_count(table) == (1, 1)
    # counting every row: rows 2 and 3 are judged on their own (c 5, n 0 → DvD 100: unchanged)
    every = sweep.judge_dvd(plan, ScriptedJudge(), load_questions("paper"), require_baseline=False)
    assert every["outcome"].tolist() == [MITIGATED, UNCHANGED, UNCHANGED, CORRUPTED]
    assert ablation.mitigated_count(every) == (1, 3)


def test_judge_memorized_against_the_plain_generation(tmp_path):
    rows = pd.DataFrame({"case_num": [10, 11], "prompt": ["memorized one", "not reproduced"]})
    sweep = Sweep(None, rows, SEEDS, root=tmp_path, model="fake", sampler=SAMPLER)
    left = np.zeros((16, 16, 3), np.uint8)
    left[:, :8] = 255
    top = np.ascontiguousarray(left.transpose(1, 0, 2))
    blank = np.full((16, 16, 3), 128, np.uint8)
    ivs = [Intervention(((1, h),)) for h in range(3)]

    def put(iv, prompt, arrays):
        for seed, a in zip(SEEDS, arrays):
            sweep.store(iv).save(prompt, seed, image=Image.fromarray(a))

    put(None, "memorized one", [left, left])        # reproduces: similarity 1
    put(None, "not reproduced", [left, top])        # similarity 0
    put(ivs[0], "memorized one", [left, top])       # no longer reproduced → mitigated
    put(ivs[1], "memorized one", [left, left])      # still reproduced → unchanged
    put(ivs[2], "memorized one", [blank, blank])    # blank images → corrupted
    put(ivs[0], "not reproduced", [left, top])
    plan = [Job(ivs[0], (10, 11)), Job(ivs[1], (10,)), Job(ivs[2], (10,))]
    table = sweep.judge_memorized(plan)
    assert table["outcome"].tolist() == [MITIGATED, NOT_MEMORIZED, UNCHANGED, CORRUPTED]
    np.testing.assert_allclose(table["similarity_before"], [1, 0, 1, 1], atol=1e-12)
    np.testing.assert_allclose(table["similarity"], [0, np.nan, 1, 0], atol=1e-12)  # not reproduced: not judged
    assert ablation.mitigated_count(table) == (1, 1)
    assert ablation.layer_rates(table)["rate"].tolist() == [1.0]
    # counting every prompt: the one that never reproduced now counts as "mitigated"
    every = sweep.judge_memorized(plan, require_baseline=False)
    assert every["outcome"].tolist() == [MITIGATED, MITIGATED, UNCHANGED, CORRUPTED]
    assert ablation.mitigated_count(every) == (2, 2)


def test_only_rows_with_something_to_mitigate_are_ablated(tmp_path, monkeypatch):
    """With the baseline required, `run_plans` judges the plain images first and ablates only the
    collapsed rows (`Sweep.mitigable`); without it, every row."""
    sweep = Sweep(None, BENCH, SEEDS, root=tmp_path, model="fake", sampler=SAMPLER)
    fill(sweep, None, {"Colosseum Carry-all Pouch": [(5, 0), (5, 1)], "Van Gogh Mug": [(2, 2), (1, 3)]})
    a, b = Intervention(((1, 0),)), Intervention(((3, 1),))
    assert sweep.mitigable(ScriptedJudge(), load_questions("paper")) == [1]
    assert ablation.narrowed([Job(a, (1, 2, 3)), Job(b, (2, 3))], {1}) == [Job(a, (1,))]
    ran = []
    monkeypatch.setattr(Sweep, "run", lambda self, plan, **kw: ran.append(plan))
    plans = {"DvD": {"single-head": [Job(a, (1, 2, 3)), Job(b, (2,))]}}
    ablation.run_plans({"DvD": sweep}, plans, judge=ScriptedJudge(), questions=load_questions("paper"))
    ablation.run_plans({"DvD": sweep}, plans, judge=ScriptedJudge(), questions=load_questions("paper"),
                       require_baseline=False)
    assert ran == [[Job(a, (1,))], plans["DvD"]["single-head"]]


def test_sweep_rejects_bad_prompt_sets(tmp_path):
    with pytest.raises(ValueError, match="case_num"):
        Sweep(None, pd.DataFrame({"prompt": ["a"]}), SEEDS, root=tmp_path, model="m", sampler=SAMPLER)
    with pytest.raises(ValueError, match="repeats"):
        Sweep(None, pd.DataFrame({"case_num": [1, 1], "prompt": ["a", "b"]}), SEEDS, root=tmp_path, model="m",
              sampler=SAMPLER)


# --- the runner on the smoke model --------------------------------------------------------------------

def test_sweep_stores_each_intervention_apart_and_resumes(pipe, tmp_path, monkeypatch):
    rows = pd.DataFrame({"case_num": [1, 2, 3], "prompt": ["a photo of a cat", "van gogh mug", "van gogh mug"]})
    sweep = Sweep(pipe, rows, SEEDS, root=tmp_path, model="smoke", sampler=SAMPLER, batch_size=4)
    plan = ablation.jobs([Intervention(((1, 0),)), Intervention(((1, 0), (1, 1)))], [1, 2, 3])
    # 2 distinct prompts × 2 seeds × (plain + 2 interventions) = 12 generations
    assert sweep.cost(plan) == {"generations": 12, "stored": 0, "to_generate": 12}
    calls, original = [], type(pipe).__call__

    def counting(self, *args, **kwargs):  # counts the images the pipeline is asked for
        calls.append(len(kwargs["prompt"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", counting)
    sweep.run(plan, progress=False)
    assert sum(calls) == 12
    assert sweep.cost(plan) == {"generations": 12, "stored": 12, "to_generate": 0}
    sweep.run(plan, progress=False)  # everything is stored: nothing is generated again
    assert sum(calls) == 12
    monkeypatch.undo()
    plain, one, both = sweep.store(), sweep.store(plan[0].intervention), sweep.store(plan[1].intervention)
    assert len({plain.path, one.path, both.path}) == 3  # three stores, never the same images
    assert one.settings["intervention"] == {"heads": [[1, 0]], "factor": 0.0, "steps": [1]}
    assert "intervention" not in plain.settings and plain.settings == SAMPLER
    img = {s: np.asarray(s.image("van gogh mug", 410), dtype=float) for s in (plain, one, both)}
    assert np.abs(img[one] - img[plain]).max() > 1  # the ablation changed the image
    assert np.abs(img[both] - img[one]).max() > 1
    # a fresh Sweep on the same root finds the same stores and everything stored
    again = Sweep(pipe, rows, SEEDS, root=tmp_path, model="smoke", sampler=SAMPLER)
    assert again.cost(plan)["to_generate"] == 0


def test_an_ablation_claim_against_its_placebo_and_its_power():
    import pandas as pd

    from dvdlib import stats as S

    # four collapsed prompts of two concepts; heads of layer 3 (the hypothesis's) and layer 12 (placebo)
    outcome = {(1, "L3.H0"): "mitigated", (1, "L12.H0"): "unchanged", (2, "L3.H0"): "mitigated",
               (2, "L12.H0"): "mitigated", (3, "L3.H0"): "mitigated", (3, "L12.H0"): "unchanged",
               (4, "L3.H0"): "mitigated", (4, "L12.H0"): "unchanged", (5, "L3.H0"): "not collapsed",
               (5, "L12.H0"): "not collapsed"}
    table = pd.DataFrame([{"case_num": c, "intervention": i, "outcome": o} for (c, i), o in outcome.items()])
    rows = pd.DataFrame({"case_num": [1, 2, 3, 4, 5], "content": ["tower", "tower", "robot", "robot", "robot"]})
    claim = ablation.versus_placebo(table, "passed", rows)
    assert claim["value"] == 1.0 and claim["null"] == 0.25 and claim["n"] == 4 and claim["n_clusters"] == 2
    assert claim["power_check"] == "passed"
    # a positive control that changed no image: whatever the rates, no verdict about heads
    dead = ablation.versus_placebo(table, "failed", rows)
    assert S.verdict(dead["ci"], dead["null"], power=dead["power_check"]) == S.NO_EFFECT
    # a sweep inside the hypothesis's layers has no placebo: no interval
    inside = ablation.versus_placebo(table[table.intervention == "L3.H0"], "passed", rows)
    assert inside["ci"] is None and S.verdict(inside["ci"], inside["null"]) == "inconclusive"


def test_positive_control_counts_changed_images(tmp_path):
    import numpy as np
    import pandas as pd
    from PIL import Image

    rows = pd.DataFrame({"case_num": [1], "prompt": ["tower and ball"]})
    sweep = ablation.Sweep(None, rows, [1, 2], root=tmp_path, model="fake", sampler={"steps": 1})
    every = ablation.Intervention(((1, 0), (2, 0)))
    for seed, shift in ((1, 0), (2, 40)):
        sweep.store().save("tower and ball", seed, image=Image.fromarray(np.full((4, 4, 3), 100, np.uint8)))
        sweep.store(every).save("tower and ball", seed, image=Image.fromarray(np.full((4, 4, 3), 100 + shift, np.uint8)))
    assert ablation.images_changed(sweep, every) == (1, 2)


def test_peak_and_texts():
    rates = pd.DataFrame({"layer": [1, 3, 6], "rate": [0.2, 0.5, 0.5]})
    assert ablation.peak_layer(rates) == 3  # the first of a tie
    assert ablation.peak_layer(rates.assign(rate=0.0)) is None  # nothing mitigated: no peak
    assert ablation.peak_layer(rates.iloc[:0]) is None
    assert ablation.fraction_text(145, 300) == "145/300 (48%)"
    assert ablation.fraction_text(0, 0) == "0/0 (nothing to mitigate)"
    table = single_table([(1, 1, 0, MITIGATED), (2, 1, 0, CORRUPTED), (3, 1, 0, CORRUPTED), (4, 1, 0, UNCHANGED)])
    assert ablation.shares_text(table) == "mitigated 0.25; unchanged 0.25; corrupted 0.50 (of 4)"
    assert ablation.shares_text(table, outcomes=(MITIGATED, CORRUPTED), percent=True) == \
        "mitigated 25.00%; corrupted 50.00% (of 4)"
    assert ablation.shares_text(table.assign(outcome=NOT_MEMORIZED)) == "nothing to mitigate"


def test_scale_and_memorized_set():
    from dvdlib.profiles import load_profile

    smoke, paper_profile, toy = (load_profile(name) for name in ("smoke", "paper", "toy"))
    assert ablation.scale(smoke)["slice"] and ablation.scale(smoke)["layers"] == [1, 3, 6]
    assert ablation.scale(paper_profile) == {**ablation.FULL, "slice": False} and ablation.FULL["layers"] == "all"
    from dvdlib.run import Run

    rows, note = ablation.memorized_set(Run(paper_profile, "06"))
    assert len(rows) == 500 and rows["case_num"].is_unique and "500" in note
    assert len(ablation.memorized_set(Run(smoke, "06"), 3)[0]) == 3
    rows, note = ablation.memorized_set(Run(toy, "06"))
    assert rows is None and "no `memorized` prompt set" in note
    plan = ablation.sweep_plan(smoke, heads=[0])
    assert plan.layers == [1, 3, 6] and plan.heads == [0] and plan.narrowed and plan.seeds == list(smoke.seeds)
    assert "a slice of the paper's sweep" in plan.note(0.0, [1]) and "layers 1, 3, 6" in plan.scope(0.0, [1])
    assert not ablation.sweep_plan(paper_profile).narrowed


def test_head_ablation_chapter_runs_on_smoke(tmp_path):
    """Chapter 06 through papermill with profile smoke (every row counted, so that the random
    judge's and model's outcomes reach every table): figures, results, the paper's numbers."""
    import json
    import re

    from test_book import copy_book

    from dvdlib import paper, scheduler

    root = copy_book(tmp_path)
    (outcome,) = scheduler.run_chapters("smoke", only="06_head_ablation", cwd=root, verbose=False,
                                   parameters={"require_baseline": False})
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    figures = root / "book" / "figures" / "06_head_ablation"
    assert {p.name for p in figures.glob("*.png")} == {"rates_by_layer.png", "outcomes.png", "plain_vs_ablated.png"}
    results = json.loads((root / "book" / "results" / "06_head_ablation.json").read_text())
    # every key a toy-findings claim reads from this chapter is written by it
    assert unwritten_claims("06_head_ablation", [r["key"] for r in results["results"]]) == []
    rows = {r["key"]: r for r in results["results"]}
    assert set(rows) == {"require_baseline", "swept", "single_dvd", "single_mem", "peak_dvd", "peak_mem",
                         "effect_layers", "multi_dvd", "multi_mem", "pairs_dvd", "power_check"}
    assert rows["single_dvd"]["power_check"] in ("passed", "failed")
    assert rows["power_check"]["this run"].startswith(rows["single_dvd"]["power_check"])
    # the positive control beside each claim: its rate over the same rows (every row counted here)
    control = rows["single_dvd"]["control"]
    assert set(control) == {"hits", "n", "value", "ci", "what"} and control["n"] == 2
    assert rows["multi_dvd"]["control"] == control and "dominant concept's tokens" in control["what"]
    assert rows["single_dvd"]["power_check"] == ablation.control_passes(control)
    assert ablation.control_text(control) in rows["power_check"]["this run"]
    assert rows["single_dvd"]["paper"] == "145/300 (48%)" and rows["single_mem"]["paper"] == "392/500 (78%)"
    assert rows["peak_dvd"]["paper"] == str(paper.ABLATION["dvd_peak_layer"]) == "3"
    assert rows["peak_mem"]["paper"] == "6"
    assert rows["pairs_dvd"]["paper"] == "mitigated 0.55%; corrupted 18.68%"
    # the smoke slice: 2 + 2 prompts, layers 1, 3, 6, both heads of each; said so on the page
    assert rows["swept"]["this run"].endswith("— a slice") and rows["swept"]["this run"].startswith("6 heads")
    assert re.fullmatch(r"\d/2 \(\d+%\)", rows["single_dvd"]["this run"])
    assert re.fullmatch(r"\d/2 \(\d+%\)", rows["single_mem"]["this run"])
    assert rows["pairs_dvd"]["this run"].endswith("(of 2)")  # one pair of layer-1 heads per DvD row
    assert results["profile"]["name"] == "smoke" and results["profile"]["judge"] == "tiny:qwen2-vl"
    # one store per intervention beside the plain one: 6 single heads + 3 layers (the layer-1 pair
    # is layer 1's multi-head ablation, stored once) + the positive control per dominant concept,
    # at step 1 and (the diagnostic) over steps 1–2
    settings = [json.loads(p.read_text()) for p in (root / "store" / "smoke").glob("*/settings.json")]
    ivs = [s["intervention"] for s in settings if "intervention" in s]
    assert len(settings) - len(ivs) == 1 and sum("heads" in iv for iv in ivs) == 6 + 3
    suppressed = [(iv["suppress"], tuple(iv["steps"])) for iv in ivs if "suppress" in iv]
    concepts = {c for c, _ in suppressed}
    assert 1 <= len(concepts) <= 2 and sorted(suppressed) == sorted((c, s) for c in concepts for s in [(1,), (1, 2)])


def test_shown_pairs_one_row_per_pair_across_concepts():
    """A figure's rows: both word orders of a pair count once; every concept before any repeats."""
    from dvdlib.ablation import shown_pairs

    rows = pd.DataFrame({"case_num": [1, 2, 3, 4, 5], "content": ["tower", "tower", "tower", "mosaic", "robot"],
                         "nm_word": ["ball", "ball", "box", "cup", "ball"],
                         "prompt": ["tower and ball", "ball and tower", "tower and box", "mosaic cup", "robot ball"]}
                        ).set_index("case_num", drop=False)
    ordered = rows.reset_index(drop=True)[["case_num", "prompt"]]  # already in the figure's order
    assert list(shown_pairs(ordered, rows, 3).case_num) == [1, 4, 5]
    assert list(shown_pairs(ordered, rows, 5).case_num) == [1, 4, 5, 3]  # case 2 repeats case 1's pair


def test_the_memorized_sweep_takes_two_seeds_when_the_plan_has_one():
    assert ablation.memorized_seeds([410], [1825, 410, 4507]) == [410, 1825]
    assert ablation.memorized_seeds([5, 6, 7], [1, 2]) == [5, 6, 7]
    with pytest.raises(ValueError, match="at least two seeds"):
        ablation.memorized_seeds([1], [1])


def test_the_closing_paragraph_says_what_ran_and_never_pastes_a_placeholder():
    """Chapter 06's reading (dvdlib.ablation.reading) follows the run's counts, not its report strings:
    nothing collapsed, no memorized half, a peak or none, no pair ablated; no sentence holds "none",
    "nan" or a skip message as a value."""
    from dvdlib.ablation import NOTHING, scope, this_run

    values = {"single_dvd": "0/0 (nothing to mitigate)", "single_mem": "3/10 (30%)", "multi_dvd": NOTHING,
              "multi_mem": "mitigated 0.30; unchanged 0.70; corrupted 0.00 (of 10)", "pairs_dvd": NOTHING,
              "power_check": "failed: no row to mitigate", "swept": "12 heads (all heads of layer 1, factor 0 at step 1)"}
    nothing = this_run(values, {"DvD": None, "memorized": 6}, 1, "smoke", {"DvD": 0, "memorized": 10, "pairs": 0})
    assert "no DominanceBench prompt was collapsed" in nothing and "peaking at layer 6" in nothing
    assert "The positive control (the dominant concept's tokens suppressed in every layer) failed: no row" in nothing
    collapsed = this_run({**values, "single_dvd": "2/12 (17%)", "multi_dvd": "mitigated 0.10; unchanged 0.90 (of 12)"},
                         {"DvD": None}, 1, "toy", {"DvD": 12, "pairs": 0})
    assert "no layer peaks" in collapsed and "memorized" not in collapsed and "no pair was ablated" in collapsed
    # the counts decide, whatever the report's text reads
    assert "no DominanceBench prompt was collapsed" in this_run({**values, "multi_dvd": "anything"}, {}, 1, "toy", {"DvD": 0})
    assert "nothing to mitigate either" in this_run(values, {}, 1, "toy", {"DvD": 0, "memorized": 0})
    pairs = this_run({**values, "pairs_dvd": "mitigated 0.00%; corrupted 5.00% (of 20)"}, {"DvD": 3}, 1, "paper",
                     {"DvD": 4, "pairs": 20})
    assert "peaks at layer 3" in pairs and "give mitigated 0.00%; corrupted 5.00% (of 20)" in pairs
    assert "is unavailable" in this_run({**values, "power_check": "unavailable: no row to mitigate"}, {}, 1, "toy", {"DvD": 0})
    for text in (nothing, collapsed, pairs, scope("profile `toy` has no `memorized` prompt set"), scope(None)):
        assert not {"none", "nan", "not run", "skipped"} & set(text.lower().replace(".", " ").replace(",", " ").split())
        assert "step(s)" not in text and "[1]" not in text
    assert scope("x").startswith("**Not applicable in this world:**") and "both halves" in scope(None)


def test_what_the_chapter_shows_of_its_tables_informs():
    """Chapter 06's displays: the judged outcomes without the rows that were never ablated (no empty
    counts), the layer rates and the plans' shares as one sentence where every row reads the same,
    the sweep in words, and the counts the closing paragraph reads."""
    from IPython.display import Markdown

    from dvdlib.ablation.sweep import SweepPlan

    table = single_table([(1, 1, 0, UNCHANGED), (1, 3, 0, UNCHANGED), (2, 1, 0, NOT_COLLAPSED),
                          (2, 3, 0, NOT_COLLAPSED), (3, 1, 0, UNCHANGED), (3, 3, 0, UNCHANGED)])
    note, shown = ablation.judged_rows(table.assign(c=5.0, n=0.0), n=3)
    assert note == ("4 outcomes judged, one per (row, intervention), on 2 rows; 1 row was not collapsed before "
                    "ablation and was not ablated. The first 3:")
    assert len(shown) == 3 and NOT_COLLAPSED not in set(shown.outcome) and "heads" not in shown
    note, shown = ablation.judged_rows(table.assign(outcome=NOT_COLLAPSED))
    assert shown is None and note == "Nothing was ablated: 3 rows were not collapsed before ablation and were not ablated."
    rates = {"DvD": ablation.layer_rates(table)}
    said = ablation.rates_table(rates)
    assert isinstance(said, Markdown) and said.data == ("All 2 layers swept read the same: at least one head of the "
                                                        "layer mitigates 0 of the 2 DvD prompts counted.")
    differ = ablation.rates_table({"DvD": ablation.layer_rates(table.assign(outcome=[MITIGATED] + [UNCHANGED] * 5))})
    assert isinstance(differ, pd.DataFrame) and differ[("DvD", "mitigated")].tolist() == [1, 0]
    assert ablation.rates_table({"DvD": rates["DvD"].iloc[:0]}) is None  # nothing to rate: rates_by_set said why
    outcomes = ablation.outcome_table({"DvD": table}, {"DvD": table}, table[table.layer == 1], "layer", 1)
    said = ablation.outcome_shown(outcomes)
    assert said.data == ("All 3 plans read the same: of the 2 rows (or pairs) each counts, 0.0% mitigated, "
                         "100.0% unchanged, 0.0% corrupted.")
    nothing = table.assign(outcome=NOT_COLLAPSED)
    assert ablation.outcome_shown(ablation.outcome_table({"DvD": nothing}, {"DvD": nothing}, nothing.iloc[:0],
                                                         "layer", 1)).data.startswith("No plan counts a row")
    mixed = ablation.outcome_shown(ablation.outcome_table({"DvD": table}, {"DvD": table}, nothing, "layer", 1))
    assert list(mixed.iloc[:, 0]) == ["0.0%", "0.0%", "— (none counted)"] and list(mixed.counted) == [2, 2, 0]
    assert ablation.counted({"DvD": table, "memorized": nothing}, nothing) == {"DvD": 2, "memorized": 0, "pairs": 0}
    assert ablation.counted({"DvD": table}, table) == {"DvD": 2, "pairs": 4}
    plan = SweepPlan([1, 3, 6], "all", 2, None, [1], True)
    assert plan.scope(0.0, [1]) == "all heads of layers 1, 3, 6, factor 0 at step 1"
    assert SweepPlan("all", [0, 2], 2, None, [1], False).scope(0.5, (1, 2, 3)) == "heads 0, 2 of every layer, factor 0.5 at steps 1–3"
