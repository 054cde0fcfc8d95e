"""Three concepts in one prompt (the paper's ACCV version): generate the factorial's and the
pilot's prompts, judge each target's presence, find which target holds the first step's peak.

A design has the authors' columns (`dvdlib.bench.load_factorial`, `load_pilot`): per slot k,
``target<k>`` and ``target<k>_type`` (artist, landmark, character or object) and, in the factorial,
``target<k>_homogeneity``, ``condition`` and ``case``. Each target is asked its five presence
questions: its category's for a named concept, the object group's for an object (paper §2's
question sets); `dvdlib.factorial` turns presence into effects. A world without three-concept
prompts (no ``factorial``/``pilot`` role) gets an empty design and a reason; every function here
then returns empty tables, and the figures say why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bench import TRIPLET_SLOTS, as_triplet_design
from .factorial import presence
from .judge import OBJECTS, QUESTIONS_PER_SET
from .metrics import peak_token
from .tokens import concept_span, content_positions, token_strings

#: The columns of a design, whatever its world (an empty design keeps them).
TABLE_COLUMNS = ("case_num", "condition", "case", "prompt",
                  *(f"target{k}{part}" for k in TRIPLET_SLOTS for part in ("", "_type", "_homogeneity")))
IMAGE_COLUMNS = ("case_num", "condition", "case", "prompt", "seed",
                 *(f"{what}_{k}" for what in ("yes", "present") for k in TRIPLET_SLOTS))


def design(run, role: str, cases: int | None = None) -> tuple[pd.DataFrame, str | None]:
    """The design ``run``'s world gives ``role`` ("factorial" or "pilot") and None, or an empty
    design and the reason it has none. The factorial keeps its first ``cases`` matched cases (all
    eight conditions of each); the pilot its first ``cases`` prompts. The pilot gets condition
    "111" and its own row as the case."""
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
    if cases:
        keep = list(dict.fromkeys(table["case"]))[:cases]
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
    stored = store.records()
    records = stored.set_index(["prompt", "seed"]) if len(stored) else None
    out = []
    for row in rows.to_dict("records"):
        counts = {}
        for k in TRIPLET_SLOTS:
            target, kind = row[f"target{k}"], row[f"target{k}_type"]
            key = _key(judge, questions, target, kind)
            known = {s: records.loc[(row["prompt"], s)].get(key) if records is not None
                     and (row["prompt"], s) in records.index else None for s in seeds}
            missing = [s for s, a in known.items() if not isinstance(a, dict)]
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
    from .generate import generate

    if rows.empty:
        return judge_presence(rows, [], None, None, None)
    P, store = run.profile, run.store()
    generate(run.pipe, rows["prompt"].unique(), P.seeds, store=store, batch_size=P.batch_size)
    return judge_presence(rows, P.seeds, store, run.judge, run.questions, present_at)


def presence_by_condition(images: pd.DataFrame) -> pd.DataFrame:
    """Share of images in which each slot's target is present, per condition (rows) and slot."""
    columns = [f"present_{k}" for k in TRIPLET_SLOTS]
    if images.empty:
        return pd.DataFrame(columns=columns)
    return images.groupby("condition")[columns].mean().rename(columns=lambda c: f"slot {c[-1]}")


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


def peak_slots(run, rows: pd.DataFrame, layers=(8, 9, 10)) -> pd.DataFrame:
    """Per prompt: the first step's peak token (shares averaged over the run's seeds and ``layers``,
    as in `dvdlib.focus.peak_on_concept`) and the slot whose target's tokens hold it (0: a word of
    no target). One denoising step per (prompt, seed), recorded in the profile's store."""
    from .generate import generate

    columns = ["case_num", "condition", "case", "prompt", "peak_token", "peak_slot"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    P, pipe = run.profile, run.pipe
    samples = generate(pipe, rows["prompt"].unique(), P.seeds, store=run.store(), batch_size=P.batch_size,
                       attention={"layers": list(layers), "steps": [1]}, until_step=1)
    shares = {}
    for sample in samples:
        shares.setdefault(sample.prompt, []).extend(sample.share(layer, 1) for layer in layers)
    out = []
    for row in rows.to_dict("records"):
        prompt = row["prompt"]
        positions = content_positions(pipe.tokenizer, prompt)
        peak = peak_token(np.mean(shares[prompt], axis=0), positions)
        spans = {k: concept_span(pipe.tokenizer, prompt, row[f"target{k}"]) for k in TRIPLET_SLOTS}
        slot = next((k for k, span in spans.items() if peak in span), 0)
        words = dict(zip(positions, token_strings(pipe.tokenizer, prompt)))
        out.append({**{c: row[c] for c in columns[:4]}, "peak_token": words[peak], "peak_slot": slot})
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


def _effect(row) -> str:
    return f"{row.estimate:+.2f} [{row.ci_low:+.2f}, {row.ci_high:+.2f}], p = {row.p:.3g}"


def peak_target_presence(peaks: pd.DataFrame, images: pd.DataFrame) -> tuple[float, float]:
    """Share of images in which the target holding the prompt's first-step peak is present, and
    the share for the other targets of the same prompts (prompts peaking on no target left out)."""
    merged = images.merge(peaks[["case_num", "peak_slot"]], on="case_num")
    merged = merged[merged["peak_slot"] > 0]
    if merged.empty:
        return float("nan"), float("nan")
    present = merged[[f"present_{k}" for k in TRIPLET_SLOTS]].to_numpy(bool)
    on_peak = np.eye(len(TRIPLET_SLOTS), dtype=bool)[merged["peak_slot"].to_numpy(int) - 1]
    return float(present[on_peak].mean()), float(present[~on_peak].mean())


def add_results(report, effects: pd.DataFrame, survivors: pd.DataFrame, winners: pd.DataFrame,
                peaks: pd.DataFrame, images: pd.DataFrame, why: str | None) -> None:
    """The chapter's headline numbers into ``report`` (paper column: not public), or, where the
    world cannot run the design, why not."""
    if why:
        for key, quantity in (("own_effects", "each slot's own effect on its presence"),
                              ("cross_effects", "strongest effect of another slot, per slot"),
                              ("survivors", "targets present per image, no named vs all named"),
                              ("pilot_winner", "pilot: the category present most often"),
                              ("peak_presence", "presence of the peak's target vs the others")):
            report.add(key, quantity, NOT_PUBLIC, "not run: this world has no three-concept prompts")
        return
    own = effects[effects["effect"] == "h" + effects["slot"].astype(str)]
    report.add("own_effects", "each slot's own effect on its presence [95% CI over cases], permutation p",
               NOT_PUBLIC, "; ".join(f"slot {r.slot}: {_effect(r)}" for r in own.itertuples()),
               value=own["estimate"].tolist(), ci=own[["ci_low", "ci_high"]].to_numpy().tolist(),
               p=own["p"].tolist(), n=int(effects["n_cases"].max()), test="within-case contrasts, sign-flip permutation")
    cross = effects[effects["effect"].str.fullmatch(r"h\d") & (effects["effect"] != "h" + effects["slot"].astype(str))]
    strongest = cross.loc[cross["estimate"].abs().groupby(cross["slot"]).idxmax()]
    report.add("cross_effects", "strongest effect of another slot's homogeneity, per slot", NOT_PUBLIC,
               "; ".join(f"slot {r.slot} ← {r.effect}: {_effect(r)}" for r in strongest.itertuples()))
    mean_present = (survivors * np.arange(4)).sum(axis=1)
    report.add("survivors", "mean targets present per image (of 3): no named concept (000) vs all named (111)",
               NOT_PUBLIC, f"000: {mean_present.get('000', float('nan')):.2f}; 111: {mean_present.get('111', float('nan')):.2f}")
    top = winners["present"].idxmax() if len(winners) and winners["present"].max() > 0 else None
    report.add("pilot_winner", "pilot: the category present most often (present; the only one present)", NOT_PUBLIC,
               f"{top} ({winners.loc[top, 'present']:.0%}; {winners.loc[top, 'alone']:.0%})" if top
               else "not run: this world has no pilot set" if winners.empty
               else "none (no category present in any image)")
    on_peak, others = peak_target_presence(peaks, images)
    report.add("peak_presence", "target present: the one holding the first-step peak vs the others", NOT_PUBLIC,
               f"{on_peak:.0%} vs {others:.0%}")
