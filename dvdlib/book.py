"""Run the book: execute each chapter with a profile (papermill), write the generated pages, build
the HTML (Jupyter Book 1).

    chapters/NN_slug.ipynb --papermill(profile)--> book/NN_slug.ipynb --jupyter-book--> _build/html

Paths are relative to ``cwd`` (the repository root by default), which is also the working directory
of every chapter's kernel, so a chapter's relative paths (``book/figures/...``, ``store/``) work.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .chapters import long_chapters, reads_from
from .store import atomic_write

KERNEL = "python3"
BENCHMARK_COMMAND = "python benchmarks/recording_overhead.py"
GENERATED = ("status.md", "benchmarks.md", "_build_info.md", "_run.json")


@dataclass
class Outcome:
    """What happened to one chapter: ``ok`` or not, how long it took, the error as ``Name: message``."""

    name: str
    source: Path
    output: Path
    ok: bool
    seconds: float
    error: str | None = None


# ----------------------------------------------------------------------------------- running


def chapter_sources(chapters_dir="chapters", only=None, cwd=None) -> list[Path]:
    """The chapter notebooks, sorted; ``only`` (names, stems, ``04`` prefixes) picks some of them."""
    root = Path(cwd or os.getcwd())
    sources = sorted((root / chapters_dir).glob("*.ipynb"))
    if only is None:
        return sources
    wanted = [only] if isinstance(only, str) else list(only)
    picked = []
    for name in wanted:
        key = Path(name).stem
        hits = [s for s in sources if s.stem == key] or [
            s for s in sources if s.stem.startswith(key) or key in s.stem
        ]
        if not hits:
            known = ", ".join(s.stem for s in sources) or "none"
            raise ValueError(f"no chapter matches {name!r} in {root / chapters_dir} (chapters: {known})")
        picked += [h for h in hits if h not in picked]
    return sorted(picked)


def run_chapter(source, output, profile, cwd=None, parameters=None, threads: int | None = None) -> Outcome:
    """Execute one chapter with papermill in its own process (``threads``: the kernel's torch /
    BLAS threads; None keeps this environment's); a raising chapter still leaves its executed
    notebook."""
    source, output = Path(source), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    params = {"profile": profile, **(parameters or {})}
    check_parameters(source, params)
    env = dict(os.environ)
    if threads:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    cmd = [sys.executable, "-m", "papermill", str(source), str(output), "-y", json.dumps(params),
           "-k", KERNEL, "--cwd", str(cwd or os.getcwd()), "--no-progress-bar", "--log-level", "ERROR"]
    output.unlink(missing_ok=True)  # a kernel that never starts must not leave the last run's page
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    error = None
    if done.returncode != 0:
        if _is_executed(output):
            error = _error_of(nbformat.read(output, as_version=4)) or "CellExecutionError: the chapter did not finish"
            _unglue(output)
        else:  # kernel did not start, bad notebook, ...: record it, go on
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            error = f"papermill failed (exit {done.returncode}): {lines[-1] if lines else 'no message'}"
            _write_stub(output, source, profile, error=error)
    if _is_executed(output):
        present_parameters(output)
    return Outcome(source.stem, source, output, error is None, seconds, error)


def check_parameters(source, parameters: dict) -> None:
    """A ``ValueError`` listing the chapter's parameters when ``parameters`` names one it lacks."""
    import papermill as pm

    known = pm.inspect_notebook(str(source))
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"{Path(source).name} has no parameter {', '.join(map(repr, unknown))}; "
                         f"its parameters are: {', '.join(known)}")


def this_run(parameters: dict) -> str:
    """"This run: profile toy, n_prompts 24, ..." — the values papermill passed, for people."""
    def value(v):
        return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    shown = [f"{k.replace('_', ' ')} {value(v)}" for k, v in parameters.items() if k != "out_dir" and v is not None]
    return f"**This run:** {'; '.join(shown)}."


def present_parameters(path) -> None:
    """Show an executed chapter's parameters once: its parameters cell collapsed (a toggle),
    papermill's injected cell removed from the page, and one line, `this_run`, in their place."""
    nb = nbformat.read(path, as_version=4)
    injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.metadata.get("tags", [])]
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    if injected and not any(c.metadata.get("dvd") == "this-run" for c in nb.cells):
        line = nbformat.v4.new_markdown_cell(this_run(nb.metadata.get("papermill", {}).get("parameters", {})))
        line.metadata["dvd"] = "this-run"
        nb.cells.insert(injected[0] + 1, line)
    nbformat.write(nb, path)


def cores() -> int:
    """CPU cores this process may use (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_jobs(profile, parameters=None) -> int:
    """Chapters at once when not told: one per core on a CPU; one at a time on an accelerator
    (chapters at once would each hold their models in its memory)."""
    device = (parameters or {}).get("device")
    if device is None:
        try:
            from dvdlib.profiles import load_profile

            device = load_profile(profile).device
        except Exception:  # an unknown profile: the chapters' own errors say why
            device = "cpu"
    return cores() if str(device) == "cpu" else 1


def previous_seconds(profile, out_dir="book", cwd=None) -> dict[str, float]:
    """Per chapter, how long its last run with ``profile`` took (the executed notebooks that
    the status page reads; chapters that failed or ran with another profile are left out)."""
    root = Path(cwd or os.getcwd())
    out = {}
    for path in sorted((root / out_dir).glob("*.ipynb")):
        try:
            info = chapter_info(path)
        except Exception:  # an unreadable notebook gives no estimate
            continue
        if info["outcome"] == "ok" and info["profile"] == profile and info["seconds"]:
            out[info["name"]] = float(info["seconds"])
    return out


#: Chapters a fresh clone, with no times of its own, starts first, in this order
#: (`dvdlib.chapters.Chapter.long`).
LONG_CHAPTERS = long_chapters()


def schedule(sources, seconds: dict[str, float]) -> list[Path]:
    """The order to start chapters in: those never timed first (any may be long; `LONG_CHAPTERS`
    before the others), then the longest first by their last run's time, so no long chapter
    starts last."""
    rank = {name: k for k, name in enumerate(LONG_CHAPTERS)}
    unknown = sorted((s for s in sources if s.stem not in seconds), key=lambda s: rank.get(s.stem, len(rank)))
    known = sorted((s for s in sources if s.stem in seconds), key=lambda s: -seconds[s.stem])
    return unknown + known


#: Chapters that read work another chapter computes, and those chapters: a reader starts after
#: them (when both run), so the work is done once (`dvdlib.chapters.Chapter.reads_from`).
READS_FROM = reads_from()


def waits_for(order) -> dict[str, set[str]]:
    """Per chapter of ``order``, the chapters of the same run it must start after (`READS_FROM`)."""
    names = {s.stem for s in order}
    return {s.stem: set(READS_FROM.get(s.stem, ())) & names for s in order}


def producers_first(sources) -> list[Path]:
    """``sources`` in their order, except that each comes after the chapters among them whose work
    it reads (`READS_FROM`): the order to run chapters one at a time."""
    by_name, seen, order = {s.stem: s for s in sources}, set(), []

    def visit(source):
        if source.stem not in seen:
            seen.add(source.stem)
            for producer in READS_FROM.get(source.stem, ()):
                if producer in by_name:
                    visit(by_name[producer])
            order.append(source)

    for source in sources:
        visit(source)
    return order


#: The environment variables that set a kernel's torch / BLAS threads (torch reads them at start).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run_chapters(profile, chapters_dir="chapters", out_dir="book", only=None, cwd=None,
                 parameters=None, verbose=True, jobs: int | None = None,
                 threads: int | None = None) -> list[Outcome]:
    """Execute ``chapters/*.ipynb`` (or ``only`` some) with ``profile`` into ``out_dir``, ``jobs``
    chapters at a time (default: one per core on a CPU, one on an accelerator; `default_jobs`), each kernel with ``threads`` torch threads
    (default: cores / jobs, so the machine is not oversubscribed). Chapters start longest first
    (`schedule`, from their last run's times), each once the chapters whose work it reads have
    ended (`READS_FROM`). One chapter failing does not stop the others.
    Returns one :class:`Outcome` per chapter, in name order, and writes the run's wall time
    (`write_run_record`) for the status page.

    Chapters are independent: none reads another's outputs (chapter 09 reads the committed
    ``toy/findings``), and work they share goes through the run store, whose files are written
    atomically (`dvdlib.store`); any chapter also runs alone, computing what the store lacks.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    root = Path(cwd or os.getcwd()).resolve()
    sources = chapter_sources(chapters_dir, only, root)
    jobs = max(1, min(jobs or default_jobs(profile, parameters), len(sources) or 1))
    threads = threads or max(1, cores() // jobs)
    for source in sources:  # a wrong -p stops the run before any chapter starts
        check_parameters(source, {"profile": profile, **(parameters or {})})
    order = schedule(sources, previous_seconds(profile, out_dir, root))
    started = time.perf_counter()
    outcomes = {}

    def one(source):
        if verbose:
            print(f"[dvd] start {source.relative_to(root)} (profile {profile}, {threads} thread(s)) -> "
                  f"{out_dir}/{source.name}", file=sys.stderr, flush=True)
        return run_chapter(source, root / out_dir / source.name, profile, cwd=root, parameters=parameters,
                           threads=threads)

    # each chapter is its own papermill process, `jobs` at a time: the first in `order` whose
    # producers have ended starts when a place is free
    waiting, pending, running = waits_for(order), list(order), {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            for source in [s for s in pending if not waiting[s.stem]][:jobs - len(running)]:
                pending.remove(source)
                running[pool.submit(one, source)] = source
            if not running:
                raise ValueError(f"READS_FROM has a cycle among {[s.stem for s in pending]}")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = outcomes[running.pop(future)] = future.result()
                for needs in waiting.values():
                    needs.discard(outcome.name)
                if verbose:
                    status = "ok" if outcome.ok else f"FAILED ({outcome.error.splitlines()[0]})"
                    print(f"[dvd]   {outcome.name}: {status} in {outcome.seconds:.1f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    write_run_record(out_dir, root, profile=profile, jobs=jobs, threads=threads, wall_seconds=wall,
                     chapters={o.name: round(o.seconds, 1) for o in outcomes.values()})
    if verbose:
        print(f"[dvd] {len(outcomes)} chapter(s) in {wall:.1f} s wall ({jobs} at a time, "
              f"{threads} thread(s) each)", file=sys.stderr, flush=True)
    return [outcomes[s] for s in sources]


RUN_RECORD = "_run.json"


def write_run_record(out_dir="book", cwd=None, **record) -> Path:
    """Write ``book/_run.json``: the last `run_chapters` call (profile, jobs, threads, wall
    seconds, per-chapter seconds), for the status page."""
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


def _is_executed(path: Path) -> bool:
    return path.exists() and "papermill" in nbformat.read(path, as_version=4).metadata


def _write_stub(output, source, profile=None, error=None):
    """A placeholder notebook for a chapter that has no executed copy (so the book still builds)."""
    source, output = Path(source), Path(output)
    title = _title(nbformat.read(source, as_version=4)) if source.exists() else source.stem
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


# A chapter that fails never glues the numbers its prose quotes; MyST would then warn about each
# missing key and fail the -W build. In the executed copy of a *failed* chapter only, such
# references become a visible "not computed" note (a working chapter with a missing key still
# fails the build, as it should).
_GLUE_ROLE = re.compile(r"\{glue(?::[a-z]*)?\}`([^`]+)`")
_GLUE_BLOCK = re.compile(r"^(?P<fence>`{3,}|:{3,})\{glue(?::[a-z]*)?\}[ \t]+(?P<key>[^\s`]+)[^\n]*\n"
                         r".*?^(?P=fence)[ \t]*$", re.M | re.S)
NOT_COMPUTED = "*(not computed: the chapter failed before this value)*"


def _unglue(path):
    """Replace references to never-glued keys in a failed chapter's executed notebook."""
    path = Path(path)
    if not path.exists():
        return
    nb = nbformat.read(path, as_version=4)
    glued = {out.metadata["scrapbook"]["name"] for cell in nb.cells for out in cell.get("outputs", [])
             if "scrapbook" in out.get("metadata", {})}

    def missing(key: str) -> bool:
        return "::" not in key and key.split(":")[0] not in glued

    dropped = set()

    def role(m):
        if not missing(m.group(1)):
            return m.group(0)
        dropped.add(m.group(1).split(":")[0])
        return NOT_COMPUTED

    def block(m):
        if not missing(m.group("key")):
            return m.group(0)
        dropped.add(m.group("key"))
        return f"```{{note}}\n{NOT_COMPUTED[1:-1]} (`{m.group('key')}`).\n```"

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _GLUE_ROLE.sub(role, _GLUE_BLOCK.sub(block, cell.source))
    if dropped:
        nb.metadata.setdefault("dvd", {})["not_glued"] = sorted(dropped)
        nbformat.write(nb, path)


# ----------------------------------------------------------------------------------- reading


def _title(nb) -> str:
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


def _error_of(nb) -> str | None:
    """``Name: message`` of the first error output, as papermill judges it."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "error" and not (out.ename == "SystemExit"
                                                    and out.evalue in ("", "0")):
                return f"{out.ename}: {out.evalue}"
        if cell.get("metadata", {}).get("papermill", {}).get("exception") is True:
            return "CellExecutionError: a cell failed without an error output"
    return None


def chapter_info(path) -> dict:
    """Title, profile, run time and outcome of an executed chapter, from its papermill metadata."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    pm = nb.metadata.get("papermill", {})
    stub = nb.metadata.get("dvd", {})
    info = {"name": path.stem, "title": _title(nb) or path.stem,
            "profile": (pm.get("parameters") or {}).get("profile", stub.get("profile")),
            "seconds": pm.get("duration"), "start": pm.get("start_time"),
            "end": pm.get("end_time"), "error": None}
    if pm:
        error = _error_of(nb)
        if pm.get("exception") and not error:
            error = "CellExecutionError: the chapter did not finish"
        info["error"] = error
        info["outcome"] = "failed" if error else "ok"
    else:
        info["error"] = stub.get("error")
        info["outcome"] = "failed" if info["error"] else "not run"
    return info


def executed_chapters(out_dir="book", cwd=None) -> list[dict]:
    """:func:`chapter_info` of every notebook in ``out_dir``, sorted by name."""
    root = Path(cwd or os.getcwd())
    return [chapter_info(p) for p in sorted((root / out_dir).glob("*.ipynb"))]


def _toc_docs(root: Path) -> set[str]:
    toc = root / "_toc.yml"
    if not toc.exists():
        return set()
    from sphinx_external_toc.parsing import parse_toc_yaml

    return set(parse_toc_yaml(toc).keys())


# ----------------------------------------------------------------------------------- writing


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
        "with its error, and `dvd book` exits non-zero.", "",
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
            if c["error"]:
                outcome += ": " + _esc(c["error"])
            lines.append(f"| {title} | {_esc(c['profile'] or '—')} | {_when(c['start'])} | "
                         f"{_duration(c['seconds'])} | {outcome} |")
        failed = [c for c in chapters if c["outcome"] == "failed"]
        lines += ["", f"{len(chapters)} chapter(s): "
                  f"{sum(c['outcome'] == 'ok' for c in chapters)} ok, {len(failed)} failed, "
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
        body = (f"This copy was built on {now} with the {plural} {names}: "
                f"{len(ran)} chapter(s) ran, {len(ran) - failed} ok, {failed} failed "
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


def write_generated_pages(out_dir="book", chapters_dir="chapters", cwd=None):
    """Everything the toc needs that the runner generates: stubs for chapters in the toc with no
    executed copy, the status page (with the build-info include) and the benchmarks page."""
    root = Path(cwd or os.getcwd())
    rel = Path(out_dir).as_posix().strip("/")
    for doc in sorted(_toc_docs(root)):
        if not doc.startswith(rel + "/"):
            continue
        stem = doc[len(rel) + 1:]
        source = root / chapters_dir / f"{stem}.ipynb"
        if source.exists() and not list((root / out_dir).glob(f"{stem}.*")):
            _write_stub(root / out_dir / f"{stem}.ipynb", source)
    write_status_page(out_dir, root)
    render_benchmarks(out_dir, root)


def build_book(root=".", out_dir="book", chapters_dir="chapters") -> Path:
    """Write the generated pages, then ``jupyter-book build ROOT --warningiserror``; returns
    ``_build/html/index.html``. Raises ``RuntimeError`` when the build fails."""
    root = Path(root).resolve()
    write_generated_pages(out_dir, chapters_dir, root)
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(root), "--warningiserror", "--keep-going"]
    done = subprocess.run(cmd, cwd=root)
    index = root / "_build" / "html" / "index.html"
    if done.returncode != 0 or not index.exists():
        raise RuntimeError(f"jupyter-book build failed (exit {done.returncode}); see the log above")
    return index
