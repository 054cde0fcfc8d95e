"""The ``dvd`` command line: ``-p KEY VALUE`` read as papermill reads ``-y`` values."""

import pytest

from dvdlib import cli


@pytest.mark.parametrize("text, value", [("3", 3), ("0.5", 0.5), ("[1, 3, 6]", [1, 3, 6]), ("true", True),
                                         ("null", None), ("/data/dogs", "/data/dogs"), ("tiny:clip", "tiny:clip"),
                                         ("{broken", "{broken"), ("CompVis/stable-diffusion-v1-4",
                                                                  "CompVis/stable-diffusion-v1-4")])
def test_parameter_values(text, value):
    assert cli._value(text) == value


def test_book_passes_every_p_to_the_chapters(tmp_path, monkeypatch):
    from dvdlib import pages, scheduler

    seen = {}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "_config.yml").write_text("title: x\n")
    monkeypatch.setattr(scheduler, "run_chapters", lambda profile, only=None, parameters=None, jobs=None, threads=None:
                        seen.update(profile=profile, only=only, parameters=parameters, jobs=jobs, threads=threads) or [])
    monkeypatch.setattr(pages, "write_generated_pages", lambda: None)
    assert cli.main(["book", "--profile", "smoke", "--only", "04", "-p", "sweep_layers", "[1, 3]",
                     "-p", "model", "/m", "--jobs", "2", "--no-build"]) == 0
    assert seen == {"profile": "smoke", "only": ["04"], "parameters": {"sweep_layers": [1, 3], "model": "/m"},
                    "jobs": 2, "threads": None}
    with pytest.raises(SystemExit):
        cli.main(["book", "--jobs", "0"])


def test_a_world_brings_its_own_command(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["toy", "--help"])
    assert done.value.code == 0 and "train" in capsys.readouterr().out
