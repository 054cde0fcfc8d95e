"""An ablation claim against its placebo (paper §3.6): heads of the layers the hypothesis names
against heads of the other layers, over concepts (`dvdlib.stats`)."""

from __future__ import annotations

import pandas as pd

from ..outcome import MITIGATED
from .interventions import EXCLUDED


#: Where the paper finds the single-head effects (paper §3.6): the layers the hypothesis chooses.
#: Heads of the other layers are the placebo (`versus_placebo`).
EFFECT_LAYERS = (1, 2, 3, 4, 5, 6)


def placebo_hits(table: pd.DataFrame, hypothesis=EFFECT_LAYERS, seed: int = 0) -> tuple[list, dict, int]:
    """The matched comparison behind `versus_placebo`: (the prompts with something to mitigate,
    {True: per prompt whether one of the interventions in the ``hypothesis`` layers mitigates it,
    False: whether one of as many interventions in the other swept layers does (drawn with ``seed``
    where one side has more)}, k the interventions a side; 0 when no placebo layer was swept)."""
    import numpy as np

    kept = table[~table["outcome"].isin(EXCLUDED)]
    inside = kept["intervention"].map(lambda label: all(int(h.split(".")[0][1:]) in hypothesis for h in label.split("+")))
    labels = {side: sorted(kept.loc[inside == side, "intervention"].unique()) for side in (True, False)}
    k = min(len(labels[True]), len(labels[False]))
    rng = np.random.default_rng(seed)
    chosen = {side: set(rng.choice(labels[side], k, replace=False)) if k else set(labels[side]) for side in labels}
    cases = list(dict.fromkeys(kept["case_num"]))
    hit = {side: np.array([((kept.case_num == c) & kept.intervention.isin(chosen[side]) & (kept.outcome == MITIGATED)).any()
                           for c in cases], float) for side in labels}
    return cases, hit, k


def versus_placebo(table: pd.DataFrame, power: str, rows: pd.DataFrame, hypothesis=EFFECT_LAYERS, seed: int = 0,
                   control: dict | None = None) -> dict:
    """An ablation claim against its placebo: per prompt with something to mitigate, whether one of
    the interventions in the ``hypothesis`` layers mitigates it, against whether one of as many
    interventions in the other swept layers does (same prompts and seeds: `placebo_hits`), with
    the 95% interval over concepts (`dvdlib.stats.versus_placebo`; ``rows``: the prompt set, for
    each case's concept), the power check and, as ``control``, the positive control's rate
    (`power_check`). Without placebo interventions (a sweep inside the hypothesis's layers) the
    interval is None: inconclusive."""
    from ..stats import clusters_of
    from ..stats import versus_placebo as against

    cases, hit, k = placebo_hits(table, hypothesis, seed)
    checks = {"power_check": power, **({"control": control} if control is not None else {})}
    if not cases:
        return {"value": None, "n": 0, "ci": None, "test": "rate vs placebo", **checks}
    if not k:
        return {"value": float(hit[True].mean()), "n": len(cases), "ci": None, "null": None, **checks,
                "test": "rate vs placebo: no placebo heads were swept (layers outside "
                        f"{min(hypothesis)}–{max(hypothesis)})"}
    concepts = clusters_of(rows.drop_duplicates("case_num").set_index("case_num").loc[cases])
    return {**against(hit[True], hit[False], clusters=concepts), **checks, "placebo_interventions": k}
