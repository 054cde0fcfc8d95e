"""Run the book's chapters: each with a profile through papermill, in its own process, several
at once (longest first, each after the chapters whose work it reads), into ``book/``.

    chapters/NN_slug.ipynb --papermill(profile)--> book/NN_slug.ipynb

Paths are relative to ``cwd`` (the repository root by default), which is also the working directory
of every chapter's kernel, so a chapter's relative paths (``book/figures/...``, ``store/``) work.
"""

from __future__ import annotations

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
from .executed import chapter_info, is_executed, notebook_error, write_run_record
from .pages import write_stub

KERNEL = "python3"


@dataclass
class Outcome:
    """What happened to one chapter: ``ok`` or not, how long it took, the error as ``Name: message``."""

    name: str
    source: Path
    output: Path
    ok: bool
    seconds: float
    error: str | None = None


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
        if is_executed(output):
            error = notebook_error(nbformat.read(output, as_version=4)) or "CellExecutionError: the chapter did not finish"
            _unglue(output)
        else:  # kernel did not start, bad notebook, ...: record it, go on
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            error = f"papermill failed (exit {done.returncode}): {lines[-1] if lines else 'no message'}"
            write_stub(output, source, profile, error=error)
    if is_executed(output):
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
        if info["outcome"] in ("ok", "not applicable") and info["profile"] == profile and info["seconds"]:
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


def run_profile(profile: str, root: Path):
    """The `dvdlib.profiles.Profile` a run of chapters from ``root`` with ``profile`` (a name, or a
    YAML path relative to ``root``) reads."""
    from .profiles import load_profile

    return load_profile(str(root / profile) if profile.endswith((".yaml", ".yml")) else profile)


def waits_for(order, profile=None, parameters: dict | None = None) -> dict[str, set[str]]:
    """Per chapter of ``order``, the chapters of the same run it must start after (`READS_FROM`;
    given the run's ``profile``, a `dvdlib.profiles.Profile`, and its ``parameters``, less those
    such a run does not read: `dvdlib.chapters.Chapter.reads`)."""
    from .chapters import BY_NAME

    def reads(name: str) -> set[str]:
        producers = set(READS_FROM.get(name, ()))
        return producers & set(BY_NAME[name].reads(profile, parameters)) if profile and name in BY_NAME else producers

    names = {s.stem for s in order}
    return {s.stem: reads(s.stem) & names for s in order}


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
    waiting, pending, running = waits_for(order, run_profile(profile, root), parameters), list(order), {}
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
