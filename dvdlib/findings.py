"""The claims engine: each of the paper's claims (`Claim`, `CLAIMS`), the findings-snapshot row
that measures it, and its verdict by the rule of `dvdlib.stats.verdict` — one table (claim,
measurement, sample size, 95% interval, verdict: `claims_table`, ``claims.csv``) and one paragraph
per claim (`paragraphs`). A world writes the snapshot (the toy world: `dvdlib.toy.snapshot`);
nothing here knows which world it is.

When the snapshot's quality gates fail, every verdict is about a model that does not yet draw
what it is asked, and the paragraphs say so first.
"""

from __future__ import annotations

import re
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import chapters as CH
from .report import number, percent
from .stats import MIN_N, UNDERPOWERED, gate_passes, verdict
from .twins import NOTHING_COLLAPSED


@dataclass(frozen=True)
class Claim:
    """One paper claim and where a findings snapshot measures it.

    ``key`` names the row of ``chapter``'s results (a trailing ``*`` takes every row whose key
    starts with it, e.g. one replacement row per model); ``direction`` and ``null`` feed
    `dvdlib.stats.verdict` (a row's own ``null`` field, e.g. the chance level per prompt or the
    placebo's rate, replaces ``null``); ``requires`` (field, minimum, reason): the measurement only
    tests the claim when the row's ``field`` reaches ``minimum`` (e.g. replacement can only relieve
    a collapse that is there); otherwise the verdict is inconclusive, with the reason. A row's
    ``power_check`` ("passed"/"failed") and ``scale_bound`` (a threshold on Stable Diffusion's
    scale) fields go to the rule as they are."""

    name: str
    chapter: str
    key: str
    direction: int = 1
    null: float | None = 0.0  # None: the row must bring its own (chance per prompt, a placebo's rate)
    measure: str = ""
    note: str = ""
    requires: tuple | None = None
    empty: str = "nothing to measure in this run (n = 0)"
    unit: str = "concepts"  # what a cluster is, for "underpowered (n concepts)"
    paper_effect: str = ""  # the paper's effect in the claim's units, where it gives one
    #: how the measurement isolates the claim: "observational" (the world's concepts as they are),
    #: "fine-tunes" (chapter 03's variants) or "twins" (paired fine-tunes that differ only in diversity)
    design: str = "observational"


#: The layers where the paper finds DominanceBench's Focus Score significantly higher (paper §3.4).
PAPER_FOCUS_LAYERS = frozenset(range(5, 11))

_COLLAPSED = "no rigid+object prompt is collapsed before ablation (mean DvD ≥ τ), so no head has anything to mitigate (n = 0)"

CLAIMS = (
    Claim("suppression", CH.DVD_BENCHMARK.name, CH.DVD_BENCHMARK.key("gap"),
          measure="mean DvD, rigid+object − object+object prompts",
          paper_effect="≥ 49.4 (DominanceBench ≥ 70 by construction, balanced 20.64)"),
    Claim("focus_layers", CH.FOCUS.name, CH.FOCUS.key("layers_gap"),
          measure="mean Focus Score over the paper's layers 5–10, rigid+object − object+object prompts"),
    Claim("peak_token", CH.FOCUS.name, CH.FOCUS.key("peak"), null=None,
          measure="share of prompts whose peak token spells the rigid concept",
          note="null: chance per prompt, the share of the prompt's content tokens that spell the concept",
          paper_effect="share 0.83 (249/300; chance not reported)"),
    Claim("dominated_falls", CH.TEMPORAL.name, CH.TEMPORAL.key("dominated_falls"), direction=-1,
          measure="mean change of the object token's deviation over the first interval",
          paper_effect="strongly negative, shown in a figure; no number given"),
    Claim("dominated_below", CH.TEMPORAL.name, CH.TEMPORAL.key("dominated_below"), direction=-1,
          measure="mean of (object − rigid concept) change over the first interval, per prompt",
          paper_effect="negative: the object's change strongly negative, the concept's positive or near zero; "
                       "shown in a figure, no number given"),
    Claim("single_head", CH.ABLATION.name, CH.ABLATION.key("single"),
          measure="collapsed prompts mitigated by at least one single head, against a placebo", null=None,
          note="the paper's contrast, memorized prompts, does not exist in the toy world", empty=_COLLAPSED,
          paper_effect="rate 0.48 (145/300; no placebo)"),
    Claim("multi_head", CH.ABLATION.name, CH.ABLATION.key("multi"),
          measure="collapsed prompts mitigated by ablating a whole layer, against a placebo", null=None,
          empty=_COLLAPSED, paper_effect="rate ≈ 0.6 (no placebo)"),
    Claim("detection", CH.DETECTION.name, CH.DETECTION.key("gap"),
          measure="flagged rigid+object rows − flagged object+object rows at the paper's threshold 0.010 "
                  "(percentage points)", note="the threshold is on Stable Diffusion's Focus-Score scale",
          paper_effect="37.0 points (70.67% vs 33.67%)"),
    Claim("detection_matched", CH.DETECTION.name, CH.DETECTION.key("matched"),
          measure="flagged rigid+object rows − flagged object+object rows at the threshold that flags the "
                  "paper's 33.67% of the control (percentage points)",
          paper_effect="37.0 points (70.67% vs 33.67%)"),
    Claim("detection_auc", CH.DETECTION.name, CH.DETECTION.key("auc"), null=0.5,
          measure="area under the ROC curve of the detector's score, rigid+object vs object+object rows",
          note="no threshold; no effect = 0.5"),
    Claim("replacement", CH.DETECTION.name, CH.DETECTION.key("replacement"),
          measure="share of images with the object present, after − before replacing the concept by its "
                  "category word (paired per prompt and seed)",
          requires=("median_before", 48.0, "the median DvD before replacement is below τ = 48: there is no "
                                           "collapse for the category word to relieve")),
    Claim("causal", CH.CAUSAL.name, CH.CAUSAL.key("paired"),
          measure="mean DvD, fewest − most variants of the new figure (the fine-tune is the unit)", unit="fine-tunes",
          design="fine-tunes", paper_effect="positive: the least diverse variant crosses τ, the most diverse does not; "
                                            "no number given"),
    Claim("causal_trend", CH.CAUSAL.name, CH.CAUSAL.key("trend"), direction=-1,
          measure="Spearman ρ between variants and mean DvD over fine-tunes (the fine-tune is the unit)",
          unit="fine-tunes", design="fine-tunes", paper_effect="negative; no statistic given",
          empty="no ρ: it needs at least 4 fine-tunes whose mean DvD Scores differ"),
    Claim("noise_norm", CH.MEMORIZATION.name, CH.MEMORIZATION.key("bench_over_balanced"),
          measure="mean noise-prediction norm, rigid+object − object+object",
          note="the memorized set of the paper's order does not exist in the toy world"),
    Claim("twin_dvd", CH.TWINS.name, CH.TWINS.key("dvd"), unit="pairs", design="twins",
          measure="mean DvD, rigid − diverse twin (the twin pair is the unit)"),
    Claim("twin_memorized", CH.TWINS.name, CH.TWINS.key("memorized"), unit="pairs", design="twins",
          measure="mean DvD, memorized − rigid twin (the twin pair is the unit)"),
    Claim("twin_focus", CH.TWINS.name, CH.TWINS.key("focus"), unit="pairs", design="twins",
          measure="mean first-step Focus Score over the paper's layers 5–10, rigid − diverse twin"),
    Claim("twin_peak", CH.TWINS.name, CH.TWINS.key("peak"), unit="pairs", design="twins",
          measure="share of prompts whose first-step peak token is the new token, above chance, rigid − diverse twin"),
    Claim("twin_falls", CH.TWINS.name, CH.TWINS.key("falls"), unit="pairs", design="twins", direction=-1,
          measure="change of the other concept's attention deviation over the first interval, rigid − diverse twin"),
    Claim("twin_below", CH.TWINS.name, CH.TWINS.key("below"), unit="pairs", design="twins", direction=-1,
          measure="per prompt, the other concept's deviation change minus the new token's over the first interval, "
                  "rigid − diverse twin"),
    Claim("twin_norm", CH.TWINS.name, CH.TWINS.key("norm"), unit="pairs", design="twins",
          measure="mean noise-prediction norm over the first steps, rigid − diverse twin"),
    Claim("twin_norm_memorized", CH.TWINS.name, CH.TWINS.key("norm_memorized"), unit="pairs", design="twins",
          measure="mean noise-prediction norm over the first steps, memorized − rigid twin"),
    Claim("twin_auc", CH.TWINS.name, CH.TWINS.key("auc"), unit="pairs", design="twins",
          measure="per pair, the detector's AUC (first-step Focus Score, layers 9–10) for the rigid twin's prompts "
                  "against the diverse twin's, − 0.5", note="no separation = 0"),
    Claim("twin_single_head", CH.TWINS.name, CH.TWINS.key("single"), unit="pairs", design="twins",
          measure="per pair, the share of the rigid twin's collapsed prompts that one head of layers 1–6 mitigates, "
                  "minus that of as many heads of the placebo layers", empty=NOTHING_COLLAPSED),
    Claim("twin_multi_head", CH.TWINS.name, CH.TWINS.key("multi"), unit="pairs", design="twins",
          measure="per pair, the share of the rigid twin's collapsed prompts that one whole layer of 1–6 mitigates, "
                  "minus that of as many placebo layers", empty=NOTHING_COLLAPSED),
    Claim("twin_replacement", CH.TWINS.name, CH.TWINS.key("replacement"), unit="pairs", design="twins",
          measure="share of images with the other concept present, after − before replacing the new token by its "
                  "category word, rigid − diverse twin"),
    Claim("remedy_replacement", CH.REMEDIES.name, CH.REMEDIES.key("replacement_none"), unit="pairs", design="twins",
          measure="share of images with both concepts present, replacement − none, on the same twin (one row per arm)"),
    *(Claim(f"remedy_{name}", CH.REMEDIES.name, CH.REMEDIES.key(f"{name}_replacement"), unit="pairs", design="twins",
            measure=f"share of images with both concepts present, {label} − replacement, on the same twin (one row "
                    "per arm)") for name, label in (("attend_excite", "Attend-and-Excite"),
                                                    ("rebalance", "early attention rebalancing"),
                                                    ("weighting", "prompt weighting"))),
)


@dataclass
class Snapshot:
    """A findings snapshot read back: the model card, the gates, each chapter's results rows."""

    folder: Path
    index: dict
    gates: dict | None
    results: dict = field(default_factory=dict)  # chapter → {key: row}


def gates_table(snap: Snapshot) -> pd.DataFrame:
    """The quality gates: rate, 95% Clopper–Pearson interval, required, pass (the interval's lower
    bound reaches the required level: `dvdlib.stats.gate_passes`)."""
    if snap.gates is None:
        return pd.DataFrame(columns=["hits", "n", "rate", "95% CI", "required", "result"])
    rows = []
    for name, g in snap.gates["gates"].items():
        required = g.get("required")
        result = ("pass" if gate_passes(g.get("rate"), required) else "FAIL") if required is not None else (
            "pass" if g.get("n") and g["hits"] == g["n"] else "see rate")
        rows.append({"gate": name, "hits": g["hits"], "n": g["n"], "rate": percent(g["rate"], 1),
                     "95% CI": fmt_interval(g.get("ci_low"), g.get("ci_high"), as_percent=True),
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
    """Whether ``claim`` reads the results row ``key`` (a ``*`` key: every row it prefixes but its
    summary and its peak-token listing)."""
    if claim.key.endswith("*"):
        prefix = claim.key[:-1]
        return key.startswith(prefix) and key not in (prefix + "summary", prefix + "peak_outside")
    return key == claim.key


def _rows_for(snap: Snapshot, claim: Claim) -> list[dict]:
    return [r for k, r in snap.results.get(claim.chapter, {}).items() if _reads(claim, k)]


def unwritten_claims(chapter: str, keys) -> list[str]:
    """The claims on ``chapter``'s results whose key none of ``keys`` (the keys a run of the chapter
    wrote) provides: the contract between a chapter and this module, empty when it holds."""
    keys = list(keys)
    return [c.name for c in CLAIMS if c.chapter == chapter and not any(_reads(c, k) for k in keys)]


#: The structured fields of a results row that a claim reads (`dvdlib.report.Report.add`).
STRUCTURED = ("value", "n", "ci", "p", "test", "hits", "layers", "median_before", "null", "n_clusters",
              "per_cluster", "loo", "method", "detectable", "spread", "power_check", "control", "scale_bound")
#: The columns of ``claims.csv`` (`write_claims`), one row per measurement: ``clusters_a`` and
#: ``clusters_b`` the clusters per side (b empty for a one-sample design), ``detectable`` the smallest
#: effect the rule finds with 80% power at those counts and spread (`dvdlib.stats.detectable`),
#: ``needed`` for an undecided claim the clusters a side that would find this run's effect (`_needed`).
CSV_COLUMNS = ("claim", "design", "verdict", "estimate", "ci_low", "ci_high", "null", "n_prompts", "clusters_a", "clusters_b",
               "method", "detectable", "needed", "paper_effect", "power_check", "control_rate", "control_ci_low",
               "control_ci_high")


def claims_table(snap: Snapshot) -> pd.DataFrame:
    """One row per (claim, measurement): the paper's words, the toy measurement, n (prompts and
    clusters), null, 95% interval, detectable effect, power check and the verdict by
    `dvdlib.stats.verdict`, with ``why`` (how the verdict follows) and ``per cluster``."""
    from .paper import CLAIMS as WORDS

    out = []
    for claim in CLAIMS:
        base = {"claim": claim.name, "design": claim.design, "paper says": WORDS[claim.name], "chapter": claim.chapter,
                "toy measurement": claim.measure, "paper_effect": claim.paper_effect or None}
        chapter = snap.index.get("chapters", {}).get(claim.chapter)
        rows = _rows_for(snap, claim)
        if not rows:
            why = ("not in this snapshot" if chapter is None else
                   f"the chapter failed: {chapter.get('error')}" if not chapter.get("ok") else
                   f"no row {claim.key!r} in its results")
            out.append({**base, **_EMPTY, "verdict": "inconclusive", "why": f"not measured: {why}"})
            continue
        for row in rows:
            s = {k: row.get(k) for k in STRUCTURED}
            null = s["null"] if s["null"] is not None else claim.null
            power = s["power_check"] or "n/a"
            field_, minimum, reason = claim.requires or (None, None, None)
            unmet = field_ is not None and s.get(field_) is not None and s[field_] < minimum
            n = s.get("n")
            if not unmet and n is not None and min(np.atleast_1d(n)) < MIN_N:
                unmet, reason = True, f"only {_n(n)} prompt(s) measured: too few for a verdict (fewer than {MIN_N})"
            v = verdict(s["ci"], null, claim.direction, power=power, applies=not unmet and s["value"] is not None,
                        scale_bound=bool(s["scale_bound"]), n_clusters=s["n_clusters"], loo=s["loo"], unit=claim.unit)
            why = _why(v, claim, s, null) if not unmet or v != "inconclusive" else reason
            ci = s.get("ci") or [None, None]
            sides = list(np.atleast_1d(s["n_clusters"])) if s["n_clusters"] is not None else []
            control = s.get("control") or {}
            control_ci = control.get("ci") or [None, None]
            which = row["quantity"].split(":")[-1].strip() if claim.key.endswith("*") else ""
            out.append({**base, "toy measurement": claim.measure + (f" ({which})" if which else ""), "row": which,
                "this run": row.get("this run"), "n": _n(n), "clusters": _n(s["n_clusters"]),
                "null": fmt_num(null), "95% CI": fmt_interval(*ci, as_percent=s.get("test") == "rate"),
                "power check": power, "verdict": v, "why": why, "per cluster": _per_cluster(s["per_cluster"]),
                "estimate": s["value"], "ci_low": ci[0], "ci_high": ci[1], "null_value": null,
                "n_prompts": _total(n), "clusters_a": sides[0] if sides else None,
                "clusters_b": sides[1] if len(sides) > 1 else None, "method": s.get("method"),
                "detectable": s.get("detectable"), "needed": _needed(v, s, null), "control_rate": control.get("value"),
                "control_ci_low": control_ci[0], "control_ci_high": control_ci[1]})
    return pd.DataFrame(out)


#: The most clusters a side `_needed` tries.
MOST_CLUSTERS = 200
#: Each claim's unit, for the sentences that count clusters.
CLAIM_UNIT = {c.name: c.unit for c in CLAIMS}
#: The verdicts in the order the chapter counts them (the text before a ":" or "(").
VERDICTS = ("reproduced", "not reproduced", "inconclusive", "underpowered", "not applicable")

_EMPTY = {"row": "", "this run": "—", "n": "—", "clusters": "—", "null": "—", "95% CI": "—", "power check": "n/a",
          "per cluster": "—", "estimate": None, "ci_low": None, "ci_high": None, "null_value": None,
          "n_prompts": None, "clusters_a": None, "clusters_b": None, "method": None, "detectable": None,
          "needed": None, "control_rate": None, "control_ci_low": None, "control_ci_high": None}


def claims_csv(snap: Snapshot) -> pd.DataFrame:
    """The claims table in ``claims.csv``'s columns (`CSV_COLUMNS`)."""
    t = claims_table(snap).rename(columns={"null": "null_text", "null_value": "null", "power check": "power_check"})
    return t[list(CSV_COLUMNS)]


def write_claims(snap: Snapshot) -> Path:
    """Write ``claims.csv`` into the snapshot's folder (`dvd toy findings` does, after the chapters)."""
    path = snap.folder / "claims.csv"
    claims_csv(snap).to_csv(path, index=False, float_format="%.6g")
    return path


def _total(n):
    return None if n is None else int(sum(np.atleast_1d(n)))


def _per_cluster(per: dict | None) -> str:
    if not per:
        return "—"
    return "; ".join(f"{k}: {fmt_num(v)}" for k, v in per.items())


def _why(v: str, claim: Claim, s: dict, null: float) -> str:
    from .stats import MIN_CLUSTERS, NO_CONTROL, NO_EFFECT, NOT_APPLICABLE, RESTS_ON

    side = "above" if claim.direction == 1 else "below"
    other = "below" if claim.direction == 1 else "above"
    value, ci = s.get("value"), s.get("ci")
    note = f"; {claim.note}" if claim.note else ""
    if v == NOT_APPLICABLE:
        return "the measurement applies a threshold on Stable Diffusion's scale to another model; read the " \
               "scale-free rows (the area under the ROC curve, the operating point matched to the paper's control rate)" + note
    if v == NO_EFFECT:
        control = s.get("control") or {}
        what = control.get("what") or "the positive control"
        rate = f" ({_rate(control)})" if control.get("value") is not None else ""
        return (f"{what} did not bring the dominated concept back measurably{rate}, so a null for fewer heads "
                "cannot count" + note)
    if v == NO_CONTROL:
        return f"{(s.get('control') or {}).get('what') or 'no positive control'}" + note
    if value is None:
        return claim.empty + note
    if null is None:
        return f"no null was measured ({s.get('test') or 'no placebo or chance level'}): no verdict" + note
    if v.startswith(UNDERPOWERED):
        return (f"{_n(s['n_clusters'])} {claim.unit}: a verdict needs at least {MIN_CLUSTERS} on each side, so that "
                f"it survives leaving any one out; the estimate is {fmt_num(value)}" + note)
    if ci is None:
        return "no interval" + note
    interval = fmt_interval(*ci)
    detect = s.get("detectable")
    power = (f"; with this spread the rule finds an effect of ±{fmt_num(detect)} from the null with 80% power"
             if detect is not None else "")
    if v.startswith(RESTS_ON):
        loo = s["loo"]["low"] if ci[0] > null else s["loo"]["high"]
        text = (f"the 95% interval {interval} excludes the null {fmt_num(null)}, but without {loo['cluster']} it is "
                f"{fmt_interval(*loo['ci'])} (estimate {fmt_num(loo['value'])}): the verdict does not survive leaving one "
                f"{claim.unit[:-1]} out")
    elif v == "reproduced":
        text = f"the 95% interval {interval} lies {side} the null {fmt_num(null)}, with any one {claim.unit[:-1]} left out too"
    elif v == "not reproduced":
        text = (f"the 95% interval {interval} lies {other} the null {fmt_num(null)}, with any one {claim.unit[:-1]} left "
                "out too: the opposite of the paper's effect")
    else:
        text = f"the 95% interval {interval} includes the null {fmt_num(null)}"
    return text + power + note


def _needed(v: str, s: dict, null) -> int | None:
    """For a claim the rule does not decide: how many clusters a side would find an effect of this
    run's size with 80% power at this run's spread (`dvdlib.stats.clusters_needed`; Spearman's ρ:
    `dvdlib.stats.spearman_needed`)."""
    from .stats import clusters_needed, spearman_needed

    if v in ("reproduced", "not reproduced") or s.get("value") is None or null is None:
        return None
    if (s.get("method") or "").startswith("Fisher z"):  # Spearman's ρ over units
        return spearman_needed(s["value"])
    if not s.get("spread") or s.get("n_clusters") is None:
        return None
    return clusters_needed(s["value"] - null, tuple(np.atleast_1d(s["n_clusters"])), tuple(s["spread"]), MOST_CLUSTERS)


def _rate(control: dict) -> str:
    """A positive control's rate with its interval, "3/12 (25%, 95% CI [5.5%, 57.2%])"."""
    ci = control.get("ci") or [None, None]
    return (f"{control.get('hits')}/{control.get('n')} collapsed rows, {percent(control['value'], 0)}, "
            f"95% CI {fmt_interval(*ci, as_percent=True)}")


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
            shown = "[" in str(r["this run"])  # the run's text already gives its interval
            ci = f", 95% CI {r['95% CI']}" if r["95% CI"] != "—" and not shown else ""
            power = f", positive control {r['power check']}" if r["power check"] != "n/a" else ""
            if r["power check"] != "n/a" and r["control_rate"] is not None and r["control_rate"] == r["control_rate"]:
                power += (f" ({percent(r['control_rate'], 0)} of the collapsed rows brought back, 95% CI "
                          f"{fmt_interval(r['control_ci_low'], r['control_ci_high'], as_percent=True)})")
            per = f" Per cluster: {r['per cluster']}." if r["per cluster"] != "—" else ""
            clusters = f" in {r['clusters']} clusters" if r["clusters"] not in ("—", r["n"]) else ""
            units = "prompts" if r["clusters"] != r["n"] or CLAIM_UNIT[name] == "concepts" else CLAIM_UNIT[name]
            null = f", null {r['null']}" if r["null"] not in ("?", "—") else ", no null measured"
            paper = f" The paper's effect: {r['paper_effect']}." if isinstance(r["paper_effect"], str) else ""
            if r["needed"] is not None and r["needed"] == r["needed"]:
                paper += (f" With this spread, {int(r['needed'])} {CLAIM_UNIT[name]} a side would find an effect of "
                          "this run's size with 80% power.")
            elif not r["verdict"].startswith(("reproduced", "not reproduced", "not applicable")) and r["this run"] != "—":
                paper += (" This run's estimate equals the null: no number of clusters would find it."
                          if r["estimate"] == r["null_value"] else
                          f" Even {MOST_CLUSTERS} {CLAIM_UNIT[name]} a side would not find an effect of this run's size "
                          "with 80% power at this spread.")
            parts.append(f"{r['toy measurement']}: **{r['this run']}** (n = {r['n']} {units}{clusters}{ci}{null}{power}) "
                         f"— **{r['verdict']}**: {r['why']}.{per}{paper}")
        texts.append(f"**{name}** ({first.chapter}). *The paper:* {first['paper says']} *The toy world:* "
                     + " ".join(parts) + _control_note(snap, name))
    return texts


def _control_note(snap: Snapshot, name: str) -> str:
    """For the claims that compare rigid+object with object+object prompts: how often the model
    composes two objects at all (the control only means "no collapse" when it does)."""
    gate = ((snap.gates or {}).get("gates") or {}).get("composition")
    if name != "suppression" or not gate or gate_passes(gate.get("rate"), gate.get("required") or 0):
        return ""
    return (f" The control pairs two flexible objects, which this model draws together in only "
            f"{gate['hits']}/{gate['n']} images (composition gate): the control collapses too, so the "
            "comparison is between two kinds of failure.")


def fmt_num(x) -> str:
    """A number as the claims table shows it (`dvdlib.report.number`); "?" when missing or NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "?"
    return number(0.0 if abs(x) < 1e-12 else x)  # a difference of equal means, not float noise


def fmt_interval(low, high, as_percent: bool = False) -> str:
    """"[low, high]" (percentages with ``as_percent``); "—" when missing."""
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return "—"
    return f"[{percent(low, 1)}, {percent(high, 1)}]" if as_percent else f"[{fmt_num(low)}, {fmt_num(high)}]"


def _n(n) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):  # not measured (NaN: read from claims.csv)
        return "—"
    return " vs ".join(str(int(x)) for x in n) if isinstance(n, (list, tuple)) else str(int(n))


# ------------------------------------------------------------------------------ tables for people
# Each of these but `readable_claims` takes the snapshot or None (no snapshot: nothing to show).


def readable_claims(claims: pd.DataFrame) -> pd.DataFrame:
    """``claims.csv``'s table as a reader reads it: the design (observational, fine-tunes, twins),
    the estimate, its interval and the null in one cell,
    numbers to three digits, clusters per side, the smallest effect found with 80% power
    (``detectable``), the positive control's outcome (``control``); the prompts are in the text."""
    sides = [_n([a] if b != b or b is None else [a, b]) if a == a and a is not None else "—"
             for a, b in zip(claims["clusters_a"], claims["clusters_b"])]
    out = pd.DataFrame({"design": claims["design"], "verdict": claims["verdict"],
                        "estimate [95% CI] (null)": [f"{fmt_num(e)} {fmt_interval(lo, hi)}".replace(" —", "") +
                                                     (f" ({fmt_num(n)})" if n == n and n is not None else "")
                                                     for e, lo, hi, n in zip(claims["estimate"], claims["ci_low"],
                                                                             claims["ci_high"], claims["null"])],
                        "clusters": sides,
                        "detectable": claims["detectable"].map(_detect), "control": claims["power_check"]},
                       index=claims.index)
    return out.fillna("—")


def _detect(x) -> str:
    """A detectable effect, or "—" where the rule cannot decide (too few clusters, no spread)."""
    return "—" if x is None or x != x else f"±{fmt_num(x)}"


def moved_table(snap: Snapshot | None) -> pd.DataFrame | None:
    """Each claim's verdict under the earlier rule (``earlier_rule.csv`` in the snapshot: estimate,
    interval, verdict, and what changed in the measurement) beside its verdict now, for the claims
    read then (later ones, such as the twins', have nothing to compare); None where the snapshot
    keeps no earlier reading."""
    if snap is None or not (snap.folder / "earlier_rule.csv").is_file():
        return None
    earlier = pd.read_csv(snap.folder / "earlier_rule.csv", comment="#", keep_default_na=False, dtype=str)
    now = claims_table(snap).groupby("claim", sort=False).agg(
        {"this run": "first", "95% CI": "first", "verdict": "first"}).add_prefix("now: ")
    table = earlier.set_index("claim")[["earlier estimate", "earlier 95% CI", "earlier verdict"]].join(now, how="left")
    table["verdict: earlier → now"] = [e if e == n else f"{e} → {n}"
                                       for e, n in zip(table["earlier verdict"], table["now: verdict"])]
    table["what changed in the measurement"] = earlier.set_index("claim")["what changed in the measurement"]
    table = table.drop(columns=["earlier verdict", "now: verdict"])  # both are in the column above
    order = [c.name for c in CLAIMS]
    return table.loc[[c for c in order if c in table.index]]


def per_cluster_table(snap: Snapshot | None) -> pd.DataFrame | None:
    """Each claim's estimate within each cluster (concept, pair or fine-tune), and what the
    interval becomes without the most influential cluster."""
    if snap is None:
        return None
    t = claims_table(snap)
    return t[["claim", "this run", "clusters", "per cluster", "why"]].set_index("claim")


def claim_paragraphs(snap: Snapshot | None):
    """`paragraphs` as one Markdown block (nothing without a snapshot)."""
    from IPython.display import Markdown

    return Markdown("\n\n".join(paragraphs(snap))) if snap is not None else None


#: How each verdict opens its sentence in a chapter's closing paragraph (`this_run`).
OPENINGS = {"reproduced": "Reproduced", "not reproduced": "Against the paper's direction",
            "inconclusive": "Inconclusive", "underpowered": "Underpowered", "not applicable": "Not applicable here"}


def _profile_reading(profile) -> str:
    """What a profile lets a chapter's verdicts say."""
    name, model = getattr(profile, "name", str(profile)), getattr(profile, "model", "")
    if name == "smoke":
        return ("Under `smoke` the model and the judge have random weights: these verdicts show that the procedure "
                "runs end to end, and nothing about the paper.")
    if getattr(profile, "world", "") in ("toy", "toy2"):
        return ("These are verdicts about the toy world's model, not Stable Diffusion; chapter 09 gathers them with "
                "what the world can and cannot test.")
    if name == "paper":
        return f"These are verdicts about `{model}` in the paper's setting, to be set beside the paper's numbers."
    return f"These are verdicts about `{model}` under the profile `{name}`."


def this_run(report) -> str:
    """A chapter's closing paragraph from its own claims (`CLAIMS` on ``report.chapter``), read from
    this run's results rows by the book's one rule (as `claims_table` reads a snapshot), one
    sentence per verdict (`OPENINGS`: what was measured, this run's number, the paper's where it
    gives one, and why an undecided claim is undecided), then what the profile lets them say."""
    snap = Snapshot(Path("."), {"chapters": {report.chapter: {"ok": True}}}, None,
                    {report.chapter: {row["key"]: row for row in report.rows}})
    table = claims_table(snap)
    table = table[(table.chapter == report.chapter) & ~table.why.fillna("").str.startswith("not measured")]
    said = []
    for kind in VERDICTS:
        rows = table[table.verdict.str.startswith(kind)]
        if len(rows):
            said.append(f"**{OPENINGS[kind]}:** " + "; ".join(_claim_sentence(r) for _, r in rows.iterrows()) + ".")
    said.append(_profile_reading(report.profile))
    return " ".join(said)


def _claim_sentence(row) -> str:
    """One claim in a closing paragraph: what was measured, this run's number, the paper's, and why
    (for a verdict other than reproduced or not reproduced)."""
    paper = f" (paper: {row['paper_effect']})" if isinstance(row["paper_effect"], str) and row["paper_effect"] else ""
    why = "" if row["verdict"] in ("reproduced", "not reproduced") else f" — {row['why']}"
    why = re.sub(r"; the estimate is [-+]?[\d.]+(?:e[-+]?\d+)?", "", why)  # the number is said once, just before
    return f"{row['toy measurement']}: {row['this run']}{paper}{why}"
