"""What a run of the book leaves in ``book/``, read back: each executed chapter's title, profile,
run time and outcome (papermill's metadata), and the run record ``book/_run.json`` that
`dvdlib.scheduler` writes and the status page (`dvdlib.pages`) reads."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import nbformat

from .store import atomic_write

RUN_RECORD = "_run.json"


def write_run_record(out_dir="book", cwd=None, **record) -> Path:
    """Write ``book/_run.json``: the last `dvdlib.scheduler.run_chapters` call (profile, jobs,
    threads, wall seconds, per-chapter seconds), for the status page."""
    root = Path(cwd or os.getcwd())
    record["when"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return atomic_write(root / out_dir / RUN_RECORD,
                        lambda p: p.write_text(json.dumps(record, indent=1), encoding="utf-8"))


def read_run_record(out_dir="book", cwd=None) -> dict | None:
    """The last run's record (`write_run_record`), or None."""
    path = Path(cwd or os.getcwd()) / out_dir / RUN_RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_executed(path: Path) -> bool:
    """Whether ``path`` is a notebook papermill executed (not missing, not a placeholder)."""
    return path.exists() and "papermill" in nbformat.read(path, as_version=4).metadata


def notebook_title(nb) -> str:
    """The first markdown heading of a notebook (parsed with markdown-it, as MyST does)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        tokens = md.parse(cell.source)
        for i, tok in enumerate(tokens):
            if tok.type == "heading_open":
                return tokens[i + 1].content.strip()
    return ""


def notebook_error(nb) -> str | None:
    """``Name: message`` of the first error output, as papermill judges it."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "error" and not (out.ename == "SystemExit"
                                                    and out.evalue in ("", "0")):
                return f"{out.ename}: {out.evalue}"
        if cell.get("metadata", {}).get("papermill", {}).get("exception") is True:
            return "CellExecutionError: a cell failed without an error output"
    return None


def not_applicable(path) -> str | None:
    """Why the chapter executed at ``path`` does not apply to its profile's world, or None: the
    ``"applies": false, "why": ...`` its results JSON (``results/<name>.json`` beside it; written by
    `dvdlib.report.Report.not_applicable`) holds."""
    path = Path(path)
    try:
        body = json.loads((path.parent / "results" / f"{path.stem}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(body, dict) and body.get("applies") is False:
        return str(body.get("why") or "this chapter does not apply to this world")
    return None


def chapter_info(path) -> dict:
    """Title, profile, run time and outcome of an executed chapter, from its papermill metadata:
    "ok", "not applicable" (it ran and recorded that it does not apply to its world: ``why``
    says why), "failed" (``error``) or "not run" (a placeholder)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    pm = nb.metadata.get("papermill", {})
    stub = nb.metadata.get("dvd", {})
    info = {"name": path.stem, "title": notebook_title(nb) or path.stem,
            "profile": (pm.get("parameters") or {}).get("profile", stub.get("profile")),
            "seconds": pm.get("duration"), "start": pm.get("start_time"),
            "end": pm.get("end_time"), "error": None, "why": None}
    if pm:
        error = notebook_error(nb)
        if pm.get("exception") and not error:
            error = "CellExecutionError: the chapter did not finish"
        info["error"] = error
        info["outcome"] = "failed" if error else "ok"
        if not error:
            info["why"] = not_applicable(path)
            info["outcome"] = "not applicable" if info["why"] else "ok"
    else:
        info["error"] = stub.get("error")
        info["outcome"] = "failed" if info["error"] else "not run"
    return info


def executed_chapters(out_dir="book", cwd=None) -> list[dict]:
    """:func:`chapter_info` of every notebook in ``out_dir``, sorted by name."""
    root = Path(cwd or os.getcwd())
    return [chapter_info(p) for p in sorted((root / out_dir).glob("*.ipynb"))]
