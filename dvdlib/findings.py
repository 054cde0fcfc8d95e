"""What the toy world shows for each of the paper's claims: a committed snapshot of a toy run
(`toy/findings/`, written by ``dvd toy findings``, `dvdlib.toy.snapshot`), read back as one table —
claim, measurement, sample size, 95% interval, verdict (the rule of `dvdlib.stats.verdict`).

A verdict is about the toy model named in the snapshot, never about Stable Diffusion; when the
model's quality gates fail, every verdict is about a model that does not yet draw what it is
asked, and the chapter says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .report import percent
from .stats import ALPHA, MIN_N, verdict

SNAPSHOT = "toy/findings"
COMMAND = "dvd toy findings --out toy/findings"

# ------------------------------------------------------------------------------ the snapshot

def model_hash(folder) -> str:
    """`dvdlib.store.folder_hash` over a model folder's weight and config files: two snapshots
    measured the same model exactly when their hashes agree."""
    from .store import folder_hash

    if not any(p.suffix in MODEL_FILES for p in Path(folder).rglob("*")):
        raise FileNotFoundError(f"{folder} holds no model files: export the toy model first "
                                f"(dvd toy export --out {Path(folder).parent})")
    return folder_hash(folder, MODEL_FILES)


#: The files whose bytes identify a toy model (`model_hash`).
MODEL_FILES = (".safetensors", ".bin", ".json")


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


#: The layers where the paper finds DominanceBench's Focus Score significantly higher (paper §3.4).
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
    """The quality gates: rate, 95% Clopper–Pearson interval, required, pass."""
    if snap.gates is None:
        return pd.DataFrame(columns=["hits", "n", "rate", "95% CI", "required", "result"])
    rows = []
    for name, g in snap.gates["gates"].items():
        required = g.get("required")
        result = ("pass" if g.get("passed") else "FAIL") if required is not None else (
            "pass" if g.get("n") and g["hits"] == g["n"] else "see rate")
        rows.append({"gate": name, "hits": g["hits"], "n": g["n"], "rate": percent(g["rate"], 1),
                     "95% CI": _interval(g.get("ci_low"), g.get("ci_high"), as_percent=True),
                     "required": f"≥ {required:.0%}" if required is not None else "all differ",
                     "result": result})
    return pd.DataFrame(rows).set_index("gate")


def gates_passed(snap: Snapshot) -> bool | None:
    """True when every gate passes, None if unmeasured (a snapshot older than the conditioning
    threshold passes that gate only when every pair of prompts differs)."""
    if snap.gates is None:
        return None
    return all(r != "FAIL" and r != "see rate" for r in gates_table(snap)["result"])


def _reads(claim: Claim, key: str) -> bool:
    """Whether ``claim`` reads the results row ``key`` (a ``*`` key: every row it prefixes but its summary)."""
    if claim.key.endswith("*"):
        prefix = claim.key[:-1]
        return key.startswith(prefix) and key != prefix + "summary"
    return key == claim.key


def _rows_for(snap: Snapshot, claim: Claim) -> list[dict]:
    return [r for k, r in snap.results.get(claim.chapter, {}).items() if _reads(claim, k)]


def unwritten_claims(chapter: str, keys) -> list[str]:
    """The claims on ``chapter``'s results whose key none of ``keys`` (the keys a run of the chapter
    wrote) provides: the contract between a chapter and this module, empty when it holds."""
    keys = list(keys)
    return [c.name for c in CLAIMS if c.chapter == chapter and not any(_reads(c, k) for k in keys)]


#: The structured fields of a results row that a claim reads (`dvdlib.report.Report.add`).
STRUCTURED = ("value", "n", "ci", "p", "test", "hits", "layers", "median_before")


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
            s = {k: row.get(k) for k in STRUCTURED}
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
                "95% CI": _interval(*(s.get("ci") or [None, None]), as_percent=s.get("test") == "rate"),
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


def _num(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "?"
    return f"{x:.3g}"


def _interval(low, high, as_percent: bool = False) -> str:
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return "—"
    return f"[{percent(low, 1)}, {percent(high, 1)}]" if as_percent else f"[{_num(low)}, {_num(high)}]"


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


# ------------------------------------------------------------------------------ the chapter's page
# Each of these takes the snapshot or None (no snapshot: the page says so once and shows nothing).


def read_snapshot(folder=SNAPSHOT) -> Snapshot | None:
    """`load_snapshot`, or None after saying how to make one when ``folder`` holds none."""
    try:
        return load_snapshot(folder)
    except FileNotFoundError as missing:
        print(missing)
        return None


def profile_of(snap: Snapshot | None, default: str) -> str:
    """The profile the snapshot's chapters ran with (``default`` without a snapshot)."""
    return snap.index.get("profile", "toy") if snap is not None else default


def introduce(snap: Snapshot | None, run, folder, book_profile: str) -> None:
    """Show what the page reads (the profile card, the toy model card, whether the model has been
    trained further since); without a snapshot, record the rows the prose quotes as "no snapshot"."""
    from IPython.display import Markdown, display

    report = run.report
    if snap is None:  # the prose below still quotes these keys
        report.add("model_step", "toy model: training step", "—", "no snapshot")
        report.add("gates", "every quality gate passes", "—", "no snapshot")
        report.add("verdicts", "measurements reproduced / not reproduced / inconclusive", "—", "no snapshot")
        report.save()
        return
    display(run.card(note=f"\n\n**This page reads `{folder}`**; the rest of this book was run with the "
                          f"profile `{Path(book_profile).stem}`."))
    display(model_table(snap))
    model = run.profile.model
    current = model_card(model) if Path(model).is_dir() else None
    if current and current["hash"] != snap.index["model"]["hash"]:
        display(Markdown(f"**The toy model has been trained further since this snapshot**: the snapshot measured "
                         f"step {snap.index['model']['step']}, `{model}` is now at step {current['step']}. "
                         f"`{COMMAND}` measures the current model."))


def chapters_table(snap: Snapshot | None) -> pd.DataFrame | None:
    """Per chapter of the snapshot: whether it ran, how long, with which parameters, its error."""
    if snap is None:
        return None
    return pd.DataFrame(snap.index.get("chapters", {})).T.reindex(columns=["ok", "seconds", "parameters", "error"])


def add_gates(snap: Snapshot | None, run) -> pd.DataFrame | None:
    """Record each quality gate and whether all pass; save the gates figure; the gates table."""
    if snap is None:
        return None
    if snap.gates is None:
        run.report.add("gates", "every quality gate passes", "—", "not measured")
        print("This snapshot has no gates.json: the gates were not measured (dvd toy findings without --no-gates).")
        return None
    gates = gates_table(snap)
    run.save(gates_figure(snap), "gates")
    for name, g in gates.iterrows():
        run.report.add(f"gate_{name}", f"gate: {name}", g["required"], f"{g['rate']} {g['95% CI']} — {g['result']}")
    run.report.add("gates", "every quality gate passes", "—", "yes" if gates_passed(snap) else "no")
    return gates


def judge_agreement(run) -> pd.DataFrame | None:
    """How the profile's judge agrees with people, where its world keeps such a check
    (`dvdlib.worlds.World.judge_check`); None, saying why, where it does not."""
    check = run.world.judge_check
    table = check(run.profile.judge) if check is not None else None
    if table is None or table.empty:
        print(f"{run.profile.judge} has no hand-check results (train or rescore the judge: "
              "dvd toy judge --report-only)")
        return None
    return table


def add_claims(snap: Snapshot | None, report) -> pd.DataFrame | None:
    """Record every claim's measurements and verdicts, the verdict counts and the model's step;
    the claims table."""
    from .paper import CLAIMS as WORDS

    if snap is None:
        return None
    claims = claims_table(snap)
    for name, group in claims.groupby("claim", sort=False):
        report.add(f"claim_{name}", f"{name} ({group.chapter.iloc[0]})", WORDS[name],
                   "; ".join(f"{r['this run']} → {r['verdict']}" for _, r in group.iterrows()))
    counts = claims.verdict.value_counts()
    report.add("verdicts", "measurements reproduced / not reproduced / inconclusive", "—",
               f"{counts.get('reproduced', 0)} / {counts.get('not reproduced', 0)} / {counts.get('inconclusive', 0)}"
               f" of {len(claims)}")
    report.add("model_step", "toy model: training step", "—", snap.index["model"].get("step"))
    return claims[["claim", "toy measurement", "this run", "n", "95% CI", "p", "verdict", "why"]].set_index("claim")


def claim_paragraphs(snap: Snapshot | None):
    """`paragraphs` as one Markdown block (nothing without a snapshot)."""
    from IPython.display import Markdown

    return Markdown("\n\n".join(paragraphs(snap))) if snap is not None else None


def show_figures(snap: Snapshot | None) -> None:
    """Every figure the snapshot kept, under its chapter's name."""
    from IPython.display import Image, Markdown, display

    if snap is None:
        return
    shown = figures(snap)
    for chapter, png in shown:
        display(Markdown(f"**{chapter}** — `{png.name}`"), Image(filename=str(png)))
    if not shown:
        print("The snapshot kept no figures.")
