"""dvdlib.dvd: judging a run's images, DvD per image and per prompt (paper §2), resumable."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dvdlib.dvd import judge_images, per_prompt
from dvdlib.judge import load_questions
from dvdlib.store import Store

SEEDS = [1825, 410]


class ScriptedJudge:
    """Answers Yes to the first k questions about the concept and the first m about the object,
    k and m read from the image's red and green values; counts its calls."""

    name = "scripted"

    def __init__(self):
        self.calls = 0

    def ask(self, images, questions):
        self.calls += 1
        out = []
        for image in images:
            k, m = (int(v) for v in np.asarray(image)[0, 0, :2])
            out.append([("Yes." if i < k else "No") for i in range(5)] + [("yes" if i < m else "no") for i in range(5)])
        return out


@pytest.fixture
def run(tmp_path):
    store = Store(tmp_path, "fake", {"resolution": 8})
    rows = pd.DataFrame([
        {"case_num": 1, "content_type": "landmark", "content": "colosseum", "nm_word": "pouch",
         "prompt": "Colosseum Carry-all Pouch"},
        {"case_num": 2, "content_type": "balanced", "content": "dog", "nm_word": "bicycle",
         "prompt": "a dog and a bicycle"}])
    counts = {("Colosseum Carry-all Pouch", 1825): (5, 0), ("Colosseum Carry-all Pouch", 410): (4, 1),
              ("a dog and a bicycle", 1825): (5, 5), ("a dog and a bicycle", 410): (3, 2)}
    for (prompt, seed), (k, m) in counts.items():
        store.save(prompt, seed, image=Image.fromarray(np.full((8, 8, 3), [k, m, 0], np.uint8)))
    return rows, store


def test_dvd_per_image_and_per_prompt_by_hand(run):
    rows, store = run
    images = judge_images(rows, SEEDS, store, ScriptedJudge(), load_questions("paper"))
    assert images["dvd"].tolist() == [100.0, 64.0, 0.0, 36.0]  # 5·5, 4·4, 5·0, 3·3 (/25·100)
    assert images.loc[0, "answers"][0] == "Yes." and len(images.loc[0, "answers"]) == 10
    table = per_prompt(images, tau=48)
    assert table["dvd"].tolist() == [82.0, 18.0]
    assert table["dvd_images"].tolist() == [2, 0]
    assert per_prompt(images, tau=64)["dvd_images"].tolist() == [2, 0]
    assert per_prompt(images, tau=65)["dvd_images"].tolist() == [1, 0]


def test_answers_are_stored_and_not_asked_again(run):
    rows, store = run
    judge = ScriptedJudge()
    first = judge_images(rows, SEEDS, store, judge, load_questions("paper"))
    assert judge.calls == 2  # one call per prompt, all its seeds at once
    again = judge_images(rows, SEEDS, store, judge, load_questions("paper"))
    assert judge.calls == 2
    pd.testing.assert_frame_equal(first, again)


class RecordingJudge(ScriptedJudge):
    """ScriptedJudge that keeps the questions it was asked."""

    def __init__(self):
        super().__init__()
        self.asked = []

    def ask(self, images, questions):
        self.asked.append(list(questions))
        return super().ask(images, questions)


def test_each_concept_is_asked_the_questions_of_its_kind(run):
    from dvdlib.bench import load_balanced
    from dvdlib.dvd import concept_kind, question_groups
    from dvdlib.judge import KINDS

    questions = load_questions("paper")
    balanced = load_balanced(resolve=False)
    groups = {row.prompt: question_groups(row, questions) for row in balanced.itertuples()}
    assert groups["A lively carnival at night"] == ("scene", "time")
    assert groups["A lonely boat on a calm lake"] == ("objects", "scene")
    # every concept of the balanced set has a kind, and no time of day or weather is asked about products
    assert {concept_kind(c) for c in pd.concat([balanced.content, balanced.nm_word])} <= set(KINDS)
    night = questions.group(groups["A lively carnival at night"][1]).texts("night")
    assert not any("product" in q for q in night)
    weather = balanced[balanced.nm_word.map(concept_kind) == "time"]
    assert len(weather) >= 30 and all(question_groups(r, questions)[1] == "time" for r in weather.itertuples())
    # a category of the question set wins over the kind (DominanceBench), a prompt file's own kind over the table
    bench_row = pd.Series({"content_type": "landmark", "content": "colosseum", "nm_word": "pouch"})
    assert question_groups(bench_row, questions) == ("landmark", "objects")
    style = pd.Series({"content_type": "dog", "content": "dog", "nm_word": "oil painting", "nm_kind": "style"})
    assert question_groups(style, questions) == ("animal", "style")

    rows, store = run
    judge = RecordingJudge()
    rows = rows.assign(nm_word=["pouch", "night"], prompt=rows.prompt)
    images = judge_images(rows, SEEDS, store, judge, questions)
    assert list(images.object_group) == ["objects", "objects", "time", "time"]
    assert list(images.concept_group) == ["landmark", "landmark", "animal", "animal"]  # "dog" is an animal
    assert judge.asked[1][5:] == questions.group("time").texts("night")


def test_the_collapse_grid_shows_only_prompts_at_or_above_tau_and_says_how_many(tmp_path):
    """Chapter 02's clearest collapses (paper §2): only prompts whose mean DvD reaches τ, and one
    sentence on how many reached it — fewer than the grid's rows, or none."""
    from dvdlib.dvd import collapse_rows, collapse_text

    store = Store(tmp_path, "fake", {"resolution": 8})
    rows = pd.DataFrame({"case_num": [f"benchmark:{i}" for i in range(4)] + ["balanced:1"],
                         "content_type": ["landmark", "character", "style", "landmark", "balanced"],
                         "content": ["tower", "robot", "mosaic", "tower", "ball"],
                         "nm_word": ["ball", "ring", "box", "ring", "ring"],
                         "prompt": ["tower and ball", "robot and ring", "mosaic and box", "tower and ring", "ball and ring"]})
    dvd_of = [100.0, 48.0, 24.0, 18.0, 90.0]
    images = rows.assign(model="m", seed=1, c=5, n=0, dvd=dvd_of)
    for prompt in rows.prompt:
        store.save(prompt, 1, image=Image.new("RGB", (8, 8)))
    scores = per_prompt(images, 48.0).assign(model="m")
    shown = collapse_rows(images, scores, store, "m", 4, rows=rows, tau=48.0)
    assert [title.split('"')[1] for title, _ in shown] == ["tower and ball", "robot and ring"]  # not 24 or 18
    assert collapse_text(scores, "m", len(shown), 4, 48.0) == (
        "Only 2 of the 4 benchmark prompts reach τ = 48 under `m`: the grid shows all of them.")
    assert len(collapse_rows(images, scores, store, "m", 4, rows=rows)) == 4  # without τ: the highest, as before
    assert collapse_rows(images, scores, store, "m", 4, rows=rows, tau=101.0) == []
    assert collapse_text(scores, "m", 0, 4, 101.0) == (
        "No benchmark prompt reaches τ = 101 under `m` (0 of 4): there is no collapse to show.")
    assert collapse_text(scores, "m", 1, 1, 48.0).startswith("2 of the 4 benchmark prompts reach τ = 48 under `m`; "
                                                             "the grid shows 1 of them")
    assert "1 of the 4 benchmark prompts reaches" in collapse_text(scores, "m", 1, 4, 60.0)
