"""A chapter given a parameter it does not have stops at once, naming the ones it has (papermill
itself only warns) — run through papermill as a reader would, and through `dvd book`'s runner."""

import nbformat
import papermill as pm
import pytest

from dvdlib.scheduler import run_chapter
from dvdlib.run import _assigned


def _chapter(path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile = 'smoke'  # the profile\nseeds = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("from dvdlib.run import check_parameters\ncheck_parameters()\nran = True")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_assigned_names():
    assert _assigned("a = 1\nb: int = 2\nc, d = 3, 4  # not a plain name\nif x:\n    e = 5") == {"a", "b"}


def test_papermill_run_with_an_unknown_parameter_stops_naming_the_chapters_parameters(tmp_path):
    source = _chapter(tmp_path / "ch.ipynb")
    with pytest.raises(pm.PapermillExecutionError, match=r"no parameter 'sedes'; its parameters are: profile, seeds"):
        pm.execute_notebook(str(source), str(tmp_path / "out.ipynb"), parameters={"sedes": [1]}, progress_bar=False)
    pm.execute_notebook(str(source), str(tmp_path / "ok.ipynb"), parameters={"seeds": [1]}, progress_bar=False)


def test_the_book_runner_refuses_an_unknown_parameter_before_running(tmp_path):
    source = _chapter(tmp_path / "ch.ipynb")
    with pytest.raises(ValueError, match="ch.ipynb has no parameter 'sedes'"):
        run_chapter(source, tmp_path / "out.ipynb", "smoke", cwd=tmp_path, parameters={"sedes": [1]})
    assert not (tmp_path / "out.ipynb").exists()


def test_an_executed_chapter_shows_its_parameters_once(tmp_path):
    from dvdlib.scheduler import present_parameters

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile = 'toy'\nseeds = None")
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell("# Parameters\nprofile = \"smoke\"\nseeds = [1, 2]\n")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), params, injected, nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["papermill"] = {"parameters": {"profile": "smoke", "seeds": [1, 2], "out_dir": "book"}}
    path = tmp_path / "ch.ipynb"
    nbformat.write(nb, path)
    present_parameters(path)
    present_parameters(path)  # idempotent
    cells = nbformat.read(path, as_version=4).cells
    assert "hide-cell" in cells[1].metadata["tags"] and "remove-cell" in cells[2].metadata["tags"]
    lines = [c.source for c in cells if c.metadata.get("dvd") == "this-run"]
    assert lines == ["**This run:** profile smoke; seeds 1, 2."]
