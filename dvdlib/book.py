"""Make the book: ``dvd book`` runs the chapters with a profile (`dvdlib.scheduler`), writes the
generated pages (`dvdlib.pages`) and builds the HTML (Jupyter Book 1).

    chapters/NN_slug.ipynb --papermill(profile)--> book/NN_slug.ipynb --jupyter-book--> _build/html
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from . import pages, scheduler


def build_book(root=".", out_dir="book", chapters_dir="chapters") -> Path:
    """Write the generated pages, then ``jupyter-book build ROOT --warningiserror``; returns
    ``_build/html/index.html``. Raises ``RuntimeError`` when the build fails."""
    root = Path(root).resolve()
    pages.write_generated_pages(out_dir, chapters_dir, root)
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(root), "--warningiserror", "--keep-going"]
    done = subprocess.run(cmd, cwd=root)
    index = root / "_build" / "html" / "index.html"
    if done.returncode != 0 or not index.exists():
        raise RuntimeError(f"jupyter-book build failed (exit {done.returncode}); see the log above")
    return index


def make_book(profile, only=None, parameters=None, jobs=None, threads=None, build: bool = True) -> int:
    """``dvd book``, from the repository root: run the chapters (`dvdlib.scheduler.run_chapters`),
    then build the HTML (`build_book`; without ``build`` only the generated pages); says which
    chapters failed and where the book is. Exit status: 1 when a chapter or the build failed,
    2 for a wrong call (no ``_config.yml`` here, an unknown chapter or parameter)."""
    if not Path("_config.yml").exists():
        print("dvd book: run this from the repository root (no _config.yml here)", file=sys.stderr)
        return 2
    try:
        outcomes = scheduler.run_chapters(profile, only=only, parameters=parameters, jobs=jobs, threads=threads)
    except ValueError as exc:
        print(f"dvd book: {exc}", file=sys.stderr)
        return 2
    failed = [o for o in outcomes if not o.ok]
    if not build:
        pages.write_generated_pages()
        index = None
    else:
        try:
            index = build_book(".")
        except RuntimeError as exc:
            print(f"dvd book: {exc}", file=sys.stderr)
            return 1
    for o in failed:
        first = (o.error or "").splitlines()[0] if o.error else ""
        print(f"dvd book: chapter {o.name} FAILED: {first} (executed notebook: {o.output})",
              file=sys.stderr)
    if index is not None:
        print(f"The book is at {index}")
    return 1 if failed else 0
