"""How long the book takes from a fresh clone: `dvd book --profile P` end to end (chapters, then
the HTML), one chapter at a time (``--jobs 1``) and several at once (``--jobs N``), each in a
fresh copy of the book with an empty run store.

    python benchmarks/book_time.py                      # smoke, --jobs 1 vs --jobs <cores>
    python benchmarks/book_time.py --profiles smoke toy --jobs 1 2
    python benchmarks/book_time.py --only 03 04 --no-build   # a subset: no target applies

Targets: the smoke book ≤ 180 s; the toy book's chapters ≤ 900 s on either toy world (on a quiet
2-core machine).
Writes ``benchmarks/results/book_time.json`` (`result_file.write_result`); the ratio of a row is
the ``--jobs 1`` time of its profile over its own (the speed-up).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_file import write_result  # noqa: E402

from dvdlib.executed import read_run_record  # noqa: E402
from dvdlib.scheduler import cores  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: What a run needs from the checkout; the store and the generated pages start empty.
COPIED = ("_config.yml", "_toc.yml", "book", "chapters", "benchmarks/results")
LINKED = ("toy",)  # the toy world's committed model, judge and findings: read only
# what a run generates under book/ (a fresh clone has none of it)
GENERATED = ("*.ipynb", "figures", "results", "status.md", "benchmarks.md", "_build_info.md", "_run.json")
TARGETS = {"smoke": ("book", 180.0), "toy": ("chapters", 900.0), "toy2": ("chapters", 900.0)}


def fresh_copy(dest: Path) -> Path:
    """The book's sources in ``dest``, as a fresh clone has them (no store, no executed pages)."""
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            skip = shutil.ignore_patterns(*GENERATED) if name == "book" else None
            shutil.copytree(src, dest / name, ignore=skip)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
    for name in LINKED:
        (dest / name).symlink_to(REPO / name)
    return dest


def time_book(profile: str, jobs: int, only=None, build: bool = True, keep: bool = False) -> dict:
    """Run ``dvd book --profile P --jobs J`` (``only`` some chapters; ``build`` the HTML) in a
    fresh copy; its wall time, the chapters' wall time (the run record) and the exit status."""
    root = Path(tempfile.mkdtemp(prefix=f"book_time_{profile}_{jobs}_"))
    try:
        fresh_copy(root)
        dvd = Path(sys.executable).with_name("dvd")
        started = time.perf_counter()
        cmd = [str(dvd), "book", "--profile", profile, "--jobs", str(jobs)]
        cmd += [f"--only={name}" for name in only or []] + ([] if build else ["--no-build"])
        done = subprocess.run(cmd, cwd=root)
        seconds = time.perf_counter() - started
        record = read_run_record("book", root) or {}
        return {"book": seconds, "chapters": record.get("wall_seconds"), "threads": record.get("threads"),
                "per_chapter": record.get("chapters", {}), "rc": done.returncode}
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["smoke"], help="profiles to time (default smoke)")
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, cores()],
                        help="--jobs values to compare (default 1 and the number of cores)")
    parser.add_argument("--only", nargs="+", metavar="CHAPTER", help="time only these chapters (no target applies)")
    parser.add_argument("--no-build", action="store_true", help="skip the HTML build")
    parser.add_argument("--note", default="", help="what else the machine was doing (written with the result)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "book_time.json"))
    args = parser.parse_args(argv)

    rows, load = [], [os.getloadavg()[0]]
    for profile in args.profiles:
        what, limit = TARGETS.get(profile, ("book", None))
        first = {}
        for jobs in args.jobs:
            t = time_book(profile, jobs, args.only, build=not args.no_build)
            load.append(os.getloadavg()[0])
            if t["rc"] != 0:
                print(f"{profile} --jobs {jobs}: dvd book exited {t['rc']}", file=sys.stderr)
            for part in ("chapters", "book"):
                seconds = t[part] if part == "chapters" or not args.no_build else None
                if seconds is None:
                    continue
                first.setdefault(part, seconds)
                target = f"≤ {limit:.0f} s" if part == what and limit and not args.only else ""
                failed = "" if t["rc"] == 0 else f" (exit {t['rc']})"
                part_name = (f"chapters {', '.join(args.only)}" if args.only else "chapters") if part == "chapters" \
                    else "whole book (chapters + HTML)"
                rows.append({"setting": f"{profile}, --jobs {jobs} × {t['threads']} thread(s): {part_name}{failed}",
                             "seconds": round(seconds, 1), "ratio": round(first[part] / seconds, 2),
                             "target": target, "met": (t["rc"] == 0 and seconds <= limit) if target else None})
            slowest = sorted(t["per_chapter"].items(), key=lambda kv: -kv[1])[:3]
            print(f"{profile} --jobs {jobs}: slowest chapters " + ", ".join(f"{k} {v:.0f} s" for k, v in slowest))
    notes = (f"from a fresh copy of the book with an empty store; load average (1 min) "
             f"{' → '.join(f'{x:.1f}' for x in load)} over the runs on {cores()} core(s)")
    if args.note:
        notes += f"; {args.note}"
    targets = {f"{p} {TARGETS[p][0]}": f"≤ {TARGETS[p][1]:.0f} s" for p in TARGETS}
    device = f"CPU ({platform.processor() or platform.machine()}, {cores()} cores)"
    return write_result(args.out, "book_time.py", args, title="Time to build the book", device=device,
                        model=", ".join(f"profile {p}" for p in args.profiles), notes=notes,
                        rows=rows, targets=targets)


if __name__ == "__main__":
    main()
