"""The chapters read as prose with short calls: every code cell (but the parameters cell) is at
most 12 lines, holds no loop, function, class or try, and sets itself up through `dvdlib.setup`
(no chapter builds a store, a report or a store key itself)."""

import ast
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "chapters").glob("*.ipynb"))
#: Statements a chapter leaves to dvdlib: loops (comprehensions too), definitions, fallbacks.
FORBIDDEN = (ast.For, ast.AsyncFor, ast.While, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Try,
             ast.Lambda, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp)
MAX_LINES = 12


def code_cells(path: Path):
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] == "code" and "parameters" not in cell.get("metadata", {}).get("tags", []):
            yield i, "".join(cell["source"])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_cells_are_short_calls(path):
    for i, source in code_cells(path):
        assert len(source.strip().splitlines()) <= MAX_LINES, f"{path.name} cell {i}: more than {MAX_LINES} lines"
        found = [type(node).__name__ for node in ast.walk(ast.parse(source)) if isinstance(node, FORBIDDEN)]
        assert not found, f"{path.name} cell {i}: {found} belong in dvdlib"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_set_up_through_dvdlib_setup(path):
    sources = "\n".join(source for _, source in code_cells(path))
    names = {alias.name for node in ast.walk(ast.parse(sources)) if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    assert not names & {"model_key", "Store", "Report"}, f"{path.name} imports {names & {'model_key', 'Store', 'Report'}}"
    assert "dvdlib.setup(" in sources


def test_every_notebook_has_one_definition():
    """`dvdlib.chapters` defines each notebook once, in the book's order; what it says a chapter
    reads from names a chapter."""
    from dvdlib import chapters

    assert [c.name for c in chapters.ALL] == [p.stem for p in CHAPTERS]
    assert all(p in chapters.BY_NAME for c in chapters.ALL for p in c.reads_from)
    assert chapters.long_chapters()[:2] == (chapters.TWINS.name, chapters.CAUSAL.name) and chapters.TEMPORAL.name in chapters.snapshot_chapters()
    with pytest.raises(KeyError, match="records no 'nothing'"):
        chapters.FOCUS.key("nothing")


def test_the_result_keys_other_modules_read_are_recorded():
    """Every result key a definition names is recorded by its notebook or by the dvdlib code it calls."""
    from dvdlib import chapters

    library = "".join(p.read_text() for p in (REPO / "dvdlib").rglob("*.py") if p.name != "chapters.py")
    for c in chapters.ALL:
        notebook = (REPO / "chapters" / f"{c.name}.ipynb").read_text()
        for key in c.keys.values():
            stem = key.rstrip("*")
            written = f'\\"{stem}' in notebook or f'"{stem}' in library or f"f\\\"{stem}" in notebook
            assert written, f"{c.name} records no {key!r}"
