"""The positive control of an ablation claim (the book's verdict rule): each collapsed row's
dominant concept's tokens suppressed at the claim's steps, run and judged as the ablations are;
it must mitigate a measurable share before an absence of effect counts (`power_check`)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..attention import _suppressible
from ..outcome import DvDRule
from ..report import percent as as_percent
from .interventions import EXCLUDED, Job, Suppression, narrowed
from .rates import mitigated_count
from .sweep import Sweep


#: The positive control passes when the lower bound of its mitigated share's exact 95% interval
#: lies above this (`power_check`).
CONTROL_MIN_LOWER = 0.0


def control_jobs(rows: pd.DataFrame, steps=(1,), n_steps: int = 50, strength: float = 1.0) -> list[list[Job]]:
    """The positive controls of an ablation claim (paper §3.6), one job per dominant concept
    (``content``) over its rows: first at ``steps`` (the claim's; it decides, `power_check`), then
    over steps 1–k (k: a fifth of the schedule, at least the claim's last step; a diagnostic, left
    out when it equals the first)."""
    if "content" not in rows.columns:
        raise ValueError("the positive control suppresses each row's dominant concept: the rows need a 'content' column")
    rows = rows.drop_duplicates("case_num")
    steps = tuple(sorted({int(s) for s in steps}))
    k = max(max(steps), n_steps // 5)
    out = []
    for these in dict.fromkeys([steps, tuple(range(1, k + 1))]):
        out.append([Job(Suppression(concept, strength, these), tuple(group["case_num"]))
                    for concept, group in rows.groupby("content", sort=False)])
    return out


def control_what(plan: Sequence[Job]) -> str:
    """What a positive control does, in words (``control["what"]``)."""
    from ..report import ranges

    if not plan:
        return "suppressing the dominant concept's tokens in every cross-attention layer (no row)"
    c = plan[0].intervention
    strength = "" if c.strength == 1 else f" (strength {c.strength:g})"
    return (f"suppressing the dominant concept's tokens{strength} in every cross-attention layer at "
            f"step{'s' if len(c.steps) > 1 else ''} {ranges(c.steps)}")


def control_passes(control: dict, min_lower: float = CONTROL_MIN_LOWER) -> str:
    """"passed" when the control's mitigated share has an exact (Clopper–Pearson) 95% interval whose
    lower bound lies above ``min_lower``, else "failed" (also when no row counts).

    Why the lower bound above 0 by default: the control only has to show that a mitigation *can be
    seen* here — that this model, judge and DvD rule register one when the dominant concept is
    taken out of the attention — not how strong it is; a rate whose interval excludes 0 says that,
    and a rate whose interval reaches 0 does not. With the exact interval this is "at least one
    collapsed row mitigated"; ``min_lower`` asks for more (e.g. 0.1: a tenth of the rows at least)."""
    ci = control.get("ci")
    return "passed" if ci is not None and ci[0] > min_lower else "failed"


def images_changed(sweep: Sweep, control, min_change: int = 2) -> tuple[int, int]:
    """(images whose pixels differ from the plain image by more than ``min_change`` of 255 anywhere,
    images compared): ``control`` an intervention over the sweep's rows and seeds, or a plan (jobs:
    each intervention over its rows)."""
    import numpy as np

    pairs = ([(job.intervention, p) for job in control for p in sweep.prompts(job.cases)]
             if isinstance(control, (list, tuple)) else [(control, p) for p in sweep.prompts(sweep.rows.index)])
    changed = total = 0
    for iv, prompt in dict.fromkeys(pairs):
        for seed in sweep.seeds:
            a = np.asarray(sweep.store().image(prompt, seed).convert("RGB"), dtype=np.int16)
            b = np.asarray(sweep.store(iv).image(prompt, seed).convert("RGB"), dtype=np.int16)
            changed += int(np.abs(a - b).max() > min_change)
            total += 1
    return changed, total


def suppressible_controls(pipe, rows: pd.DataFrame, steps=(1,), n_steps: int = 50,
                          strength: float = 1.0) -> list[list[Job]] | str:
    """`control_jobs` where the model family can suppress tokens; else why not (a joint-attention
    family: `power_check` then reads "unavailable")."""
    try:
        _suppressible(pipe)
    except NotImplementedError as missing:
        return str(missing)
    return control_jobs(rows, steps, n_steps, strength)


def run_controls(sweep: Sweep, controls: list[list[Job]] | str, judge, questions, dvd_rule: DvDRule = DvDRule(),
                 require_baseline: bool = True, **_rules) -> None:
    """Run and judge the positive controls (`control_jobs`) on the sweep's rows and seeds, as the
    ablations are (same judge, DvD rule and rows: with ``require_baseline`` only the rows collapsed
    before ablation, `Sweep.mitigable`); nothing where the family has none (a reason, not jobs)."""
    if isinstance(controls, str):
        return
    keep = set(sweep.mitigable(judge, questions, dvd_rule)) if require_baseline else None
    for plan in controls:
        sweep.run(plan if keep is None else narrowed(plan, keep), progress=False)
        sweep.judge_dvd(plan, judge, questions, dvd_rule, require_baseline)


def power_check(sweep: Sweep, controls: list[list[Job]] | str, judge, questions, rule: DvDRule = DvDRule(),
                require_baseline: bool = True, min_lower: float = CONTROL_MIN_LOWER) -> tuple[str, dict, pd.DataFrame]:
    """The positive controls (`control_jobs`, made by `run_controls`) judged on the sweep's rows
    and seeds. Returns (the power check, "passed" or "failed" by `control_passes` on the first
    control; the first control's ``control`` field — hits, n, value, ci, what; a table of every
    control with, as a diagnostic only, how many of its images differ from the plain ones);
    "unavailable" where the model family has no token suppression (``controls`` says why)."""
    from ..report import ranges
    from ..stats import rate

    if isinstance(controls, str):  # a joint-attention family: no token suppression yet
        field = {"hits": 0, "n": 0, "value": None, "ci": None, "what": f"none: {controls}"}
        return "unavailable", field, pd.DataFrame([{"positive control": field["what"]}])
    fields, rows = [], []
    for i, plan in enumerate(controls):
        table = sweep.judge_dvd(plan, judge, questions, rule, require_baseline)
        hits, n = mitigated_count(table)
        r = rate(hits, n)
        field = {"hits": hits, "n": n, "value": r["value"], "ci": r["ci"], "what": control_what(plan)}
        fields.append(field)
        counted = narrowed(plan, set(table.case_num[~table.outcome.isin(EXCLUDED)]))
        changed, total = images_changed(sweep, counted)
        steps = plan[0].intervention.steps if plan else ()
        rows.append({"dominant concept suppressed at": f"step{'s' if len(steps) > 1 else ''} {ranges(steps)}",
                     "decides": "yes" if i == 0 else "no (diagnostic)", "mitigated": control_text(field),
                     "images changed (diagnostic)": f"{changed} of {total}"})
    return control_passes(fields[0], min_lower), fields[0], pd.DataFrame(rows).set_index("dominant concept suppressed at")


def control_text(control: dict) -> str:
    """``"3/12 rows mitigated (25.0%; 95% CI 5.5%–57.2%)"``; ``"no row to mitigate"`` when none counts."""
    if not control["n"]:
        return "no row to mitigate"
    low, high = control["ci"]
    return (f"{control['hits']}/{control['n']} rows mitigated ({as_percent(control['value'], 1)}; "
            f"95% CI {as_percent(low, 1)}–{as_percent(high, 1)})")


def claims_with_control(claims: dict[str, dict]) -> pd.DataFrame:
    """The ablation claims (name → `versus_placebo` fields) with their positive control beside each:
    rate in the hypothesis's layers, the placebo's, the interval, the power check and the control."""
    def pct(v):
        return "—" if v is None else as_percent(v)

    return pd.DataFrame([{"claim": name, "mitigated (effect layers)": pct(c.get("value")),
                          "placebo": pct(c.get("null")),
                          "95% CI": "—" if not c.get("ci") else f"{pct(c['ci'][0])} to {pct(c['ci'][1])}",
                          "power check": c.get("power_check"),
                          "positive control": control_text(c["control"]) if c.get("control") else "—"}
                         for name, c in claims.items()]).set_index("claim")
