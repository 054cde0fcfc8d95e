"""The DvD Score of a run (paper §2): judge every image of a prompt set, score it, aggregate.

The judge's answers are stored in each image's record (key ``judge:<judge>|<question set>|
<concept>|<object>``), so a rerun or an interrupted run asks the judge nothing it already answered.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import pandas as pd

from .judge import OBJECTS, QuestionSet, yes_counts
from .metrics import dvd_score, is_dvd_image
from .store import Store


def _key(judge, questions: QuestionSet, content: str, obj: str, groups: tuple[str, str]) -> str:
    """The store key of an image's answers: the judge, the set, the two concepts and a digest of
    the ten questions asked (``groups``: the concept's and the object's question groups), so that
    answers to reworded questions are never read back as answers to the new ones."""
    asked = questions.group(groups[0]).texts(content) + questions.group(groups[1]).texts(obj)
    digest = hashlib.sha256("\n".join(asked).encode()).hexdigest()[:12]
    return f"judge:{judge.name}|{questions.name}|{content}|{obj}|{digest}"


@lru_cache(maxsize=1)
def concept_kinds() -> dict[str, str]:
    """Concept (lower case) → kind, labelled by hand (``dvdlib/data/concept_kinds.csv``)."""
    from importlib.resources import files

    table = pd.read_csv(str(files("dvdlib") / "data" / "concept_kinds.csv"), comment="#", dtype=str)
    return dict(zip(table.concept, table.kind))


def concept_kind(concept: str, given=None) -> str:
    """The kind of a concept (`dvdlib.judge.KINDS`): ``given`` (a prompt file's own column) when set,
    else the hand-labelled table, else "object"."""
    if isinstance(given, str) and given:
        return given
    return concept_kinds().get(str(concept).lower(), "object")


def question_groups(row, questions: QuestionSet) -> tuple[str, str]:
    """The question groups a prompt-set row's concept and object are asked (paper §2): the concept's
    ``content_type`` where the set has that category (artist, landmark, character), else its kind's
    group; the object its kind's group. A kind the set has no group for gets the object questions."""
    def group(kind):
        return kind if kind in questions.categories else OBJECTS

    content_type = getattr(row, "content_type", None)
    concept = content_type if content_type in questions.categories else group(
        concept_kind(row.content, getattr(row, "content_kind", None)))
    return concept, group(concept_kind(row.nm_word, getattr(row, "nm_kind", None)))


def judge_images(rows: pd.DataFrame, seeds, store: Store, judge, questions: QuestionSet) -> pd.DataFrame:
    """One row per (prompt-set row, seed): the Yes counts c and n, the DvD Score, the answers.

    ``rows`` has DominanceBench's columns (``case_num``, ``content_type``, ``content``,
    ``nm_word``, ``prompt``; optional ``content_kind``, ``nm_kind``); the images are the store's.
    Answers already in the store are reused. Each concept is asked the questions of its kind
    (`question_groups`): a time of day is not asked whether it is shown as a product.
    """
    out = []
    for row in rows.itertuples():
        groups = question_groups(row, questions)
        key = _key(judge, questions, row.content, row.nm_word, groups)
        stored = store.answers(key, row.prompt, seeds)  # a frozen store raises on a miss
        known = {seed: stored.get(int(seed)) for seed in seeds}
        missing = [seed for seed, answer in known.items() if answer is None]
        if missing:
            images = [store.image(row.prompt, seed).convert("RGB") for seed in missing]
            counts = yes_counts(judge, images, row.content, groups[0], row.nm_word, questions, object_category=groups[1])
            for seed, count in zip(missing, counts):
                known[seed] = {"c": count.c, "n": count.n, "answers": count.answers}
                store.save(row.prompt, seed, **{key: known[seed]})
        out += [{"case_num": row.case_num, "content_type": row.content_type, "prompt": row.prompt,
                 "concept_group": groups[0], "object_group": groups[1],
                 "seed": seed, "c": a["c"], "n": a["n"], "dvd": dvd_score(a["c"], a["n"]),
                 "answers": a["answers"]} for seed, a in known.items()]
    return pd.DataFrame(out)


def per_prompt(images: pd.DataFrame, tau: float = 48.0) -> pd.DataFrame:
    """Per prompt-set row: mean DvD over its images (paper §2) and how many are DvD images (≥ τ)."""
    scored = images.assign(dvd_image=[is_dvd_image(s, tau) for s in images["dvd"]])
    return scored.groupby(["case_num", "content_type", "prompt"], sort=False).agg(
        dvd=("dvd", "mean"), dvd_images=("dvd_image", "sum"), images=("dvd", "size")).reset_index()


def generate_and_judge(run, rows: pd.DataFrame, models=None, seeds=None) -> pd.DataFrame:
    """Every prompt of ``rows`` with every seed (default the profile's), for each model compared
    (default the profile's ``models``), one model at a time: generated into the model's store, then
    judged (`judge_images`), through ``run`` (a `dvdlib.run.Run`, or `dvdlib.plan.Count`, which
    counts); one table with a ``model`` column."""
    judged, seeds = [], run.profile.seeds if seeds is None else seeds
    for name in models or run.profile.models:
        run.generate(rows.prompt.unique(), seeds, model=name)
        judged.append(run.judge_dvd(rows, seeds, model=name).assign(model=name))
    return pd.concat(judged, ignore_index=True)


def scores_by(images: pd.DataFrame, tau: float, by: str, sort: bool = False, ignore_index: bool = False) -> pd.DataFrame:
    """`per_prompt` within each value of the column ``by`` (a model, a variant), that column kept."""
    return pd.concat([per_prompt(g, tau).assign(**{by: k}) for k, g in images.groupby(by, sort=sort)],
                     ignore_index=ignore_index)


def inclusion_sensitivity(images: pd.DataFrame, taus, min_images: int, sets=("benchmark", "balanced")) -> pd.DataFrame:
    """Per model and τ, the share of each set's prompts (``case_num`` prefixed by the set's name)
    with at least ``min_images`` DvD images: the inclusion rule's sensitivity to τ (paper §2)."""
    return pd.DataFrame({
        (m, f"τ = {t}"): [per_prompt(g[g.case_num.str.startswith(s)], t).dvd_images.ge(min_images).mean() for s in sets]
        for m, g in images.groupby("model", sort=False) for t in taus}, index=list(sets)).T


def image_row(judged: pd.DataFrame, store: Store, prompt: str) -> list:
    """(image, "seed s / c=… n=…") for each judged image of ``prompt``: a row of `dvdlib.plots.image_grid`."""
    return [(store.image(prompt, r.seed), f"seed {r.seed}\nc={r.c} n={r.n}") for r in judged.itertuples()]


def distinct_pairs(table: pd.DataFrame, n: int, by: str = "dvd") -> pd.DataFrame:
    """The ``n`` rows with the highest ``by``, one per distinct pair (both word orders of a pair are
    one pair: the higher-scoring order is kept) and drawn across concepts in turn (the best pair of
    each concept, then the second best of each ...), so no one concept fills a figure."""
    pair = [" + ".join(sorted((str(c).lower(), str(o).lower()))) for c, o in zip(table["content"], table["nm_word"])]
    best = table.assign(_pair=pair).sort_values(by, ascending=False, kind="stable").drop_duplicates("_pair")
    best = best.assign(_rank=best.groupby(best["content"].str.lower()).cumcount())
    return best.sort_values(["_rank", by], ascending=[True, False], kind="stable").head(n).drop(columns=["_pair", "_rank"])


def collapse_rows(images: pd.DataFrame, scores: pd.DataFrame, store: Store, model: str, n: int,
                  rows: pd.DataFrame | None = None, tau: float | None = None) -> list:
    """The benchmark prompts with the highest DvD Score under ``model``, one per distinct pair and
    across concepts (`distinct_pairs`; ``rows`` gives each case's ``content`` and ``nm_word``), each
    with its images and the judge's counts: the rows of the collapse grid (paper §2). With ``tau``
    only prompts whose mean DvD reaches it are shown (a collapse, by the paper's threshold): fewer
    than ``n`` rows, or none, where fewer reach it (`collapse_text` says how many)."""
    bench = scores[(scores.model == model) & scores.case_num.str.startswith("benchmark")]
    if tau is not None:
        bench = bench[bench.dvd >= tau]
    if rows is not None:
        bench = bench.merge(rows[["case_num", "content", "nm_word"]], on="case_num")
        top = distinct_pairs(bench, n)
    else:
        top = bench.nlargest(n, "dvd")
    return [(f'"{case.prompt}" — DvD {case.dvd:.0f}',
             image_row(images[(images.model == model) & (images.case_num == case.case_num)], store, case.prompt))
            for case in top.itertuples()]


def collapse_text(scores: pd.DataFrame, model: str, shown: int, asked: int, tau: float) -> str:
    """One sentence under the collapse grid (`collapse_rows` with ``tau``, ``asked`` rows asked,
    ``shown`` drawn): how many of ``model``'s benchmark prompts reach τ (mean DvD ≥ τ, paper §2)
    and which of them the grid shows ("Only 2 of the 24 ... : the grid shows all of them")."""
    bench = scores[(scores.model == model) & scores.case_num.str.startswith("benchmark")]
    reached, total = int((bench.dvd >= tau).sum()), len(bench)
    if reached == 0:
        return f"No benchmark prompt reaches τ = {tau:g} under `{model}` (0 of {total}): there is no collapse to show."
    counted = f"{reached} of the {total} benchmark prompts reach{'es' if reached == 1 else ''} τ = {tau:g} under `{model}`"
    if shown == reached:
        them = "it" if reached == 1 else "all of them"
        return f"Only {counted}: the grid shows {them}." if reached < asked else f"{counted}: the grid shows {them}."
    return (f"{counted}; the grid shows {shown} of them, the highest-scoring with one prompt per pair of concepts "
            "(its two word orders count once) and the concepts taken in turn.")


def benchmark_gap(scores: pd.DataFrame, rows: pd.DataFrame, sets=("benchmark", "balanced")) -> dict:
    """Mean per-prompt DvD of the first set minus the second's (``case_num`` prefixed by the set's
    name, as in chapter 02) with its 95% interval over clusters (`dvdlib.stats.difference`): a
    benchmark prompt's concept, a control pair with both word orders; ``rows`` gives each case's
    ``content`` and ``nm_word``."""
    from .stats import clusters_of, difference

    cases = rows.drop_duplicates("case_num").set_index("case_num")
    a, b = (scores[scores.case_num.str.startswith(s)] for s in sets)
    return difference(a.dvd, b.dvd, clusters=(clusters_of(cases.loc[a.case_num]),
                                              clusters_of(cases.loc[b.case_num], pair=True)))

