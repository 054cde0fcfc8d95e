"""Three concepts (dvdlib.triplets): designs by world, each target's presence from its five
questions (stored, never asked twice), the pilot's winners, the first-step peak beside presence."""

import numpy as np
import pandas as pd
import pytest
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
    assert len(triplets.design(run, "factorial", None)[0]) == 240  # None: every case
    assert len(triplets.design(run, "factorial", 0)[0]) == 8  # 0 (half of one prompt) is one case, not "no limit"
    assert len(triplets.design(run, "pilot", 0)[0]) == 1


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
    peak = triplets.peak_presence(peaks, images, rows)  # rows without target names: prompts independent
    assert peak["the peak's target"]["value"] == 1.0 and peak["the other targets"]["value"] == 0.25
    assert peak["difference"]["n"] == 1  # prompt 2 peaks on no target: left out
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


def _pilot():
    """Four pilot prompts (artist, landmark, character) in two templates that fix the mention order."""
    return pd.DataFrame({
        "case_num": [1, 2, 3, 4], "condition": "111", "case": [1, 2, 3, 4],
        "prompt": ["a poster combining Monet painting style, Big Ben, and Goku",
                   "a poster combining Vermeer painting style, Petra, and Thor",
                   "a mural where Hulk visits Kremlin, painted like Titian",
                   "a mural where Woody visits Taj Mahal, painted like Raphael"],
        "target1": ["monet", "vermeer", "titian", "raphael"], "target2": ["big ben", "petra", "kremlin", "taj mahal"],
        "target3": ["goku", "thor", "hulk", "woody"], "template_id": ["t1", "t1", "t4", "t4"],
        **{f"target{k}_type": kind for k, kind in zip((1, 2, 3), ("artist", "landmark", "character"))},
        **{f"target{k}_homogeneity": 1 for k in (1, 2, 3)}})


def test_mention_order_reads_each_prompts_own_order():
    rows = _pilot()
    # only the artist is present: mentioned first in template t1, third in t4
    images = pd.DataFrame({"case_num": [1, 2, 3, 4], "condition": "111", "present_1": [1, 1, 1, 1],
                           "present_2": [0, 0, 0, 0], "present_3": [0, 0, 0, 0]})
    order = triplets.mention_order(images, rows)
    assert order[("first", "present")]["value"] == 0.5 and order[("third", "alone")]["value"] == 0.5
    assert order[("second", "present")]["value"] == 0.0
    assert order[("first", "present")]["categories"] == {"artist": 2, "character": 2}
    assert order[("first − third", "present")]["value"] == 0.0  # +1 in t1, −1 in t4
    pilot = triplets.pilot_intervals(images, rows)
    assert pilot[("artist", "alone")]["value"] == 1.0 and pilot[("landmark", "present")]["value"] == 0.0
    # every concept once: the template is the only factor with shared clusters (2 of them)
    assert pilot[("artist", "present")]["clusters"] == {"template": 2}


def test_survivors_and_presence_intervals_per_condition():
    rows = bench.load_factorial()
    rows = rows[rows.case <= 4]
    rng = np.random.default_rng(0)
    images = rows[["case_num", "condition", "case", "prompt"]].assign(
        **{f"present_{k}": rng.random(len(rows)) < 0.5 for k in (1, 2, 3)})
    survivors = triplets.survivor_intervals(images, rows)
    n = images.set_index("condition")[["present_1", "present_2", "present_3"]].sum(axis=1)
    assert survivors["111"]["value"] == pytest.approx(n.loc["111"].mean())
    within = n.loc["111"].to_numpy() - n.loc["000"].to_numpy()  # cases in the same order
    assert survivors["111 − 000"]["value"] == pytest.approx(within.mean()) and survivors["111 − 000"]["n"] == 4
    presence = triplets.presence_intervals(images, rows)
    assert presence[("010", "slot 2")]["value"] == pytest.approx(images[images.condition == "010"].present_2.mean())
    grid = triplets.interval_grid(presence)
    assert grid.shape == (8, 3) and grid.loc["010", "slot 2"].count("[") == 1


# words at the surface, positions one level down: the same numbers on the packaged CLIP tokenizer -----------

POSTER = "a poster combining Van Gogh painting style, Eiffel Tower, and Batman"
BAGS = "a red mug, a carry-all pouch and a blue mug"  # "mug" twice: its first occurrence (3) counts


@pytest.mark.parametrize("prompt, targets, spans", [
    (POSTER, {1: "van gogh", 2: "eiffel tower", 3: "batman"}, {1: [4, 5], 2: [9, 10], 3: [13]}),
    (BAGS, {1: "carry-all pouch", 2: "mug", 3: "blue"}, {1: [6, 7, 8, 9], 2: [3], 3: [12]}),
])
def test_peak_slot_and_chance_by_words_equal_by_positions(prompt, targets, spans):
    from dvdlib.tokens import clip_tokenizer, concept_spans, content_positions

    tok = clip_tokenizer()
    positions = content_positions(tok, prompt)
    assert concept_spans(tok, prompt, targets) == spans
    assert triplets.slot_chance(tok, prompt, targets) == triplets.slot_chance_at(positions, spans)
    slots = {}
    for peak in positions:  # each content token the peak in turn
        share = np.zeros(77)
        share[positions] = np.linspace(0.01, 0.02, len(positions))
        share[peak] = 0.2
        slots[peak] = triplets.peak_slot(share, tok, prompt, targets)
        assert slots[peak] == triplets.peak_slot_at(share, positions, spans) == (peak, slots[peak][1])
    assert {p for p, (_, slot) in slots.items() if slot} == {q for span in spans.values() for q in span}
    if prompt == BAGS:
        assert slots[13] == (13, 0)  # the second "mug" is a word of no target


def test_a_target_the_prompt_lacks_is_named():
    from dvdlib.tokens import ConceptNotFound, clip_tokenizer

    tok = clip_tokenizer()
    with pytest.raises(ConceptNotFound, match=r"concept 'notebook' not found in prompt 'a red mug, a carry-all"):
        triplets.peak_slot(np.full(77, 0.01), tok, BAGS, {1: "mug", 2: "notebook", 3: "blue"})
    with pytest.raises(ConceptNotFound, match=r"concept 'notebook' not found"):
        triplets.slot_chance(tok, BAGS, {1: "notebook"})


def test_tabulate_says_a_row_has_no_categories_rather_than_nan():
    """The difference row of `mention_order` names no categories: its cell reads "—", never NaN."""
    from dvdlib.triplets import tabulate

    table = tabulate({("first", "present"): {"value": 0.5, "ci": [0.1, 0.9], "n": 6, "n_clusters": 6,
                                              "categories": {"artist": 2, "landmark": 4}},
                      ("first − third", "present"): {"value": 0.0, "ci": [0.0, 0.0], "n": 6, "n_clusters": 6}})
    assert table["categories"].tolist() == ["artist 2, landmark 4", "—"]
    assert "categories" not in tabulate({"a": {"value": 1.0, "ci": [0, 2], "n": 3, "n_clusters": 3}})
