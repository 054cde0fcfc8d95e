"""The toy world's limits (dvdlib.toy.limits): the concepts left out, the section every toy card links to."""

import json
from pathlib import Path

import pandas as pd

from dvdlib import bench, pages
from dvdlib.profiles import load_profile
from dvdlib.toy import limits
from dvdlib.worlds import get

REPO = Path(__file__).resolve().parents[1]
JUDGE = REPO / "toy" / "judge"


def test_the_toy_profile_leaves_out_exactly_the_concepts_the_judge_misses():
    """Over the hand-checked images of the world-1 model, every concept below 80% recall is left out
    of the prompt sets, and every concept of the prompts that remain was seen and passes."""
    toy = load_profile("toy")
    assert toy.exclude_concepts == limits.unseen(JUDGE) == ["robot"]
    seen = limits.recall(JUDGE)
    assert seen["robot"]["present"] == 18 and round(seen["robot"]["recall"] * 18) == 5  # 2 of 8 + 3 of 10
    sets = bench.load_prompt_set("toy-dominance", sets=get("toy").prompt_sets, exclude=toy.exclude_concepts)
    assert len(sets) == 16 and "robot" not in set(sets.content) | set(sets.nm_word)
    for concept in set(sets.content) | set(sets.nm_word):
        assert seen[concept]["present"] >= 10 and seen[concept]["recall"] >= 0.8, concept


def test_recall_pools_the_samples_by_counts():
    """dev 2 of 8 and test 3 of 10 are 5 of 18, not the mean of 25% and 30%."""
    manifest = json.loads((JUDGE / "manifest.json").read_text())["handcheck"]
    dev, test = manifest["dev"]["per_concept"]["robot"], manifest["test"]["per_concept"]["robot"]
    assert (dev["present"], test["present"]) == (8, 10)
    assert limits.recall(JUDGE)["robot"]["recall"] == (2 + 3) / 18


def test_excluded_concepts_leave_every_row_that_names_them():
    table = pd.DataFrame({"case_num": [1, 2, 3, 4], "content_type": ["character", "object", "landmark", "object"],
                          "content": ["robot", "ball", "tower", "box"], "nm_word": ["ball", "robot", "ring", "bar"],
                          "prompt": ["robot and ball", "ball and robot", "tower and ring", "box and bar"]})
    kept = bench.load_prompt_set("mine", sets={"mine": lambda: table}, exclude=["robot"])
    assert kept.prompt.tolist() == ["tower and ring", "box and bar"]
    assert bench.load_prompt_set("mine", sets={"mine": lambda: table}).equals(table)


def test_the_section_names_what_is_left_out_and_who_dominates(tmp_path):
    findings = tmp_path / "findings"
    (findings / "results").mkdir(parents=True)
    (findings / "results" / "02_dvd_benchmark.json").write_text(json.dumps({"results": [
        {"key": "dvd_gap", "per_cluster": {"tower": 2.25, "mosaic": 79.75, "robot": -5.75}}]}))
    text = limits.section(JUDGE, findings, ["robot"])
    assert "**mosaic** carries the dominance" in text and "+79.8" in text and "(tower +2.2)" in text
    assert "**robot** is left out of every prompt set" in text and "28% of the 18 images" in text
    assert "2 rigid concepts to stand on (tower, mosaic): fewer than the 3" in text
    table = limits.concept_table(JUDGE, findings, ["robot"])
    assert list(table.index) == ["ball", "box", "ring", "bar", "tower", "robot", "mosaic"]
    assert table.loc["robot", "benchmark − balanced DvD"] == "not measured"  # left out: no claim reads it
    assert table.loc["tower", "variants"] == 1 and table.loc["robot", "variants"] == 3
    assert "no snapshot" not in limits.section(JUDGE, tmp_path / "none", ["robot"])  # no dominance sentence, no error


def test_every_toy_card_links_to_the_limits_and_others_do_not(tmp_path):
    assert "{ref}`what this world can and cannot test <toy-limits>`" in load_profile("toy").card()
    assert "| left out of the prompt sets | robot (the judge misses it" in load_profile("toy").card()
    smoke = load_profile("smoke").card()
    assert "toy-limits" not in smoke and "left out" not in smoke
    assert "(toy-limits)=" in (REPO / "book" / "methods.md").read_text()
    assert "<toy-limits>" in (REPO / "book" / "index.md").read_text()
    text = pages.write_toy_limits("book", tmp_path).read_text()  # no judge stored there
    assert text.startswith("No toy judge with a hand check is stored here")
