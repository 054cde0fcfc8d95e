"""benchmarks/book_time.py: a fresh copy of the book, and the result file's rows and targets
(the runs themselves stubbed: a real one takes minutes)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import book_time  # noqa: E402


def test_a_fresh_copy_has_the_chapters_and_no_executed_page(tmp_path):
    book_time.fresh_copy(tmp_path)
    chapters = sorted(p.name for p in (tmp_path / "chapters").glob("*.ipynb"))
    assert chapters == sorted(p.name for p in (ROOT / "chapters").glob("*.ipynb")) and chapters
    assert not list((tmp_path / "book").glob("*.ipynb")) and not (tmp_path / "book" / "status.md").exists()
    assert not (tmp_path / "store").exists() and (tmp_path / "toy").is_symlink()


def test_rows_compare_jobs_against_the_targets(tmp_path, monkeypatch):
    runs = {1: (200.0, 230.0), 2: (120.0, 150.0)}  # (chapters, whole book) seconds

    def fake(profile, jobs, only=None, build=True):
        chapters, whole = runs[jobs]
        return {"book": whole, "chapters": chapters, "threads": 2 // jobs, "per_chapter": {"03": chapters}, "rc": 0}

    monkeypatch.setattr(book_time, "time_book", fake)
    out = tmp_path / "book_time.json"
    book_time.main(["--jobs", "1", "2", "--note", "loaded", "--out", str(out)])
    rows = {r["setting"]: r for r in json.loads(out.read_text())["rows"]}
    whole = rows["smoke, --jobs 2 × 1 thread(s): whole book (chapters + HTML)"]
    assert whole["seconds"] == 150.0 and whole["ratio"] == round(230 / 150, 2) and whole["met"] is True
    assert rows["smoke, --jobs 1 × 2 thread(s): whole book (chapters + HTML)"]["met"] is False  # 230 s > 180 s
    assert rows["smoke, --jobs 2 × 1 thread(s): chapters"]["target"] == ""  # the smoke target is the whole book
    result = json.loads(out.read_text())
    assert result["targets"] == {"smoke book": "≤ 180 s", "toy chapters": "≤ 900 s", "toy2 chapters": "≤ 900 s"} and "loaded" in result["notes"]
