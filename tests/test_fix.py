"""``dvd fix``: check one prompt at the first step and apply a remedy only when the detector flags it
(dvdlib.remedies.fix)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dvdlib import cli
from dvdlib.remedies.fix import MEASURED

TOY = str(Path(__file__).resolve().parents[1] / "toy" / "run1" / "model")


def _no_model(monkeypatch):
    from dvdlib.run import Run

    monkeypatch.setattr(Run, "load", lambda *_, **__: pytest.fail("a model was loaded"))


@pytest.mark.parametrize("argv, said", [(["fix", "", "--concepts", "a", "b"], "the prompt is empty"),
                                        (["fix", "tower and ball", "--concepts", "tower"], "give the prompt's two concepts"),
                                        (["fix", "tower and ball", "--concepts", "tower", "ball", "--remedy", "magic"],
                                         "unknown remedy 'magic'")])
def test_fix_refuses_bad_input_before_loading(argv, said, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _no_model(monkeypatch)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dvd fix: {said}") and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing stored


def _plain(prompt: str, seed: int) -> np.ndarray:
    """The toy model's plain image of (prompt, seed), made here as every chapter makes it."""
    from dvdlib.generate import pipeline_call
    from dvdlib.profiles import load_profile
    from dvdlib.toy.model import load_toy

    pipe = load_toy(TOY)
    call = pipeline_call(pipe, [(prompt, seed)], load_profile("toy").sampler())
    return np.asarray(pipe(**call).images[0])


def test_a_prompt_the_detector_does_not_flag_is_drawn_plainly(tmp_path, monkeypatch, capsys):
    """Above any Focus Score nothing is flagged: the image is the plain generation, pixel for pixel."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.png"
    assert cli.main(["fix", "tower and ball", "--concepts", "tower", "ball", "--profile", "toy", "--model", TOY,
                     "--threshold", "1000", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "not flagged" in said and "no remedy applied: the detector does not flag the prompt" in said
    assert np.array_equal(np.asarray(Image.open(out)), _plain("tower and ball", 1825))


def test_a_flagged_prompt_gets_the_remedy_and_a_neutral_remedy_changes_nothing(tmp_path, monkeypatch, capsys):
    """Below every Focus Score the prompt is flagged and rebalanced; the concept that takes more of the
    first step's attention is the one treated as dominant. At strength 0 and boost 1 rebalancing is
    the plain image, pixel for pixel; at its defaults it changes the image."""
    pytest.importorskip("dvdlib.remedies.rebalance")
    monkeypatch.chdir(tmp_path)
    neutral, fixed = tmp_path / "neutral.png", tmp_path / "fixed.png"
    base = ["fix", "tower and ball", "--concepts", "tower", "ball", "--profile", "toy", "--model", TOY,
            "--threshold", "-1"]
    assert cli.main(base + ["--out", str(tmp_path / "default.png")]) == 0  # no remedy named: the toy world's measured one
    assert f"remedy {MEASURED['toy']} (the largest estimate" in capsys.readouterr().out
    base += ["--remedy", "rebalance"]
    assert cli.main(base + ["-p", "strength", "0", "-p", "boost", "1", "--out", str(neutral)]) == 0
    said = capsys.readouterr().out
    assert "FLAGGED" in said and "applied rebalance" in said and "the detector flags the prompt" in said
    plain = _plain("tower and ball", 1825)
    assert np.array_equal(np.asarray(Image.open(neutral)), plain)
    assert cli.main(base + ["--out", str(fixed)]) == 0
    assert not np.array_equal(np.asarray(Image.open(fixed)), plain)


def test_the_toy_default_is_the_remedy_chapter_13_measured_best_on_the_twins():
    import json

    from dvdlib.remedies import fix

    rows = {r["key"]: r for r in json.loads((Path(__file__).resolve().parents[1] / "toy" / "findings" / "results" /
                                             "13_remedies.json").read_text())["results"]}
    gains = {name: rows[f"rem_twin_vs_replacement_{name}_memorized"]["value"] for name in fix.NAMES}
    assert fix.MEASURED["toy"] == max(gains, key=gains.get)
    assert fix.default_remedy("toy")[0] == fix.MEASURED["toy"]
    decided = [k for k, r in rows.items() if k.startswith("rem_twin_vs_") and r["this run"].endswith(": higher")]
    assert not decided  # the reason says no remedy beats replacement or the plain images by the rule
    assert "not a decided winner" in fix.default_remedy("toy")[1]
    assert fix.default_remedy("sd")[1].startswith("a choice")
