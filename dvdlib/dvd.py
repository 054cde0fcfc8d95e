"""The DvD Score of a run (SPEC §2): judge every image of a prompt set, score it, aggregate.

The judge's answers are stored in each image's record (key ``judge:<judge>|<question set>|
<concept>|<object>``), so a rerun or an interrupted run asks the judge nothing it already answered.
"""

from __future__ import annotations

import pandas as pd

from .judge import QuestionSet, yes_counts
from .metrics import dvd_score, is_dvd_image
from .store import Store


def _key(judge, questions: QuestionSet, content: str, obj: str) -> str:
    return f"judge:{judge.name}|{questions.name}|{content}|{obj}"


def judge_images(rows: pd.DataFrame, seeds, store: Store, judge, questions: QuestionSet) -> pd.DataFrame:
    """One row per (prompt-set row, seed): the Yes counts c and n, the DvD Score, the answers.

    ``rows`` has DominanceBench's columns (``case_num``, ``content_type``, ``content``,
    ``nm_word``, ``prompt``); the images are the store's. Answers already in the store are reused.
    A ``content_type`` the question set has no category for (the balanced set's ordinary
    concepts) is asked the object questions.
    """
    out = []
    stored = store.records()  # every per-image record, read once
    records = stored.set_index(["prompt", "seed"]) if len(stored) else None
    for row in rows.itertuples():
        key = _key(judge, questions, row.content, row.nm_word)
        known = {seed: records.loc[(row.prompt, seed)].get(key) if records is not None
                 and (row.prompt, seed) in records.index else None for seed in seeds}
        missing = [seed for seed, answer in known.items() if not isinstance(answer, dict)]
        if missing:
            images = [store.image(row.prompt, seed).convert("RGB") for seed in missing]
            category = row.content_type if row.content_type in questions.categories else "objects"
            counts = yes_counts(judge, images, row.content, category, row.nm_word, questions)
            for seed, count in zip(missing, counts):
                known[seed] = {"c": count.c, "n": count.n, "answers": count.answers}
                store.save(row.prompt, seed, **{key: known[seed]})
        out += [{"case_num": row.case_num, "content_type": row.content_type, "prompt": row.prompt,
                 "seed": seed, "c": a["c"], "n": a["n"], "dvd": dvd_score(a["c"], a["n"]),
                 "answers": a["answers"]} for seed, a in known.items()]
    return pd.DataFrame(out)


def per_prompt(images: pd.DataFrame, tau: float = 48.0) -> pd.DataFrame:
    """Per prompt-set row: mean DvD over its images (SPEC §2) and how many are DvD images (≥ τ)."""
    scored = images.assign(dvd_image=[is_dvd_image(s, tau) for s in images["dvd"]])
    return scored.groupby(["case_num", "content_type", "prompt"], sort=False).agg(
        dvd=("dvd", "mean"), dvd_images=("dvd_image", "sum"), images=("dvd", "size")).reset_index()
