"""dvdlib.detect: the first-step detector (SPEC §3.8) and `dvd check`."""

import pytest

from dvdlib import models
from dvdlib.cli import main
from dvdlib.detect import check_prompt, flags
from dvdlib.store import Store


def test_flags_by_hand():
    scores = {8: 0.5, 9: 0.012, 10: 0.009}
    assert flags(scores)  # mean(0.012, 0.009) = 0.0105 > 0.010
    assert not flags(scores, threshold=0.011)
    assert not flags(scores, combine="min") and flags(scores, combine="max")
    assert flags(scores, layers=[8])
    with pytest.raises(ValueError, match="combine"):
        flags(scores, combine="median")


def test_check_prompt_reads_the_first_step(tmp_path):
    pipe = models.load("smoke")
    store = Store(tmp_path, "smoke", {"resolution": 64, "steps": 5, "guidance": 7.5, "eta": 0.0})
    result = check_prompt(pipe, "Van Gogh's Starry Night Notebook", ["van gogh", "notebook"], store=store)
    assert sorted(result.focus) == list(range(1, 17))
    assert result.concepts == {"van gogh": [1, 2], "notebook": [6]}
    assert result.flagged == flags(result.focus)
    assert check_prompt(pipe, "Van Gogh's Starry Night Notebook", store=store, threshold=-1.0).flagged
    assert "← detector" in result.report()


def test_dvd_check_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "a red mug on a table", "--concepts", "mug"]) == 0
    out = capsys.readouterr().out
    assert "'mug' → token positions [3]" in out and "detector (layers 9, 10" in out
    assert main(["check", "a red mug", "--concepts", "pouch"]) == 2
    assert "not found" in capsys.readouterr().err
