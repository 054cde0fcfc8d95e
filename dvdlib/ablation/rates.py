"""What the ablations did (paper §3.6): outcomes per prompt, per layer and per plan, the tables
and sentences the chapter prints and the rows of its image grid."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from ..outcome import CORRUPTED, MITIGATED, OUTCOMES, UNCHANGED
from ..report import percent as as_percent
from .interventions import EXCLUDED, Intervention, Job
from .sweep import Sweep


def best(outcomes: Iterable[str]) -> str:
    """The best outcome of a row over interventions: mitigated > unchanged > corrupted
    ("per prompt, mitigated if any head mitigates"); an excluded row stays excluded."""
    outcomes = list(outcomes)
    excluded = [o for o in outcomes if o in EXCLUDED]
    if excluded:
        return excluded[0]
    unknown = set(outcomes) - set(OUTCOMES)
    if unknown or not outcomes:
        raise ValueError(f"outcomes must be among {OUTCOMES + EXCLUDED}; got {sorted(unknown) or 'none'}")
    return min(outcomes, key=OUTCOMES.index)


def per_prompt(table: pd.DataFrame) -> pd.DataFrame:
    """One row per prompt-set row: its best outcome over the table's interventions."""
    return table.groupby("case_num", sort=False).agg(prompt=("prompt", "first"), outcome=("outcome", best),
                                                     interventions=("outcome", "size")).reset_index()


def shares(table: pd.DataFrame, per: str = "prompt") -> pd.Series:
    """Share of each outcome (mitigated, unchanged, corrupted) among the rows with something to
    mitigate: ``per="prompt"`` — each row's best outcome over interventions; ``per="intervention"``
    — every (row, intervention) pair. The count is in ``.attrs["n"]``."""
    if per not in ("prompt", "intervention"):
        raise ValueError(f"per must be 'prompt' or 'intervention', got {per!r}")
    outcomes = (per_prompt(table) if per == "prompt" else table)["outcome"]
    kept = outcomes[~outcomes.isin(EXCLUDED)]
    result = pd.Series({o: (kept == o).mean() if len(kept) else float("nan") for o in OUTCOMES}, name="share")
    result.attrs["n"] = len(kept)
    return result


def mitigated_count(table: pd.DataFrame) -> tuple[int, int]:
    """(rows mitigated by at least one intervention, rows with something to mitigate)."""
    best_of = per_prompt(table)["outcome"]
    kept = best_of[~best_of.isin(EXCLUDED)]
    return int((kept == MITIGATED).sum()), len(kept)


def layer_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per layer of a single-head table: rows mitigated by at least one of its heads, and the rate
    among rows with something to mitigate (paper §3.6: DvD peaks at layer 3, memorization at 6)."""
    single = table[table["layer"].notna() & ~table["outcome"].isin(EXCLUDED)]
    any_head = single.groupby(["layer", "case_num"])["outcome"].agg(lambda o: (o == MITIGATED).any())
    rates = any_head.groupby(level="layer").agg(mitigated="sum", prompts="size").reset_index()
    rates["rate"] = rates["mitigated"] / rates["prompts"]
    return rates.astype({"layer": int, "mitigated": int, "prompts": int})


def peak_layer(rates: pd.DataFrame) -> int | None:
    """The layer with the highest mitigation rate (the first on ties; None when nothing is mitigated)."""
    rates = rates.dropna(subset=["rate"])
    if not len(rates) or rates["rate"].max() <= 0:
        return None
    return int(rates.loc[rates["rate"].idxmax(), "layer"])


def peak_layers(rates: dict) -> dict:
    """`peak_layer` of each set's rates (``"DvD"``, ``"memorized"`` → layer or None)."""
    return {name: peak_layer(table) for name, table in rates.items()}


def fraction_text(k: int, n: int) -> str:
    """``"145/300 (48%)"``; ``"0/0 (nothing to mitigate)"`` when no row counts."""
    return f"{k}/{n} ({as_percent(k / n)})" if n else "0/0 (nothing to mitigate)"


#: `shares_text` where no row counts.
NOTHING = "nothing to mitigate"


def shares_text(table: pd.DataFrame, per: str = "prompt", outcomes=(MITIGATED, UNCHANGED, CORRUPTED),
                percent: bool = False) -> str:
    """`shares` as one line: ``"mitigated 0.60; unchanged 0.20; corrupted 0.20 (of 300)"``."""
    s = shares(table, per)
    if not s.attrs["n"]:
        return NOTHING
    return "; ".join(f"{o} {as_percent(s[o], 2)}" if percent else f"{o} {s[o]:.2f}" for o in outcomes) + f" (of {s.attrs['n']})"


def baseline_counts(sweeps: dict[str, Sweep], similarity_threshold: float) -> pd.DataFrame:
    """How many rows are collapsed (DvD) or reproduced (memorized) before any ablation."""
    collapsed = sweeps["DvD"].baseline.outcome == "unchanged"
    before = {"DvD": pd.Series({"collapsed": int(collapsed.sum()), "not collapsed": int((~collapsed).sum())})}
    if "memorized" in sweeps:
        similar = sweeps["memorized"].baseline.similarity >= similarity_threshold
        before["memorized"] = pd.Series({"reproduced": int(similar.sum()), "not reproduced": int((~similar).sum())})
    return pd.DataFrame(before).fillna(0).astype(int).rename_axis("plain images")


def rates_by_set(single_out: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`layer_rates` per set, saying which sets have nothing to mitigate in this run."""
    rates = {name: layer_rates(table) for name, table in single_out.items()}
    for name, r in rates.items():
        if r.empty:
            print(f"{name}: no row has anything to mitigate in this run (see 'Before any ablation'): no rate to draw")
    return rates


def rates_table(rates: dict[str, pd.DataFrame]):
    """The per-layer rates of the sets that have any side by side (one column group per set), as the
    chapter shows them (`dvdlib.report.rows_or_sentence`): one sentence where every layer reads the
    same; nothing where no set has a rate (`rates_by_set` has said why)."""
    from ..report import rows_or_sentence

    kept = {name: r.set_index("layer") for name, r in rates.items() if len(r)}
    if not kept:
        return None
    table = pd.concat(kept, axis=1).round(3)
    say = ("All {n} layers swept read the same: at least one head of the layer mitigates "
           + "; ".join(f"{{{name} mitigated}} of the {{{name} prompts}} {name} prompts counted" for name in kept) + ".")
    return rows_or_sentence(table, "layers", say)


def judged_rows(table: pd.DataFrame, n: int = 5) -> tuple[str, pd.DataFrame | None]:
    """What the sweep judged, for the chapter: a sentence (outcomes judged, on how many rows; rows
    left out because their plain images had nothing to mitigate) and the first ``n`` judged
    outcomes (None where nothing was ablated: no row is shown with empty counts)."""
    counted = table[~table.outcome.isin(EXCLUDED)]
    left_out = table[table.outcome.isin(EXCLUDED)]
    k = left_out.case_num.nunique()
    why = (f"{k} row{' was' if k == 1 else 's were'} {left_out.outcome.iloc[0]} before ablation and "
           f"{'was' if k == 1 else 'were'} not ablated" if k else "")
    if not len(counted):
        return f"Nothing was ablated: {why}.", None
    note = (f"{len(counted)} outcomes judged, one per (row, intervention), on {counted.case_num.nunique()} rows"
            + (f"; {why}" if why else "") + f". The first {min(n, len(counted))}:")
    return note, counted.drop(columns=["heads", "layer"], errors="ignore").head(n).reset_index(drop=True)


def paper_peaks(rates: dict) -> dict[str, int]:
    """The paper's peak layer of each set in ``rates`` (DvD 3, memorized 6; paper §3.6)."""
    from ..paper import ABLATION

    peaks = {"DvD": ABLATION["dvd_peak_layer"], "memorized": ABLATION["memorized_peak_layer"]}
    return {k: v for k, v in peaks.items() if k in rates}


def pairs_note(pairs: list[Job], layer: int, sweep: Sweep) -> str:
    """How many head pairs and (prompt, pair) combinations a pairwise plan holds, and its cost."""
    cost = sweep.cost(pairs, baseline=False)
    combos = sum(len(j.cases) for j in pairs)
    return (f"pairwise ablation: {len(pairs)} head pair{'' if len(pairs) == 1 else 's'} of layer {layer}, {combos} "
            f"(prompt, pair) combination{'' if combos == 1 else 's'}; {cost['generations']:,} generations, "
            f"{cost['stored']:,} of them stored")


def outcome_table(single_out, multi_out, pair_out, reading: str, pair_layer: int) -> pd.DataFrame:
    """The outcome shares of every plan (rows) with how many rows or pairs each counts."""
    rows = {}
    for name in single_out:
        rows[f"{name}: single head (per prompt)"] = shares(single_out[name])
        rows[f"{name}: multi-head, {reading} (per prompt)"] = shares(multi_out[name])
    rows[f"DvD: pairs of layer-{pair_layer} heads (per pair)"] = shares(pair_out, per="intervention")
    table = pd.DataFrame(rows).T[list(OUTCOMES)]
    table["counted"] = [s.attrs["n"] for s in rows.values()]
    return table


def outcome_shown(table: pd.DataFrame):
    """`outcome_table` as the chapter shows it: shares as percentages, "— (none counted)" where a plan
    counts no row; one sentence where every plan reads the same (`dvdlib.report.rows_or_sentence`)."""
    from IPython.display import Markdown

    from ..report import rows_or_sentence

    if not table["counted"].any():
        return Markdown("No plan counts a row: before ablation no prompt had anything to mitigate, so no head, "
                        "layer or pair of heads was ablated.")
    shown = table.copy()
    for o in OUTCOMES:
        shown[o] = [as_percent(v, 1, missing="— (none counted)") for v in table[o]]
    say = ("All {n} plans read the same: of the {counted} rows (or pairs) each counts, "
           + ", ".join(f"{{{o}}} {o}" for o in OUTCOMES) + ".")
    return rows_or_sentence(shown, "plans", say)


def counted(single_out: dict[str, pd.DataFrame], pair_out: pd.DataFrame) -> dict[str, int]:
    """How many rows each set has to mitigate (``"DvD"``, ``"memorized"`` where that half ran) and how
    many (row, pair) combinations the pairs count (``"pairs"``): what the closing paragraph reads."""
    out = {name: mitigated_count(table)[1] for name, table in single_out.items()}
    out["pairs"] = int((~pair_out.outcome.isin(EXCLUDED)).sum()) if len(pair_out) else 0
    return out


def paper_mitigated(table: pd.DataFrame) -> pd.Series:
    """The paper's mitigated share for each row of `outcome_table` it reports (paper §3.6)."""
    from ..paper import ABLATION as A

    k, n = A["single_head_dvd"]
    km, nm = A["single_head_memorized"]
    known = {("DvD", "single"): k / n, ("memorized", "single"): km / nm, ("DvD", "multi"): 0.6,
             ("memorized", "multi"): 0.8, ("DvD", "pairs"): 0.0055}
    return pd.Series({row: value for row in table.index for (s, kind), value in known.items()
                      if row.startswith(f"{s}:") and kind in row})


def shown_pairs(table: pd.DataFrame, rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """Up to ``n`` rows of ``table`` (in its order) for a figure: one per (concept, object) pair,
    whichever word order (both orders draw near-identical images), a concept repeated only once
    every concept has a row. ``rows``: the prompt set (``content``, ``nm_word``) by ``case_num``."""
    pair = table.case_num.map(lambda c: frozenset((rows.at[c, "content"], rows.at[c, "nm_word"])))
    content = table.case_num.map(lambda c: rows.at[c, "content"])
    distinct = table[~pair.duplicated()]
    first = ~content[distinct.index].duplicated()
    return pd.concat([distinct[first], distinct[~first]]).head(n)


def plain_vs_ablated_rows(table: pd.DataFrame, sweep: Sweep, factor: float, steps, n: int) -> list:
    """Rows of `dvdlib.plots.image_grid`: ``n`` distinct pairs across concepts (`shown_pairs`; the
    most telling outcome first), each with two seeds plain and ablated by its single head."""
    table = table[~table.outcome.isin(EXCLUDED)]  # ablated images exist only for rows with something to mitigate
    table = table.assign(rank=table.outcome.map({o: i for i, o in enumerate(OUTCOMES)}).fillna(len(OUTCOMES)))
    ordered = table.sort_values(["rank", "dvd"], kind="stable").drop_duplicates("case_num")
    shown = shown_pairs(ordered, sweep.rows, n)
    grid = []
    for r in shown.itertuples():
        iv = Intervention((r.heads,), factor, steps)
        plain, ablated = sweep.store(), sweep.store(iv)
        images = [(plain.image(r.prompt, s), f"plain, seed {s}") for s in sweep.seeds[:2]]
        images += [(ablated.image(r.prompt, s), f"{iv.label}, seed {s}") for s in sweep.seeds[:2]]
        grid.append((f'"{r.prompt}" — {r.intervention}: {r.outcome} (c={r.c:.1f}, n={r.n:.1f}, '
                     f'DvD {r.dvd_before:.0f} → {r.dvd:.0f})', images))
    return grid


def effect_layers_text(rates: dict[str, pd.DataFrame]) -> str:
    """Per set, the layers with at least half its peak rate ("DvD: 1–3; memorized: 6"), or "no layer
    (nothing mitigated)"."""
    from ..report import ranges

    strong = {name: r[r.rate >= 0.5 * r.rate.max()].layer for name, r in rates.items() if r.rate.max() > 0}
    return "; ".join(f"{name}: {ranges(v)}" for name, v in strong.items()) or "no layer (nothing mitigated)"
