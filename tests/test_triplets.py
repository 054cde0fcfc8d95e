"""Three concepts (dvdlib.triplets): designs by world, each target's presence from its five
questions (stored, never asked twice), the pilot's winners, the first-step peak beside presence."""

import pandas as pd
from PIL import Image

import dvdlib
from dvdlib import bench, triplets
from dvdlib.judge import load_questions
from dvdlib.store import Store


def test_a_world_without_three_concept_prompts_gets_an_empty_design_and_the_reason():
    rows, why = triplets.design(dvdlib.setup("toy", "x"), "factorial", 3)
    assert rows.empty and "no `factorial` prompt set" in why and "two per caption" in why
    assert triplets.presence_by_condition(triplets.judge_presence(rows, [1], None, None, None)).empty


def test_factorial_cases_keep_all_eight_conditions_and_the_pilot_is_all_named():
    run = dvdlib.setup("smoke", "x")
    rows, why = triplets.design(run, "factorial", 2)
    assert why is None and len(rows) == 16 and rows.groupby("case").condition.nunique().eq(8).all()
    pilot, _ = triplets.design(run, "pilot", 3)
    assert len(pilot) == 3 and (pilot.condition == "111").all()


class Keyword:
    """Yes to every question that names one of ``present``; counts its calls."""

    name = "keyword"

    def __init__(self, present):
        self.present, self.calls = present, 0

    def ask(self, images, questions):
        self.calls += 1
        return [["Yes" if any(p in q.lower() for p in self.present) else "No" for q in questions] for _ in images]


def test_presence_per_target_from_its_own_questions_and_stored(tmp_path):
    rows = bench.load_factorial()
    rows = rows[rows.case == 1]
    store = Store(tmp_path, "m", {"resolution": 8})
    for prompt in rows.prompt:
        store.save(prompt, 7, image=Image.new("RGB", (8, 8)))
    judge, questions = Keyword({"batman", "mug"}), load_questions("paper")
    images = triplets.judge_presence(rows, [7], store, judge, questions)
    assert images.set_index("condition").loc["001", ["present_1", "present_2", "present_3"]].tolist() == [True, False, True]
    assert images.set_index("condition").loc["000", "yes_3"] == 0
    calls = judge.calls
    again = triplets.judge_presence(rows, [7], store, judge, questions)
    assert judge.calls == calls and again.equals(images)


def test_pilot_winners_and_the_peak_beside_presence():
    rows = pd.DataFrame({"case_num": [1, 2], "target1_type": "artist", "target2_type": "landmark",
                         "target3_type": "character"})
    images = pd.DataFrame({"case_num": [1, 1, 2, 2], "condition": "111", "present_1": [1, 0, 0, 0],
                           "present_2": [1, 1, 1, 0], "present_3": [0, 0, 0, 0]})
    winners = triplets.pilot_winners(images, rows)
    assert winners.loc["landmark", "present"] == 0.75 and winners.loc["landmark", "alone"] == 0.5
    peaks = pd.DataFrame({"case_num": [1, 2], "condition": "111", "peak_slot": [2, 0]})
    on_peak, others = triplets.peak_target_presence(peaks, images)
    assert on_peak == 1.0 and others == 0.25  # prompt 2 peaks on no target: left out
    beside = triplets.peak_beside_presence(peaks, images)
    assert beside.loc[("111", 2), "peak share"] == 0.5 and beside.loc[("111", 2), "present"] == 0.75


def test_peaks_by_category_and_a_worlds_own_design_in_the_authors_columns():
    rows = pd.DataFrame({"case_num": [1, 2, 3], "target1_type": "artist", "target2_type": "landmark",
                         "target3_type": "character"})
    peaks = pd.DataFrame({"case_num": [1, 2, 3], "peak_slot": [2, 2, 0]})
    shares = triplets.peaks_by_category(peaks, rows)
    assert shares["landmark"] == 2 / 3 and shares["none"] == 1 / 3
    world = pd.DataFrame({"condition": ["000", "101"], "case": [1, 1], "prompt": ["a mug, a bag and a box",
                          "mosaic style: a bag and robot"], "target_1": ["mug", "mosaic"], "target_2": ["bag", "bag"],
                          "target_3": ["box", "robot"], "named_1": [0, 1], "named_2": [0, 0], "named_3": [0, 1]})
    design = bench.as_triplet_design(world)
    assert design.loc[1, ["target1_type", "target2_type", "target3_type"]].tolist() == ["artist", "object", "character"]
    assert design.case.tolist() == [1, 1] and design.case_num.tolist() == [1, 2]


def test_a_worlds_own_three_slot_columns_are_read_as_the_authors():
    rows, why = triplets.design(dvdlib.setup("toy", "x", world="toy2"), "factorial", 2)
    assert why is None and len(rows) == 16 and {"target1_type", "target2_homogeneity"} <= set(rows.columns)
