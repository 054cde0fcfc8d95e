"""Every chapter page offers its executed notebook (.ipynb) for download.

sphinx-book-theme's download menu (``use_download_button``, set in ``_config.yml`` under
``sphinx.config.html_theme_options``) links each page's source, which Sphinx copies to
``_build/html/_sources/``: for a chapter, the notebook papermill executed into ``book/``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml
from jupyter_book.config import get_final_config

REPO = Path(__file__).resolve().parents[1]


def test_config_enables_the_download_button():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["sphinx"]["config"]["html_theme_options"]["use_download_button"] is True
    # what Sphinx gets from it: the button on, the theme's other options (from `html:` and
    # `launch_buttons:`) kept, and the page sources copied for the button to link to
    sphinx, _ = get_final_config(user_yaml=REPO / "_config.yml", sourcedir=REPO,
                                 cli_config={"latex_individualpages": False})
    theme = sphinx["html_theme_options"]
    assert theme["use_download_button"] is True
    assert theme["launch_buttons"] == config["launch_buttons"] and "home_page_in_toc" in theme
    assert sphinx.get("html_copy_source", True) is True


def test_a_built_chapter_page_links_its_executed_notebook(tmp_path):
    """A one-chapter book built with the book's own _config.yml: the page links its .ipynb, and
    that file is the executed notebook (outputs included)."""
    shutil.copy(REPO / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    shutil.copy(REPO / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copytree(REPO / "book" / "_static", tmp_path / "book" / "_static")
    (tmp_path / "book" / "index.md").write_text("# A tiny book\n")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(6 * 7)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# A tiny chapter"), cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "book" / "01_tiny.ipynb")
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(
        {"format": "jb-book", "root": "book/index", "chapters": [{"file": "book/01_tiny"}]}))

    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(tmp_path), "--warningiserror"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    html = tmp_path / "_build" / "html"
    page = (html / "book" / "01_tiny.html").read_text()
    assert 'href="../_sources/book/01_tiny.ipynb"' in page
    assert "download-source-button" in page
    copied = nbformat.read(html / "_sources" / "book" / "01_tiny.ipynb", as_version=4)
    assert copied.cells[1].outputs[0].text == "42\n"
