"""The toy findings snapshot's writer: measure the toy model's quality gates, run the chapters
with the toy profile and keep their small outputs in ``toy/findings/`` (read back by
`dvdlib.findings`). Command line: ``dvd toy findings``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..chapters import snapshot_chapters
from ..findings import SNAPSHOT, model_card
from ..store import atomic_write, plain

#: The chapters a snapshot runs with the toy profile (`dvdlib.chapters.Chapter.snapshot`).
CHAPTERS = snapshot_chapters()
PNG_BUDGET = 1_500_000  # bytes of figures a snapshot may keep (the folder stays commit-sized)



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
    ``parameters`` (e.g. a narrower sweep: ``{"sweep_layers": [1, 3]}``) go to every chapter run
    and are recorded beside its outcome. Resumable: a chapter (or the gates) already done for the
    same model hash and parameters is not rerun (unless ``rerun``: after a chapter changed); a new
    model hash starts the snapshot afresh.
    Returns the snapshot's index."""
    import shutil

    from .. import book
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

    sources = book.producers_first(book.chapter_sources(only=list(chapters), cwd=root))
    rel = Path(scratch).resolve()
    for source in sources:
        name = source.stem
        done = index["chapters"].get(name, {})
        same = done.get("model_hash") == card["hash"] and done.get("parameters", {}) == (parameters or {})
        if done.get("ok") and same and not rerun and (out / "results" / f"{name}.json").is_file():
            log(f"[findings] {name}: done for this model, kept")
            continue
        log(f"[findings] {name}: running with profile {profile} …")
        shutil.rmtree(rel / "figures" / name, ignore_errors=True)  # only what this run of the chapter writes
        outcome = book.run_chapter(source, rel / f"{name}.ipynb", profile, cwd=root,
                                   parameters={**(parameters or {}), "out_dir": str(rel)})
        entry = {"ok": outcome.ok, "seconds": round(outcome.seconds, 1), "error": outcome.error,
                 "model_hash": card["hash"], "parameters": parameters or {}}
        results = rel / "results" / f"{name}.json"
        if outcome.ok and results.is_file():
            (out / "results").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(results, out / "results" / f"{name}.json")
            entry["figures"] = _keep_figures(rel / "figures" / name, out / "figures" / name, out, png_budget)
        log(f"[findings] {name}: {'ok' if outcome.ok else 'FAILED ' + str(outcome.error)} in {outcome.seconds:.0f} s")
        index["chapters"][name] = entry
        save()
    _prune_figures(out, index)
    from ..findings import load_snapshot, write_claims

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
