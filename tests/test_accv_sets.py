"""The ACCV version's prompt sets (unselected, three-concept factorial, pilot): loading, one error
per bad file naming the file, the row and the column; and the authors' instrument reached through
``-p questions authors:/path`` (their questions, answer rule and pixel limits)."""

from pathlib import Path

import re

import pandas as pd
import pytest

from dvdlib import authors, bench, judge, stats
from dvdlib.bench import PromptSetError
from dvdlib.tokens import clip_tokenizer

RELEASE = Path(__file__).parent / "fixtures" / "authors_release"


def test_the_three_sets_load_whole():
    unselected, factorial, pilot = bench.load_unselected(), bench.load_factorial(), bench.load_pilot()
    assert len(unselected) == 300 and unselected.template_id.nunique() == 15
    assert (unselected.cluster == unselected.content).all()
    assert factorial.groupby("condition").size().eq(30).all() and len(factorial) == 240
    assert factorial.groupby("case").condition.nunique().eq(8).all()
    assert len(pilot) == 30 and set(pilot.target2_type) == {"landmark"}


def test_mousepad_is_located_by_the_prompt_phrase_and_asked_raw():
    table = bench.load_prompt_set("unselected", clip_tokenizer())
    mousepad = table[table.nm_word == "mousepad"]
    assert len(mousepad) == 9 and mousepad.nm_span.map(len).ge(2).all()  # "mouse pad": two tokens
    assert mousepad.unresolved.isna().all()


def _write(tmp_path, df: pd.DataFrame) -> Path:
    path = tmp_path / "set.csv"
    df.to_csv(path, index=False)
    return path


def test_a_missing_column_is_one_error_naming_file_row_and_column(tmp_path):
    raw = pd.read_csv(bench._data("independent_prompts_300.csv"), dtype=str)
    path = _write(tmp_path, raw.drop(columns="object_prompt_phrase"))
    with pytest.raises(PromptSetError, match=r"set\.csv: row 1 \(the header\), column 'object_prompt_phrase'"):
        bench.load_unselected(path)


def test_a_target_missing_from_its_prompt_is_one_error_naming_file_row_and_column(tmp_path):
    raw = pd.read_csv(bench._data("triplet_factorial_prompts_240.csv"), dtype=str)
    raw.loc[4, "target2"] = "eiffel tower"  # row 6 of the file (header = row 1)
    path = _write(tmp_path, raw)
    with pytest.raises(PromptSetError) as error:
        bench.load_factorial(path)
    text = str(error.value)
    assert "set.csv" in text and "row 6 (case_num 5), column 'target2'" in text and "'eiffel tower'" in text
    raw = pd.read_csv(bench._data("triplet_pilot_prompts_30.csv"), dtype=str)
    raw.loc[0, "target3"] = "shrek"
    with pytest.raises(PromptSetError, match=r"row 2 \(case_num 1\), column 'target3'"):
        bench.load_pilot(_write(tmp_path, raw))


def test_inconsistent_factorial_slots_are_named(tmp_path):
    raw = pd.read_csv(bench._data("triplet_factorial_prompts_240.csv"), dtype=str)
    raw.loc[0, "condition"] = "100"
    with pytest.raises(PromptSetError, match=r"row 2 \(case_num 1\), column 'condition'"):
        bench.load_factorial(_write(tmp_path, raw))


def test_nothing_is_generated_for_a_bad_file(tmp_path, monkeypatch):
    """The chapters load a set before generating anything: a bad file stops them there."""
    import sys

    called = []
    monkeypatch.setattr(sys.modules["dvdlib.generate"], "generate", lambda *a, **k: called.append(a))
    raw = pd.read_csv(bench._data("independent_prompts_300.csv"), dtype=str).drop(columns="prompt")
    with pytest.raises(PromptSetError, match="column 'prompt'"):
        bench.load_prompt_set("unselected", sets={"unselected": lambda: bench.load_unselected(_write(tmp_path, raw))})
    assert called == []


def test_authors_question_set_brings_their_rule_and_pixel_limits():
    qs = judge.load_questions(f"authors:{RELEASE}")
    assert qs.name == "authors" and qs.yes_rule is authors.is_yes and qs.pixel_limits == authors.PIXEL_LIMITS
    assert qs.object_questions("mousepad")[0] == "Is a mousepad present? Answer only 'Yes' or 'No'. /no_think"
    own = judge.load_questions("paper")
    assert own.yes_rule is judge.is_yes and own.pixel_limits is None  # the project's wording stays the default

    class Quoting:
        name = "quoting"

        def ask(self, images, questions):
            return [['"Yes"'] * 5 + ["yes"] * 5 for _ in images]

    # theirs does not strip punctuation before the word; ours does
    (theirs,) = judge.yes_counts(Quoting(), [None], "colosseum", "landmark", "mug", qs)
    (ours,) = judge.yes_counts(Quoting(), [None], "colosseum", "landmark", "mug", own)
    assert (theirs.c, theirs.n) == (0, 5) and (ours.c, ours.n) == (5, 5)


def test_a_run_with_the_authors_questions_sizes_images_as_they_do(tmp_path):
    import dvdlib

    run = dvdlib.setup("smoke", "x", out_dir=tmp_path, store=str(tmp_path / "store"), questions=f"authors:{RELEASE}")
    assert run.questions.name == "authors"
    size = run.judge.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == authors.PIXEL_LIMITS


def test_sets_sharing_concepts_are_paired_by_concept_and_the_concept_level_cancels():
    import numpy as np

    from dvdlib import unselected

    rng = np.random.default_rng(1)
    concepts = np.repeat(np.arange(20), 5)
    level = rng.normal(0, 20, 20)[concepts]  # what a concept brings to all its prompts
    a, b = level + rng.normal(10, 5, 100), level + rng.normal(0, 5, 100)
    paired = unselected.paired_by_concept(a, concepts, b, concepts)
    apart = unselected.independent(a, concepts, b, concepts + 100)  # no concept in common
    assert paired["ci"][0] < 10 < paired["ci"][1] and paired["ci"][1] - paired["ci"][0] < 3
    assert apart["ci"][1] - apart["ci"][0] > 3 * (paired["ci"][1] - paired["ci"][0])  # concepts' levels don't cancel
    assert paired["n_clusters"] == 20 and apart["n_clusters"] == [20, 20]
    for d in (paired, apart):
        assert {"value", "ci", "n_clusters", "method", "loo", "detectable"} <= set(d) and "over concepts" in d["test"]
    assert unselected.paired_by_concept(a, concepts, a, concepts)["ci"] == [0.0, 0.0]
    share = stats.cluster_mean(np.r_[np.ones(50), np.zeros(50)] > 0, concepts)
    assert share["value"] == 0.5 and share["n_clusters"] == 20 and share["ci"][0] < 0.5 < share["ci"][1]


def test_the_paired_reduction_by_hand():
    """Concept means per side, their differences over the concepts both sides have, then Student's t
    over those differences (2 degrees of freedom: t = 4.302653)."""
    from dvdlib import unselected

    a = [10, 20, 40, 0, 30, 99]                      # x: 15, y: 40, v: 15, z: 99 (a only)
    a_concepts = ["x", "x", "y", "v", "v", "z"]
    b = [5, 20, 30, 3, 7]                            # x: 5, y: 25, v: 3, w: 7 (b only)
    b_concepts = ["x", "y", "y", "v", "w"]
    diffs, left_out = unselected.per_concept_differences(a, a_concepts, b, b_concepts)
    assert diffs.to_dict() == {"x": 10.0, "y": 15.0, "v": 12.0} and left_out == 2
    d = unselected.paired_by_concept(a, a_concepts, b, b_concepts)
    mean, sd = 37 / 3, (((10 - 37 / 3) ** 2 + (15 - 37 / 3) ** 2 + (12 - 37 / 3) ** 2) / 2) ** 0.5
    half = 4.302653 * sd / 3 ** 0.5                  # sd = 2.516611, half = 6.2517
    assert d["value"] == pytest.approx(12.3333, abs=1e-4) and d["n_clusters"] == 3
    assert d["ci"] == pytest.approx([mean - half, mean + half], abs=1e-4)
    assert d["ci"] == pytest.approx([6.0816, 18.5850], abs=1e-3)
    assert d["n"] == [6, 5] and d["concepts_left_out"] == 2
    assert d["value"] != pytest.approx(sum(a[:5]) / 5 - sum(b[:4]) / 4)  # not the pooled prompts' difference


def test_fresh_seeds_are_disjoint_from_the_selection_seeds():
    import random

    from dvdlib import unselected
    from dvdlib.profiles import load_profile

    for name in ("paper", "smoke", "toy"):
        selection = load_profile(name).seeds
        fresh = unselected.fresh_seeds(selection)
        assert len(fresh) == len(selection) and len(set(fresh)) == len(fresh)
        assert not set(fresh) & set(selection)
    draws = random.Random(unselected.FRESH_RECIPE)
    assert unselected.fresh_seeds(load_profile("paper").seeds) == [draws.randint(1, 10000) for _ in range(10)]
    assert unselected.fresh_seeds([632, 1]) == [4688, 2359]  # a selection seed the recipe draws is skipped
    assert unselected.fresh_seeds([1825], [5, 6]) == [5, 6]
    with pytest.raises(ValueError, match=r"\[1825\] are selection seeds"):
        unselected.fresh_seeds([1825, 410], [7, 1825])


def _scores(same: bool):
    """A `scores` table by hand: three concepts, two prompts each, benchmark on both seed sets."""
    from dvdlib import unselected

    rows = []
    for c, (sel, fresh, unsel, bal) in {"x": (60, 40, 30, 10), "y": (50, 42, 20, 12), "z": (70, 38, 25, 8)}.items():
        for k in range(2):
            rows += [{"set": "benchmark", "seeds": unselected.SELECTION, "cluster": c, "dvd": sel + k},
                     {"set": "benchmark", "seeds": unselected.FRESH, "cluster": c, "dvd": fresh + k},
                     {"set": "unselected", "seeds": unselected.SELECTION, "cluster": c, "dvd": (sel if same else unsel) + k},
                     {"set": "balanced", "seeds": unselected.SELECTION, "cluster": f"{c} + pair", "dvd": bal + k}]
    return pd.DataFrame(rows).assign(model="m")


def test_selection_gaps_headline_on_fresh_seeds_and_the_selection_effect_paired():
    from dvdlib import unselected

    gaps = unselected.selection_gaps(_scores(same=False), "m")
    assert set(gaps) == set(unselected.COMPARISONS)
    assert gaps["selection_effect"]["value"] == pytest.approx(((60 - 40) + (50 - 42) + (70 - 38)) / 3)
    assert gaps["selection_gap"]["value"] == pytest.approx(((40 - 30) + (42 - 20) + (38 - 25)) / 3)  # fresh seeds
    assert gaps["selection_gap_selection_seeds"]["value"] == pytest.approx(((60 - 30) + (50 - 20) + (70 - 25)) / 3)
    assert gaps["selection_gap_selection_seeds"]["value"] == pytest.approx(
        gaps["selection_gap"]["value"] + gaps["selection_effect"]["value"])
    assert gaps["unselected_vs_balanced"]["method"].startswith("Welch")  # no concept in common: independent
    assert gaps["selection_effect"]["n_clusters"] == 3 and gaps["selection_effect"]["method"].startswith("Student")
    same = unselected.selection_gaps(_scores(same=True), "m", same_prompts=True)
    assert set(same) == {"selection_effect", "unselected_vs_balanced"}  # no +0.0 [+0.0, +0.0] comparison
    table = unselected.gap_table(gaps)
    assert table.loc["benchmark (fresh seeds) − unselected", "concepts"] == "3 paired"


def test_category_labels_count_the_prompts_of_each_set():
    from dvdlib import unselected

    table = pd.DataFrame({"content_type": ["landmark"] * 24 + ["artist"] * 5 + ["balanced"] * 12,
                          "group": ["unselected"] * 8 + ["benchmark, selection seeds"] * 8 + ["benchmark, fresh seeds"] * 8
                          + ["unselected"] * 2 + ["benchmark, selection seeds"] * 3 + ["balanced"] * 12})
    assert unselected.category_labels(table, ["landmark", "artist", "balanced"]) == [
        "landmark\n(n = 8 each)", "artist\n(n = 2 / 3)", "balanced\n(n = 12)"]


def test_by_template_counts_and_shares_per_template_by_hand():
    from dvdlib.unselected import by_template

    table = pd.DataFrame({"model": "m", "set": "unselected", "content_type": "landmark",
                          "template": ["concept first", "concept first", "object first"],
                          "dvd": [10.0, 30.0, 0.0], "dvd_images": [1, 8, 0]})
    out = by_template(table, min_images=7)
    assert out.index.names == ["set", "category", "template"]  # one model: no model level
    first = out.loc[("unselected", "landmark", "concept first")]
    assert first.prompts == 2 and first["mean DvD"] == 20.0 and first["median DvD"] == 20.0
    assert first["share meeting the rule"] == 0.5  # one of two prompts has ≥ 7 DvD images
    two = by_template(pd.concat([table, table.assign(model="n")]), min_images=7)
    assert two.index.names == ["model", "set", "category", "template"] and len(two) == 4


def _sets(same: bool):
    """A `prompt_sets` table by hand: the unselected set, the benchmark (its prompts, or others) and
    the balanced control."""
    unsel = ["tower and ball", "ball and tower", "vase and box"]
    bench = unsel if same else ["the tower, a ball", "a vase with a box", "ball and tower"]
    rows = [{"set": s, "prompt": p, "content_type": "landmark", "cluster": p.split()[0], "template": s}
            for s, prompts in (("unselected", unsel), ("benchmark", bench)) for p in prompts]
    rows += [{"set": "balanced", "prompt": p, "content_type": "balanced", "cluster": p, "template": "balanced"}
             for p in ("cup and box", "box and cup")]
    return pd.DataFrame(rows)


def _ruled(scores):
    """``scores`` with the columns `rule_shares` reads: ten images a prompt, a tenth of its DvD as DvD images."""
    return scores.assign(images=10, dvd_images=scores.dvd // 10)


def test_identical_sets_are_shown_once_and_said_not_applicable_up_front():
    from dvdlib import unselected

    sets = _sets(same=True)
    assert unselected.identical(sets) and not unselected.identical(_sets(same=False))
    table = unselected.set_table(sets, same=True)
    assert list(table.index.unique("set")) == [unselected.ONE_SET, "balanced"]  # no benchmark rows repeating it
    assert list(unselected.set_table(_sets(same=False), same=False).index.unique("set")) == list(unselected.ROLES)
    scope = unselected.scope(sets, same=True)
    assert scope.startswith("**Not applicable in this world") and "same 3 prompts" in scope and "placebo" in scope
    other = unselected.scope(_sets(same=False), same=False)
    assert "Not applicable" not in other and "(3 prompts; 1 prompts in common with the unselected set)" in other
    assert unselected.overlap(_sets(same=False), same=False) == "1 of the 3 unselected prompts are benchmark prompts too."
    scores = _ruled(_scores(same=True))
    shown = unselected.once(scores, same=True)
    assert set(zip(shown.set, shown.seeds)) == {(unselected.ONE_SET, unselected.SELECTION),
                                                (unselected.ONE_SET, unselected.FRESH), ("balanced", unselected.SELECTION)}
    assert unselected.once(scores, same=False) is scores
    shares = unselected.rule_shares(scores, 0.7)
    once = unselected.once(shares, same=True)
    assert once.index.names == shares.index.names and len(once) == 3  # the benchmark on the selection seeds left out


def test_the_figure_groups_name_the_one_set_and_count_prompts():
    from dvdlib import unselected

    scores = _scores(same=True)
    groups = unselected.once(scores.assign(group=[unselected.GROUPS[(a, s)] for a, s in zip(scores.set, scores.seeds)]
                                           ).assign(content_type="landmark"), same=True)
    assert list(dict.fromkeys(unselected._in_order(groups).group)) == [
        "unselected = benchmark, selection seeds", "unselected = benchmark, fresh seeds", "balanced"]
    assert unselected.category_labels(groups, ["landmark"]) == ["landmark\n(n = 6 each)"]  # six prompts a box


def test_left_out_comparisons_have_no_row_and_the_closing_reads_the_rule():
    from dvdlib import unselected
    from dvdlib.profiles import load_profile

    class Rows:
        def __init__(self):
            self.keys = []

        def add(self, key, *args, **fields):
            self.keys.append(key)

    gaps = unselected.selection_gaps(_scores(same=True), "m", same_prompts=True)
    rows = Rows()
    unselected.report_gaps(rows, gaps, "not public")
    assert rows.keys == ["selection_effect", "unselected_vs_balanced"]  # no "not compared" row
    shares = unselected.rule_shares(_ruled(_scores(same=True)), 0.7)
    text = unselected.this_run(gaps, shares, "m", load_profile("toy"), same=True)
    assert "Not applicable" not in text and "not compared" not in text and not re.search(r"\bnan\b|\bNone\b", text)
    assert "placebo here, 0 expected" in text and "no paper number" in text and "toy world's model" in text
    # unselected − balanced: 3 concepts vs 3 pairs, each concept far above each pair, but two concepts cannot decide
    assert ("**Inconclusive:** the paper's claim that dominance holds on prompts nobody chose, the unselected set "
            "minus the balanced control: +50.0 [+26.4, +73.6] — its interval excludes 0, but not with x left out.") in text
    assert "The selection effect (DominanceBench on the selection seeds minus on fresh seeds; a placebo" in text
    full = unselected.selection_gaps(_scores(same=False), "m")
    text = unselected.this_run(full, shares, "m", load_profile("smoke"), same=False)
    assert "DominanceBench on fresh seeds minus the unselected set (what selection added)" in text
    assert "The same on the selection seeds" in text and "random weights" in text
    assert unselected.comparisons(gaps).count("**") == 4 and unselected.comparisons(full).count("**") == 8


def test_the_closing_words_each_verdict_of_the_one_rule():
    from dvdlib import unselected

    loo = lambda ci: {"low": {"cluster": "a", "ci": ci}, "high": {"cluster": "b", "ci": ci}}
    assert unselected._reading({"value": 5.0, "ci": [1.0, 9.0], "n_clusters": 5, "loo": loo([0.5, 9.5])}) == (
        "reproduced", "")
    assert unselected._reading({"value": -5.0, "ci": [-9.0, -1.0], "n_clusters": 5, "loo": loo([-9.5, -0.5])}) == (
        "not reproduced", "")
    kind, why = unselected._reading({"value": 5.0, "ci": [1.0, 9.0], "n_clusters": [2, 6]})
    assert kind == "underpowered" and why.startswith("2 vs 6 clusters, and a verdict needs at least 3 a side")
    assert unselected._reading({"value": 0.0, "ci": None, "n_clusters": 1})[1].startswith("1 concept, and")
    kind, why = unselected._reading({"value": 1.0, "ci": [-2.0, 4.0], "n_clusters": 5, "detectable": 3.25})
    assert (kind, why) == ("inconclusive", "its interval includes 0; at this spread the rule finds a difference of "
                                           "±3.2 with 80% power")
    assert unselected.SIDES["reproduced"] == "its interval lies above 0"
