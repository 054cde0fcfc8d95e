"""What the toy world shows for each of the paper's claims (issue 6): a committed snapshot of a
toy run, read back as one table — claim, measurement, sample size, 95% interval, verdict.

Two halves:

- **uncertainty helpers** the chapters call when they record a number (`rate`, `difference`,
  `location`): each returns the structured fields ``value``, ``n``, ``ci``, ``p`` that
  ``Report.add(..., **fields)`` stores in the results JSON beside the printed string;
- **the snapshot** (`toy/findings/`, written by ``dvd toy findings``): `load_snapshot`,
  `gates_table`, `claims_table`, with the verdict rule `verdict`.

Verdict rule (documented here and printed by the chapter). Each claim has a direction (the
paper's effect is a positive or a negative quantity) and a no-effect value (0 for a difference,
the chance level for a rate):

- **reproduced** — the 95% interval lies entirely on the paper's side of the no-effect value
  (for a test without an interval: one-sided p < 0.05 in the paper's direction);
- **not reproduced** — the estimate is at the no-effect value or on the other side;
- **inconclusive** — the estimate is on the paper's side but the interval includes no effect,
  or there is nothing to measure (no data, fewer than `MIN_N` prompts, the claim does not apply
  to the toy world).

A verdict is about the toy model named in the snapshot, never about Stable Diffusion; when the
model's quality gates fail, every verdict is about a model that does not yet draw what it is
asked, and the chapter says so.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
#: Fewer prompts than this (in the smaller set) give no verdict: "inconclusive, too few".
MIN_N = 5
N_RESAMPLES = 2000
SNAPSHOT = "toy/findings"
COMMAND = "dvd toy findings --out toy/findings"

# ------------------------------------------------------------------------------ uncertainty


def rate(hits: int, n: int) -> dict:
    """A rate ``hits / n`` with its Clopper–Pearson 95% interval (exact binomial; scipy)."""
    hits, n = int(hits), int(n)
    if n < 0 or not 0 <= hits <= max(n, 0):
        raise ValueError(f"a rate needs 0 ≤ hits ≤ n, got {hits}/{n}")
    if n == 0:
        return {"value": None, "n": 0, "ci": None, "hits": 0, "test": "rate"}
    ci = stats.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="exact")
    return {"value": hits / n, "n": n, "ci": [float(ci.low), float(ci.high)], "hits": hits, "test": "rate"}


def _bootstrap(data, statistic, seed: int) -> list | None:
    """Percentile bootstrap 95% interval (scipy), or None when every resample is the same."""
    res = stats.bootstrap(data, statistic, n_resamples=N_RESAMPLES, method="percentile",
                          confidence_level=0.95, random_state=np.random.default_rng(seed), vectorized=False)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return None if math.isnan(low) or math.isnan(high) else [low, high]


def difference(a, b, alternative: str = "greater", seed: int = 0) -> dict:
    """Mean of ``a`` minus mean of ``b`` (two independent samples, e.g. per-prompt DvD Scores of
    the benchmark and of the balanced set): percentile-bootstrap 95% interval and a one-sided
    Mann–Whitney U p-value (``alternative``: the paper's direction)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("difference() takes two 1-D samples")
    out = {"value": None, "n": [len(a), len(b)], "ci": None, "p": None, "test": "difference"}
    if len(a) == 0 or len(b) == 0:
        return out
    out["value"] = float(a.mean() - b.mean())
    if len(a) > 1 and len(b) > 1:
        if np.ptp(np.r_[a, b]) > 0:
            out["ci"] = _bootstrap((a, b), lambda x, y: np.mean(x) - np.mean(y), seed)
            out["p"] = float(stats.mannwhitneyu(a, b, alternative=alternative).pvalue)
        else:
            out["ci"], out["p"] = [0.0, 0.0], 1.0
    return out


def location(x, alternative: str = "less", statistic: str = "mean", seed: int = 0) -> dict:
    """Mean (or median) of one sample of paired changes, e.g. per-prompt attention change over an
    interval: percentile-bootstrap 95% interval and a one-sided Wilcoxon signed-rank p-value
    against zero (``alternative``: the paper's direction)."""
    x = np.asarray(x, float)
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    f = np.mean if statistic == "mean" else np.median
    out = {"value": None, "n": len(x), "ci": None, "p": None, "test": f"location ({statistic})"}
    if len(x) == 0:
        return out
    out["value"] = float(f(x))
    if len(x) > 1:
        if np.any(x != 0):
            out["ci"] = _bootstrap((x,), f, seed) if np.ptp(x) > 0 else [float(x[0])] * 2
            out["p"] = float(stats.wilcoxon(x, alternative=alternative).pvalue)
        else:
            out["ci"], out["p"] = [0.0, 0.0], 1.0
    return out


def auc(a, b, seed: int = 0) -> dict:
    """Area under the ROC curve of a score that should be higher in ``a`` (e.g. benchmark rows) than
    in ``b`` (control rows): P(a > b) + ½ P(a = b) = U / (n_a n_b), scale-free (no threshold); a
    percentile-bootstrap 95% interval and the one-sided Mann–Whitney p-value (no effect: 0.5)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = {"value": None, "n": [len(a), len(b)], "ci": None, "p": None, "test": "AUC (Mann–Whitney)"}
    if len(a) == 0 or len(b) == 0:
        return out
    area = lambda x, y: stats.mannwhitneyu(x, y).statistic / (len(x) * len(y))
    out["value"] = float(area(a, b))
    if len(a) > 1 and len(b) > 1:
        out["ci"] = _bootstrap((a, b), area, seed) if np.ptp(np.r_[a, b]) > 0 else [0.5, 0.5]
        out["p"] = float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)
    return out


def verdict(value, ci=None, p=None, direction: int = 1, null: float = 0.0, applies: bool = True) -> str:
    """The module's rule: ``reproduced`` / ``not reproduced`` / ``inconclusive`` for an effect
    expected on the ``direction`` side (+1 above, −1 below) of ``null``."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if not applies or value is None or (isinstance(value, float) and math.isnan(value)):
        return "inconclusive"
    if direction * (value - null) <= 0:
        return "not reproduced"
    if ci is not None:
        bound = ci[0] if direction == 1 else ci[1]
        return "reproduced" if direction * (bound - null) > 0 else "inconclusive"
    if p is not None:
        return "reproduced" if p < ALPHA else "inconclusive"
    return "inconclusive"


# ------------------------------------------------------------------------------ the snapshot

#: The chapters a snapshot runs with the toy profile (01's LAION/CLIP experiment has no toy claim).
CHAPTERS = ("02", "03", "04", "05", "06", "07", "08")
PNG_BUDGET = 1_500_000  # bytes of figures a snapshot may keep (the folder stays commit-sized)


def model_hash(folder) -> str:
    """SHA-256 over a model folder's weight and config files (names and bytes, sorted): two
    snapshots measured the same model exactly when their hashes agree."""
    import hashlib

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".json"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no model files: export the toy model first "
                                f"(dvd toy export --out {folder.parent})")
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


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


def _write_json(path: Path, body) -> None:
    from .store import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_text(json.dumps(body, indent=1, ensure_ascii=False)))


def _gates_json(table: pd.DataFrame, seeds) -> dict:
    rows = {}
    for name, r in table.iterrows():
        row = {k: (None if isinstance(v, float) and math.isnan(v) else
                   (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
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

    from . import book
    from .models import model_key
    from .profiles import load_profile
    from .store import Store

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
        from .toy.gates import measure_gates
        from .toy.judge import load_toy_judge
        from .toy.model import load_toy

        log(f"[findings] measuring the gates of {P.model} with {len(P.seeds)} seeds")
        store = Store(root / P.store, model_key(P.model), P.sampler())
        table = measure_gates(load_toy(root / P.model), load_toy_judge(root / P.judge), store, P.seeds,
                              batch_size=P.batch_size)
        _write_json(out / "gates.json", {**_gates_json(table, P.seeds), "model_hash": card["hash"]})
        save()

    sources = book.chapter_sources(only=list(chapters), cwd=root)
    rel = Path(scratch).resolve()
    for source in sources:
        name = source.stem
        done = index["chapters"].get(name, {})
        same = done.get("model_hash") == card["hash"] and done.get("parameters", {}) == (parameters or {})
        if done.get("ok") and same and not rerun and (out / "results" / f"{name}.json").is_file():
            log(f"[findings] {name}: done for this model, kept")
            continue
        log(f"[findings] {name}: running with profile {profile} …")
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
    return index


def _keep_figures(src: Path, dst: Path, out: Path, budget: int) -> list[str]:
    """Copy a chapter's PNGs while the snapshot's figures stay under ``budget`` bytes."""
    import shutil

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


# ------------------------------------------------------------------------------ reading it back


@dataclass(frozen=True)
class Claim:
    """One paper claim and where the toy snapshot measures it.

    ``key`` names the row of ``chapter``'s results (a trailing ``*`` takes every row whose key
    starts with it, e.g. one replacement row per model); ``direction``/``null`` feed `verdict`;
    ``requires`` (field, minimum, reason): the measurement only tests the claim when the row's
    ``field`` reaches ``minimum`` (e.g. replacement can only relieve a collapse that is there);
    otherwise the verdict is inconclusive, with the reason."""

    name: str
    chapter: str
    key: str
    direction: int = 1
    null: float = 0.0
    measure: str = ""
    note: str = ""
    requires: tuple | None = None
    empty: str = "nothing to measure in this run (n = 0)"


#: The layers where the paper finds DominanceBench's Focus Score significantly higher (SPEC §3.4).
PAPER_FOCUS_LAYERS = frozenset(range(5, 11))

CLAIMS = (
    Claim("suppression", "02_dvd_benchmark", "dvd_gap", measure="mean DvD, rigid+object − object+object prompts"),
    Claim("focus_layers", "04_focus_score", "fs_significant_layers",
          measure="layers with Focus Score rigid+object > object+object (one-sided Mann–Whitney, corrected)",
          note="the verdict counts the significant layers among the paper's 5–10 (none: not reproduced there)"),
    Claim("peak_token", "04_focus_score", "fs_peak_on_concept", null=0.5,
          measure="share of prompts whose peak token is the rigid concept's", note="no effect = half the prompts"),
    Claim("dominated_falls", "05_temporal_dynamics", "dominated_first", direction=-1,
          measure="mean change of the object token's deviation over the first interval"),
    Claim("dominated_below", "05_temporal_dynamics", "claim", direction=-1,
          measure="mean of (object − rigid concept) change over the first interval, per prompt"),
    Claim("single_head", "06_head_ablation", "single_dvd",
          measure="collapsed prompts mitigated by at least one single head",
          note="the paper's contrast, memorized prompts, does not exist in the toy world",
          empty="no rigid+object prompt is collapsed before ablation (mean DvD ≥ τ), so no head has anything "
                "to mitigate (n = 0)"),
    Claim("multi_head", "06_head_ablation", "multi_dvd", measure="collapsed prompts mitigated by ablating a whole layer",
          empty="no rigid+object prompt is collapsed before ablation (mean DvD ≥ τ), so no layer has anything "
                "to mitigate (n = 0)"),
    Claim("detection", "08_detection_replacement", "det_gap",
          measure="flagged rigid+object rows − flagged object+object rows at the paper's operating point "
                  "(percentage points)", note="the threshold 0.010 is Stable Diffusion's scale"),
    Claim("detection_auc", "08_detection_replacement", "det_auc", null=0.5,
          measure="area under the ROC curve of the detector's score, rigid+object vs object+object rows",
          note="no threshold; no effect = 0.5"),
    Claim("replacement", "08_detection_replacement", "repl_*", measure="median DvD drop, concept → category word",
          requires=("median_before", 48.0, "the median DvD before replacement is below τ = 48: there is no "
                                           "collapse for the category word to relieve")),
    Claim("causal", "03_diversity_causal", "paired",
          measure="mean DvD, fewest − most variants of the new figure (paired over prompts)"),
    Claim("noise_norm", "07_memorization", "bench_over_balanced",
          measure="mean noise-prediction norm, rigid+object − object+object",
          note="the memorized set of the paper's order does not exist in the toy world"),
)


@dataclass
class Snapshot:
    """A findings snapshot read back: the model card, the gates, each chapter's results rows."""

    folder: Path
    index: dict
    gates: dict | None
    results: dict = field(default_factory=dict)  # chapter → {key: row}


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


def figures(snap: Snapshot) -> list[tuple[str, Path]]:
    """The PNGs the snapshot kept, as (chapter, path), in chapter order."""
    return [(c, snap.folder / "figures" / c / name) for c, entry in sorted(snap.index.get("chapters", {}).items())
            for name in entry.get("figures", []) if (snap.folder / "figures" / c / name).is_file()]


def model_table(snap: Snapshot) -> pd.DataFrame:
    """The toy model card of a snapshot: what was measured."""
    m = snap.index.get("model", {})
    wall = m.get("wall_time_s")
    rows = {"model folder": m.get("path"), "training step": m.get("step"),
            "training wall time": f"{wall / 3600:.2f} h ({wall:.0f} s)" if wall else "unknown",
            "training data hash": m.get("data_hash"), "model hash (SHA-256)": m.get("hash"),
            "final training loss": m.get("final_loss"), "profile of the chapters": snap.index.get("profile")}
    return pd.Series(rows, name="toy model").to_frame()


def gates_table(snap: Snapshot) -> pd.DataFrame:
    """The quality gates (issue 6 item 3): rate, 95% Clopper–Pearson interval, required, pass."""
    if snap.gates is None:
        return pd.DataFrame(columns=["hits", "n", "rate", "95% CI", "required", "result"])
    rows = []
    for name, g in snap.gates["gates"].items():
        required = g.get("required")
        result = ("pass" if g.get("passed") else "FAIL") if required is not None else (
            "pass" if g.get("n") and g["hits"] == g["n"] else "see rate")
        rows.append({"gate": name, "hits": g["hits"], "n": g["n"], "rate": _pct(g["rate"]),
                     "95% CI": _interval(g.get("ci_low"), g.get("ci_high"), percent=True),
                     "required": f"≥ {required:.0%}" if required is not None else "all differ",
                     "result": result})
    return pd.DataFrame(rows).set_index("gate")


def gates_passed(snap: Snapshot) -> bool | None:
    """True when every gate passes, None if unmeasured (a snapshot older than the conditioning
    threshold passes that gate only when every pair of prompts differs)."""
    if snap.gates is None:
        return None
    return all(r != "FAIL" and r != "see rate" for r in gates_table(snap)["result"])


def _rows_for(snap: Snapshot, claim: Claim) -> list[dict]:
    rows = snap.results.get(claim.chapter, {})
    if claim.key.endswith("*"):
        prefix = claim.key[:-1]
        return [r for k, r in rows.items() if k.startswith(prefix) and k != prefix + "summary"]
    return [rows[claim.key]] if claim.key in rows else []


_P_TEXT = re.compile(r"p\s*=\s*([0-9.eE+-]+)")
_OVER_N = re.compile(r"over\s+(\d+)\s+prompts")


def _structured(row: dict) -> dict:
    """The row's structured numbers; for a row with only strings (a chapter that does not record
    them yet), ``value`` and ``p`` read from "±X over N prompts, p = P"."""
    if "value" in row or "n" in row:
        return {k: row.get(k) for k in ("value", "n", "ci", "p", "test", "hits", "layers", "median_before")}
    text = row.get("this run", "")
    lead, p, n = re.match(r"\s*([+-]?[0-9.]+(?:e[+-]?\d+)?)", text), _P_TEXT.search(text), _OVER_N.search(text)
    return {"value": float(lead.group(1)) if lead else None, "n": int(n.group(1)) if n else None,
            "ci": None, "p": float(p.group(1)) if p else None, "test": "read from the printed row"}


def claims_table(snap: Snapshot) -> pd.DataFrame:
    """One row per (claim, measurement): the paper's words, the toy measurement, n, 95% CI, p and
    the verdict by `verdict`'s rule."""
    from .paper import CLAIMS as WORDS

    out = []
    for claim in CLAIMS:
        base = {"claim": claim.name, "paper says": WORDS[claim.name], "chapter": claim.chapter,
                "toy measurement": claim.measure}
        chapter = snap.index.get("chapters", {}).get(claim.chapter)
        rows = _rows_for(snap, claim)
        if not rows:
            why = ("not in this snapshot" if chapter is None else
                   f"the chapter failed: {chapter.get('error')}" if not chapter.get("ok") else
                   f"no row {claim.key!r} in its results")
            out.append({**base, "this run": "—", "n": "—", "95% CI": "—", "p": "—",
                        "verdict": "inconclusive", "why": f"not measured: {why}"})
            continue
        for row in rows:
            s = _structured(row)
            value = s["value"]
            if claim.name == "focus_layers" and row.get("layers") is not None:
                # the claim is about *which* layers: count the significant ones among the paper's
                value = s["value"] = len(set(row["layers"]) & PAPER_FOCUS_LAYERS)
                s["ci"] = None  # a count of layers: the test's p is the evidence
            field_, minimum, reason = claim.requires or (None, None, None)
            unmet = field_ is not None and s.get(field_) is not None and s[field_] < minimum
            n = s.get("n")
            if not unmet and n is not None and min(np.atleast_1d(n)) < MIN_N:
                unmet, reason = True, f"only {_n(n)} prompt(s) measured: too few for a verdict (fewer than {MIN_N})"
            v = "inconclusive" if unmet else verdict(value, s.get("ci"), s.get("p"), claim.direction, claim.null)
            why = reason if unmet else _why(v, claim, s)
            out.append({**base, "toy measurement": claim.measure + (
                f" ({row['quantity'].split(':')[-1].strip()})" if claim.key.endswith("*") else ""),
                "this run": row.get("this run"), "n": _n(s.get("n")),
                "95% CI": _interval(*(s.get("ci") or [None, None]), percent=s.get("test") == "rate"),
                "p": "—" if s.get("p") is None else f"{s['p']:.3g}", "verdict": v, "why": why})
    return pd.DataFrame(out)


def _why(v: str, claim: Claim, s: dict) -> str:
    side = "above" if claim.direction == 1 else "below"
    value = s.get("value")
    if value is None:
        return claim.empty + (f"; {claim.note}" if claim.note else "")
    if v == "reproduced":
        text = (f"the 95% interval lies {side} {claim.null:g}" if s.get("ci") else f"one-sided p < {ALPHA}")
    elif v == "not reproduced":
        ci, against = s.get("ci"), "below" if claim.direction == 1 else "above"
        opposite = ci is not None and (ci[1] < claim.null if claim.direction == 1 else ci[0] > claim.null)
        text = f"the estimate {value:.3g} is not {side} {claim.null:g}" + (
            f" (its 95% interval lies entirely {against}: the opposite of the paper's effect)" if opposite else "")
    else:
        text = f"the estimate is {side} {claim.null:g} but the 95% interval includes it" if s.get("ci") else \
            f"the estimate is {side} {claim.null:g} but p ≥ {ALPHA} (or no test)"
    return text + (f"; {claim.note}" if claim.note else "")


def paragraphs(snap: Snapshot) -> list[str]:
    """One paragraph per claim (Markdown): the paper's words, what the toy snapshot measured with
    its sample size and interval, the verdict, and what limits the reading; led by the gates'
    caveat when they fail."""
    table = claims_table(snap)
    passed = gates_passed(snap)
    step = snap.index.get("model", {}).get("step")
    texts = [] if passed else [
        f"*First, the limit of every verdict below:* the model (training step {step}) does not pass its quality "
        "gates, so each verdict is a statement about a model that does not yet reliably draw what it is asked, "
        "not about a well-trained one — and still less about Stable Diffusion."]
    for name, group in table.groupby("claim", sort=False):
        first = group.iloc[0]
        parts = []
        for _, r in group.iterrows():
            if r["this run"] == "—":
                parts.append(f"{r['why']} — **inconclusive**.")
                continue
            ci = f", 95% CI {r['95% CI']}" if r["95% CI"] != "—" else ""
            p = f", p = {r['p']}" if r["p"] != "—" else ""
            parts.append(f"{r['toy measurement']}: **{r['this run']}** (n = {r['n']}{ci}{p}) — "
                         f"**{r['verdict']}**: {r['why']}.")
        texts.append(f"**{name}** ({first.chapter}). *The paper:* {first['paper says']} *The toy world:* "
                     + " ".join(parts) + _control_note(snap, name))
    return texts


def _control_note(snap: Snapshot, name: str) -> str:
    """For the claims that compare rigid+object with object+object prompts: how often the model
    composes two objects at all (the control only means "no collapse" when it does)."""
    gate = ((snap.gates or {}).get("gates") or {}).get("composition")
    if name != "suppression" or not gate or gate.get("passed"):
        return ""
    return (f" The control pairs two flexible objects, which this model draws together in only "
            f"{gate['hits']}/{gate['n']} images (composition gate): the control collapses too, so the "
            "comparison is between two kinds of failure.")


def _pct(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def _num(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "?"
    return f"{x:.3g}"


def _interval(low, high, percent: bool = False) -> str:
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return "—"
    return f"[{_pct(low)}, {_pct(high)}]" if percent else f"[{_num(low)}, {_num(high)}]"


def _n(n) -> str:
    if n is None:
        return "—"
    return " vs ".join(str(int(x)) for x in n) if isinstance(n, (list, tuple)) else str(int(n))


def gates_figure(snap: Snapshot):
    """The gates as rates with their 95% intervals and the required levels (a dashed mark)."""
    import matplotlib.pyplot as plt

    gates = (snap.gates or {}).get("gates", {})
    fig, ax = plt.subplots(figsize=(5.5, 2.6))
    names = list(gates)
    for i, name in enumerate(names):
        g = gates[name]
        ok = g.get("passed") if g.get("required") is not None else g["hits"] == g["n"]
        ax.errorbar(g["rate"], i, xerr=[[g["rate"] - g["ci_low"]], [g["ci_high"] - g["rate"]]], fmt="o",
                    color="tab:green" if ok else "tab:red", capsize=4)
        if g.get("required") is not None:
            ax.plot([g["required"]] * 2, [i - 0.3, i + 0.3], "k--", lw=1)
    ax.set_yticks(range(len(names)), [f"{n} (n = {gates[n]['n']})" for n in names])
    ax.set_xlim(0, 1.02)
    ax.invert_yaxis()
    ax.set_xlabel("rate, 95% Clopper–Pearson interval (dashed: required)")
    ax.set_title(f"toy model at step {snap.index.get('model', {}).get('step')}: quality gates", fontsize=10)
    fig.tight_layout()
    return fig
