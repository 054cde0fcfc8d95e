"""Replacement validation (paper §3.8): replace the dominant concept's words in a prompt by its
category word ("Van Gogh" → "artist", "Colosseum" → "landmark", "Spider-Man" → "character"),
regenerate with the same seeds, judge again, and measure whether **the object comes back**: its
Yes count n before → after, paired per prompt and seed, and the share of images where it is
present (`object_return`, the headline). The DvD Scores before and after are reported beside it
for the paper's comparison; after replacement the concept questions are asked about the word the
prompt now holds, the category word (asking about the removed concept would make c, and with it
DvD, fall by construction).
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


#: An object is present in an image when at least this many of its five questions are answered Yes.
PRESENT_AT = 3


def replaced(rows: pd.DataFrame, words: dict[str, str] | None = None, judge_concept: str = "word") -> pd.DataFrame:
    """The rows (DominanceBench columns) with ``prompt`` rewritten, ``original_prompt`` and
    ``word`` added. ``judge_concept`` (open): the concept the judge is asked about afterwards —
    ``"word"`` (the category word the prompt now holds, default) or ``"original"`` (the removed
    concept: c then falls by construction)."""
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


def generate_and_judge(run, rows: pd.DataFrame, after_rows: pd.DataFrame, models) -> pd.DataFrame:
    """Every prompt before and after replacement generated and judged with each model compared,
    through ``run`` (`dvdlib.run.Run` computes, `dvdlib.plan.Count` counts): the per-image
    judgements with a ``model`` and a ``when`` ("before" / "after") column."""
    judged, seeds = [], run.profile.seeds
    for name in models:
        run.generate(list(dict.fromkeys([*rows.prompt, *after_rows.prompt])), seeds, model=name)
        judged += [run.judge_dvd(table, seeds, model=name).assign(model=name, when=when)
                   for when, table in (("before", rows), ("after", after_rows))]
    return pd.concat(judged, ignore_index=True)


def pairs_by_model(judged: pd.DataFrame, tau: float = 48.0) -> pd.DataFrame:
    """Per model, each prompt's DvD before and after replacement (`paired`), with a ``model`` column."""
    from .dvd import per_prompt

    return pd.concat([paired(per_prompt(g[g.when == "before"].drop(columns=["model", "when"]), tau),
                             per_prompt(g[g.when == "after"].drop(columns=["model", "when"]), tau)).assign(model=name)
                      for name, g in judged.groupby("model", sort=False)], ignore_index=True)


def object_return(judged: pd.DataFrame, present_at: int = PRESENT_AT) -> pd.DataFrame:
    """Per model, prompt-set row and seed: the object's Yes count ``n`` before and after
    replacement and whether it is present (``n ≥ present_at``) in each image, paired by seed."""
    keys = ["model", "case_num", "seed"]
    wide = judged[judged.when == "before"][keys + ["n"]].merge(
        judged[judged.when == "after"][keys + ["n"]], on=keys, suffixes=("_before", "_after"), validate="one_to_one")
    return wide.assign(present_before=wide.n_before >= present_at, present_after=wide.n_after >= present_at)


def tests_by_model(pairs: pd.DataFrame, judged: pd.DataFrame, present_at: int = PRESENT_AT) -> pd.DataFrame:
    """Per model: the object's return (share of images with the object present and its mean Yes
    count, before → after, paired per prompt and seed; the headline) and, beside it, `paired_test`
    of the per-prompt DvD Scores."""
    back = object_return(judged, present_at).groupby("model", sort=False)
    tests = pd.DataFrame({"images": back.size(), "object present before": back.present_before.mean(),
                          "object present after": back.present_after.mean(),
                          "object Yes before": back.n_before.mean(), "object Yes after": back.n_after.mean()})
    dvd = pd.DataFrame({name: paired_test(g.dvd_before, g.dvd_after) for name, g in pairs.groupby("model", sort=False)}).T
    return tests.join(dvd[["pairs", "median_before", "median_after", "p"]].rename(columns={"p": "DvD Wilcoxon p"}))


def tests_table(tests: pd.DataFrame) -> pd.DataFrame:
    """`tests_by_model` as the chapter shows it: a column per model, a row per quantity, in words."""
    names = {"images": "images (prompt × seed)", "object present before": "object present before (share of images)",
             "object present after": "object present after (share of images)",
             "object Yes before": "object Yes count before (mean, of 5)",
             "object Yes after": "object Yes count after (mean, of 5)", "pairs": "prompts paired",
             "median_before": "DvD median before", "median_after": "DvD median after",
             "DvD Wilcoxon p": "DvD Wilcoxon p (before > after)"}
    return tests.rename(columns=names).T.rename_axis("model", axis=1)


def peak_outside_shown(outside: pd.DataFrame):
    """`peak_outside` as the chapter shows it: the rows, or one sentence where there is none."""
    from .report import rows_or_sentence

    return rows_or_sentence(outside, "rows", empty="In every replaced row the first-step peak token (detector layers) "
                                                   "lies in the replaced words.")


def per_prompt_return(judged: pd.DataFrame, rows: pd.DataFrame, model: str, present_at: int = PRESENT_AT) -> pd.DataFrame:
    """Per prompt-set row under ``model``: the share of its seeds with the object present before
    and after, the change, and its concept (``content``), for the claim's interval over concepts."""
    back = object_return(judged[judged.model == model], present_at)
    table = back.groupby("case_num", sort=False)[["present_before", "present_after"]].mean()
    table["change"] = table.present_after - table.present_before
    return table.join(rows.drop_duplicates("case_num").set_index("case_num")[["content", "nm_word", "prompt"]])


def returns_by_model(judged: pd.DataFrame, rows: pd.DataFrame, present_at: int = PRESENT_AT) -> dict[str, pd.DataFrame]:
    """`per_prompt_return` of every model judged, by model."""
    return {m: per_prompt_return(judged, rows, m, present_at) for m in dict.fromkeys(judged.model)}


def peak_outside(samples, tokenizer, rows: pd.DataFrame, layers) -> pd.DataFrame:
    """The rows whose first-step peak token (shares averaged over seeds and ``layers``, the
    detector's) is not one of the replaced concept's tokens: replacing the concept's words leaves
    the token that took the attention in place. ``samples``: the first steps the detector read
    (those of other prompts are left out); ``tokenizer``: the model's sequence tokenizer."""
    from .focus import peak_on_concept

    prompts = set(rows.prompt)
    samples = [s for s in samples if s.prompt in prompts]
    peaks = peak_on_concept(samples, tokenizer, dict(zip(rows.prompt, rows.content)), layers=layers)
    out = rows.merge(peaks, on="prompt")
    return out[~out.on_concept][["case_num", "content", "nm_word", "prompt", "peak_token"]]


def example_rows(per_prompt: pd.DataFrame, judged: pd.DataFrame, store, model: str, n: int,
                 present_at: int = PRESENT_AT) -> list:
    """Rows of `dvdlib.plots.image_grid`: ``n`` prompts where the object came back most (one per
    distinct pair, across concepts: `dvdlib.dvd.distinct_pairs`), each before and after
    replacement with its first seeds' images (as many as a grid row shows) and the judge's counts
    (c about the word in the prompt); the row's title counts the object's presence over the seeds
    shown, and over all seeds when there are more."""
    from .dvd import distinct_pairs, image_row
    from .plots import GRID_COLUMNS

    shown = distinct_pairs(per_prompt.reset_index(), n, by="change")
    rows = []
    for pair in shown.itertuples():
        for when in ("before", "after"):
            mine = judged[(judged.model == model) & (judged.when == when) & (judged.case_num == pair.case_num)]
            seen = mine.head(GRID_COLUMNS)
            text = f"object present in {int((seen.n >= present_at).sum())} of {len(seen)} seeds"
            if len(mine) > len(seen):
                text += f" shown ({int((mine.n >= present_at).sum())} of all {len(mine)})"
            rows.append((f'{when}: "{mine.prompt.iloc[0]}" — {text}', image_row(seen, store, mine.prompt.iloc[0])))
    return rows


def add_model_results(report, tests: pd.DataFrame, per_model: dict[str, pd.DataFrame], paper_values: dict) -> str:
    """One results row per model (``repl_<model key>``): the object's return (share of images with
    the object present, before → after; the claim: the per-prompt change, 95% interval over
    concepts) with the DvD medians beside it; returns the all-models summary line."""
    from .stats import clusters_of, location
    from .store import model_key

    summary = []
    for name, t in tests.iterrows():
        before_after = paper_values.get(name)
        g = per_model[name]
        ours = (f"object present in {t['object present before']:.0%} → {t['object present after']:.0%} of "
                f"{int(t.images)} images (Yes count {t['object Yes before']:.1f} → {t['object Yes after']:.1f} of 5); "
                f"median DvD {t.median_before:.0f} → {t.median_after:.0f}")
        report.add(f"repl_{model_key(name)}", f"object's return, concept → category word: {name}",
                   ("DvD " + " → ".join(before_after) + "; the object's return not reported") if before_after
                   else "— (not in the paper)", ours, glue=False, median_before=t.median_before,
                   **location(g.change, alternative="greater", clusters=clusters_of(g)))
        summary.append(f"{name}: {ours}")
    return "; ".join(summary)


def pairs_figure(pairs: pd.DataFrame, per_model: dict[str, pd.DataFrame], tau: float | None = None,
                 paper_values: dict | None = None):
    """Per model (column ``model``), each prompt before → after replacement (a line per prompt,
    the median in black): left, the share of its seeds with the object present (the headline);
    right, its DvD Score (concept questions about the word in the prompt), τ dashed and the
    paper's medians as diamonds where the paper has the model."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, CONTROL_COLOR, use_style

    use_style()
    models = list(dict.fromkeys(pairs["model"]))
    fig, axes = plt.subplots(len(models), 2, figsize=(7.0, 3.3 * len(models)), squeeze=False)
    for (left, right), model in zip(axes, models):
        rows, back = pairs[pairs["model"] == model], per_model[model]
        for ax, (b, a), label in ((left, (back.present_before, back.present_after), "object present (share of seeds)"),
                                  (right, (rows.dvd_before, rows.dvd_after), "DvD Score (mean over seeds)")):
            scale = 1.0 if ax is left else 100.0
            for x, y in zip(b, a):
                ax.plot([0, 1], [x, y], "-", color="0.6", alpha=0.5, lw=1)
            ax.plot(np.zeros(len(b)), b, ".", color=BENCH_COLOR, ms=5)
            ax.plot(np.ones(len(a)), a, ".", color=CONTROL_COLOR, ms=5)
            ax.plot([0, 1], [np.median(b), np.median(a)], "k-o", lw=2, label="median")
            ax.set_xticks([0, 1], ["concept", "category word"])
            ax.set_xlim(-0.3, 1.3)
            ax.set_ylim(-0.03 * scale, 1.03 * scale)
            ax.set_ylabel(label)
            ax.set_title(f"{model} (n = {len(b)} prompts)", fontsize=9)  # the model as the table beside it names it
        if tau is not None:
            right.axhline(tau, color="0.3", ls="--", lw=1, label=f"τ = {tau:g}")
        paper = (paper_values or {}).get(model)
        if paper:
            values = [float(str(v).lstrip("≈")) for v in paper]
            right.plot([0, 1], values, "D", color="black", mfc="white", ms=7, label="paper's medians")
        right.legend(loc="upper right", frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
