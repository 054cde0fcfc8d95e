"""dvdlib.replace: category-word replacement and the paired test (paper §3.8)."""

import pandas as pd
import pytest
from scipy import stats

from dvdlib import replace as r
from dvdlib.findings import unwritten_claims


def test_replace_concept_keeps_the_rest_of_the_prompt():
    assert r.replace_concept("Van Gogh's Starry Night Notebook", "van gogh", "artist") == "artist's Starry Night Notebook"
    assert r.replace_concept("Spider Man Hoodie", "spider-man", "character") == "character Hoodie"
    assert r.replace_concept("The Colosseum mug, Colosseum at dusk", "colosseum", "landmark") == \
        "The landmark mug, landmark at dusk"
    assert r.replace_concept("Café de Flore tote", "cafe de flore", "landmark") == "landmark tote"
    # a word that itself matches the concept does not loop
    assert r.replace_concept("landmark mug", "landmark", "landmark") == "landmark mug"
    with pytest.raises(ValueError, match="'pouch' not found"):
        r.replace_concept("a red mug", "pouch", "object")


def test_category_words_paper_and_toy():
    assert r.category_word("Van Gogh", "artist") == "artist"
    assert r.category_word("Colosseum", "landmark") == "landmark"
    from dvdlib.worlds import get

    toy = get("toy").category_words()
    assert toy == {"tower": "landmark", "robot": "character", "mosaic": "style"}
    assert r.category_word("tower", "landmark", toy) == "landmark"
    with pytest.raises(ValueError, match="no category word for 'mug'"):
        r.category_word("mug", "object")


def test_replacement_is_scored_on_the_objects_return():
    """Hand-made answers: two prompts × two seeds; the object comes back in 3 of 4 images."""
    import pandas as pd

    judged = pd.DataFrame([
        {"model": "m", "case_num": c, "seed": s, "when": w, "n": n, "c": 5, "prompt": f"{w} {c}"}
        for c, s, w, n in [(1, 1, "before", 0), (1, 1, "after", 5), (1, 2, "before", 1), (1, 2, "after", 3),
                           (2, 1, "before", 0), (2, 1, "after", 4), (2, 2, "before", 4), (2, 2, "after", 2)]])
    back = r.object_return(judged)
    assert back.present_before.tolist() == [False, False, False, True]  # n ≥ 3 of 5
    assert back.present_after.tolist() == [True, True, True, False]  # paired by prompt and seed
    rows = pd.DataFrame({"case_num": [1, 2], "content": ["tower", "robot"], "nm_word": ["ball", "box"],
                         "prompt": ["tower and ball", "robot and box"]})
    per = r.per_prompt_return(judged, rows, "m")
    assert per.change.tolist() == [1.0, 0.0] and per.content.tolist() == ["tower", "robot"]
    pairs = pd.DataFrame({"model": "m", "case_num": [1, 2], "dvd_before": [90.0, 40.0], "dvd_after": [0.0, 20.0]})
    t = r.tests_by_model(pairs, judged).loc["m"]
    assert t["object present before"] == 0.25 and t["object present after"] == 0.75 and t.images == 4
    assert t["object Yes before"] == 1.25 and t["object Yes after"] == 3.5 and t.median_before == 65.0
    shown = r.tests_table(r.tests_by_model(pairs, judged))  # a column per model, its rows in words
    assert list(shown.columns) == ["m"] and shown.at["DvD median before", "m"] == 65.0
    assert not [name for name in shown.index if "_" in name]
    # the concept questions after replacement ask about the word in the prompt, by default
    table = pd.DataFrame({"content": ["van gogh"], "content_type": ["artist"], "prompt": ["Van Gogh Mug"]})
    assert r.replaced(table).content.tolist() == ["artist"]


def test_example_rows_count_the_seeds_they_show():
    """Ten seeds judged, a grid row shows six: the title counts the six shown and says the total."""
    from PIL import Image

    class Store:
        def image(self, prompt, seed):
            return Image.new("RGB", (4, 4))

    ns = {"before": [0] * 8 + [4, 4], "after": [5, 5, 0, 5, 0, 0, 5, 5, 5, 5]}
    judged = pd.DataFrame([{"model": "m", "case_num": 1, "seed": s, "when": w, "n": ns[w][s], "c": 5,
                            "prompt": f"{w} prompt"} for w in ns for s in range(10)])
    per = pd.DataFrame({"case_num": [1], "content": ["tower"], "nm_word": ["ball"], "change": [0.6]}).set_index("case_num")
    (before, images_before), (after, images_after) = r.example_rows(per, judged, Store(), "m", 1)
    assert len(images_before) == len(images_after) == 6
    assert before.endswith("object present in 0 of 6 seeds shown (2 of all 10)")
    assert after.endswith("object present in 3 of 6 seeds shown (7 of all 10)")
    few = r.example_rows(per, judged[judged.seed < 4], Store(), "m", 1)
    assert few[1][0].endswith("object present in 3 of 4 seeds") and len(few[1][1]) == 4


def test_replaced_rows():
    rows = pd.DataFrame({"case_num": [1, 2], "content_type": ["artist", "character"], "content": ["Van Gogh", "Spider-Man"],
                         "nm_word": ["notebook", "hoodie"], "prompt": ["Van Gogh Notebook", "Spider-Man hoodie"]})
    out = r.replaced(rows)
    assert out.prompt.tolist() == ["artist Notebook", "character hoodie"]
    assert out.original_prompt.tolist() == rows.prompt.tolist() and out.content.tolist() == ["artist", "character"]
    assert r.replaced(rows, judge_concept="original").content.tolist() == rows.content.tolist()
    with pytest.raises(ValueError, match="judge_concept"):
        r.replaced(rows, judge_concept="both")


def test_paired_test_by_hand():
    before, after = [64, 70, 52, 80, 40], [20, 30, 52, 10, 44]
    out = r.paired_test(before, after)
    # differences 44, 40, 0, 70, −4: the zero is dropped; ranks of |d| = 3, 2, 4, 1 → W+ = 9, W− = 1
    assert out["pairs"] == 5 and out["differing"] == 4
    assert out["median_before"] == 64 and out["median_after"] == 30
    assert out["statistic"] == 9.0
    assert out["p"] == pytest.approx(stats.wilcoxon([44, 40, 70, -4], alternative="greater").pvalue)
    assert out["p"] == pytest.approx(2 / 16)  # exact: W+ ≥ 9 in 2 of the 16 sign patterns
    same = r.paired_test([10, 20], [10, 20])
    assert same["differing"] == 0 and same["p"] == 1.0
    with pytest.raises(ValueError, match="same non-zero length"):
        r.paired_test([1, 2], [1])


def test_world_words_and_paired_tables():
    from dvdlib.worlds import get

    assert get("sd").category_words() == r.CATEGORY_WORDS and get("toy").category_words()["tower"] == "landmark"
    before = pd.DataFrame({"case_num": [1, 2], "content_type": ["artist"] * 2, "prompt": ["Van Gogh mug", "Monet mug"],
                           "dvd": [64.0, 40.0]})
    after = pd.DataFrame({"case_num": [2, 1], "content_type": ["artist"] * 2, "prompt": ["artist mug", "artist mug"],
                          "dvd": [16.0, 20.0]})
    out = r.paired(before, after).set_index("case_num")
    assert out.loc[1, ["dvd_before", "dvd_after"]].tolist() == [64.0, 20.0] and out.loc[2, "dvd_after"] == 16.0
    assert out.loc[1, "replaced"] == "artist mug" and out.loc[1, "prompt"] == "Van Gogh mug"
    with pytest.raises(ValueError, match="no score after replacement"):
        r.paired(before, after.iloc[:1])


def test_detection_replacement_chapter_runs_on_smoke(tmp_path):
    """Chapter 08 through papermill with profile smoke: grid, ROC, replacement, paired test."""
    import json

    from dvdlib import scheduler
    from test_book import copy_book

    root = copy_book(tmp_path)
    (outcome,) = scheduler.run_chapters("smoke", only="08_detection_replacement", cwd=root, verbose=False)
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    figures = root / "book" / "figures" / "08_detection_replacement"
    assert {p.name for p in figures.glob("*.png")} == {"roc.png", "object_return.png", "replacement_examples.png"}
    results = json.loads((root / "book" / "results" / "08_detection_replacement.json").read_text())
    # every key a toy-findings claim reads from this chapter is written by it
    assert unwritten_claims("08_detection_replacement", [r["key"] for r in results["results"]]) == []
    rows = {r["key"]: r for r in results["results"]}
    assert results["profile"]["name"] == "smoke" and results["profile"]["judge"] == "tiny:qwen2-vl"
    assert (rows["det_bench_rate"]["paper"], rows["det_control_rate"]["paper"], rows["det_gap"]["paper"]) == \
        ("70.67", "33.67", "37.00")
    assert rows["det_config"]["paper"] == "layers 9–10, mean > 0.010" and rows["det_best_auc"]["this run"].startswith(("layer ", "layers "))
    for key in ("det_bench_rate", "det_control_rate"):
        assert 0 <= float(rows[key]["this run"]) <= 100
    assert float(rows["det_gap"]["this run"]) == pytest.approx(
        float(rows["det_bench_rate"]["this run"]) - float(rows["det_control_rate"]["this run"]), abs=0.011)
    assert rows["repl_summary"]["paper"].startswith("DvD SD 1.4: 64 → 20; SD 2.1: 40 → ≈17")
    assert rows["repl_summary"]["this run"].startswith("smoke: object present in ")
    assert rows["det_gap"]["scale_bound"] is True and rows["det_matched"]["n_clusters"]  # random weights: not SD's scale
    assert "repl_peak_outside" in rows


def test_the_rows_whose_peak_lies_outside_are_listed_or_said_to_be_none():
    from IPython.display import Markdown

    outside = pd.DataFrame({"case_num": [3], "content": ["robot"], "nm_word": ["ball"], "prompt": ["ball and robot"],
                            "peak_token": ["and"]})
    assert r.peak_outside_shown(outside) is outside
    said = r.peak_outside_shown(outside.iloc[:0])
    assert isinstance(said, Markdown) and said.data.startswith("In every replaced row the first-step peak token")
