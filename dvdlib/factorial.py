"""Three concepts in one prompt: the 2×2×2 factorial (the paper's ACCV version, §3.10 there).

Each of three slots holds a low-diversity named concept (1) or an ordinary object (0); matched
case k keeps the same concept and object per slot across the eight conditions. Per image, each
target is **present** when at least ``present_at`` of its five presence questions are answered
Yes (the concept's group for a named concept, the object group for an object; open choice,
default 3 of 5: a majority).

Effects are contrasts of presence, computed **within each matched case** (the unit of
inference: cases vary independently; images and seeds within a case do not), for each slot's
target: the main effect of every slot's homogeneity (its own and the others') and the two-way
interactions. Across cases: the mean contrast, a 95% bootstrap interval over cases, and a
sign-flip permutation test — under the null of no effect, the sign of a case's contrast is
exchangeable, which is exactly a permutation of the conditions within matched cases.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

SLOTS = (1, 2, 3)
#: The effects estimated for each slot's target: three main effects and three interactions.
EFFECTS = tuple(f"h{j}" for j in SLOTS) + tuple(f"h{a}×h{b}" for a, b in itertools.combinations(SLOTS, 2))


def presence(yes_counts, present_at: int = 3) -> np.ndarray:
    """Present (bool) per image from the Yes count (0–5) of its target's five questions."""
    return np.asarray(yes_counts) >= present_at


def _codes(condition: str) -> dict[str, float]:
    """Effect codes (±1) of a condition "101": each slot's, and their products for the interactions."""
    h = {j: 2 * int(bit) - 1 for j, bit in zip(SLOTS, condition)}
    codes = {f"h{j}": h[j] for j in SLOTS}
    codes.update({f"h{a}×h{b}": h[a] * h[b] for a, b in itertools.combinations(SLOTS, 2)})
    return codes


def case_contrasts(table: pd.DataFrame) -> pd.DataFrame:
    """Per matched case, slot and effect, the contrast of presence.

    ``table``: one row per image with ``case``, ``condition`` ("000" … "111") and ``present_1``,
    ``present_2``, ``present_3`` (bool or 0/1). Condition means are taken first (so seeds weigh
    alike in every condition); a main effect is mean(h = 1) − mean(h = 0), an interaction half the
    difference of the simple effects, as in any 2^k design. Every case must have all 8 conditions."""
    need = {"case", "condition", *(f"present_{k}" for k in SLOTS)}
    missing = need - set(table.columns)
    if missing:
        raise ValueError(f"the factorial table needs columns {sorted(need)}; missing {sorted(missing)}")
    means = table.groupby(["case", "condition"])[[f"present_{k}" for k in SLOTS]].mean()
    counts = means.groupby(level="case").size()
    if (counts != 8).any():
        raise ValueError(f"every matched case needs all 8 conditions; incomplete: {counts[counts != 8].to_dict()}")
    codes = pd.DataFrame([_codes(c) for c in means.index.get_level_values("condition")], index=means.index)
    rows = []
    for k in SLOTS:
        for effect in EFFECTS:
            weighted = (means[f"present_{k}"] * codes[effect]).groupby(level="case").sum() / 4
            rows += [{"case": case, "slot": k, "effect": effect, "contrast": v} for case, v in weighted.items()]
    return pd.DataFrame(rows)


def effects(table: pd.DataFrame, n_boot: int = 2000, n_perm: int = 10000, seed: int = 0) -> pd.DataFrame:
    """Per slot and effect: mean contrast over cases, 95% bootstrap interval over cases, the
    sign-flip permutation p-value (two-sided) and the number of cases."""
    if table.empty:  # a world that cannot run the design
        return pd.DataFrame(columns=["slot", "effect", "estimate", "ci_low", "ci_high", "p", "n_cases"])
    contrasts = case_contrasts(table)
    rng = np.random.default_rng(seed)
    rows = []
    for (slot, effect), group in contrasts.groupby(["slot", "effect"], sort=False):
        x = group["contrast"].to_numpy()
        boot = x[rng.integers(len(x), size=(n_boot, len(x)))].mean(1)
        signs = rng.choice((-1.0, 1.0), size=(n_perm, len(x)))
        null = np.abs((signs * x).mean(1))
        p = (1 + np.sum(null >= abs(x.mean()) - 1e-12)) / (n_perm + 1)
        low, high = np.percentile(boot, [2.5, 97.5])
        rows.append({"slot": slot, "effect": effect, "estimate": x.mean(), "ci_low": low, "ci_high": high,
                     "p": p, "n_cases": len(x)})
    return pd.DataFrame(rows)


def survivors(table: pd.DataFrame) -> pd.DataFrame:
    """Share of images in which 0, 1, 2 or 3 targets are present, per condition."""
    if table.empty:
        return pd.DataFrame(columns=range(4)).rename_axis(columns="targets present")
    present = table[[f"present_{k}" for k in SLOTS]].astype(bool).sum(axis=1)
    shares = pd.crosstab(table["condition"], present, normalize="index")
    return shares.reindex(columns=range(4), fill_value=0.0).rename_axis(columns="targets present")
