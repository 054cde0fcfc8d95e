"""The hand-checked sample of generated images: labels → truth, file round trip,
and the judge's agreement counted by hand."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from dvdlib.toy.handcheck import agreement, describe, load_sample, save_sample, truth
from dvdlib.toy.handcheck import results_table as handcheck_results
from dvdlib.toy.judge import JudgeConfig
from dvdlib.toy.judge_data import degrade
from dvdlib.toy.world import World

WORLD = World()


def present(*names):
    return np.array([n in names for n in WORLD.names])


def test_a_label_is_its_concepts_and_their_category_words():
    assert (truth(WORLD, "tower+ball") == present("tower", "landmark", "ball")).all()
    assert (truth(WORLD, "robot") == present("robot", "character")).all()
    assert (truth(WORLD, "landmark") == present("landmark")).all()
    assert (truth(WORLD, " none ") == present()).all()
    assert truth(WORLD, "unrecognisable") is None
    with pytest.raises(ValueError, match="label every row"):
        truth(WORLD, "")
    with pytest.raises(KeyError):
        truth(WORLD, "dragon")


def rows(labels):
    return pd.DataFrame({"model_step": 7, "prompt": "ball", "seed": range(len(labels)), "guidance": 1.5,
                         "steps": 25, "label": labels})


def test_the_sample_round_trips_through_its_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (19, 32, 32, 3), dtype=np.uint8)
    save_sample(tmp_path, images, rows(["ball"] * 19))
    back, table = load_sample(tmp_path)
    assert np.array_equal(back, images) and list(table["label"]) == ["ball"] * 19
    assert (tmp_path / "contact.png").is_file()
    assert describe(tmp_path) == "19 images of the step-7 model, guidance 1.5"


class FixedJudge:
    """Answers fixed presence / garbage probabilities whatever the images."""

    world = WORLD

    def __init__(self, presence, garbage):
        self.presence, self.garbage = np.array(presence, float), np.array(garbage, float)

    def probabilities(self, images):
        return self.presence, self.garbage

    def unrecognisable(self, presence, garbage):
        return garbage >= 0.5


def test_agreement_counts_as_by_hand(tmp_path):
    p = lambda **v: [v.get(n, 0.0) for n in WORLD.names]  # noqa: E731
    judge = FixedJudge([p(ball=0.95),                  # hand ball: right
                        p(landmark=0.9, tower=0.6),    # hand tower: tower missed (0.6 < 0.7)
                        p(ball=0.9),                   # hand unrecognisable, judge garbage: right
                        p(box=0.8, ball=0.75),         # hand box: ball is a false positive
                        p()],                          # hand ball, judge garbage: wrong
                       [0.0, 0.1, 0.9, 0.0, 0.7])
    save_sample(tmp_path, np.zeros((5, 32, 32, 3), np.uint8), rows(["ball", "tower", "unrecognisable", "box", "ball"]))
    a = agreement(judge, tmp_path)
    assert (a["images"], a["exact_n"], a["exact"]) == (5, 2, 0.4)
    assert (a["hand_unrecognisable"], a["judge_unrecognisable"], a["both_unrecognisable"]) == (1, 2, 1)
    # among images that neither calls unrecognisable (rows 0, 1, 3)
    assert a["per_concept"]["ball"] == {"present": 1, "recall": 1.0, "said_present": 2, "precision": 0.5}
    assert a["per_concept"]["tower"] == {"present": 1, "recall": 0.0, "said_present": 0, "precision": None}
    assert a["per_concept"]["landmark"]["recall"] == 1.0
    assert [d["index"] for d in a["disagreements"]] == [1, 3, 4]
    assert a["disagreements"][2]["judge"] == "unrecognisable"


def test_degrade_shifts_colours_within_bounds_and_is_off_at_zero():
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    off = JudgeConfig(colour_jitter=0.0, saturation=0.0, blur=0.0, stretch=0.0, fringe=0.0)
    assert torch.allclose(degrade(x, off, torch.Generator().manual_seed(1)), x, atol=1e-6)
    on = degrade(x, JudgeConfig(), torch.Generator().manual_seed(1))
    assert torch.equal(on, degrade(x, JudgeConfig(), torch.Generator().manual_seed(1)))
    change = (on - x).abs().mean((1, 2, 3))
    assert change.min() > 0 and change.max() < 0.4


def test_background_lift_touches_only_the_plain_ground_within_its_bounds():
    from dvdlib.toy.world import BACKGROUND

    x = torch.tensor(BACKGROUND).view(1, 3, 1, 1).repeat(16, 1, 8, 8)
    x[:, :, 2:5, 2:5] = torch.tensor([0.9, 0.2, 0.3]).view(1, 3, 1, 1)  # a sprite
    plain = JudgeConfig(colour_jitter=0.0, saturation=0.0, blur=0.0, stretch=0.0, fringe=0.0, background=0.3)
    lifted = degrade(x, plain, torch.Generator().manual_seed(0))
    assert torch.allclose(lifted[:, :, 2:5, 2:5], x[:, :, 2:5, 2:5], atol=1e-6)  # the sprite is untouched
    lift = (lifted - x)[:, :, 0, 0]  # one ground pixel per image: [16, 3]
    assert torch.allclose((lifted - x)[:, :, 6:, 6:], lift[:, :, None, None].expand(16, 3, 2, 2), atol=1e-6)  # one lift per image
    assert lift.min() >= -0.1 - 1e-6 and lift.max() <= 0.4 + 1e-6 and lift.mean(1).max() > 0.15
    off = dataclasses.replace(plain, background=0.0)
    assert torch.allclose(degrade(x, off, torch.Generator().manual_seed(0)), x, atol=1e-6)


def test_the_command_writes_a_shuffled_sample_to_label(tmp_path):
    from dvdlib.toy.__main__ import main
    from dvdlib.toy.model import build_toy, save_toy

    save_toy(build_toy(0), tmp_path / "model", info={"steps": 3})
    assert main(["handcheck", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "sample"), "--guidance", "1.5",
                 "--prompts", "ball", "tower and box", "--seeds", "1", "2", "3"]) == 0
    images, table = load_sample(tmp_path / "sample")
    assert images.shape == (6, 32, 32, 3) and set(table["label"]) == {""} and set(table["model_step"]) == {3}
    assert sorted(zip(table["prompt"], table["seed"])) == sorted((p, s) for p in ("ball", "tower and box") for s in (1, 2, 3))
    with pytest.raises(ValueError, match="label every row"):
        truth(WORLD, table["label"][0])


def test_the_results_table_reads_a_judges_manifest(tmp_path):
    import json

    per = {n: {"present": 0, "recall": None, "said_present": 0, "precision": None} for n in WORLD.names}
    per["robot"] = {"present": 10, "recall": 0.3, "said_present": 3, "precision": 1.0}
    (tmp_path / "manifest.json").write_text(json.dumps({"handcheck": {"test": {
        "about": "64 images", "images": 64, "exact": 49 / 64, "exact_n": 49, "per_concept": per}}}))
    table = handcheck_results(tmp_path)
    assert list(table.columns) == ["test"] and table.at["sample", "test"] == "64 images"
    assert table.at["robot", "test"] == "30% of 10" and table.at["ball", "test"] == "–"
    assert table.at["exact match", "test"] == "49/64 (77%)"
