"""Chapter 09's page: the toy world's findings snapshot (`toy/findings/`, `dvdlib.toy.snapshot`)
read back through the claims engine (`dvdlib.findings`) — the toy model card, the quality gates,
the claims and their verdicts, the figures kept — and where toy world 2 (`dvdlib.toy2`) stands.

Each page function takes the snapshot or None (no snapshot: the page says so once and shows
nothing). A verdict is about the toy model named in the snapshot, never about Stable Diffusion.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..findings import (VERDICTS, Snapshot, claims_csv, claims_table, fmt_interval, fmt_num, gates_passed, gates_table,
                        readable_claims)
from ..report import percent
from ..stats import gate_passes
from .snapshot import COMMAND, SNAPSHOT, load_snapshot, model_card


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
            "training data hash": _short(m.get("data_hash")), "model hash (SHA-256)": _short(m.get("hash")),
            "final training loss": m.get("final_loss"), "profile of the chapters": snap.index.get("profile")}
    return pd.Series(rows, name="toy model").to_frame()


def _short(digest: str | None) -> str:
    """A hash's first 16 hex digits, enough to tell models apart (the whole one is in the
    snapshot's ``snapshot.json``)."""
    return f"{digest[:16]}…" if digest else "unknown"


def gates_figure(snap: Snapshot):
    """The gates as rates with their 95% intervals and the required levels (a dashed mark)."""
    import matplotlib.pyplot as plt

    gates = (snap.gates or {}).get("gates", {})
    fig, ax = plt.subplots(figsize=(5.5, 2.6))
    names = list(gates)
    for i, name in enumerate(names):
        g = gates[name]
        ok = gate_passes(g.get("rate"), g["required"]) if g.get("required") is not None else g["hits"] == g["n"]
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


def introduce(snap: Snapshot | None, run, folder, book_profile: str) -> None:
    """Show what the page reads (the profile card, the toy model card, whether the model has been
    trained further since); without a snapshot, record the rows the prose quotes as "no snapshot"."""
    from IPython.display import Markdown, display

    report = run.report
    if snap is None:  # the prose below still quotes these keys
        report.add("model_step", "toy model: training step", "—", "no snapshot")
        report.add("gates", "every quality gate passes", "—", "no snapshot")
        report.add("verdicts", "measurements reproduced / not reproduced / inconclusive / underpowered / not "
                   "applicable", "—", "no snapshot")
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
    """Per chapter of the snapshot: whether it ran, how long, with which parameters (beyond the
    profile's), its error."""
    if snap is None:
        return None
    rows = {name: {"ran": "yes" if c.get("ok") else "no", "seconds": c.get("seconds"),
                   "parameters": "; ".join(f"{k} = {v}" for k, v in (c.get("parameters") or {}).items())
                   or "the profile's", "error": c.get("error") or ""}
            for name, c in snap.index.get("chapters", {}).items()}
    return pd.DataFrame.from_dict(rows, orient="index")


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
    return the snapshot's ``claims.csv`` (recomputed by `claims_csv` where the snapshot has none)."""
    from ..paper import CLAIMS as WORDS

    if snap is None:
        return None
    claims = claims_table(snap)
    path = snap.folder / "claims.csv"
    table = pd.read_csv(path, keep_default_na=False, na_values=[""]) if path.is_file() else claims_csv(snap)
    if list(table.verdict) != list(claims.verdict):
        print(f"{path} is older than this library's reading of the snapshot: rerun {COMMAND}")
    for name, group in claims.groupby("claim", sort=False):
        report.add(f"claim_{name}", f"{name} ({group.chapter.iloc[0]})", WORDS[name],
                   "; ".join(f"{r['this run']} → {r['verdict']}" for _, r in group.iterrows()))
    counts = table.verdict.str.split(r"[:(]").str[0].str.strip().value_counts()
    report.add("verdicts", "measurements reproduced / not reproduced / inconclusive / underpowered / not applicable",
               "—", " / ".join(str(counts.get(v, 0)) for v in VERDICTS) + f" of {len(table)}")
    report.add("model_step", "toy model: training step", "—", snap.index["model"].get("step"))
    shown = readable_claims(table.set_index("claim"))
    if len(claims) == len(shown):  # a claim read on several rows names each (its model, its twin arm)
        shown.index = pd.Index([f"{c} ({r})" if r else c for c, r in zip(claims.claim, claims.row)], name="claim")
    return shown


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


def world2_status(run_dir="toy/run2") -> pd.DataFrame | None:
    """Where toy world 2 (`dvdlib.toy2`) stands: its committed export's training step and
    conditioning check, and its quality gates as `dvd toy2 gates` recorded them in the manifest
    (each guidance scale measured at that step). Prints one paragraph; returns the gates table."""
    manifest = Path(run_dir) / "manifest.json"
    if not manifest.is_file():
        print(f"No world-2 model is committed ({manifest} is missing).")
        return None
    m = json.loads(manifest.read_text())
    check = min(m.get("conditioning") or [{}], key=lambda r: r.get("t", math.inf))
    text = (f"World 2's committed model is at training step {m['steps']:,} of {m['config']['steps']:,} "
            f"({m['wall_time_s'] / 3600:.1f} h of one CPU core); a wrong caption costs "
            f"{fmt_num(check.get('wrong_over_right'))}× the right one's ε loss at t = {check.get('t', '?')}.")
    shares = (m.get("start_token_share") or {}).get("layers")
    if shares:
        low, high = (min(shares, key=lambda r: r["start_share"]), max(shares, key=lambda r: r["start_share"]))
        text += (f" At step 1 the start token takes {percent(low['start_share'], 0)} (layer {low['layer']}) to "
                 f"{percent(high['start_share'], 0)} (layer {high['layer']}) of a layer's cross-attention.")
    advantage = pd.DataFrame(m.get("name_advantage") or [])
    if not advantage.empty and (advantage.t == 500).any():
        by_dose = advantage[advantage.t == 500].groupby("appearances").category_over_name.mean()
        text += (" At t = 500 a named concept's scenes cost, under its category word, "
                 + ", ".join(f"{fmt_num(v)}× (drawn {int(a)} way{'s' if a > 1 else ''})" for a, v in by_dose.items())
                 + " the ε loss they cost under its name (mean over roles)"
                 + (": the fewer its appearances in training, the more the model learned it apart from its category."
                    if by_dose.is_monotonic_decreasing else "."))
    leftover = (m.get("first_step_leftover") or {}).get("concepts")
    if leftover:
        n = sum(r["seeds"] for r in leftover)
        text += (f" Started from the faint copy of their scene that training shows at the first timestep, rather "
                 f"than from noise, {sum(r['from_leftover'] for r in leftover)} of {n} single-concept images are "
                 f"recognised, against {sum(r['from_noise'] for r in leftover)} from noise.")
    gates = m.get("gates") or []
    if not gates:
        print(text + " Its quality gates have not been measured at this step (dvd toy2 gates).")
        return None
    rows = [{"guidance": g["guidance"], "gate": g["gate"], "hits": int(g["hits"]), "n": int(g["n"]),
             "rate": percent(g["rate"], 1), "95% CI": fmt_interval(g["ci_low"], g["ci_high"], as_percent=True),
             "required": f"≥ {g['required']:.0%}", "result": "pass" if gate_passes(g["rate"], g["required"]) else "FAIL"} for g in gates]
    table = pd.DataFrame(rows).set_index(["guidance", "gate"])
    scales = dict.fromkeys(r["guidance"] for r in rows)
    every = {g: all(r["result"] == "pass" for r in rows if r["guidance"] == g) for g in scales}
    seeds = sorted({int(g["seeds"]) for g in gates})
    print(text + f" Its gates at that step ({'/'.join(map(str, seeds))} seed{'s' if max(seeds) > 1 else ''} per "
          f"prompt, guidance {', '.join(f'{g:g}' for g in every)}): "
          + ("every gate passes at guidance " + ", ".join(f"{g:g}" for g, ok in every.items() if ok)
             if any(every.values()) else "no guidance scale passes every gate")
          + ". This page reads world 1 until world 2 passes them.")
    return table
