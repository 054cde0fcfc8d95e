"""Plans as data and their sharded computation (`dvdlib.plan`, `dvdlib.prefetch`), on the smoke profile."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from dvdlib import plan as planning
from dvdlib import prefetch as pf
from dvdlib.scheduler import run_chapter
from dvdlib.generate import recording_spec
from dvdlib.store import digest

ROOT = Path(__file__).resolve().parents[1]


def stored(root: Path) -> dict[str, int]:
    """Store files a computation writes (images, attention, records) → mtime; judge weights left out."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))
            if p.is_file() and "judges" not in p.relative_to(root).parts and p.suffix in (".png", ".npz", ".json")
            and p.name != "settings.json" and not p.name.startswith(".")}  # hidden: temporaries, locks


def keys(root: Path) -> set[str]:
    """The store's keys: image and attention files, and record#answer-key for every judge answer."""
    out = {f for f in stored(root) if not f.endswith(".json")}
    for f in stored(root):
        if f.endswith(".json"):
            out |= {f"{f}#{k}" for k, v in json.loads((root / f).read_text()).items() if isinstance(v, dict)}
    return out


def test_plan_keys_are_the_store_keys_and_the_chapter_then_computes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    store = tmp_path / "store"
    params = {"store": str(store)}
    p = planning.plan("02", "smoke", params)
    assert p.counts()["generations"] == 2 * 6 * 2 and p.counts()["judge_calls"] == 2 * 6 * 2 * 10  # 2 sets × 6 × 2 seeds
    assert len(p.todo()) == len(p.items)
    pf.prefetch(["02_dvd_benchmark"], "smoke", params, shard="0/1", log=lambda *_: None)
    assert p.todo() == []
    # exactly the plan's keys and, beside each whole run, the noise-prediction norms it keeps for chapter 07
    norms = f".attn-{digest(recording_spec(SimpleNamespace(settings=json.loads(p.items[0].settings)), None, None, True))}.npz"
    assert keys(store) == {w.key for w in p.items} | {w.key.replace(".png", norms) for w in p.items if w.key.endswith(".png")}
    before = stored(store)
    out = run_chapter(ROOT / "chapters/02_dvd_benchmark.ipynb", tmp_path / "02.ipynb", "smoke", cwd=ROOT,
                      parameters={**params, "out_dir": str(tmp_path / "book")})
    assert out.ok, out.error
    assert stored(store) == before  # no file written or rewritten: the chapter found everything


def test_chapter_10_plan_counts_the_benchmark_on_fresh_seeds_too(monkeypatch):
    """Smoke: 3 sets × 6 prompts on the 2 selection seeds, and the 6 benchmark prompts again on the 2
    fresh seeds (ten questions per image)."""
    from dvdlib.unselected import fresh_seeds

    monkeypatch.chdir(ROOT)
    p = planning.plan("10", "smoke")
    selection, fresh = [1825, 410], fresh_seeds([1825, 410])
    assert p.profile.seeds == selection and not set(fresh) & set(selection)
    assert p.counts()["generations"] == 18 * 2 + 6 * 2 and p.counts()["judge_calls"] == (18 * 2 + 6 * 2) * 10
    on_fresh = [w for w in p.items if w.seed in fresh]
    assert len(on_fresh) == 2 * 6 * 2 and all('"set": "benchmark"' in w.row for w in on_fresh if w.kind == "judge")
    given = planning.plan("10", "smoke", {"fresh_seeds": [7]})
    assert given.counts()["generations"] == 18 * 2 + 6 and {w.seed for w in given.items} == {1825, 410, 7}


def test_shards_are_disjoint_covering_deterministic_and_keep_a_prompt_together(monkeypatch):
    monkeypatch.chdir(ROOT)
    items = list({w.key: w for w in planning.plan("02", "smoke").items + planning.plan("06", "smoke").items}.values())
    shards = [[w.key for w in items if pf.shard_of(w, 3) == i] for i in range(3)]
    assert sorted(k for s in shards for k in s) == sorted(w.key for w in items)
    assert len({k for s in shards for k in s}) == sum(map(len, shards))  # no key in two shards
    assert all(shards)  # each of three processes gets work
    again = {w.key: pf.shard_of(w, 3) for w in planning.plan("06", "smoke").items}
    assert all(pf.shard_of(w, 3) == again[w.key] for w in items if w.key in again)
    by_prompt = {}
    for w in items:
        by_prompt.setdefault(w.shard_key, set()).add(pf.shard_of(w, 3))
    assert all(len(s) == 1 for s in by_prompt.values())  # a prompt's seeds, images and answers: one shard


@pytest.mark.parametrize("text", ["3/3", "1/0", "a/2", "1"])
def test_a_bad_shard_says_what_to_pass(text):
    with pytest.raises(ValueError, match="i/N|0..N-1"):
        pf.parse_shard(text)


def test_plan_counts_unet_evaluations_and_says_what_it_cannot_count(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    focus = planning.plan("04", "smoke")  # first steps (1 step × 2 under guidance) + one full example
    c = focus.counts()
    assert c["images"] == 1 and c["unet_evals"] == (c["generations"] - 1) * 2 + 10 * 2
    ablation = planning.plan("06", "smoke", {"store": str(tmp_path / "empty")})  # nothing judged yet
    assert any("pairs" in note for note in ablation.not_counted)
    assert planning.plan("09", "smoke").items == []
    with pytest.raises(ValueError, match="no parameter 'nonsense'"):
        planning.plan("02", "smoke", {"nonsense": 1})


def test_gpu_hours_from_measured_costs(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    p = planning.plan("02", "smoke")
    assert planning.seconds(p, None)[0] is None
    costs = {"costs": {"device": "test GPU", "generation": {"smoke": {
        "seconds_per_image": 2.0, "resolution": 256, "steps": 20, "batch": 8, "dtype": "float16"}},
        "judge": {"model": "tiny", "seconds_per_question": 0.5, "batch": 1}}}
    (tmp_path / "gpu.json").write_text(json.dumps(costs))
    measured = planning.load_costs(tmp_path / "gpu.json")
    # 24 images of 10 steps at 128²: 2 s × (10/20) × (128/256)² each; 240 questions × 0.5 s
    assert planning.seconds(p, measured)[0] == pytest.approx(24 * 2.0 * 0.5 * 0.25 + 240 * 0.5)
    table = planning.cost_table([p], measured, gpus=4, source="gpu.json")
    # 12 rows, each asked about its 2 images × 10 questions in one call of 20 pairs
    assert "| 02 dvd benchmark | 24 | 480 | 240 | 12 | 0.0 | 0.0 | 0.0 |" in table and "test GPU" in table
    assert "GPU-hours unknown" in planning.cost_table([p], planning.load_costs(tmp_path / "absent.json"))


def _launch(store: Path, log: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [str(ROOT / ".venv/bin/accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           "-m", "dvdlib", "prefetch", "02", "--profile", "smoke", "-p", "store", str(store)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _workers(launcher: subprocess.Popen) -> list:
    import psutil

    return [c for c in psutil.Process(launcher.pid).children(recursive=True) if "prefetch" in " ".join(c.cmdline())]


def test_two_processes_one_killed_then_rerun_equal_one_process(tmp_path, monkeypatch):
    """Item of the fault model: a killed worker loses at most its batch in flight; the rerun
    computes only what is missing; the store then holds what one process makes."""
    monkeypatch.chdir(ROOT)
    store = tmp_path / "two"
    launcher = _launch(store, tmp_path / "first.log")
    deadline = time.time() + 300
    while time.time() < deadline and not [p for p in store.rglob("*.png") if not p.name.startswith(".")]:  # a whole image
        time.sleep(0.2)
    workers = _workers(launcher)
    assert len(workers) == 2, (tmp_path / "first.log").read_text()[-3000:]
    os.kill(workers[1].pid, signal.SIGKILL)  # one worker dies mid-run
    launcher.wait(timeout=300)
    assert launcher.returncode != 0
    partial = keys(store)
    assert 0 < len(partial) < len(planning.plan("02", "smoke", {"store": str(store)}).items)
    rerun = _launch(store, tmp_path / "rerun.log")
    assert rerun.wait(timeout=600) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    survived = stored(store)
    pf.prefetch(["02"], "smoke", {"store": str(tmp_path / "one")}, shard="0/1", log=lambda *_: None)
    assert keys(store) == keys(tmp_path / "one")
    # no half-written file under a record's name: a worker killed mid-write can leave only its hidden
    # temporary (`.<name>.<random><suffix>`, never read), and the rerun wrote that record in full
    for p in store.rglob(".*"):
        if p.is_file() and "judges" not in p.parts and p.suffix != ".lock":  # record locks stay by design
            target = re.fullmatch(r"\.(.+\.(?:png|npz|json))\.\w+\.(?:png|npz|json)", p.name)
            assert target and (p.parent / target[1]).is_file(), p
    for f in survived:
        if f.endswith(".png"):  # batches differ between 1 and 2 processes: float sums may move a pixel by one level
            a, b = (np.asarray(Image.open(r / f), dtype=int) for r in (store, tmp_path / "one"))
            assert np.abs(a - b).max() <= 1, f


def test_the_reproduce_page_shows_the_current_paper_cost(monkeypatch):
    """book/reproduce.md includes `dvd plan --profile paper`'s output (book/_paper_cost.md): it must
    be what the plan prints now (remake it with `dvd plan --profile paper > book/_paper_cost.md`)."""
    from dvdlib import plan as planning
    from dvdlib.chapters import BY_NAME
    from dvdlib.prefetch import plans_for

    monkeypatch.chdir(ROOT)
    table = planning.cost_table(plans_for(list(BY_NAME), "paper"), planning.load_costs())
    assert (ROOT / "book" / "_paper_cost.md").read_text().strip() == table.strip()
    assert "{include} _paper_cost.md" in (ROOT / "book" / "reproduce.md").read_text()
