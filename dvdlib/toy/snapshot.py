"""The toy findings snapshot: measure the toy model's quality gates, run the chapters with the toy
profile and keep their small outputs in ``toy/findings/`` (`make_snapshot`), with the card of the
model measured (`model_card`); read it back (`load_snapshot`) for the claims engine
(`dvdlib.findings`) and chapter 09 (`dvdlib.toy.findings`). Command line: ``dvd toy findings``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..chapters import BY_NAME, snapshot_chapters
from ..findings import Snapshot, write_claims
from ..store import atomic_write, plain

#: Where the snapshot is committed, and the command that makes it there.
SNAPSHOT = "toy/findings"
COMMAND = "dvd toy findings --out toy/findings"
#: The chapters a snapshot runs with the toy profile (`dvdlib.chapters.Chapter.snapshot`).
CHAPTERS = snapshot_chapters()
PNG_BUDGET = 1_500_000  # bytes of figures a snapshot may keep (the folder stays commit-sized)


#: The files whose bytes identify a toy model (`model_hash`).
MODEL_FILES = (".safetensors", ".bin", ".json")


def model_hash(folder) -> str:
    """`dvdlib.store.folder_hash` over a model folder's weight and config files: two snapshots
    measured the same model exactly when their hashes agree."""
    from ..store import folder_hash

    if not any(p.suffix in MODEL_FILES for p in Path(folder).rglob("*")):
        raise FileNotFoundError(f"{folder} holds no model files: export the toy model first "
                                f"(dvd toy export --out {Path(folder).parent})")
    return folder_hash(folder, MODEL_FILES)


def model_card(folder) -> dict:
    """Step, training wall time, data hash and model hash of a toy model folder (from the run's
    ``manifest.json`` beside the folder, else the folder's ``toy.json``)."""
    folder = Path(folder)
    manifest = folder.parent / "manifest.json"
    info = json.loads(manifest.read_text()) if manifest.is_file() else {}
    toy = folder / "toy.json"
    info = {**(json.loads(toy.read_text()) if toy.is_file() else {}), **info}
    return {"path": folder.as_posix(), "hash": model_hash(folder), "step": info.get("steps"),
            "wall_time_s": info.get("wall_time_s"), "data_hash": info.get("data_hash"),
            "final_loss": info.get("final_loss"), "description": info.get("model")}


def load_snapshot(folder=SNAPSHOT) -> Snapshot:
    """Read ``folder`` (written by ``dvd toy findings``); a clear error when it is missing."""
    folder = Path(folder)
    index_path = folder / "snapshot.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"no toy findings snapshot in {folder} (no snapshot.json). Make it with\n\n"
                                f"    {COMMAND}\n\n(several minutes per chapter on a CPU; resumable)")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    gates_path = folder / "gates.json"
    gates = json.loads(gates_path.read_text(encoding="utf-8")) if gates_path.is_file() else None
    results = {}
    for path in sorted((folder / "results").glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        results[path.stem] = {row["key"]: row for row in body.get("results", [])}
    return Snapshot(folder, index, gates, results)


def _write_json(path: Path, body) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_text(json.dumps(body, indent=1, ensure_ascii=False)))


def _gates_json(table: pd.DataFrame, seeds) -> dict:
    rows = {}
    for name, r in table.iterrows():
        row = plain(r.to_dict())
        rows[name] = {**row, "hits": int(row["hits"]), "n": int(row["n"])}
    return {"seeds": list(seeds), "gates": rows}


def make_snapshot(out=SNAPSHOT, profile: str = "toy", chapters=CHAPTERS, scratch=None, cwd=None,
                  measure: bool = True, png_budget: int = PNG_BUDGET, parameters: dict | None = None,
                  rerun: bool = False, log=print) -> dict:
    """Measure the toy model's gates and run ``chapters`` with ``profile`` into ``scratch``, then
    keep the small outputs in ``out``: ``snapshot.json`` (model card, per-chapter outcome),
    ``gates.json``, ``results/<chapter>.json`` and PNG figures up to ``png_budget`` bytes.
    ``parameters`` (e.g. a narrower sweep: ``{"sweep_layers": [1, 3]}``) go to every chapter run,
    after the chapter's own `dvdlib.chapters.Chapter.snapshot_parameters`, and are recorded beside
    its outcome. Resumable: a chapter (or the gates) already done for the
    same model hash and parameters is not rerun (unless ``rerun``: after a chapter changed); a new
    model hash starts the snapshot afresh.
    Returns the snapshot's index."""
    import shutil

    from .. import scheduler
    from ..profiles import load_profile
    from ..store import Store, model_key

    root = Path(cwd or ".").resolve()
    out = (root / out) if not Path(out).is_absolute() else Path(out)
    scratch = Path(scratch) if scratch else root / "store" / "findings-run"
    P = load_profile(profile)
    card = {**model_card(root / P.model), "path": Path(P.model).as_posix()}
    index_path = out / "snapshot.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    if index.get("model", {}).get("hash") != card["hash"]:
        if index:
            log(f"[findings] model changed ({index.get('model', {}).get('hash', '?')[:12]} → {card['hash'][:12]}): starting afresh")
        for old in ("results", "figures"):
            shutil.rmtree(out / old, ignore_errors=True)
        (out / "gates.json").unlink(missing_ok=True)
        index = {"model": card, "profile": profile, "chapters": {}}
    index["model"] = card
    save = lambda: _write_json(index_path, index)
    save()

    if measure and not (out / "gates.json").is_file():
        from .gates import measure_gates
        from .judge import load_toy_judge
        from .model import load_toy

        log(f"[findings] measuring the gates of {P.model} with {len(P.seeds)} seeds")
        store = Store(root / P.store, model_key(P.model), P.sampler())
        table = measure_gates(load_toy(root / P.model), load_toy_judge(root / P.judge), store, P.seeds,
                              batch_size=P.batch_size)
        _write_json(out / "gates.json", {**_gates_json(table, P.seeds), "model_hash": card["hash"]})
        save()

    sources = scheduler.producers_first(scheduler.chapter_sources(only=list(chapters), cwd=root))
    rel = Path(scratch).resolve()
    for source in sources:
        name = source.stem
        own = BY_NAME[name].snapshot_parameters if name in BY_NAME else {}  # the twins at the K their verdicts need
        given = {**own, **(parameters or {})}
        done = index["chapters"].get(name, {})
        same = done.get("model_hash") == card["hash"] and done.get("parameters", {}) == given
        if done.get("ok") and same and not rerun and (out / "results" / f"{name}.json").is_file():
            log(f"[findings] {name}: done for this model, kept")
            continue
        log(f"[findings] {name}: running with profile {profile} …")
        shutil.rmtree(rel / "figures" / name, ignore_errors=True)  # only what this run of the chapter writes
        outcome = scheduler.run_chapter(source, rel / f"{name}.ipynb", profile, cwd=root,
                                   parameters={**given, "out_dir": str(rel)})
        entry = {"ok": outcome.ok, "seconds": round(outcome.seconds, 1), "error": outcome.error,
                 "model_hash": card["hash"], "parameters": given}
        results = rel / "results" / f"{name}.json"
        if outcome.ok and results.is_file():
            (out / "results").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(results, out / "results" / f"{name}.json")
            entry["figures"] = _keep_figures(rel / "figures" / name, out / "figures" / name, out, png_budget)
        log(f"[findings] {name}: {'ok' if outcome.ok else 'FAILED ' + str(outcome.error)} in {outcome.seconds:.0f} s")
        index["chapters"][name] = entry
        save()
    _prune_figures(out, index)
    log(f"[findings] claims: {write_claims(load_snapshot(out))}")
    return index


def _prune_figures(out: Path, index: dict) -> None:
    """Delete every PNG under ``out/figures`` that the index does not list: the snapshot holds
    exactly the figures its chapters wrote in the run it records."""
    listed = {(c, f) for c, e in index.get("chapters", {}).items() for f in e.get("figures", [])}
    for png in (out / "figures").rglob("*.png") if (out / "figures").is_dir() else []:
        if (png.parent.name, png.name) not in listed:
            png.unlink()


def _keep_figures(src: Path, dst: Path, out: Path, budget: int) -> list[str]:
    """Copy a chapter's PNGs (after deleting the ones an earlier run of it kept) while the
    snapshot's figures stay under ``budget`` bytes."""
    import shutil

    for old in dst.glob("*.png") if dst.is_dir() else []:
        old.unlink()
    used = sum(p.stat().st_size for p in (out / "figures").rglob("*.png")) if (out / "figures").is_dir() else 0
    kept = []
    for png in sorted(src.glob("*.png")) if src.is_dir() else []:
        size = png.stat().st_size
        if used + size > budget:
            continue
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, dst / png.name)
        used += size
        kept.append(png.name)
    return kept
