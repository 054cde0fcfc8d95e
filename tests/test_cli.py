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


# bad input: a one-line refusal (exit 2, no traceback) before any model is loaded or anything stored ------------

def _no_model(monkeypatch):
    """Make loading a model fail the test."""
    from dvdlib.run import Run

    monkeypatch.setattr(Run, "load", lambda *_, **__: pytest.fail("a model was loaded"))


@pytest.mark.parametrize("argv, said", [(["check", ""], "the prompt is empty"),
                                        (["check", "   "], "the prompt is empty"),
                                        (["check", "a red mug", "--concepts", ""], "concept '' has no letters"),
                                        (["check", "a red mug", "--concepts", "mug", " - "], "concept ' - ' has no letters")])
def test_check_refuses_a_blank_prompt_or_concept_before_loading(argv, said, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _no_model(monkeypatch)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dvd check: {said}") and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no store


def test_check_names_a_missing_model_folder_not_the_hub(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", "a red mug", "--model", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dvd check: no model folder at /nonexistent") and "model_index.json" in err
    assert "huggingface-cli" not in err and "Hub or its local cache" not in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_check_refuses_a_concept_the_tokenizer_reads_as_unknown(tmp_path, monkeypatch, capsys):
    """tiny:flux's T5 stand-in has no "zebra": the model would see <unk>, so the concept is refused
    before the step is run (nothing stored), naming the word and the tokenizer."""
    from dvdlib import detect

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(detect, "generate", lambda *_, **__: pytest.fail("a step was computed"))
    assert cli.main(["check", "a zebra mug", "--model", "tiny:flux", "--concepts", "zebra"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dvd check: concept 'zebra': 'zebra' is outside the vocabulary") and err.count("\n") == 1
    assert "'tiny-t5'" in err and "'<unk>'" in err
    assert list(tmp_path.iterdir()) == []
