"""The pages `dvd book` generates beside the chapters: a placeholder for a chapter with no
executed copy (so the book still builds), the status page (each chapter's profile, run time and
outcome; which profile built the book) and the benchmarks page (the benchmark result files)."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import nbformat

from .executed import executed_chapters, notebook_title, read_run_record

BENCHMARK_COMMAND = "python benchmarks/recording_overhead.py"


def write_stub(output, source, profile=None, error=None):
    """A placeholder notebook for a chapter that has no executed copy (so the book still builds)."""
    source, output = Path(source), Path(output)
    title = notebook_title(nbformat.read(source, as_version=4)) if source.exists() else source.stem
    if error:
        text = (f"This chapter failed before it could run (profile `{profile}`):\n\n"
                f"```text\n{error}\n```")
    else:
        text = (f"This chapter has not been run in this copy of the book. Run it with\n\n"
                f"```bash\ndvd book --only {source.stem}\n```")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n{text}")]
    nb.metadata["dvd"] = {"stub": True, "source": source.name, "profile": profile, "error": error}
    output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, output)



def _toc_docs(root: Path) -> set[str]:
    toc = root / "_toc.yml"
    if not toc.exists():
        return set()
    from sphinx_external_toc.parsing import parse_toc_yaml

    return set(parse_toc_yaml(toc).keys())



def _esc(text, limit: int | None = 300) -> str:
    """Escape text for Markdown on one line (punctuation backslash-escaped), cut to ``limit``
    characters (a table cell's; None: whole)."""
    text = " ".join(str(text).split())
    if limit and len(text) > limit:
        text = text[:limit - 3] + "..."
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+-.!|$~&:" else c for c in text)


def _when(iso) -> str:
    if not iso:
        return "—"
    try:
        t = _dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return _esc(iso)
    if t.tzinfo is not None:
        t = t.astimezone(_dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def write_status_page(out_dir="book", cwd=None) -> Path:
    """Write ``book/status.md`` (one row per executed chapter: title, profile, run time, outcome)
    and ``book/_build_info.md`` (which profile built the book, and when). Returns status.md."""
    root = Path(cwd or os.getcwd())
    out = root / out_dir
    out.mkdir(parents=True, exist_ok=True)
    chapters = executed_chapters(out_dir, root)
    in_toc = _toc_docs(root)
    rel = Path(out_dir).as_posix().strip("/")

    lines = [
        "# Status of this run", "",
        "Each chapter was executed by `dvd book` with papermill; the run time and outcome come from",
        "the papermill metadata of the executed notebook. A failed chapter still appears in the book",
        "with its error, and `dvd book` exits non-zero. A chapter that ran but does not apply to its",
        "profile's world (its results say so) is marked not applicable in this world, with the reason.", "",
    ]
    if not chapters:
        lines += ["No chapter has been run yet: `make book` (profile toy) or `dvd book --profile smoke`.", ""]
    else:
        lines += ["| chapter | profile | started | run time | outcome |",
                  "|---|---|---|---|---|"]
        for c in chapters:
            title = _esc(c["title"])
            if f"{rel}/{c['name']}" in in_toc:
                title = f"[{title}]({c['name']}.ipynb)"
            outcome = {"ok": "ok", "not run": "not run"}.get(c["outcome"], "**failed**")
            if c["outcome"] == "not applicable":
                outcome = "not applicable in this world: " + _esc(c.get("why") or "")
            elif c["error"]:
                outcome += ": " + _esc(c["error"])
            lines.append(f"| {title} | {_esc(c['profile'] or '—')} | {_when(c['start'])} | "
                         f"{_duration(c['seconds'])} | {outcome} |")
        failed = [c for c in chapters if c["outcome"] == "failed"]
        lines += ["", f"{len(chapters)} chapter(s): "
                  f"{sum(c['outcome'] == 'ok' for c in chapters)} ok, "
                  f"{sum(c['outcome'] == 'not applicable' for c in chapters)} not applicable, {len(failed)} failed, "
                  f"{sum(c['outcome'] == 'not run' for c in chapters)} not run.", ""]
        lines += _run_lines(read_run_record(out_dir, root))
    status = out / "status.md"
    status.write_text("\n".join(lines), encoding="utf-8")
    _write_build_info(out / "_build_info.md", chapters)
    return status


def _run_lines(record: dict | None) -> list[str]:
    """The last `dvd book` run in words: its wall time beside the sum of its chapters' times."""
    if not record or not record.get("chapters"):
        return []
    times = record["chapters"]
    return [f"The last `dvd book` run (profile {_esc(record.get('profile'))}, {_when(record.get('when'))}) "
            f"ran {len(times)} chapter(s), {record.get('jobs')} at a time with {record.get('threads')} "
            f"thread(s) each: **{_duration(record.get('wall_seconds'))} wall time** for "
            f"{_duration(sum(times.values()))} of chapter run time.", ""]


def _profile_note(profile: str) -> str:
    """The profile's own description and caveat (dvdlib/profiles/NAME.yaml), if it loads."""
    try:
        from dvdlib.profiles import load_profile

        prof = load_profile(profile)
    except Exception:  # an unknown or broken profile: the chapters' own errors say why
        return ""
    parts = [str(x).strip().rstrip(".") + "." for x in (getattr(prof, "description", ""), getattr(prof, "caveat", "")) if x]
    return " ".join(parts)


def _write_build_info(path: Path, chapters: list[dict]):
    ran = [c for c in chapters if c["outcome"] != "not run"]
    profiles = sorted({str(c["profile"]) for c in ran if c["profile"]})
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if not ran:
        body = f"No chapter had been run when this copy was built ({now})."
    else:
        names = " and ".join(f"**{p}**" for p in profiles) or "an unknown profile"
        plural = "profiles" if len(profiles) > 1 else "profile"
        failed = sum(c["outcome"] == "failed" for c in ran)
        apart = sum(c["outcome"] == "not applicable" for c in ran)
        body = (f"This copy was built on {now} with the {plural} {names}: "
                f"{len(ran)} chapter(s) ran, {len(ran) - failed - apart} ok, "
                + (f"{apart} not applicable in this world, " if apart else "") + f"{failed} failed "
                f"(see [the status page](status.md)).")
        for p in profiles:
            note = _profile_note(p)
            if note:
                body += f"\n\nProfile **{p}**: {note}"
    path.write_text(f"```{{note}}\n{body}\n```\n", encoding="utf-8")


BENCHMARK_RESULTS = ("benchmarks/results/*.json", "{out_dir}/results/benchmark_*.json")


def render_benchmarks(out_dir="book", cwd=None) -> Path:
    """Write ``book/benchmarks.md`` from the benchmark result files (``benchmarks/results/*.json``,
    ``book/results/benchmark_*.json``): one table per file, or how to run one."""
    root = Path(cwd or os.getcwd())
    out = root / out_dir
    out.mkdir(parents=True, exist_ok=True)
    files = sorted({f for pattern in BENCHMARK_RESULTS
                    for f in root.glob(pattern.format(out_dir=Path(out_dir).as_posix()))})
    lines = ["# Benchmarks", ""]
    if not files:
        lines += ["No benchmark has been run yet. Run one from the repository root with", "",
                  "```bash", BENCHMARK_COMMAND, "```", "",
                  "and rebuild the book (`make book`); its results appear here.", ""]
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            lines += [f"## {_esc(f.name)}", "", f"Could not read this file: {_esc(exc)}", ""]
            continue
        lines += [f"## {_esc(data.get('title') or f.stem)}", ""]
        facts = [f"{k}: {_esc(data[k], limit=None)}" for k in ("device", "model", "notes", "when") if data.get(k)]
        lines += ["; ".join(facts + [f"from `{f.relative_to(root).as_posix()}`"]) + ".", ""]
        if data.get("command"):
            lines += ["```bash", str(data["command"]), "```", ""]
        rows = data.get("rows") or []
        if rows:
            cols = list(dict.fromkeys(k for r in rows for k in r))
            lines += ["| " + " | ".join(_esc(c) for c in cols) + " |",
                      "|" + "---|" * len(cols)]
            for r in rows:
                lines.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
            lines.append("")
        targets = data.get("targets")
        if targets:
            lines += ["Targets: " + "; ".join(f"{_esc(k)} {_esc(v)}" for k, v in targets.items())
                      + ".", ""]
    page = out / "benchmarks.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    return page


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"
    return _esc(v)


#: The toy world's quality gates in words (`dvdlib.toy.gates`' names).
GATE_WORDS = {"singles": "single concepts recognised", "composition": "two objects composed",
              "conditioning": "the text changes the image"}


def write_toy_gates(out_dir="book", cwd=None, findings="toy/findings") -> Path:
    """Write ``book/_toy_gates.md``, the landing page's sentence on the toy model's quality gates,
    from the snapshot chapter 09 reads (``findings``/gates.json; `dvdlib.findings.gates_table`), so
    the two pages state one file's verdicts."""
    from .findings import Snapshot, gates_table

    root = Path(cwd or os.getcwd())
    page = root / out_dir / "_toy_gates.md"
    gates = root / findings / "gates.json"
    table = gates_table(Snapshot(gates.parent, {}, json.loads(gates.read_text()))) if gates.is_file() else None
    if table is None or table.empty:
        text = f"No quality gates are recorded yet (`{findings}/gates.json`: `dvd toy findings` writes it)."
    else:
        said = "; ".join(f"{GATE_WORDS.get(name, name)} {r['rate']} (95% CI {r['95% CI']}; required {r['required']}): "
                         f"**{r['result']}**" for name, r in table.iterrows())
        text = f"Its quality gates, read from `{findings}/gates.json` as chapter 09 reads them: {said}."
    page.write_text(text + "\n", encoding="utf-8")
    return page


def write_toy_limits(out_dir="book", cwd=None, profile="toy", findings="toy/findings") -> Path:
    """Write ``book/_toy_limits.md``, the methods page's section on what the toy profile's world can
    and cannot test, as its world writes it (`dvdlib.worlds.World.limits_section`) from the profile's
    judge and exclusions and the snapshot chapter 09 reads, so the section states the files' facts."""
    from .profiles import load_profile
    from .worlds import get

    root = Path(cwd or os.getcwd())
    P = load_profile(profile)
    write = get(P.world).limits_section
    page = root / out_dir / "_toy_limits.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(write(P, root, root / findings) if write else f"The world `{P.world}` says nothing of its limits.\n",
                    encoding="utf-8")
    return page


def write_generated_pages(out_dir="book", chapters_dir="chapters", cwd=None):
    """Everything the toc needs that the runner generates: stubs for chapters in the toc with no
    executed copy, the status page (with the build-info include), the benchmarks page and the
    landing page's sentence on the toy model's gates and the methods page's section on the toy
    world's limits."""
    root = Path(cwd or os.getcwd())
    rel = Path(out_dir).as_posix().strip("/")
    for doc in sorted(_toc_docs(root)):
        if not doc.startswith(rel + "/"):
            continue
        stem = doc[len(rel) + 1:]
        source = root / chapters_dir / f"{stem}.ipynb"
        if source.exists() and not list((root / out_dir).glob(f"{stem}.*")):
            write_stub(root / out_dir / f"{stem}.ipynb", source)
    write_status_page(out_dir, root)
    render_benchmarks(out_dir, root)
    write_toy_gates(out_dir, root)
    write_toy_limits(out_dir, root)
