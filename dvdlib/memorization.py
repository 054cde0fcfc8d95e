"""Where DvD sits next to memorization (paper §3.7): the text-conditional noise-prediction norm.

Wen et al. (ICLR 2024) detect memorized prompts by how far the prompt pulls the noise prediction
from the unconditional one: ‖ε(x_t, prompt) − ε(x_t, "")‖₂ (`dvdlib.metrics.noise_prediction_norm`)
at each step, averaged over the first steps and the seeds. Under classifier-free guidance with
the empty negative prompt (the authors' release), the pipeline already calls the UNet on the batch
[ε(x_t, ""); ε(x_t, prompt)]: `dvdlib.noise_norm.record_noise_norms` reads both halves from a
forward hook on the UNet, so measuring costs no extra UNet call. `noise_norms` is a generation
(`dvdlib.generate`) that records them: resumable, stored as it is made, and `order_tests` checks the paper's order memorized > DominanceBench >
balanced with one-sided Mann–Whitney U tests.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from .generate import generate
from .metrics import adjusted_p
from .store import Store
from .temporal import PAPER_STEPS, scaled_label

#: Wen et al.'s measure reads the first steps; open here: the first 10 of 50, scaled to the schedule.
PAPER_FIRST_STEPS = 10


def first_steps(n_steps: int, paper_first: int = PAPER_FIRST_STEPS, paper_steps: int = PAPER_STEPS) -> int:
    """How many of a ``n_steps`` schedule's steps correspond to the paper's first ``paper_first``
    of ``paper_steps`` (proportional, at least 1)."""
    return scaled_label(paper_first, n_steps, paper_steps)


def noise_norms(pipe, prompts, seeds, *, store: Store, batch_size: int = 8, until_step: int | None = None,
                progress: bool = True) -> pd.DataFrame:
    """Noise-prediction norm per (prompt, seed, step), with the store's sampler: a `dvdlib.generate`
    run that records the norms (`dvdlib.noise_norm`) to ``until_step`` (None: the whole schedule);
    stored as it is made, a rerun computes only what is missing, and a whole run reads the norms
    any earlier whole run of the same prompt and seed kept (`dvdlib.generate.records_norms`).
    Columns: prompt, seed, step (1 = first), norm.
    """
    _needs_guidance(store.settings["guidance"])
    samples = generate(pipe, list(dict.fromkeys(prompts)), seeds, store=store, batch_size=batch_size,
                       noise_norms=True, until_step=until_step, progress=progress)
    return norm_table(samples)


def _needs_guidance(guidance: float) -> None:
    if guidance <= 1:
        raise ValueError(f"guidance {guidance} ≤ 1 runs no unconditional branch: the "
                         "noise-prediction norm needs classifier-free guidance")


def norm_table(samples) -> pd.DataFrame:
    """The norms samples recorded (``noise_norms``), one row per (prompt, seed, step)."""
    return pd.DataFrame([{"prompt": s.prompt, "seed": s.seed, "step": i + 1, "norm": float(v)}
                         for s in samples for i, v in enumerate(s.attention["noise_norm"])],
                        columns=["prompt", "seed", "step", "norm"])


def per_prompt(table: pd.DataFrame, first: int) -> pd.DataFrame:
    """Wen et al.'s score per prompt: the norm averaged over the first ``first`` steps and the seeds."""
    if first < 1 or first > table["step"].max():
        raise ValueError(f"first must lie in 1..{table['step'].max()} (the recorded steps), got {first}")
    kept = table[table["step"] <= first]
    return kept.groupby("prompt", sort=False)["norm"].mean().rename("score").reset_index()


def per_step(table: pd.DataFrame) -> pd.DataFrame:
    """Per step: mean and standard error over prompts of the seed-averaged norm."""
    per = table.groupby(["prompt", "step"])["norm"].mean().reset_index()
    return per.groupby("step")["norm"].agg(mean="mean", sem=lambda x: stats.sem(x) if len(x) > 1 else 0.0).reset_index()


def order_tests(scores: dict[str, np.ndarray], correction: str = "bh") -> pd.DataFrame:
    """One-sided Mann–Whitney U tests of an expected order, for every pair (a before b ⇒ a > b).

    ``scores`` maps set names, in the expected order (highest first: memorized, DominanceBench,
    balanced), to per-prompt scores. Columns: higher, lower, median of each, U, the probability
    that a random prompt of ``higher`` outscores one of ``lower`` (U / n₁n₂), p and the p-value
    corrected over the pairs (Benjamini–Hochberg "bh", or "bonferroni"); ``holds`` when the corrected p < 0.05.
    """
    names = list(scores)
    if len(names) < 2:
        raise ValueError("an order needs at least two prompt sets")
    rows = []
    for a, b in combinations(names, 2):
        x, y = np.asarray(scores[a], float), np.asarray(scores[b], float)
        test = stats.mannwhitneyu(x, y, alternative="greater")
        rows.append({"higher": a, "lower": b, "median_higher": np.median(x), "median_lower": np.median(y),
                     "U": test.statistic, "P(higher > lower)": test.statistic / (len(x) * len(y)), "p": test.pvalue})
    out = pd.DataFrame(rows)
    out["p_adjusted"] = adjusted_p(out["p"], correction)
    out["holds"] = out["p_adjusted"] < 0.05
    return out


# --- figures ---------------------------------------------------------------------------------------

def plot_distributions(scores: dict[str, np.ndarray], ylabel: str, clusters: dict[str, list] | None = None):
    """Per-prompt scores of each set (an outline box and the points), in the expected order, n
    under each set's name; with ``clusters`` (set → one label per prompt, `prompt_clusters`) the
    points are coloured by concept, so a set split by one concept shows it."""
    import matplotlib.pyplot as plt

    from .plots import use_style

    use_style()
    fig, ax = plt.subplots(figsize=(min(1.8 * len(scores) + 3.2, 8.0), 3.6))
    ax.boxplot([np.asarray(v) for v in scores.values()], showfliers=False, medianprops={"color": "black"},
               boxprops={"color": "0.5"}, whiskerprops={"color": "0.5"}, capprops={"color": "0.5"})
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    seen = {}
    for i, (name, values) in enumerate(scores.items()):
        labels = np.asarray(clusters[name]) if clusters and name in clusters else np.full(len(values), name)
        jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(values))
        for label in dict.fromkeys(labels):
            pick = labels == label
            many = len(set(labels)) > 8  # one colour per concept only where a legend can name them
            color = "0.35" if many else seen.setdefault(label, palette[len(seen) % len(palette)])
            ax.plot(i + 1 + jitter[pick], np.asarray(values)[pick], "o", color=color, alpha=0.7, ms=4,
                    label=None if many or label in ax.get_legend_handles_labels()[1] else label)
    ax.set_xticks(range(1, len(scores) + 1), [f"{name}\n(n = {len(v)})" for name, v in scores.items()])
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8, title="concept / pair",
                  title_fontsize=8)
    fig.tight_layout()
    return fig


def prompt_clusters(run, norms: dict[str, pd.DataFrame], first: int) -> dict[str, list[str]]:
    """Per set, the cluster of each prompt in `scores_by_set`'s order: a benchmark prompt's
    concept, a balanced pair with both word orders, a memorized prompt itself."""
    from .stats import clusters_of

    P, out = run.profile, {}
    for role in ("benchmark", "balanced"):
        name = P.prompt_sets[role]
        if name in norms:
            rows = run.prompts(role, tokenize=False).drop_duplicates("prompt").set_index("prompt")
            prompts = per_prompt(norms[name], first)["prompt"]
            out[name] = clusters_of(rows.loc[prompts], pair=role == "balanced")
    return out


def plot_per_step(tables: dict[str, pd.DataFrame], first: int | None = None):
    """Mean noise-prediction norm per denoising step (± s.e.), one line per prompt set; the
    ``first`` steps that the per-prompt score averages are shaded."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, CONTROL_COLOR, use_style

    use_style()
    colors = ["0.35", BENCH_COLOR, CONTROL_COLOR][-len(tables):] if len(tables) <= 3 else [None] * len(tables)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for color, (name, table) in zip(colors, tables.items()):
        c = per_step(table)
        ax.plot(c["step"], c["mean"], color=color, label=name)
        ax.fill_between(c["step"], c["mean"] - c["sem"], c["mean"] + c["sem"], color=color, alpha=0.2)
    if first:
        ax.axvspan(0.5, first + 0.5, color="0.92", zorder=0, label=f"first {first} steps (score)")
    ax.set_xlabel("denoising step (1 = first, noisiest)")
    ax.set_ylabel("‖ε(x_t, prompt) − ε(x_t, \"\")‖₂\n(mean over prompts ± s.e.)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def prompt_sets(run, n_memorized: int | None = None) -> dict[str, list[str]]:
    """The prompts of each set the chapter compares, by the set's name: the memorized set (where
    the world has one; ``n_memorized`` prompts, None: n_prompts · 5/3, at most 500), the benchmark
    and the balanced set (the profile's ``n_prompts`` each)."""
    P, sets = run.profile, {}
    name = P.prompt_sets.get("memorized")
    if name is not None:
        sets[name] = run.prompts("memorized", n_memorized or min(500, round(P.n_prompts * 5 / 3)), tokenize=False).prompt.tolist()
    else:
        print(f"No memorized prompts in this world (benchmark {P.prompt_sets['benchmark']!r}): "
              "comparing the benchmark with the balanced set only.")
    sets[P.prompt_sets["benchmark"]] = run.prompts("benchmark", P.n_prompts).prompt.unique().tolist()
    sets[P.prompt_sets["balanced"]] = run.prompts("balanced", P.n_prompts).prompt.tolist()
    return sets


def sets_table(sets: dict[str, list[str]]) -> pd.DataFrame:
    """How many prompts each set holds, with its first as an example."""
    return pd.DataFrame({"prompts": {name: len(p) for name, p in sets.items()},
                         "example": {name: p[0] for name, p in sets.items()}})


def norms_by_set(run, sets: dict[str, list[str]], until_step: int | None = None) -> dict[str, pd.DataFrame]:
    """`noise_norms` of every set's prompts with the run's model, seeds and store, through ``run``
    (a `dvdlib.run.Run` computes, a `dvdlib.plan.Count` counts)."""
    _needs_guidance(run.profile.guidance)
    return {name: norm_table(run.generate(list(dict.fromkeys(prompts)), run.profile.seeds, noise_norms=True,
                                          until_step=until_step)) for name, prompts in sets.items()}


def scores_by_set(norms: dict[str, pd.DataFrame], first: int) -> dict[str, np.ndarray]:
    """Wen et al.'s per-prompt score (`per_prompt`) of every set, as arrays."""
    return {name: per_prompt(table, first)["score"].to_numpy() for name, table in norms.items()}


def order_text(scores: dict[str, np.ndarray]) -> str:
    """The sets ordered by median score, highest first: "memorized > dominancebench > balanced"."""
    return " > ".join(sorted(scores, key=lambda name: -pd.Series(scores[name]).median()))


def add_medians(report, scores: dict[str, np.ndarray]) -> None:
    """One results row per set: its median score (``median_<set>``; the paper reports none)."""
    for name, values in scores.items():
        report.add(f"median_{name.replace('-', '_')}", f"median score, {name}", "not reported",
                   f"{pd.Series(values).median():.4g}")


def tests_text(tests: pd.DataFrame) -> str:
    """`order_tests` in one line: "a > b: p = 0.01; …"."""
    expected = tests.set_index(["higher", "lower"])
    return "; ".join(f"{a} > {b}: p = {r.p_adjusted:.2g}" for (a, b), r in expected.iterrows())
