"""The judge interface (paper §2): Yes parsing, question files, Yes counts."""
import copy

import pytest

from dvdlib.judge import Judge, is_yes, load_questions, questions_from_dict, yes_counts
from dvdlib.metrics import dvd_score

TOY = load_questions("toy")


@pytest.mark.parametrize("answer,yes", [
    ("Yes.", True), (" yes", True), ("YES, it is", True), ("yes", True), ('"Yes"', True), ("- yes!", True),
    ("Yes (p=0.97)", True), ("No", False), ("Yeah", False), ("", False), ("no, yes", False), ("Y", False),
    ("No (unrecognisable)", False), (None, False),
])
def test_is_yes_reads_the_start_of_the_answer(answer, yes):
    assert is_yes(answer) is yes


def raw():
    return {"name": "t", "categories": {c: {"instruction": "Answer only Yes or No.",
                                            "questions": [f"Q{i} {c} {{concept}}?" for i in range(5)]}
                                        for c in ("artist", "landmark")},
            "objects": {"instruction": "Answer only Yes or No.", "questions": [f"O{i} {{concept}}?" for i in range(5)]}}


def broken(change):
    data = copy.deepcopy(raw())
    change(data)
    return data


@pytest.mark.parametrize("change,message", [
    (lambda d: d["categories"]["artist"]["questions"].pop(), "expected 5 questions, got 4"),
    (lambda d: d["objects"]["questions"].append("O5 {concept}?"), "expected 5 questions, got 6"),
    (lambda d: d["categories"]["landmark"]["questions"].__setitem__(2, "Is it there?"), "question 3: must contain {concept}"),
    (lambda d: d["objects"]["questions"].__setitem__(0, "{concept} or {concept}?"), "question 1: must contain {concept}"),
    (lambda d: d["objects"]["questions"].__setitem__(0, "{concept} by {painter}?"), "only placeholder"),
    (lambda d: d["categories"].__setitem__("dragon", d["categories"]["artist"]), "unknown category 'dragon'"),
    (lambda d: d.pop("objects"), "missing 'objects'"),
    (lambda d: d["categories"]["artist"].pop("instruction"), "'instruction' and 'questions'"),
    (lambda d: d["categories"]["artist"].__setitem__("instruction", " "), "non-empty"),
    (lambda d: d.__setitem__("extra", 1), "unknown keys ['extra']"),
])
def test_question_loader_names_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[").replace("{", r"\{").replace("}", r"\}")):
        questions_from_dict(broken(change))


def test_question_sets_load_and_apply_their_instruction(tmp_path):
    qs = questions_from_dict(raw())
    assert qs.concept_questions("van gogh", "artist")[0] == "Q0 artist van gogh? Answer only Yes or No."
    assert len(qs.object_questions("mug")) == 5
    with pytest.raises(KeyError, match="no category 'character'"):
        qs.concept_questions("spider-man", "character")
    assert questions_from_dict(broken(lambda d: d["categories"].__setitem__("dragon", d["categories"]["artist"])),
                               categories=None).group("dragon")
    path = tmp_path / "mine.yaml"
    five = "".join(f"\n    - {x} {{concept}}" for x in "abcde")
    path.write_text(f"objects:\n  instruction: Say yes or no.\n  questions:{five}\n"
                    f"categories:\n  style:\n    instruction: Be lenient.\n    questions:{five}\n")
    assert load_questions(path).object_questions("cup")[4] == "e cup Say yes or no."
    with pytest.raises(FileNotFoundError):
        load_questions(tmp_path / "missing.yaml")
    path.write_text("objects: [unclosed")
    with pytest.raises(ValueError, match="mine.yaml: not valid YAML"):
        load_questions(path)


def test_the_toy_question_set():
    assert set(TOY.categories) == {"landmark", "character", "style"}
    assert "Yes or No" in TOY.group("landmark").instruction and "Yes or No" in TOY.objects.instruction
    assert "loosely" in TOY.group("style").instruction  # the artist-like role is judged leniently
    q = TOY.concept_questions("tower", "landmark")[3]
    assert TOY.match(q) == ("landmark", 3, "tower")
    assert TOY.match(TOY.object_questions("ring")[1]) == ("objects", 1, "ring")
    assert TOY.match("What colour is the sky?") is None


class Scripted:
    """A fake judge: answers from a table keyed by (image, question index)."""

    name = "scripted"

    def __init__(self, table):
        self.table, self.calls = table, []

    def ask(self, images, questions):
        self.calls.append((list(images), list(questions)))
        return [list(self.table[im]) for im in images]


def test_yes_counts_and_dvd_by_hand():
    table = {
        "img0": ["Yes", "yes.", "Yes, clearly", "No", "Yeah"] + ["No", "no", "Yes", "No.", "nope"],  # c=3, n=1
        "img1": ["Yes"] * 5 + ["No"] * 5,  # c=5, n=0
        "img2": ["No"] * 5 + ["Yes"] * 5,  # c=0, n=5
    }
    judge = Scripted(table)
    assert isinstance(judge, Judge)
    counts = yes_counts(judge, ["img0", "img1", "img2"], "tower", "landmark", "ball", TOY)
    assert [(c.c, c.n) for c in counts] == [(3, 1), (5, 0), (0, 5)]
    assert counts[0].answers == table["img0"]  # verbatim
    assert [dvd_score(c, n) for c, n, _ in counts] == [3 * 4 / 25 * 100, 100.0, 0.0] == [48.0, 100.0, 0.0]
    assert counts[0].dvd == 48.0
    (images, asked), = judge.calls  # one call, ten questions, concept questions first
    assert asked == TOY.concept_questions("tower", "landmark") + TOY.object_questions("ball")


def test_yes_counts_rejects_a_judge_that_answers_short():
    judge = Scripted({"a": ["Yes"] * 9})
    with pytest.raises(RuntimeError, match="expected 10 answers"):
        yes_counts(judge, ["a"], "tower", "landmark", "ball", TOY)


def test_the_paper_question_set_follows_paper_section_2():
    from dvdlib.judge import KINDS, load_questions

    paper = load_questions("paper")
    named = {"artist", "character", "landmark"}  # DominanceBench's categories, then one group per kind of concept
    assert named <= set(paper.categories) and set(paper.categories) - named <= set(KINDS)
    assert "stylistically" in paper.group("artist").instruction  # lenient for artists only
    for category in ("landmark", "character", "objects"):
        assert paper.group(category).instruction == "Answer only Yes or No."
    asked = paper.concept_questions("van gogh", "artist") + paper.object_questions("notebook")
    assert len(asked) == 10 and all("Van Gogh" in q for q in asked[:5]) and all("notebook" in q for q in asked[5:])
    assert paper.match(asked[7]) == ("objects", 2, "notebook")


def test_load_judge_by_the_names_profiles_use(tmp_path):
    from pathlib import Path

    from PIL import Image

    from dvdlib.judge import SMOKE_JUDGE, load_judge

    smoke = load_judge(SMOKE_JUDGE, cache=tmp_path)
    assert smoke.name == SMOKE_JUDGE and (tmp_path / "tiny-qwen2-vl").is_dir()
    image = Image.new("RGB", (56, 56), (200, 30, 30))
    (answers,) = smoke.ask([image], ["Is a mug visible in this image? Answer only Yes or No."])
    assert len(answers) == 1 and isinstance(answers[0], str)
    from dvdlib.worlds import get

    toy = Path(__file__).resolve().parents[1] / "toy" / "judge"  # committed: the toy world loads it
    assert get("toy").load_judge(str(toy)).name == "toy-cnn"
    with pytest.raises(OSError, match="cannot load the VQA judge"):
        load_judge(str(tmp_path / "nowhere"))


def test_loading_a_model_leaves_no_loading_weights_bar(tmp_path, capfd):
    """transformers' "Loading weights: 0/46" bar stays out of the chapters' output (the tiny judge's
    load, and a diffusers pipeline's text encoder), and the bars' setting is restored after."""
    from transformers.utils import logging as transformers_logging

    from dvdlib import models
    from dvdlib.judge import SMOKE_JUDGE, load_judge

    models.load("smoke").save_pretrained(tmp_path / "model")
    capfd.readouterr()  # saving's own bar is not the question
    enabled = transformers_logging.is_progress_bar_enabled()
    load_judge(SMOKE_JUDGE, cache=tmp_path / "judges")
    load_judge(SMOKE_JUDGE, cache=tmp_path / "judges")  # built, then loaded from the cache
    models.load(str(tmp_path / "model"))
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s]" not in err
    assert transformers_logging.is_progress_bar_enabled() == enabled


def test_the_judge_cache_follows_the_umask(tmp_path):
    """The tiny judge's folder under the store (<store>/judges/tiny-qwen2-vl) is made with the
    process's umask, as the store's other folders (0755 under umask 022), not mkdtemp's 0700."""
    import os
    import stat

    from dvdlib.judge import SMOKE_JUDGE, load_judge

    old = os.umask(0o022)
    try:
        load_judge(SMOKE_JUDGE, cache=tmp_path / "judges")
    finally:
        os.umask(old)
    for folder in (tmp_path / "judges", tmp_path / "judges" / "tiny-qwen2-vl"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
    assert [p.name for p in (tmp_path / "judges").iterdir()] == ["tiny-qwen2-vl"]  # nothing left aside
