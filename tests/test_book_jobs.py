"""Chapters run at once (`dvd book --jobs`): the schedule, the threads a kernel gets, the run's
wall time on the status page, processes sharing a store, and the same results as one at a time."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import nbformat
import pytest

from dvdlib import executed, pages, scheduler
from dvdlib.store import Store

from test_book import REPO, copy_book, make_chapter


def test_schedule_starts_untimed_chapters_then_the_longest():
    sources = [Path(f"chapters/{n}.ipynb") for n in ("01_a", "02_b", "03_c", "04_d")]
    order = scheduler.schedule(sources, {"01_a": 10.0, "03_c": 400.0, "04_d": 90.0})
    assert [s.stem for s in order] == ["02_b", "03_c", "04_d", "01_a"]


def test_a_fresh_clone_starts_the_chapters_known_to_be_long_first():
    sources = sorted(Path(REPO / "chapters").glob("*.ipynb"))
    order = [s.stem for s in scheduler.schedule(sources, {})]
    assert order[:len(scheduler.LONG_CHAPTERS)] == list(scheduler.LONG_CHAPTERS) and sorted(order) == [s.stem for s in sources]
    assert [s.stem for s in scheduler.schedule(sources, {"11_three_concepts": 5.0})][-1] == "11_three_concepts"


def test_one_at_a_time_each_chapter_runs_after_the_chapters_whose_work_it_reads():
    sources = sorted(Path(REPO / "chapters").glob("*.ipynb"))
    order = [s.stem for s in scheduler.producers_first(sources)]
    assert sorted(order) == [s.stem for s in sources]
    for reader, producers in scheduler.READS_FROM.items():
        assert all(order.index(p) < order.index(reader) for p in producers)
    assert order.index("01_training_diversity") == 0  # otherwise the given order
    some = [Path(f"chapters/{n}.ipynb") for n in ("02_dvd_benchmark", "03_diversity_causal", "10_unselected_prompts")]
    assert [s.stem for s in scheduler.producers_first(some)] == ["02_dvd_benchmark", "03_diversity_causal", "10_unselected_prompts"]


def test_a_reader_starts_after_the_chapter_whose_work_it_reads(tmp_path, monkeypatch):
    """With two places free, the reader still waits for its producer; the other chapter does not."""
    root = copy_book(tmp_path, chapters=False)
    for name in ("01_reader", "02_producer", "03_other"):
        make_chapter(root / "chapters" / f"{name}.ipynb", name, ["import time\ntime.sleep(1.5)"])
    monkeypatch.setattr(scheduler, "READS_FROM", {"01_reader": ("02_producer", "09_not_in_this_run")})
    outcomes = scheduler.run_chapters("smoke", cwd=root, verbose=False, jobs=2, threads=1)
    assert all(o.ok for o in outcomes)
    span = {o.name: (nb.metadata.papermill.start_time, nb.metadata.papermill.end_time)
            for o in outcomes for nb in [nbformat.read(o.output, as_version=4)]}
    assert span["01_reader"][0] >= span["02_producer"][1]
    assert span["03_other"][0] < span["02_producer"][1]  # it took the free place meanwhile


def test_chapter_13_waits_for_chapter_12_only_where_it_compares_twins():
    """The toy book compares no twins in chapter 13, so it need not wait for chapter 12 (the
    book's longest); given twin pairs, or on smoke, it waits."""
    from dvdlib.profiles import load_profile

    sources = sorted(Path(REPO / "chapters").glob("*.ipynb"))
    toy, smoke = load_profile("toy"), load_profile("smoke")
    assert scheduler.waits_for(sources, toy, {})["13_remedies"] == {"08_detection_replacement"}
    assert "12_twin_finetunes" in scheduler.waits_for(sources, toy, {"twin_pairs": 2})["13_remedies"]
    assert "12_twin_finetunes" in scheduler.waits_for(sources, smoke, {})["13_remedies"]
    assert "12_twin_finetunes" in scheduler.waits_for(sources)["13_remedies"]  # no profile: all it may read


def test_the_books_readers_wait_for_chapters_that_exist():
    chapters = {p.stem for p in (REPO / "chapters").glob("*.ipynb")}
    assert {r for r, producers in scheduler.READS_FROM.items() for p in (r, *producers)} <= chapters
    assert all(p in chapters for producers in scheduler.READS_FROM.values() for p in producers)


THREADS = 'import os, torch\nprint("threads", os.environ["OMP_NUM_THREADS"], torch.get_num_threads())'


@pytest.fixture(scope="module")
def two_at_once(tmp_path_factory):
    """Two fixture chapters, each sleeping a second, run two at a time with two threads each."""
    root = copy_book(tmp_path_factory.mktemp("jobs_book"), chapters=False)
    for name in ("01_one", "02_two"):
        make_chapter(root / "chapters" / f"{name}.ipynb", name, ["import time\ntime.sleep(1.5)", THREADS])
    outcomes = scheduler.run_chapters("smoke", cwd=root, verbose=False, jobs=2, threads=2)
    return root, outcomes


def test_chapters_run_at_once_with_the_threads_asked(two_at_once):
    root, outcomes = two_at_once
    assert [o.name for o in outcomes] == ["01_one", "02_two"] and all(o.ok for o in outcomes)
    spans = []
    for o in outcomes:
        nb = nbformat.read(o.output, as_version=4)
        printed = "".join(out.get("text", "") for c in nb.cells for out in c.get("outputs", []))
        assert "threads 2 2" in printed  # the variable reached the kernel, and torch read it
        spans.append((nb.metadata.papermill.start_time, nb.metadata.papermill.end_time))
    (a0, a1), (b0, b1) = sorted(spans)
    assert b0 < a1, f"the second chapter started only after the first ended: {spans}"


def test_status_page_adds_the_wall_time_of_the_run(two_at_once):
    root, outcomes = two_at_once
    record = executed.read_run_record(cwd=root)
    assert record["jobs"] == 2 and record["threads"] == 2 and set(record["chapters"]) == {"01_one", "02_two"}
    assert record["wall_seconds"] < sum(record["chapters"].values())  # they overlapped
    status = pages.write_status_page(cwd=root).read_text()
    assert "wall time" in status and "2 at a time with 2 thread(s) each" in status
    # the next run's schedule reads these times: both are known now
    assert set(scheduler.previous_seconds("smoke", cwd=root)) == {"01_one", "02_two"}
    assert scheduler.previous_seconds("toy", cwd=root) == {}


def test_a_wrong_parameter_stops_before_any_chapter_starts(tmp_path):
    root = copy_book(tmp_path, chapters=False)
    make_chapter(root / "chapters" / "01_one.ipynb", "one", ['open("ran", "w").write("yes")'])
    with pytest.raises(ValueError, match="no parameter 'sedes'"):
        scheduler.run_chapters("smoke", cwd=root, verbose=False, jobs=2, parameters={"sedes": [1]})
    assert not (root / "ran").exists()


def _add_fields(args):
    root, worker = args
    store = Store(root, "m", {"steps": 1})
    for i in range(40):
        store.save("a prompt", 1, **{f"w{worker}_{i}": i})


def test_processes_sharing_a_store_keep_every_field(tmp_path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_add_fields, [(tmp_path, w) for w in range(4)])
    record = Store(tmp_path, "m", {"steps": 1}).records().iloc[0].to_dict()
    assert {f"w{w}_{i}" for w in range(4) for i in range(40)} <= set(record)


def results_of(out: Path) -> dict:
    """Every chapter's results JSON in ``out``, without the profile's store folder."""
    found = {}
    for path in sorted((out / "results").glob("*.json")):
        body = json.loads(path.read_text())
        body["profile"].pop("store")
        found[path.stem] = body
    return found


def test_two_smoke_chapters_at_once_give_the_results_of_one_at_a_time(tmp_path):
    """Chapters 03 and 04 on smoke, each time into a fresh store: one at a time, then both at
    once (one thread each both times, so only the concurrency differs)."""
    root = copy_book(tmp_path)
    only = ["03_diversity_causal", "04_focus_score"]
    runs = {}
    for jobs in (1, 2):
        out = f"book_jobs{jobs}"
        outcomes = scheduler.run_chapters("smoke", out_dir=out, only=only, cwd=root, verbose=False, jobs=jobs,
                                     threads=1, parameters={"store": f"store_jobs{jobs}", "out_dir": out})
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        runs[jobs] = results_of(root / out)
    assert set(runs[1]) == set(only)
    assert runs[1] == runs[2]
    assert executed.read_run_record(f"book_jobs2", root)["jobs"] == 2


def test_one_chapter_at_a_time_on_an_accelerator_unless_told(monkeypatch):
    monkeypatch.setattr(scheduler, "cores", lambda: 8)
    assert scheduler.default_jobs("smoke") == 8
    assert scheduler.default_jobs("paper") == 1  # SD and the judge on one GPU, once
    assert scheduler.default_jobs("smoke", {"device": "cuda"}) == 1
    assert scheduler.default_jobs("paper", {"device": "cpu"}) == 8
