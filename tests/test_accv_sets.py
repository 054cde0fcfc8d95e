"""The ACCV version's prompt sets (unselected, three-concept factorial, pilot): loading, one error
per bad file naming the file, the row and the column; and the authors' instrument reached through
``-p questions authors:/path`` (their questions, answer rule and pixel limits)."""

from pathlib import Path

import pandas as pd
import pytest

from dvdlib import authors, bench, judge
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


def test_intervals_resample_concepts_jointly_where_sets_share_them():
    import numpy as np

    from dvdlib import unselected

    rng = np.random.default_rng(1)
    concepts = np.repeat(np.arange(20), 5)
    level = rng.normal(0, 20, 20)[concepts]  # what a concept brings to all its prompts
    a, b = level + rng.normal(10, 5, 100), level + rng.normal(0, 5, 100)
    joint = unselected.cluster_difference(a, concepts, b, concepts)
    apart = unselected.cluster_difference(a, concepts, b, concepts + 100)  # no concept in common
    assert joint["ci"][0] < 10 < joint["ci"][1] and joint["ci"][1] - joint["ci"][0] < 3
    assert apart["ci"][1] - apart["ci"][0] > 3 * (joint["ci"][1] - joint["ci"][0])  # concepts' levels don't cancel
    assert unselected.cluster_difference(a, concepts, a, concepts)["ci"] == [0.0, 0.0]
    share = unselected.cluster_mean(np.r_[np.ones(50), np.zeros(50)] > 0, concepts)
    assert share["value"] == 0.5 and share["clusters"] == 20 and share["ci"][0] < 0.5 < share["ci"][1]


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
