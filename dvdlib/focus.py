"""The Focus Score experiment (paper §3.4): where, at the first denoising step, attention already
concentrates on one token.

Tables are long-format pandas DataFrames: one row per (prompt, seed, layer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .metrics import adjusted_p, focus_score, peak_token
from .tokens import concept_span, content_positions, token_strings

#: Lower-resolution semantic layers of SD 1.x where the paper reads the peak token (paper §3.4).
SEMANTIC_LAYERS = (8, 9, 10)


def focus_table(samples, tokenizer, layers, step: int = 1, **focus_options) -> pd.DataFrame:
    """Focus Score and peak token per (prompt, seed, layer) from head-averaged token shares.

    ``samples``: `dvdlib.generate.Sample` objects recorded with ``heads="mean"``; ``layers``:
    layer numbers or `dvdlib.layers.Layer` objects; ``focus_options`` go to `dvdlib.metrics.focus_score` (the open choices of paper §3.4).
    """
    layers = [getattr(layer, "index", layer) for layer in layers]
    rows = []
    for sample in samples:
        positions = content_positions(tokenizer, sample.prompt)
        words = dict(zip(positions, token_strings(tokenizer, sample.prompt)))
        for layer in layers:
            a = sample.share(layer, step)
            peak = peak_token(a, positions)
            rows.append({"prompt": sample.prompt, "seed": sample.seed, "layer": layer,
                         "focus": focus_score(a, positions, **focus_options),
                         "peak": peak, "peak_token": words[peak]})
    return pd.DataFrame(rows)


def per_prompt(table: pd.DataFrame, reduce: str = "mean") -> pd.DataFrame:
    """Focus Score per prompt and layer: the seeds' scores reduced by ``reduce`` (open; mean)."""
    return table.groupby(["prompt", "layer"], sort=False)["focus"].agg(reduce).reset_index()


def layer_tests(bench: pd.DataFrame, control: pd.DataFrame, alternative: str = "greater",
                correction: str = "bh", alpha: float = 0.05) -> pd.DataFrame:
    """Per layer, a Mann–Whitney U test of per-prompt Focus Scores, benchmark vs control.

    One-sided by default (benchmark greater, the paper's claim); p-values corrected over the
    layers with Benjamini–Hochberg (``"bh"``) or Bonferroni (``"bonferroni"``).
    """
    rows = []
    for layer, group in bench.groupby("layer"):
        b, c = group["focus"].to_numpy(), control.loc[control["layer"] == layer, "focus"].to_numpy()
        test = stats.mannwhitneyu(b, c, alternative=alternative)
        rows.append({"layer": layer, "n_bench": len(b), "n_control": len(c),
                     "median_bench": np.median(b), "median_control": np.median(c),
                     "U": test.statistic, "p": test.pvalue})
    out = pd.DataFrame(rows)
    out["p_adjusted"] = adjusted_p(out["p"], correction)
    out["significant"] = out["p_adjusted"] < alpha
    return out


def peak_on_concept(samples, tokenizer, concepts: dict[str, str] | str, layers=SEMANTIC_LAYERS,
                    step: int = 1) -> pd.DataFrame:
    """Per prompt: does the peak token belong to the dominant concept? (paper §3.4, 249/300.)

    ``concepts`` maps a prompt to its dominant concept's words (``dict(zip(rows.prompt,
    rows.content))``), or is one concept for every prompt; its tokens are found in the prompt by
    ``tokenizer``, the model's (`dvdlib.tokens.concept_span`: its first occurrence; a concept the
    prompt lacks raises `dvdlib.tokens.ConceptNotFound` naming both). Token shares are averaged
    over the prompt's seeds and over ``layers`` (open; the paper's "lower-resolution semantic
    layers", default 8–10) before taking the peak. ``chance``: the share of the prompt's content
    tokens that spell the concept, what a peak drawn at random would hit (the claim's null, per
    prompt). `peak_on_concept_at` reads token positions instead of words.
    """
    prompts = list(dict.fromkeys(sample.prompt for sample in samples))
    spans = {prompt: concept_span(tokenizer, prompt, _concept_of(concepts, prompt)) for prompt in prompts}
    return peak_on_concept_at(samples, tokenizer, spans, layers, step)


def _concept_of(concepts: dict[str, str] | str, prompt: str) -> str:
    """The concept ``concepts`` names for ``prompt`` (one string: the same for every prompt)."""
    if isinstance(concepts, str):
        return concepts
    if prompt not in concepts:
        raise ValueError(f"no concept given for prompt {prompt!r}: map every sampled prompt to its concept's words")
    return concepts[prompt]


def peak_on_concept_at(samples, tokenizer, spans: dict[str, list[int]], layers=SEMANTIC_LAYERS,
                       step: int = 1) -> pd.DataFrame:
    """`peak_on_concept` one level down: ``spans`` maps a prompt to the token positions of its
    dominant concept (in the padded sequence ``tokenizer`` reads, as `dvdlib.tokens.concept_span`
    gives them) instead of its words."""
    by_prompt: dict[str, list] = {}
    for sample in samples:
        by_prompt.setdefault(sample.prompt, []).extend(sample.share(layer, step) for layer in layers)
    rows = []
    for prompt, shares in by_prompt.items():
        positions = content_positions(tokenizer, prompt)
        words = dict(zip(positions, token_strings(tokenizer, prompt)))
        peak = peak_token(np.mean(shares, axis=0), positions)
        rows.append({"prompt": prompt, "peak": peak, "peak_token": words[peak],
                     "on_concept": peak in spans[prompt],
                     "chance": len(set(spans[prompt]) & set(positions)) / len(positions)})
    return pd.DataFrame(rows)


def layers_mean(table: pd.DataFrame, layers) -> pd.Series:
    """Per prompt, the mean of its per-prompt Focus Scores over ``layers`` (e.g. the paper's 5–10)."""
    return table[table["layer"].isin(list(layers))].groupby("prompt", sort=False)["focus"].mean()


def layers_gap(bench_pp: pd.DataFrame, control_pp: pd.DataFrame, bench_rows: pd.DataFrame, control_rows: pd.DataFrame,
               layers) -> dict:
    """Per prompt the mean Focus Score over ``layers`` (`layers_mean`), benchmark minus control,
    with its 95% interval over clusters (`dvdlib.stats.difference`: a benchmark prompt's concept,
    a control pair with both word orders)."""
    from .stats import clusters_of, difference

    bench_rows, control_rows = bench_rows.drop_duplicates("prompt"), control_rows.drop_duplicates("prompt")
    return difference(layers_mean(bench_pp, layers).loc[bench_rows.prompt], layers_mean(control_pp, layers).loc[control_rows.prompt],
                      clusters=(clusters_of(bench_rows), clusters_of(control_rows, pair=True)))
