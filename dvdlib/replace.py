"""Replacement validation (paper §3.8): replace the dominant concept's words in a prompt by its
category word ("Van Gogh" → "artist", "Colosseum" → "landmark", "Spider-Man" → "character"),
regenerate with the same seeds, judge again, and compare the DvD Scores pair by pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .tokens import find_concept

#: DominanceBench's categories and the word that replaces a concept of each (paper §3.8).
CATEGORY_WORDS = {"artist": "artist", "landmark": "landmark", "character": "character"}


def replace_concept(prompt: str, concept: str, word: str) -> str:
    """``prompt`` with every occurrence of ``concept`` (matched as `dvdlib.tokens.find_concept`
    matches it: case/accent-insensitive, possessive kept) replaced by ``word``. A concept that
    does not occur is an error naming the prompt."""
    where = find_concept(prompt, concept)
    if where is None:
        raise ValueError(f"concept {concept!r} not found in prompt {prompt!r}: nothing to replace")
    out, rest = "", prompt
    while where is not None:
        start, end = where
        out, rest = out + rest[:start] + word, rest[end:]
        where = find_concept(rest, concept)
    return out + rest


def category_word(content: str, content_type: str, words: dict[str, str] | None = None) -> str:
    """The word that replaces ``content``: ``words`` looked up by the concept itself, then by its
    category; by default `CATEGORY_WORDS` (paper §3.8)."""
    words = CATEGORY_WORDS if words is None else words
    for key in (content, content_type):
        if key in words:
            return words[key]
    raise ValueError(f"no category word for {content!r} (category {content_type!r}); known: {sorted(words)}. "
                     "Pass words={concept or category: word}.")


def replaced(rows: pd.DataFrame, words: dict[str, str] | None = None, judge_concept: str = "original") -> pd.DataFrame:
    """The rows (DominanceBench columns) with ``prompt`` rewritten, ``original_prompt`` and
    ``word`` added. ``judge_concept`` (open): the concept the judge is asked about afterwards —
    ``"original"`` (is the dominant concept still there? default) or ``"word"`` (the category word)."""
    if judge_concept not in ("original", "word"):
        raise ValueError(f"judge_concept must be 'original' or 'word', got {judge_concept!r}")
    out = rows.copy()
    out["word"] = [category_word(c, t, words) for c, t in zip(rows["content"], rows["content_type"])]
    out["original_prompt"] = rows["prompt"]
    out["prompt"] = [replace_concept(p, c, w) for p, c, w in zip(rows["prompt"], rows["content"], out["word"])]
    if judge_concept == "word":
        out["content"] = out["word"]
    return out


def paired_test(before, after, alternative: str = "greater") -> dict:
    """Wilcoxon signed-rank test of paired per-prompt DvD Scores (before − after; one-sided
    "greater" by default: replacement lowers DvD), with the medians. Pairs with no difference are
    dropped (Wilcoxon's rule); with none left the test is not defined and ``p`` is 1."""
    before, after = np.asarray(before, float), np.asarray(after, float)
    if before.shape != after.shape or before.ndim != 1 or len(before) == 0:
        raise ValueError(f"paired scores must be two 1-D arrays of the same non-zero length, got {before.shape}, {after.shape}")
    differs = int(np.count_nonzero(before - after))
    result = {"pairs": len(before), "differing": differs, "median_before": float(np.median(before)),
              "median_after": float(np.median(after)), "statistic": float("nan"), "p": 1.0}
    if differs:
        test = stats.wilcoxon(before, after, alternative=alternative)
        result.update(statistic=float(test.statistic), p=float(test.pvalue))
    return result


def paired(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per prompt-set row (``case_num``), its DvD before and after replacement side by side, from
    two `dvdlib.dvd.per_prompt` tables (``after`` from the replaced rows, same ``case_num``)."""
    out = before[["case_num", "content_type", "prompt", "dvd"]].merge(
        after[["case_num", "prompt", "dvd"]], on="case_num", suffixes=("_before", "_after"), validate="one_to_one")
    if len(out) != len(before):
        raise ValueError(f"{len(before) - len(out)} row(s) have no score after replacement")
    return out.rename(columns={"prompt_before": "prompt", "prompt_after": "replaced"})


def rows_to_replace(benchmark: pd.DataFrame, validate_on: str = "all") -> pd.DataFrame:
    """The benchmark rows whose concept is replaced: ``"all"`` of them or only those the detector
    ``"flagged"`` (column ``flagged``); an error when that leaves none."""
    if validate_on not in ("all", "flagged"):
        raise ValueError(f"validate_on must be 'all' or 'flagged', got {validate_on!r}")
    rows = benchmark if validate_on == "all" else benchmark[benchmark.flagged]
    if rows.empty:
        raise ValueError("the detector flagged no benchmark row, so there is nothing to replace: "
                         "lower `threshold` or use validate_on='all'")
    return rows


def validate(run, rows: pd.DataFrame, after_rows: pd.DataFrame, tau: float = 48.0, models=None):
    """Generate and judge every prompt before and after replacement with each model compared
    (default the profile's ``models``): (per-prompt DvD pairs, per-image judgements), both with a
    ``model`` column (and ``when``: "before" / "after" for the images)."""
    from . import dvd
    from .generate import generate

    P, pairs, judged = run.profile, [], []
    for name, pipe in run.pipes(models):
        store = run.store(name)
        prompts = list(dict.fromkeys([*rows.prompt, *after_rows.prompt]))
        generate(pipe, prompts, P.seeds, store=store, batch_size=P.batch_size)
        images = {when: dvd.judge_images(table, P.seeds, store, run.judge, run.questions)
                  for when, table in (("before", rows), ("after", after_rows))}
        pairs.append(paired(dvd.per_prompt(images["before"], tau), dvd.per_prompt(images["after"], tau)).assign(model=name))
        judged += [images[w].assign(model=name, when=w) for w in images]
        del pipe
    return pd.concat(pairs, ignore_index=True), pd.concat(judged, ignore_index=True)


def tests_by_model(pairs: pd.DataFrame, judged: pd.DataFrame) -> pd.DataFrame:
    """Per model, `paired_test` of its DvD pairs and the judge's mean object Yes count before and after."""
    tests = pd.DataFrame({name: paired_test(g.dvd_before, g.dvd_after) for name, g in pairs.groupby("model", sort=False)}).T
    tests["object Yes before"] = judged[judged.when == "before"].groupby("model").n.mean()
    tests["object Yes after"] = judged[judged.when == "after"].groupby("model").n.mean()
    return tests


def example_rows(pairs: pd.DataFrame, judged: pd.DataFrame, store, model: str, n: int) -> list:
    """Rows of `dvdlib.plots.image_grid`: the ``n`` prompts whose DvD fell most under ``model``,
    each before and after replacement with its images and the judge's counts."""
    from .dvd import image_row

    shown = pairs[pairs.model == model].assign(drop=lambda d: d.dvd_before - d.dvd_after).nlargest(n, "drop")
    rows = []
    for pair in shown.itertuples():
        for when, prompt, score in (("before", pair.prompt, pair.dvd_before), ("after", pair.replaced, pair.dvd_after)):
            mine = judged[(judged.model == model) & (judged.when == when) & (judged.case_num == pair.case_num)]
            rows.append((f'{when}: "{prompt}" — DvD {score:.0f}', image_row(mine, store, prompt)))
    return rows


def add_model_results(report, tests: pd.DataFrame, pairs: pd.DataFrame, paper_values: dict) -> str:
    """One results row per model (``repl_<model key>``: median DvD before → after, the paired
    test); returns the all-models summary line."""
    from .stats import location
    from .store import model_key

    summary = []
    for name, t in tests.iterrows():
        before_after = paper_values.get(name)
        ours = f"{t.median_before:.0f} → {t.median_after:.0f} (Wilcoxon p = {t.p:.3g}, {int(t.pairs)} pairs)"
        g = pairs[pairs.model == name]
        report.add(f"repl_{model_key(name)}", f"median DvD, concept → category word: {name}",
                   " → ".join(before_after) if before_after else "— (not in the paper)", ours, glue=False,
                   median_before=t.median_before,
                   **location(g.dvd_before - g.dvd_after, alternative="greater", statistic="median"))
        summary.append(f"{name}: {ours}")
    return "; ".join(summary)


def pairs_figure(pairs: pd.DataFrame):
    """Per model (column ``model``), each prompt's DvD before and after replacement (a line per
    prompt) with the medians (black)."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, CONTROL_COLOR, use_style

    use_style()
    models = list(dict.fromkeys(pairs["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.6), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        rows = pairs[pairs["model"] == model]
        for b, a in zip(rows["dvd_before"], rows["dvd_after"]):
            ax.plot([0, 1], [b, a], "-", color="0.6", alpha=0.5, lw=1)
        ax.plot(np.zeros(len(rows)), rows["dvd_before"], ".", color=BENCH_COLOR, ms=5)
        ax.plot(np.ones(len(rows)), rows["dvd_after"], ".", color=CONTROL_COLOR, ms=5)
        ax.plot([0, 1], [rows["dvd_before"].median(), rows["dvd_after"].median()], "k-o", lw=2, label="median")
        ax.set_xticks([0, 1], ["concept", "category word"])
        ax.set_xlim(-0.3, 1.3)
        ax.set_ylim(-3, 103)
        ax.set_title(model, fontsize=9)
    axes[0][0].set_ylabel("DvD Score per prompt\n(mean over seeds)")
    axes[0][0].legend(loc="upper right", frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
