"""``make publish``: tools/publish.sh pushes a built book to a gh-pages branch with ghp-import.

Each test publishes a tiny fake ``_build/html`` from a clone of a local bare repository, and reads
what the bare repository received; nothing touches this checkout's own git repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "publish.sh"
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def fake_book(folder: Path, pages: dict[str, str]) -> Path:
    for name, text in pages.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def publish(html: Path, clone: Path, **env: str) -> subprocess.CompletedProcess:
    """The command ``make publish`` runs (tools/publish.sh), in ``clone``, with this interpreter."""
    return subprocess.run(["bash", str(SCRIPT), str(html)], cwd=clone, capture_output=True, text=True,
                          env={**os.environ, **IDENTITY, "PYTHON": sys.executable, **env})


@pytest.fixture
def remote(tmp_path):
    """A bare repository with one commit on main, and a working clone of it."""
    bare, clone = tmp_path / "remote.git", tmp_path / "clone"
    git("init", "--bare", "-q", str(bare), cwd=tmp_path)
    git("clone", "-q", str(bare), str(clone), cwd=tmp_path)
    (clone / "README.md").write_text("source\n")
    git("add", "README.md", cwd=clone)
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "init", cwd=clone)
    git("push", "-q", "origin", "HEAD:main", cwd=clone)
    return bare, clone


def branches(bare: Path) -> list[str]:
    return sorted(git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=bare).split())


def files_on(bare: Path, branch: str) -> list[str]:
    return git("ls-tree", "-r", "--name-only", branch, cwd=bare).split()


def test_publish_pushes_the_book_to_gh_pages(tmp_path, remote):
    bare, clone = remote
    html = fake_book(tmp_path / "html", {"index.html": "<p>book</p>", "_static/dvd.css": "p {}",
                                         "_sources/book/01.ipynb": "{}"})
    done = publish(html, clone)
    assert done.returncode == 0, done.stderr
    assert sorted(files_on(bare, "gh-pages")) == [".nojekyll", "_sources/book/01.ipynb",
                                                   "_static/dvd.css", "index.html"]
    assert git("show", "gh-pages:index.html", cwd=bare) == "<p>book</p>"
    assert files_on(bare, "main") == ["README.md"]          # the source branch is left alone

    # a second publish replaces the branch's content with the new build, on top of the first
    html2 = fake_book(tmp_path / "html2", {"index.html": "<p>book v2</p>"})
    done = publish(html2, clone)
    assert done.returncode == 0, done.stderr
    assert sorted(files_on(bare, "gh-pages")) == [".nojekyll", "index.html"]
    assert git("show", "gh-pages:index.html", cwd=bare) == "<p>book v2</p>"
    assert len(git("rev-list", "gh-pages", cwd=bare).split()) == 2


def test_publish_honours_remote_and_branch(tmp_path, remote):
    bare, clone = remote
    git("remote", "rename", "origin", "pages", cwd=clone)
    html = fake_book(tmp_path / "html", {"index.html": "<p>book</p>"})
    assert publish(html, clone).returncode != 0                      # no remote called origin
    done = publish(html, clone, REMOTE="pages", BRANCH="site")
    assert done.returncode == 0, done.stderr
    assert sorted(files_on(bare, "site")) == [".nojekyll", "index.html"]
    assert branches(bare) == ["main", "site"]


def test_publish_refuses_without_index_html(tmp_path, remote):
    bare, clone = remote
    html = fake_book(tmp_path / "html", {"book/01.html": "<p>a page</p>"})
    done = publish(html, clone)
    assert done.returncode != 0
    assert f"{html}/index.html is missing" in done.stderr and "make book" in done.stderr
    assert branches(bare) == ["main"]                                  # nothing pushed
    done = publish(tmp_path / "absent", clone)
    assert done.returncode != 0 and "index.html is missing" in done.stderr


def test_make_publish_runs_the_script():
    """``make publish`` calls tools/publish.sh on _build/html with REMOTE and BRANCH passed on."""
    out = subprocess.run(["make", "-n", "-o", ".venv/.dvd-installed",
                          "publish", "REMOTE=up", "BRANCH=pages"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "REMOTE=up BRANCH=pages PYTHON=.venv/bin/python bash tools/publish.sh _build/html" in out
