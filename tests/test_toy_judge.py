"""The toy world's judge behind the judge interface."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dvdlib.judge import Judge, is_yes, load_questions, yes_counts
from dvdlib.toy.judge import GUARD, THRESHOLDS, UNRECOGNISABLE, JudgeConfig, ToyJudge, load_toy_judge, save_judge
from dvdlib.toy.judge_data import GARBAGE_KINDS, fade, faded_presence, garbage_image, labels, make_data
from dvdlib.toy.judge_training import build_judge, train_judge
from dvdlib.toy.world import BACKGROUND, Captions, World

WORLD = World()
TOY = load_questions("toy")
TINY = JudgeConfig(channels=(4, 8, 8), renders=24, garbage=10, steps=4, batch_size=8)
FOLDER = Path(__file__).resolve().parents[1] / "toy" / "judge"


def stub(logits, **options) -> ToyJudge:
    """A judge whose network ignores the image: fixed logits (concepts in World.names order, then garbage)."""
    judge = build_judge(TINY, **options)
    with torch.no_grad():
        judge.net.head.weight.zero_()
        judge.net.head.bias.copy_(torch.tensor(logits, dtype=torch.float32))
    return judge


def logit(p):
    return float(np.log(p / (1 - p)))


def group(name):
    role = WORLD.concept(name).role
    return "objects" if role == "object" else role


def presence_question(name, index=1):
    return TOY.group(group(name)).texts(name)[index]


def renders(n, seed):
    captions = [c for c in Captions(WORLD).all()]
    rng = np.random.default_rng(seed)
    picked = [captions[i] for i in rng.integers(len(captions), size=n)]
    return picked, [Image.fromarray(np.round(WORLD.render(c, rng).image * 255).astype(np.uint8)) for c in picked]


def test_a_toy_judge_is_a_judge_and_is_deterministic():
    a, b = build_judge(TINY), build_judge(TINY)
    assert isinstance(a, Judge)
    images = [WORLD.render(c, 3).image for c in ("ball", "tower and ring", "")]
    questions = TOY.concept_questions("tower", "landmark") + TOY.object_questions("ring")
    answers = a.ask(images, questions)
    assert answers == a.ask(images, questions) == b.ask(images, questions)
    assert len(answers) == 3 and all(len(x) == 10 for x in answers)
    pil = [Image.fromarray(np.round(im * 255).astype(np.uint8)) for im in images]
    assert np.allclose(a.probabilities(pil)[0], a.probabilities(images)[0], atol=1e-2)


def test_it_reads_the_concept_from_the_question():
    judge = build_judge(TINY)
    for name in WORLD.names:
        for i, q in enumerate(TOY.group(group(name)).texts(name)):
            assert judge.read(q) == (name, THRESHOLDS[i])
    assert judge.read("Is there a ball?") == ("ball", THRESHOLDS[0])  # no template: the one concept word
    with pytest.raises(ValueError, match="'dragon', which is not a concept of the toy world"):
        judge.read(TOY.concept_questions("dragon", "landmark")[0])
    with pytest.raises(ValueError, match="names no concepts"):
        judge.read("Is there a unicorn?")
    with pytest.raises(ValueError, match="names several concepts"):
        judge.read("Is there a ball or a box?")


def test_question_texts_name_no_concept_of_the_world():
    for g in [*TOY.categories.values(), TOY.objects]:
        for text in [*g.templates, g.instruction]:
            assert not [n for n in WORLD.names if re.search(rf"\b{n}\b", text, re.I)], text


def test_graded_thresholds_give_c():
    p = [0.01] * len(WORLD.names)
    p[WORLD.names.index("tower")], p[WORLD.names.index("ball")] = 0.75, 0.95
    judge = stub([logit(x) for x in p] + [-20.0])
    (counts,) = yes_counts(judge, [np.zeros((32, 32, 3))], "tower", "landmark", "ball", TOY)
    assert (counts.c, counts.n) == (3, 5)  # 0.75 passes 0.5, 0.6, 0.7
    assert counts.answers[:4] == ["Yes (p=0.75)"] * 3 + ["No (p=0.75)"]
    (counts,) = yes_counts(judge, [np.zeros((32, 32, 3))], "tower", "landmark", "ring", TOY)
    assert (counts.c, counts.n, counts.dvd) == (3, 0, 60.0)


def test_unrecognisable_images_answer_no_to_everything():
    questions = TOY.concept_questions("tower", "landmark") + TOY.object_questions("ball")
    garbage = stub([20.0] * len(WORLD.names) + [20.0])  # every concept "present", but garbage
    assert garbage.ask([np.zeros((32, 32, 3))] * 2, questions) == [[UNRECOGNISABLE] * 10] * 2
    undecided = stub([0.0] * len(WORLD.names) + [-20.0], guard=GUARD)  # p = 0.5 everywhere: in the band
    assert undecided.ask([np.zeros((32, 32, 3))], questions) == [[UNRECOGNISABLE] * 10]
    unguarded = stub([0.0] * len(WORLD.names) + [-20.0])  # the default: no guard
    assert [is_yes(a) for a in unguarded.ask([np.zeros((32, 32, 3))], questions)[0][:5]] == [True] + [False] * 4


def test_labels_count_category_words():
    names = WORLD.names
    on = lambda caption: {n for n, v in zip(names, labels(WORLD, caption)) if v}  # noqa: E731
    assert on("tower and ball") == {"tower", "landmark", "ball"}
    assert on("landmark and ring") == {"landmark", "ring"}
    assert on("mosaic and robot") == {"mosaic", "style", "robot", "character"}
    assert on("") == set()
    faded = dict(zip(names, labels(WORLD, "tower and ball", {"tower": 0.4})))
    assert (faded["tower"], faded["landmark"], faded["ball"], faded["box"]) == (pytest.approx(0.4), pytest.approx(0.4), 1, 0)
    scene = WORLD.render("ring and box", 0)
    assert np.array_equal(fade(scene, "ring", 1.0), scene.image) and faded_presence(0.2) == 0 and faded_presence(0.9) == 1
    ghost = fade(scene, "ring", 0.0)
    assert np.allclose(ghost[scene.masks["ring"]], BACKGROUND) and np.array_equal(ghost[scene.masks["box"]], scene.image[scene.masks["box"]])


def test_garbage_and_training_are_deterministic(tmp_path):
    captions = Captions(WORLD)
    for kind in (*GARBAGE_KINDS, "uniform", "plain_blend"):
        a = garbage_image(kind, captions, np.random.default_rng(1))
        assert a.shape == (32, 32, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
        assert np.array_equal(a, garbage_image(kind, captions, np.random.default_rng(1)))
    x, y = make_data(TINY, WORLD)
    assert x.shape == (34, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (34, 11) and y[-10:, -1].all()
    (a, fa), (b, fb) = train_judge(TINY, progress=False), train_judge(TINY, progress=False)
    assert fa["data_hash"] == fb["data_hash"]
    assert all(torch.equal(u, v) for u, v in zip(a.net.state_dict().values(), b.net.state_dict().values()))
    save_judge(a, tmp_path, TINY, fa)
    loaded = load_toy_judge(tmp_path)
    images = [WORLD.render("robot and box", s).image for s in range(4)]
    assert np.allclose(loaded.probabilities(images)[0], a.probabilities(images)[0], atol=2e-2)
    with pytest.raises(FileNotFoundError, match="dvd toy judge"):
        load_toy_judge(tmp_path / "nothing")


@pytest.mark.skipif(not (FOLDER / "manifest.json").is_file(), reason="no trained toy judge in toy/judge")
def test_the_trained_judge_is_right_on_fresh_renders_and_rejects_noise():
    judge = load_toy_judge(FOLDER)
    captions, images = renders(200, seed=2024)
    questions = [presence_question(n) for n in WORLD.names]
    answers = judge.ask(images, questions)
    right = [[is_yes(a) for a in row] == list(labels(WORLD, c).astype(bool)) for c, row in zip(captions, answers)]
    assert np.mean(right) >= 0.95, [c for c, r in zip(captions, right) if not r]
    rng = np.random.default_rng(7)
    noise = [rng.random((32, 32, 3)) for _ in range(50)] + [np.clip(0.5 + 0.3 * rng.standard_normal((32, 32, 3)), 0, 1)
                                                            for _ in range(50)]
    said = judge.ask(noise, questions[:2])
    assert np.mean([row == [UNRECOGNISABLE] * 2 for row in said]) >= 0.9
