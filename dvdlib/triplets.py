"""Three concepts in one prompt (the paper's ACCV version): generate the factorial's and the
pilot's prompts, judge each target's presence, find which target holds the first step's peak.

A design has the authors' columns (`dvdlib.bench.load_factorial`, `load_pilot`): per slot k,
``target<k>`` and ``target<k>_type`` (artist, landmark, character or object) and, in the factorial,
``target<k>_homogeneity``, ``condition`` and ``case``. Each target is asked its five presence
questions: its category's for a named concept, the object group's for an object (paper §2's
question sets); `dvdlib.factorial` turns presence into effects. A world without three-concept
prompts (no ``factorial``/``pilot`` role) gets an empty design and a reason; every function here
then returns empty tables (or no results), and the chapter says why once, at the top.

Every share and contrast is averaged per prompt over its seeds, and its 95% interval is taken over
the **crossed clusters** the prompts share (each slot's target and the template:
`dvdlib.factorial.row_clusters`; for within-case contrasts, each slot's named concept and object:
`dvdlib.factorial.case_clusters`), by `dvdlib.factorial.crossed_mean`: neither images, nor seeds,
nor prompts that share a concept count as independent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bench import TRIPLET_SLOTS, as_triplet_design
from .factorial import (THREE_WAY, case_clusters, crossed_chance_share, crossed_mean, interval, presence,
                        row_clusters)
from .judge import OBJECTS, QUESTIONS_PER_SET
from .metrics import peak_token
from .tokens import concept_spans, content_positions, find_concept, token_strings

#: The columns of a design, whatever its world (an empty design keeps them).
TABLE_COLUMNS = ("case_num", "condition", "case", "prompt",
                  *(f"target{k}{part}" for k in TRIPLET_SLOTS for part in ("", "_type", "_homogeneity")))
IMAGE_COLUMNS = ("case_num", "condition", "case", "prompt", "seed",
                 *(f"{what}_{k}" for what in ("yes", "present") for k in TRIPLET_SLOTS))


def design(run, role: str, cases: int | None = None) -> tuple[pd.DataFrame, str | None]:
    """The design ``run``'s world gives ``role`` ("factorial" or "pilot") and None, or an empty
    design and the reason it has none. The factorial keeps its first ``cases`` matched cases (all
    eight conditions of each); the pilot its first ``cases`` prompts (None: all; at least one:
    0, e.g. half of a single prompt, keeps one). The pilot gets condition "111" and its own row as the case."""
    if role not in run.profile.prompt_sets:
        why = (f"the world `{run.world.name}` gives no `{role}` prompt set: a world whose captions never name "
               "three concepts (world 1 of the toy profile writes two per caption) has nothing to run it on, "
               "and a model trained on two says nothing about three")
        return pd.DataFrame(columns=list(TABLE_COLUMNS)), why
    table = run.prompts(role, tokenize=False)
    if "target_1" in table:  # a world's own three-slot columns (`dvdlib.bench.as_triplet_design`)
        table = as_triplet_design(table)
    if "condition" not in table:
        table = table.assign(condition="111", case=table["case_num"],
                             **{f"target{k}_homogeneity": 1 for k in TRIPLET_SLOTS})
    if cases is not None:  # 0 (e.g. half of one prompt) is one case, never "no limit"
        keep = list(dict.fromkeys(table["case"]))[:max(1, int(cases))]
        table = table[table["case"].isin(keep)]
    return table.reset_index(drop=True), None


def _questions(questions, target: str, kind: str) -> list[str]:
    """The five presence questions of a target: its category's, or the object group's."""
    if kind in questions.categories:
        return questions.concept_questions(target, kind)
    return questions.object_questions(target)


def _key(judge, questions, target: str, kind: str) -> str:
    category = kind if kind in questions.categories else OBJECTS
    return f"presence:{judge.name}|{questions.name}|{category}|{target}"


def judge_presence(rows: pd.DataFrame, seeds, store, judge, questions, present_at: int = 3) -> pd.DataFrame:
    """One row per (design row, seed): each slot's Yes count (of five) and whether its target is
    present (`dvdlib.factorial.presence`). Answers are kept in the store (a rerun asks nothing twice)."""
    if rows.empty:
        return pd.DataFrame(columns=list(IMAGE_COLUMNS))
    out = []
    for row in rows.to_dict("records"):
        counts = {}
        for k in TRIPLET_SLOTS:
            target, kind = row[f"target{k}"], row[f"target{k}_type"]
            key = _key(judge, questions, target, kind)
            stored = store.answers(key, row["prompt"], seeds)  # a frozen store raises on a miss
            known = {s: stored.get(int(s)) for s in seeds}
            missing = [s for s, a in known.items() if a is None]
            if missing:
                asked = _questions(questions, target, kind)
                answers = judge.ask([store.image(row["prompt"], s).convert("RGB") for s in missing], asked)
                for s, a in zip(missing, answers):
                    known[s] = {"yes": sum(map(questions.yes_rule, a[:QUESTIONS_PER_SET])), "answers": list(a)}
                    store.save(row["prompt"], s, **{key: known[s]})
            counts[k] = {s: a["yes"] for s, a in known.items()}
        for s in seeds:
            yes = {f"yes_{k}": counts[k][s] for k in TRIPLET_SLOTS}
            out.append({"case_num": row["case_num"], "condition": row["condition"], "case": row["case"],
                        "prompt": row["prompt"], "seed": s, **yes,
                        **{f"present_{k}": bool(presence(yes[f"yes_{k}"], present_at)) for k in TRIPLET_SLOTS}})
    return pd.DataFrame(out, columns=list(IMAGE_COLUMNS))


def generate_and_judge(run, rows: pd.DataFrame, present_at: int = 3) -> pd.DataFrame:
    """Every prompt of ``rows`` with every seed of ``run``, generated into the profile's store, then
    each target's presence judged (`judge_presence`)."""
    if rows.empty:
        return judge_presence(rows, [], None, None, None)
    run.generate(rows["prompt"].unique(), run.profile.seeds)
    return run.judge_presence(rows, run.profile.seeds, present_at)


def record_first_step(run, rows: pd.DataFrame, layers=(8, 9, 10)) -> list:
    """The first denoising step of every prompt of ``rows`` with every seed of ``run``, ``layers``
    recorded (the `peak_slots` read), in the profile's store; none for an empty design."""
    if rows.empty:
        return []
    return run.generate(rows["prompt"].unique(), run.profile.seeds, attention={"layers": list(layers), "steps": [1]},
                        until_step=1)


def presence_by_condition(images: pd.DataFrame) -> pd.DataFrame:
    """Share of images in which each slot's target is present, per condition (rows) and slot."""
    columns = [f"present_{k}" for k in TRIPLET_SLOTS]
    if images.empty:
        return pd.DataFrame(columns=columns)
    return images.groupby("condition")[columns].mean().rename(columns=lambda c: f"slot {c[-1]}")


# ------------------------------------------------------------------------------ per prompt, over crossed clusters


def _per_prompt(images: pd.DataFrame) -> pd.DataFrame:
    """Per prompt (index ``case_num``, in order of appearance), averaged over its seeds: each slot's
    presence (``present_k``), whether its target is the only one present (``alone_k``) and the
    number of targets present (``n_present``)."""
    present = images[[f"present_{k}" for k in TRIPLET_SLOTS]].astype(float).reset_index(drop=True)
    count = present.sum(axis=1)
    table = present.assign(**{f"alone_{k}": present[f"present_{k}"] * (count == 1) for k in TRIPLET_SLOTS},
                           n_present=count, case_num=images["case_num"].to_numpy())
    return table.groupby("case_num", sort=False).mean()


def _design_of(rows: pd.DataFrame, case_nums) -> pd.DataFrame:
    return rows.set_index("case_num").loc[list(case_nums)].reset_index()


def _clusters(rows: pd.DataFrame, case_nums) -> pd.DataFrame | None:
    """`dvdlib.factorial.row_clusters` of the prompts ``case_nums`` (in that order); None (units
    independent) when ``rows`` do not name the targets."""
    if not {f"target{k}" for k in TRIPLET_SLOTS} <= set(rows.columns):
        return None
    return row_clusters(_design_of(rows, case_nums))


def tabulate(results: dict) -> pd.DataFrame:
    """Results of this module (keys → `dvdlib.factorial.crossed_mean` dicts) as a table: the
    estimate, its 95% interval, the chance level where there is one, prompts or cases (``n``) and
    clusters of the smallest factor."""
    rows = []
    for r in results.values():
        ci = r.get("ci") or [np.nan, np.nan]
        row = {"value": r.get("value"), "ci_low": ci[0], "ci_high": ci[1]}
        if "null" in r:
            row["chance"] = r["null"]
        row.update(n=r.get("n"), clusters=r.get("n_clusters"))
        if any(x.get("categories") for x in results.values()):  # a row without them (a difference) says so
            row["categories"] = ", ".join(f"{k} {v}" for k, v in r.get("categories", {}).items()) or "—"
        rows.append(row)
    keys = list(results)
    if not keys:
        return pd.DataFrame(columns=["value", "ci_low", "ci_high", "n", "clusters"])
    index = pd.MultiIndex.from_tuples(keys) if all(isinstance(k, tuple) for k in keys) else pd.Index(keys)
    table = pd.DataFrame(rows, index=index)
    return table.assign(value=pd.to_numeric(table["value"]))


def presence_intervals(images: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """Per (condition, slot): the share of images in which the slot's target is present, averaged
    per prompt, with its interval over the crossed clusters of the condition's prompts (each slot's
    target and the template)."""
    if images.empty:
        return {}
    per = _per_prompt(images)
    condition = _design_of(rows, per.index)["condition"].to_numpy()
    out = {}
    for c in sorted(set(condition)):
        chosen = per.index[condition == c]
        clusters = _clusters(rows, chosen)
        for k in TRIPLET_SLOTS:
            out[(c, f"slot {k}")] = crossed_mean(per.loc[chosen, f"present_{k}"].to_numpy(), clusters)
    return out


def presence_by_holding(images: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """Per slot: its target's presence over the prompts where it holds the named concept and over
    those where it holds the object (four conditions each), with intervals over crossed clusters."""
    if images.empty:
        return {}
    per = _per_prompt(images)
    design = _design_of(rows, per.index)
    clusters = _clusters(rows, per.index)
    out = {}
    for k in TRIPLET_SLOTS:
        for bit, holds in ((1, "named"), (0, "object")):
            mask = design[f"target{k}_homogeneity"].astype(int).to_numpy() == bit
            if mask.any():
                values = np.where(mask, per[f"present_{k}"].to_numpy(), np.nan)
                out[(f"slot {k}", holds)] = crossed_mean(values, clusters)
    return out


def survivor_intervals(images: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """Mean number of targets present per image (of 3), per condition, with its interval over the
    condition's prompts' crossed clusters; and "111 − 000": the within-case difference between all
    named and no named concept, over the cases' crossed clusters (`dvdlib.factorial.case_clusters`)."""
    if images.empty:
        return {}
    per = _per_prompt(images)
    design = _design_of(rows, per.index)
    out = {}
    for c in sorted(set(design["condition"])):
        chosen = per.index[design["condition"].to_numpy() == c]
        out[c] = crossed_mean(per.loc[chosen, "n_present"].to_numpy(), _clusters(rows, chosen))
    by_case = per.assign(case=design["case"].to_numpy(), condition=design["condition"].to_numpy())
    wide = by_case.pivot_table(index="case", columns="condition", values="n_present", sort=False)
    if {"000", "111"} <= set(wide.columns):
        diff = (wide["111"] - wide["000"]).dropna()
        clusters = case_clusters(rows).loc[diff.index] if "target1_homogeneity" in rows else None
        out["111 − 000"] = crossed_mean(diff.to_numpy(), clusters)
    return out


def pilot_winners(images: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The pilot: per category (artist, landmark, character), the share of images in which it is
    present, and the share in which it is the only one present (it "wins")."""
    if images.empty:
        return pd.DataFrame(columns=["present", "alone"])
    present = images[[f"present_{k}" for k in TRIPLET_SLOTS]].to_numpy(bool)
    alone = present & (present.sum(1, keepdims=True) == 1)
    kinds = rows.set_index("case_num").loc[images["case_num"], [f"target{k}_type" for k in TRIPLET_SLOTS]].to_numpy()
    table = pd.DataFrame({"category": kinds.ravel(), "present": present.ravel(), "alone": alone.ravel()})
    return table.groupby("category", sort=False)[["present", "alone"]].mean()


def pilot_intervals(images: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """The pilot per (category, "present" or "alone"): the share of images in which the category's
    target is present (the only one present), averaged per prompt, with its interval over the
    prompts' crossed clusters (artist, landmark, character, template)."""
    if images.empty:
        return {}
    per = _per_prompt(images)
    kinds = _design_of(rows, per.index)[[f"target{k}_type" for k in TRIPLET_SLOTS]].to_numpy()
    clusters = _clusters(rows, per.index)
    out = {}
    for category in dict.fromkeys(kinds.ravel()):
        mask = kinds == category
        for what in ("present", "alone"):
            values = per[[f"{what}_{k}" for k in TRIPLET_SLOTS]].to_numpy()
            share = (values * mask).sum(1) / mask.sum(1)  # NaN where the category is not in the prompt
            out[(category, what)] = crossed_mean(share, clusters)
    return out


POSITIONS = ("first", "second", "third")


def mention_order(images: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """The pilot by mention order: per position in the prompt (first, second, third named
    target), the share of images in which the target mentioned there is present, and the only
    one present, with intervals over the crossed clusters; and "first − third", the within-prompt
    difference of presence. Each result names the categories mentioned there (``categories``): in
    the authors' pilot the template fixes the order, so position and category go together."""
    if images.empty:
        return {}
    per = _per_prompt(images)
    design = _design_of(rows, per.index)
    starts = np.array([[(find_concept(r["prompt"], r[f"target{k}"]) or (np.inf,))[0] for k in TRIPLET_SLOTS]
                       for r in design.to_dict("records")], float)
    order = np.argsort(starts, axis=1, kind="stable")  # order[i, j]: the slot index mentioned j-th
    kinds = design[[f"target{k}_type" for k in TRIPLET_SLOTS]].to_numpy()
    clusters = _clusters(rows, per.index)
    every = np.arange(len(per))
    out = {}
    for j, position in enumerate(POSITIONS):
        counts = pd.Series(kinds[every, order[:, j]]).value_counts().sort_index().to_dict()
        for what in ("present", "alone"):
            values = per[[f"{what}_{k}" for k in TRIPLET_SLOTS]].to_numpy()[every, order[:, j]]
            out[(position, what)] = {**crossed_mean(values, clusters), "categories": counts}
    present = per[[f"present_{k}" for k in TRIPLET_SLOTS]].to_numpy()
    out[("first − third", "present")] = crossed_mean(present[every, order[:, 0]] - present[every, order[:, 2]],
                                                     clusters)
    return out


def slot_chance(tokenizer, prompt: str, targets: dict) -> dict:
    """Per slot: the share of the prompt's content tokens that spell its target (``targets``: slot →
    words; what a peak drawn at random would hit: the chance level, as in
    `dvdlib.focus.peak_on_concept`). `slot_chance_at` reads token positions instead."""
    return slot_chance_at(content_positions(tokenizer, prompt), concept_spans(tokenizer, prompt, targets))


def slot_chance_at(positions, spans: dict) -> dict:
    """`slot_chance` one level down: per slot, the share of the content ``positions`` in its
    target's span (``spans``: slot → token positions)."""
    positions = set(positions)
    return {k: len(set(span) & positions) / len(positions) for k, span in spans.items()}


def peak_slot(share: np.ndarray, tokenizer, prompt: str, targets: dict) -> tuple[int, int]:
    """(peak, slot): the position of the most attended content token of ``prompt`` by ``share``
    [tokens] (`dvdlib.metrics.peak_token`) and the slot whose target's words (``targets``: slot →
    words) it spells, 0 for a word of no target. `peak_slot_at` reads token positions instead."""
    return peak_slot_at(share, content_positions(tokenizer, prompt), concept_spans(tokenizer, prompt, targets))


def peak_slot_at(share: np.ndarray, positions, spans: dict) -> tuple[int, int]:
    """`peak_slot` one level down: the peak among the content ``positions`` and the first slot
    whose span (``spans``: slot → token positions) holds it, 0 where none does."""
    peak = peak_token(share, positions)
    return peak, next((k for k, span in spans.items() if peak in span), 0)


def peak_slots(run, rows: pd.DataFrame, layers=(8, 9, 10)) -> pd.DataFrame:
    """Per prompt: the first step's peak token (shares averaged over the run's seeds and ``layers``,
    as in `dvdlib.focus.peak_on_concept`) and the slot whose target's words hold it (`peak_slot`;
    0: a word of no target), and each slot's chance level (``chance_k``, `slot_chance`). Words are
    found by the model's tokenizer (`dvdlib.tokens.sequence_tokenizer`). One denoising step per
    (prompt, seed), recorded in the profile's store."""
    from .tokens import sequence_tokenizer

    columns = ["case_num", "condition", "case", "prompt", "peak_token", "peak_slot",
               *(f"chance_{k}" for k in TRIPLET_SLOTS)]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    samples = record_first_step(run, rows, layers)
    tokenizer, shares = sequence_tokenizer(run.pipe), {}
    for sample in samples:
        shares.setdefault(sample.prompt, []).extend(sample.share(layer, 1) for layer in layers)
    out = []
    for row in rows.to_dict("records"):
        prompt, targets = row["prompt"], {k: row[f"target{k}"] for k in TRIPLET_SLOTS}
        peak, slot = peak_slot(np.mean(shares[prompt], axis=0), tokenizer, prompt, targets)
        words = dict(zip(content_positions(tokenizer, prompt), token_strings(tokenizer, prompt)))
        chance = slot_chance(tokenizer, prompt, targets)
        out.append({**{c: row[c] for c in columns[:4]}, "peak_token": words[peak], "peak_slot": slot,
                    **{f"chance_{k}": v for k, v in chance.items()}})
    return pd.DataFrame(out, columns=columns)


def peak_beside_presence(peaks: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """Per condition and slot: the share of prompts whose first-step peak lies on that slot's target,
    beside the share of images in which that target is present."""
    if peaks.empty:
        return pd.DataFrame(columns=["peak share", "present"],
                            index=pd.MultiIndex.from_tuples([], names=["condition", "slot"]))
    peak = pd.crosstab(peaks["condition"], peaks["peak_slot"], normalize="index")
    peak = peak.reindex(columns=list(TRIPLET_SLOTS), fill_value=0.0).stack().rename("peak share")
    present = presence_by_condition(images).rename(columns=lambda c: int(c.split()[-1])).stack().rename("present")
    return pd.concat([peak, present], axis=1).rename_axis(["condition", "slot"])


def peaks_by_category(peaks: pd.DataFrame, rows: pd.DataFrame) -> pd.Series:
    """The share of prompts whose first-step peak lies on each target category (artist, landmark,
    character, object) or on no target ("none"): the pilot's attention beside its survivors."""
    if peaks.empty:
        return pd.Series(dtype=float, name="peak share")
    kinds = rows.set_index("case_num").loc[peaks["case_num"]]
    category = [kinds[f"target{k}_type"].iloc[i] if k else "none" for i, k in enumerate(peaks["peak_slot"])]
    return pd.Series(category).value_counts(normalize=True).rename("peak share")


def peak_presence(peaks: pd.DataFrame, images: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """Per prompt whose first-step peak lies on a target (the others left out): the presence of
    that target ("the peak's target") and the mean presence of the other two ("the other
    targets"), averaged over seeds, and their within-prompt "difference"; each with its interval
    over the prompts' crossed clusters."""
    if peaks.empty or images.empty:
        return {}
    per = _per_prompt(images)
    slot = peaks.set_index("case_num")["peak_slot"].reindex(per.index).fillna(0).to_numpy(int)
    chosen = per.index[slot > 0]
    present = per.loc[chosen, [f"present_{k}" for k in TRIPLET_SLOTS]].to_numpy()
    on = present[np.arange(len(chosen)), slot[slot > 0] - 1]
    others = (present.sum(axis=1) - on) / (len(TRIPLET_SLOTS) - 1)
    clusters = _clusters(rows, chosen)
    return {"the peak's target": crossed_mean(on, clusters), "the other targets": crossed_mean(others, clusters),
            "difference": crossed_mean(on - others, clusters)}


def peak_chance(peaks: pd.DataFrame, rows: pd.DataFrame) -> dict:
    """The first-step peak against chance (`dvdlib.factorial.crossed_chance_share`; chance per
    prompt: the share of its content tokens that spell the target, `slot_chance`): "any named
    concept" — over prompts that name at least one, the peak on a named concept's tokens against
    their share — and per "slot k: category", the peak on that slot's target over the prompts where
    the slot holds that category. Intervals over the prompts' crossed clusters."""
    if peaks.empty:
        return {}
    design = _design_of(rows, peaks["case_num"])
    named = design[[f"target{k}_homogeneity" for k in TRIPLET_SLOTS]].astype(int).to_numpy() == 1
    chance = peaks[[f"chance_{k}" for k in TRIPLET_SLOTS]].to_numpy(float)
    on = peaks["peak_slot"].to_numpy(int)[:, None] == np.array(TRIPLET_SLOTS)[None, :]
    clusters = _clusters(rows, peaks["case_num"])
    some = named.any(axis=1)
    out = {"any named concept": crossed_chance_share(np.where(some, (on & named).any(axis=1), np.nan),
                                                     np.where(some, (chance * named).sum(axis=1), np.nan), clusters)}
    for j, k in enumerate(TRIPLET_SLOTS):
        kinds = design[f"target{k}_type"].to_numpy()
        for kind in dict.fromkeys(kinds):
            mask = kinds == kind
            out[f"slot {k}: {kind}"] = crossed_chance_share(np.where(mask, on[:, j], np.nan),
                                                            np.where(mask, chance[:, j], np.nan), clusters)
    return out


def case_grid(run, rows: pd.DataFrame, images: pd.DataFrame, case, seeds: int = 4) -> list:
    """The rows of `dvdlib.plots.image_grid` for one matched ``case``: one row per condition (its
    prompt above), its first ``seeds`` images, under each which targets the judge found (✓/✗ per slot)."""
    store = run.store()
    chosen = rows[rows["case"] == case].sort_values("condition")
    out = []
    for row in chosen.itertuples():
        judged = images[images["case_num"] == row.case_num].head(seeds)
        cells = [(store.image(row.prompt, r.seed), f"seed {r.seed}: " + " ".join(
            "✓" if getattr(r, f"present_{k}") else "✗" for k in TRIPLET_SLOTS)) for r in judged.itertuples()]
        out.append((f'{row.condition}: "{row.prompt}"', cells))
    return out


NOT_PUBLIC = "not public (no results released)"
#: The rows chapter 11 records, and what each holds.
QUANTITIES = {
    "own_effects": "each slot's own effect on its presence [95% interval over crossed clusters]",
    "cross_effects": "strongest effect of another slot's homogeneity, per slot",
    "three_way": "three-way interaction h1×h2×h3, per slot's target",
    "presence": "presence of each slot's target: named concept vs object",
    "survivors": ("mean targets present per image (of 3): no named concept (000), all named (111), "
                  "within-case difference"),
    "peak_presence": "target present: the one holding the first-step peak vs the others",
    "peak_chance": "first-step peak on a named concept's tokens, against chance per prompt",
    "pilot_winner": "pilot: each category present (the only one present)",
    "pilot_mention_order": "pilot: target present by its mention order (first, second, third)",
    "pilot_peak_chance": "pilot: first-step peak on each category, against chance per prompt",
}


CONTRASTS = "within-case contrasts, t over crossed clusters"


def _clusters_text(n: int) -> str:
    return f"{n} cluster" + ("" if n == 1 else "s")


def _signed(r: dict) -> str:
    return interval(r, "{:+.2f}")


def _fields(results: list[dict], test: str = "mean over prompts, t over crossed clusters") -> dict:
    """The structured fields of a report row holding several results of `crossed_mean`."""
    return {"value": [r.get("value") for r in results], "ci": [r.get("ci") for r in results],
            "n": [r.get("n") for r in results], "n_clusters": min((r.get("n_clusters") or 0) for r in results),
            "method": results[0].get("method"), "test": test}


def _effect_result(row) -> dict:
    ci = None if pd.isna(row.ci_low) else [float(row.ci_low), float(row.ci_high)]
    return {"value": float(row.estimate), "ci": ci, "n": int(row.n_cases), "n_clusters": int(row.n_clusters),
            "method": row.method, "p": None if pd.isna(row.p) else float(row.p)}


def scope(rows: pd.DataFrame, why: str | None, pilot_rows: pd.DataFrame, pilot_why: str | None) -> str:
    """One sentence for the page's first paragraph: what this run runs, or why it runs nothing.
    The one place the page says why a set does not run (its tables, figures and report rows of
    that set are left out, not filled with the reason)."""
    if why and pilot_why:
        return f"nothing runs on this page, because {why}"
    parts = []
    if not why:
        parts.append(f"the factorial's {rows['case'].nunique()} matched cases × {rows['condition'].nunique()} "
                     f"conditions = {len(rows)} prompts")
    if not pilot_why:
        parts.append(f"{len(pilot_rows)} pilot prompts")
    text = " and ".join(parts)
    if why or pilot_why:
        text += f". The {'factorial' if why else 'pilot'} does not run here, because {why or pilot_why}"
    return text


def shown(table, why: str | None):
    """``table`` where the world runs the design; None (nothing displayed) where it cannot."""
    return None if why else table


def interval_grid(results: dict) -> pd.DataFrame:
    """Results keyed (row, column), e.g. `presence_intervals`, as a grid of "0.50 [0.20, 0.80]"."""
    if not results:
        return pd.DataFrame()
    cells = pd.Series({k: interval(r) for k, r in results.items()})
    return cells.unstack().rename_axis(index=None, columns=None)


#: How to read the page's numbers, where it measured any (the closing paragraph after `this_run`'s).
READING = ("Each number with its 95% interval over crossed clusters is in the table above (paper column: no paper "
           "numbers exist to compare, the authors released these prompts without a scorer or results): each slot's "
           "own effect on its target's presence, the strongest effect of another slot, the three-way interaction, "
           "presence named vs object, the targets that survive, the peak's target's presence, the peak against "
           "chance, and the pilot by category and by mention order. Read them with the card at the top: under "
           "the smoke profile a random-weight judge answers arbitrarily and the page only proves that the pipeline "
           "runs; under the paper profile they are Stable Diffusion's.")


def this_run(effects: pd.DataFrame, peak: dict, order: dict, why: str | None) -> str:
    """What this run shows, read from the intervals (decisive: the 95% interval over crossed
    clusters excludes 0, or chance), then how to read the table (`READING`). Where the world runs
    no factorial, one sentence saying that nothing is measured here and why."""
    if why:
        return f"Nothing is measured on this page in this world: {why}."
    own = effects[effects["effect"] == "h" + effects["slot"].astype(str)]
    three = effects[effects["effect"] == THREE_WAY]
    decisive = lambda t: [int(r.slot) for r in t.itertuples() if r.ci_low > 0 or r.ci_high < 0]  # noqa: E731
    slots = lambda s: ("slots " if len(s) > 1 else "slot ") + ", ".join(map(str, s)) if s else "no slot"  # noqa: E731
    text = (f"In this run, a slot's own switch to a named concept changes its target's presence decisively in "
            f"{slots(decisive(own))} (of {len(own)}), the three-way interaction is decisive in "
            f"{slots(decisive(three))}")
    named = peak.get("any named concept")
    if named and named.get("ci"):
        low, high = named["ci"]
        side = ("more often than" if low > named["null"] else "less often than" if high < named["null"]
                else "neither more nor less often than")
        text += (f", the first step's peak lands on a named concept's words {side} chance "
                 f"({interval(named)} vs {named['null']:.2f})")
    if order.get(("first − third", "present"), {}).get("ci"):
        diff = order[("first − third", "present")]
        text += (f", and in the pilot the presence of the target mentioned first minus that of the one mentioned "
                 f"third is {_signed(diff)}")
    return text + " (95% intervals over crossed clusters). " + READING


def add_results(report, why: str | None, pilot_why: str | None = None, *, effects=None, presence=None,
                survivors=None, peak_presence=None, peak=None, pilot=None, order=None, pilot_peak=None) -> None:
    """The chapter's numbers into ``report`` (paper column: not public), each with its 95% interval
    over crossed clusters and the fields ``ci``, ``n_clusters``, ``method``. A design the world
    cannot run adds no rows (the page's first paragraph says why, once); where it runs neither,
    the report records that the chapter does not apply (`dvdlib.report.Report.not_applicable`)."""
    if why and pilot_why:
        report.not_applicable(why)
        return
    if not why:
        _factorial_rows(report, effects, presence, survivors, peak_presence, peak)
    if not pilot_why:
        _pilot_rows(report, pilot, order, pilot_peak)


def _factorial_rows(report, effects, presence, survivors, peak_presence, peak) -> None:
    own = effects[effects["effect"] == "h" + effects["slot"].astype(str)]
    results = [_effect_result(r) for r in own.itertuples()]
    report.add("own_effects", QUANTITIES["own_effects"], NOT_PUBLIC,
               "; ".join(f"slot {r.slot}: {_signed(x)}" for r, x in zip(own.itertuples(), results))
               + f" ({_clusters_text(results[0]['n_clusters'])})", **_fields(results, CONTRASTS),
               p=[x["p"] for x in results])
    cross = effects[effects["effect"].str.fullmatch(r"h\d") & (effects["effect"] != "h" + effects["slot"].astype(str))]
    strongest = cross.loc[cross["estimate"].abs().groupby(cross["slot"]).idxmax()]
    results = [_effect_result(r) for r in strongest.itertuples()]
    report.add("cross_effects", QUANTITIES["cross_effects"], NOT_PUBLIC,
               "; ".join(f"slot {r.slot} ← {r.effect}: {_signed(x)}"
                         for r, x in zip(strongest.itertuples(), results)),
               **_fields(results, CONTRASTS), effect=strongest["effect"].tolist())
    three = effects[effects["effect"] == THREE_WAY]
    results = [_effect_result(r) for r in three.itertuples()]
    report.add("three_way", QUANTITIES["three_way"], NOT_PUBLIC,
               "; ".join(f"slot {r.slot}: {_signed(x)}" for r, x in zip(three.itertuples(), results)),
               **_fields(results, CONTRASTS))
    keys = list(presence)
    report.add("presence", QUANTITIES["presence"], NOT_PUBLIC,
               "; ".join(f"{slot} {holds}: {interval(presence[(slot, holds)])}" for slot, holds in keys),
               **_fields([presence[k] for k in keys]), labels=[" ".join(k) for k in keys])
    keys = [k for k in ("000", "111", "111 − 000") if k in survivors]
    report.add("survivors", QUANTITIES["survivors"], NOT_PUBLIC,
               "; ".join(f"{k}: {interval(survivors[k], '{:+.2f}' if '−' in k else '{:.2f}')}" for k in keys),
               **_fields([survivors[k] for k in keys]), labels=keys)
    keys = list(peak_presence)
    report.add("peak_presence", QUANTITIES["peak_presence"], NOT_PUBLIC,
               f"{interval(peak_presence[keys[0]])} vs {interval(peak_presence[keys[1]])}; "
               f"difference {_signed(peak_presence[keys[2]])}", **_fields([peak_presence[k] for k in keys]),
               labels=keys)
    named = peak["any named concept"]
    report.add("peak_chance", QUANTITIES["peak_chance"], NOT_PUBLIC,
               f"{interval(named)} vs chance {named['null']:.2f}" if named.get("value") is not None else "—",
               **{k: named.get(k) for k in ("value", "ci", "null", "n", "n_clusters", "method", "loo", "test")})


def _pilot_rows(report, pilot, order, pilot_peak) -> None:
    categories = list(dict.fromkeys(c for c, _ in pilot))
    present = [pilot[(c, "present")] for c in categories]
    top = max(categories, key=lambda c: pilot[(c, "present")]["value"] or 0)
    top = top if pilot[(top, "present")]["value"] else "none (no category present in any image)"
    report.add("pilot_winner", QUANTITIES["pilot_winner"], NOT_PUBLIC,
               "; ".join(f"{c}: {interval(pilot[(c, 'present')])} ({interval(pilot[(c, 'alone')])})"
                         for c in categories)
               + f"; most often present: {top}", **_fields(present), labels=categories,
               alone=[pilot[(c, "alone")]["value"] for c in categories],
               alone_ci=[pilot[(c, "alone")]["ci"] for c in categories])
    results = [order[(p, "present")] for p in POSITIONS]
    diff = order[("first − third", "present")]
    report.add("pilot_mention_order", QUANTITIES["pilot_mention_order"], NOT_PUBLIC,
               "; ".join(f"{p}: {interval(r)}" for p, r in zip(POSITIONS, results))
               + f"; first − third {_signed(diff)}",
               **_fields(results), labels=list(POSITIONS), difference=diff["value"], difference_ci=diff["ci"])
    keys = [k for k in pilot_peak if k != "any named concept"]
    results = [pilot_peak[k] for k in keys]
    report.add("pilot_peak_chance", QUANTITIES["pilot_peak_chance"], NOT_PUBLIC,
               "; ".join(f"{k.split(': ')[-1]}: {interval(r)} (chance {r['null']:.2f})" for k, r in zip(keys, results)
                         if r.get("value") is not None), **_fields(results), null=[r.get("null") for r in results],
               labels=keys)
