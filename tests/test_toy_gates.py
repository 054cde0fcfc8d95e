"""dvdlib.toy.gates: the toy model's quality gates."""

from pathlib import Path

import numpy as np
import pytest

from dvdlib.store import Store
from dvdlib.toy import gates
from dvdlib.toy.judge import load_toy_judge
from dvdlib.toy.model import build_toy
from dvdlib.toy.world import World

JUDGE = Path(__file__).resolve().parents[1] / "toy" / "judge"
pytestmark = pytest.mark.skipif(not (JUDGE / "manifest.json").exists(), reason="no trained toy judge in toy/judge")


def test_rate_and_its_interval_by_hand():
    row = gates._rate(9, 10, 0.9)
    # Clopper–Pearson 95% for 9/10: [0.5550, 0.9975]
    assert row["ci_low"] == pytest.approx(0.5550, abs=1e-4) and row["ci_high"] == pytest.approx(0.9975, abs=1e-4)
    assert row["rate"] == 0.9 and row["passed"]  # the rate reaches 90% (its interval, down to 55.5%, is shown beside it)
    assert not gates._rate(89, 100, 0.9)["passed"] and not gates._rate(5, 10, 0.6)["passed"]
    assert gates._rate(3, 4)["passed"] is None


def test_presence_on_renders_is_what_the_gates_count():
    judge, world = load_toy_judge(JUDGE), World()
    scenes = [world.render("tower and ball", seed) for seed in range(6)]
    images = [s.image for s in scenes]
    assert min(gates.presence(judge, images, "tower", "landmark")) >= 3
    assert min(gates.presence(judge, images, "ball", "object")) >= 3
    assert max(gates.presence(judge, images, "box", "object")) < 3  # absent


def test_images_differ_when_enough_pixels_change_enough():
    a = np.zeros((32, 32, 3))
    b = a.copy()
    b.reshape(-1, 3)[:5, 1] = 0.2  # 5 of 1,024 pixels: 0.49%, not more than 0.5%
    assert not gates.images_differ(a, a) and not gates.images_differ(a, b)
    b.reshape(-1, 3)[5, 0] = 0.2  # the sixth: 0.59%
    assert gates.images_differ(a, b)
    assert not gates.images_differ(a, np.full_like(a, 0.05))  # every pixel, but by less than 0.1


def test_measure_gates_on_an_untrained_model_fails_them(tmp_path):
    pipe = build_toy(0)
    store = Store(tmp_path, "untrained-toy", {"resolution": 32, "steps": 2, "guidance": 3.0, "eta": 0.0})
    table = gates.measure_gates(pipe, load_toy_judge(JUDGE), store, [1825])
    world = World()
    assert table.loc["singles", "n"] == len(world.names)
    assert table.loc["composition", "n"] == len(world.objects) * (len(world.objects) - 1)
    assert not table.loc["singles", "passed"] and not table.loc["composition", "passed"]
