"""Temporal dynamics of the dominant and the dominated token (paper §3.5).

The paper follows, over all 50 DDIM steps, the **attention deviation** (`dvdlib.metrics.
attention_deviation`) of the dominant concept's token in layers 8–10 and of the dominated object's
token in layer 7, and reports its change over five step intervals 50–40, 40–30, 30–20, 20–10,
10–1. The paper counts steps *down*: step 50 is the first (noisiest) denoising step, step 1 the
last. `dvdlib.attention` counts them *up* (1 = first); `schedule_step` converts, and scales the
paper's step labels to a schedule of another length (a 10-step schedule reads 50–40 as 10–8).

Tables are long-format pandas DataFrames, one row per (case, seed, role, step).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .bench import CONCEPT_WORDS
from .metrics import attention_deviation
from .tokens import concept_span, content_positions

#: The paper's schedule length and the boundaries of its five step intervals (paper §3.5).
PAPER_STEPS = 50
PAPER_BOUNDARIES = (50, 40, 30, 20, 10, 1)
#: Where each token is tracked (paper §3.5): dominant concept in 8–10, dominated object in 7.
ROLE_LAYERS = {"dominant": (8, 9, 10), "dominated": (7,)}
#: Which words each role reads in a prompt-set row: the first of these columns the table has
#: (the dominated object as the prompt writes it where a set says so, ``object_prompt_phrase``:
#: "mouse pad" for nm_word "mousepad", as `dvdlib.bench` locates it).
ROLE_WORDS = {"dominant": CONCEPT_WORDS["content"], "dominated": CONCEPT_WORDS["nm_word"]}
#: Which span each role reads in a prompt-set row (`deviation_table_at`).
ROLE_SPANS = {"dominant": "content_span", "dominated": "nm_span"}


def scaled_label(label: int, n_steps: int, paper_steps: int = PAPER_STEPS) -> int:
    """The paper's count-down step ``label`` (of ``paper_steps``) mapped proportionally onto a
    schedule of ``n_steps``: round(label · n / 50), at least 1 (50 → n, 1 → 1)."""
    if not 1 <= label <= paper_steps:
        raise ValueError(f"step labels run from {paper_steps} (first step) down to 1, got {label}")
    if n_steps < 1:
        raise ValueError(f"a schedule has at least one step, got {n_steps}")
    return max(1, int(np.floor(label * n_steps / paper_steps + 0.5)))


def schedule_step(label: int, n_steps: int, paper_steps: int = PAPER_STEPS) -> int:
    """The denoising step (1 = first, as `dvdlib.attention` counts) of the paper's count-down
    ``label``, scaled to ``n_steps``: label 50 → step 1, label 1 → step n."""
    return n_steps - scaled_label(label, n_steps, paper_steps) + 1


def intervals(n_steps: int, boundaries=PAPER_BOUNDARIES, paper_steps: int = PAPER_STEPS) -> pd.DataFrame:
    """The paper's step intervals on a schedule of ``n_steps``.

    One row per interval: ``interval`` (the paper's label, "50–40"), ``start``/``end`` (denoising
    steps, 1 = first) and ``labels`` (the interval in this schedule's count-down labels, "10–8").
    Raises when the schedule is too short for every interval to span at least one step.
    """
    rows = []
    for a, b in zip(boundaries[:-1], boundaries[1:]):
        start, end = schedule_step(a, n_steps, paper_steps), schedule_step(b, n_steps, paper_steps)
        if end <= start:
            raise ValueError(f"a {n_steps}-step schedule is too short for the interval {a}–{b} of "
                             f"{paper_steps} steps to span a step: use at least {len(boundaries) * 2} steps")
        rows.append({"interval": f"{a}–{b}", "start": start, "end": end,
                     "labels": f"{scaled_label(a, n_steps, paper_steps)}–{scaled_label(b, n_steps, paper_steps)}"})
    return pd.DataFrame(rows)


def record_options(role_layers=None) -> dict:
    """`dvdlib.generate` ``attention`` options: head-averaged token shares (no spatial maps) of
    the tracked layers at every step (paper §3.5)."""
    layers = sorted({layer for group in (role_layers or ROLE_LAYERS).values() for layer in group})
    return {"layers": layers, "steps": "all", "maps": False, "shares": True}


def _reduce(values: np.ndarray, how: str) -> np.ndarray:
    """A concept's tokens (last axis) reduced to one value per row."""
    if how == "mean":
        return values.mean(axis=-1)
    if how == "max":
        return values.max(axis=-1)
    raise ValueError(f"span_reduce must be 'mean' or 'max', got {how!r}")


def role_word(row, role: str) -> str:
    """The words ``role`` ("dominant" or "dominated") reads in a prompt-set ``row`` (`ROLE_WORDS`)."""
    fields = row.keys() if hasattr(row, "keys") else row._fields
    column = next((c for c in ROLE_WORDS[role] if c in fields), None)
    if column is None:
        raise ValueError(f"a prompt-set row needs a column of {list(ROLE_WORDS[role])} for the {role} concept")
    return row[column] if hasattr(row, "keys") else getattr(row, column)


def deviation_table(samples, rows: pd.DataFrame, tokenizer, n_steps: int, role_layers=None,
                    span_reduce: str = "mean") -> pd.DataFrame:
    """Attention deviation of each role's token at every step, per (case, seed).

    ``samples``: `dvdlib.generate.Sample` objects recorded with `record_options` (head-averaged);
    ``rows``: a prompt-set table with ``case_num``, ``prompt`` and each role's words: ``content``
    (the dominant concept) and ``nm_word`` (the dominated object; ``object_prompt_phrase`` where
    the set has it, `ROLE_WORDS`). Their tokens are found in the prompt by ``tokenizer``, the
    model's (`dvdlib.tokens.concept_span`: the first occurrence; a concept the prompt lacks raises
    `dvdlib.tokens.ConceptNotFound` naming both). A role's share at a step is the mean of its
    layers' shares; a concept spelled by several tokens is reduced over its span by
    ``span_reduce`` ("mean", or "max"). Columns: case_num, prompt, seed, role, step (1 = first),
    label (count-down, n = first), share (the span's attention), deviation. `deviation_table_at`
    reads token positions instead of words.
    """
    role_layers = role_layers or ROLE_LAYERS
    spans = {ROLE_SPANS[role]: [concept_span(tokenizer, row.prompt, role_word(row, role)) for row in rows.itertuples()]
             for role in role_layers}
    return deviation_table_at(samples, rows.assign(**spans), tokenizer, n_steps, role_layers, span_reduce)


def deviation_table_at(samples, rows: pd.DataFrame, tokenizer, n_steps: int, role_layers=None,
                       span_reduce: str = "mean") -> pd.DataFrame:
    """`deviation_table` one level down: ``rows`` give each role's token positions (``content_span``,
    ``nm_span``: `dvdlib.bench.load_prompt_set` with the model's tokenizer) instead of its words."""
    role_layers = role_layers or ROLE_LAYERS
    by_prompt: dict[str, list] = {}
    for sample in samples:
        by_prompt.setdefault(sample.prompt, []).append(sample)
    out = []
    for row in rows.itertuples():
        if row.prompt not in by_prompt:
            raise ValueError(f"no recorded sample for prompt {row.prompt!r} (case {row.case_num}): generate it first")
        positions = content_positions(tokenizer, row.prompt)
        index = {p: i for i, p in enumerate(positions)}
        for sample in by_prompt[row.prompt]:
            for role, layers in role_layers.items():
                span = list(getattr(row, ROLE_SPANS[role]))
                where = [index[p] for p in span]
                a = np.stack([np.mean([sample.share(layer, step) for layer in layers], axis=0)
                              for step in range(1, n_steps + 1)])  # [steps, tokens]
                if a.ndim != 2:
                    raise ValueError("deviation_table needs head-averaged shares: record with heads='mean'")
                deviation = attention_deviation(a, positions)  # [steps, |J|]
                share, dev = _reduce(a[:, span], span_reduce), _reduce(deviation[:, where], span_reduce)
                out += [{"case_num": row.case_num, "prompt": row.prompt, "seed": sample.seed, "role": role,
                         "step": step, "label": n_steps - step + 1, "share": share[step - 1],
                         "deviation": dev[step - 1]} for step in range(1, n_steps + 1)]
    return pd.DataFrame(out)


def interval_changes(table: pd.DataFrame, n_steps: int, boundaries=PAPER_BOUNDARIES) -> pd.DataFrame:
    """Change of the deviation over each interval, per (case, seed, role): deviation at the
    interval's last step minus deviation at its first (paper §3.5: 50–40 = step 40 − step 50)."""
    spans = intervals(n_steps, boundaries)
    wide = table.pivot_table(index=["case_num", "seed", "role"], columns="step", values="deviation")
    missing = sorted((set(spans.start) | set(spans.end)) - set(wide.columns))
    if missing:
        raise ValueError(f"deviation table lacks steps {missing}: record every step ('steps': 'all')")
    parts = [pd.DataFrame({"interval": r.interval, "labels": r.labels,
                           "change": wide[r.end] - wide[r.start]}) for r in spans.itertuples()]
    out = pd.concat(parts).reset_index()
    out["interval"] = pd.Categorical(out["interval"], categories=list(spans.interval), ordered=True)
    return out


def per_prompt(changes: pd.DataFrame) -> pd.DataFrame:
    """Interval changes per (case, role, interval): the mean over seeds."""
    return changes.groupby(["case_num", "role", "interval"], observed=True)["change"].mean().reset_index()


def summary(changes: pd.DataFrame) -> pd.DataFrame:
    """Per (role, interval), over prompts (seeds averaged first): mean change, its standard error,
    the number of prompts, and a two-sided Wilcoxon signed-rank test of a zero median."""
    rows = []
    for (role, interval), group in per_prompt(changes).groupby(["role", "interval"], observed=True):
        x = group["change"].to_numpy()
        p = stats.wilcoxon(x).pvalue if len(x) > 1 and np.any(x != 0) else np.nan
        rows.append({"role": role, "interval": interval, "n": len(x), "mean": x.mean(),
                     "sem": stats.sem(x) if len(x) > 1 else np.nan, "wilcoxon_p": p})
    return pd.DataFrame(rows)


def _sig(x: float) -> str:
    """A number to three significant digits, as the chapter's tables print it."""
    return f"{x:.3g}"


def summary_table(summaries: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """`summary` of each prompt set as the chapter shows it (paper §3.5): one row per (set, role,
    interval), numbers to three digits; where a value cannot be computed the cell says why (one
    prompt has no standard error; a Wilcoxon test needs two prompts and a change that is not zero)."""
    rows = []
    for name, table in summaries.items():
        for r in table.itertuples():
            single = "— (one prompt)" if r.n < 2 else None
            sem = single or (_sig(r.sem) if r.sem == r.sem else "—")
            p = single or ("— (every change is 0)" if r.wilcoxon_p != r.wilcoxon_p else _sig(r.wilcoxon_p))
            rows.append({"set": name, "role": r.role, "interval": str(r.interval), "prompts": r.n,
                         "mean change": f"{r.mean:+.3g}", "s.e.": sem, "Wilcoxon p": p})
    return pd.DataFrame(rows).set_index(["set", "role", "interval"])


def layer_words(layers) -> str:
    """"layer 7", "layers 8, 9 and 10": tracked layers in words."""
    names = [str(layer) for layer in layers]
    if len(names) == 1:
        return f"layer {names[0]}"
    return f"layers {', '.join(names[:-1])} and {names[-1]}"


def example_text(row, content: str, nm_word: str, set_name: str, seed: int) -> str:
    """One sentence (Markdown) on the worked example this run shows (paper §3.5: DominanceBench's
    "The Colosseum, Rome Italy Carry-all Pouch"): the paper's, where the benchmark set has it
    (``content`` + ``nm_word``, `find_example`), else the set's first row standing in for it."""
    found = str(row.content).lower() == content.lower() and str(row.nm_word).lower() == nm_word.lower()
    if found:
        return f'This run shows it, "{row.prompt}" (case {row.case_num} of `{set_name}`), with seed {seed}.'
    return (f"It is not in this run's benchmark set (`{set_name}`), so the set's first row stands in: "
            f'"{row.prompt}" (case {row.case_num}), with seed {seed}.')


def curves(table: pd.DataFrame) -> pd.DataFrame:
    """Per (role, step): mean and standard error over prompts of the seed-averaged deviation."""
    per_case = table.groupby(["case_num", "role", "step", "label"])["deviation"].mean().reset_index()
    return (per_case.groupby(["role", "step", "label"])["deviation"]
            .agg(mean="mean", sem=lambda x: stats.sem(x) if len(x) > 1 else 0.0).reset_index())


def word_rank(a: np.ndarray, tokenizer, prompt: str, word: str) -> int:
    """Rank (1 = most attended) of ``word``'s best token among ``prompt``'s content tokens by
    attention ``a`` [tokens]: "the pouch token has high attention in layer 7" reads rank 1–2. The
    word's tokens are found by ``tokenizer``, the model's (`dvdlib.tokens.concept_span`); `span_rank`
    reads positions instead."""
    return span_rank(a, content_positions(tokenizer, prompt), concept_span(tokenizer, prompt, word))


def span_rank(a: np.ndarray, positions, span) -> int:
    """`word_rank` one level down: rank (1 = most attended) of a concept's best token, given as
    positions ``span``, among the content tokens ``positions`` by attention ``a`` [tokens]."""
    a = np.asarray(a, dtype=np.float64)
    positions = list(positions)
    if not set(span) <= set(positions):
        raise ValueError(f"span {list(span)} is not inside the content positions {positions}")
    best = max(a[p] for p in span)
    return int(sum(a[p] > best for p in positions)) + 1


def find_example(table: pd.DataFrame, content: str, nm_word: str) -> tuple[pd.Series, bool]:
    """The first row of a prompt-set table whose ``content`` and ``nm_word`` are ``content`` and
    ``nm_word`` (case-insensitive), and True; the table's first row and False when none is."""
    hit = table[(table["content"].str.lower() == content.lower()) & (table["nm_word"].str.lower() == nm_word.lower())]
    return (hit.iloc[0], True) if len(hit) else (table.iloc[0], False)


def deviations(samples: dict[str, list], sets: dict[str, pd.DataFrame], tokenizer, n_steps: int, role_layers,
               span_reduce: str = "mean") -> dict[str, pd.DataFrame]:
    """Per prompt set (name → rows), its `deviation_table` over every step of the schedule, from
    the set's ``samples`` (each prompt with each seed, the roles' layers recorded: `record_options`)."""
    return {name: deviation_table(samples[name], rows, tokenizer, n_steps, role_layers, span_reduce)
            for name, rows in sets.items()}


def interval_summaries(tables: dict[str, pd.DataFrame], n_steps: int, boundaries=PAPER_BOUNDARIES):
    """Per prompt set, its `interval_changes` and their `summary`: (changes, summaries)."""
    changes = {name: interval_changes(table, n_steps, boundaries) for name, table in tables.items()}
    return changes, {name: summary(c) for name, c in changes.items()}


def interval_means(summaries: dict[str, pd.DataFrame], interval: str) -> dict[str, pd.Series]:
    """Per prompt set, the mean change of each role's deviation over ``interval``."""
    return {name: s[s.interval == interval].set_index("role")["mean"] for name, s in summaries.items()}


def mean_share(sample, layers, step: int = 1) -> np.ndarray:
    """A sample's token shares at ``step``, averaged over ``layers``."""
    return sum(sample.share(layer, step) for layer in layers) / len(layers)


def example_labels(row, dominant_layers, dominated_layers) -> dict[str, str]:
    """The worked example's legend: each role's concept and the layers it is tracked in."""
    return {"dominant": f"{row.content} ({layer_words(dominant_layers)})",
            "dominated": f"{row.nm_word} ({layer_words(dominated_layers)})"}


# --- figures ---------------------------------------------------------------------------------------

def plot_curves(sets: dict[str, pd.DataFrame], role_layers=None, boundaries=PAPER_BOUNDARIES):
    """Mean deviation per step, one panel per role, one line per prompt set (``sets`` maps a name
    to its `deviation_table`). Steps are labelled as in `plot_changes`: the paper's count-down
    (50 = the first step, on the left), this schedule's steps scaled onto it, the paper's interval
    boundaries marked."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, CONTROL_COLOR, use_style

    use_style()
    role_layers = role_layers or ROLE_LAYERS
    colors = [BENCH_COLOR, CONTROL_COLOR, "0.4"]
    fig, axes = plt.subplots(1, len(role_layers), figsize=(4 * len(role_layers), 3.2), sharey=False)
    for ax, (role, layers) in zip(np.atleast_1d(axes), role_layers.items()):
        for color, (name, table) in zip(colors, sets.items()):
            c = curves(table[table.role == role])
            x = c["label"] * PAPER_STEPS / c["label"].max()  # this schedule's count-down on the paper's 50 steps
            ax.plot(x, c["mean"], color=color, label=name)
            ax.fill_between(x, c["mean"] - c["sem"], c["mean"] + c["sem"], color=color, alpha=0.2)
        ax.axhline(0, color="black", lw=0.6)
        for b in boundaries[1:-1]:
            ax.axvline(b, color="0.6", lw=0.6, ls=":")
        ax.set_xticks(list(boundaries))
        ax.invert_xaxis()
        ax.set_title(f"{role} token, layer{'s' if len(layers) > 1 else ''} {', '.join(map(str, layers))}", fontsize=10)
        ax.set_xlabel("step, paper's count-down (50 = first)")
        ax.set_ylabel("attention deviation\n(mean over prompts ± s.e.)")
    np.atleast_1d(axes)[0].legend(frameon=False)
    fig.tight_layout()
    return fig


def plot_changes(summaries: dict[str, pd.DataFrame]):
    """Mean change of the deviation per interval (± s.e.), grouped bars per role and prompt set."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, CONTROL_COLOR, use_style

    use_style()
    colors = [BENCH_COLOR, CONTROL_COLOR, "0.4"]
    roles = list(dict.fromkeys(r for s in summaries.values() for r in s["role"]))
    fig, axes = plt.subplots(1, len(roles), figsize=(4 * len(roles), 3.2))
    width = 0.8 / len(summaries)
    for ax, role in zip(np.atleast_1d(axes), roles):
        for k, (color, (name, table)) in enumerate(zip(colors, summaries.items())):
            t = table[table.role == role]
            x = np.arange(len(t)) + (k - (len(summaries) - 1) / 2) * width
            ax.bar(x, t["mean"], width * 0.9, yerr=t["sem"].fillna(0), color=color, alpha=0.7, label=name)
            ax.set_xticks(np.arange(len(t)), [str(i) for i in t["interval"]])
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(f"{role} token")
        ax.set_xlabel("interval, paper's count-down (50 = first)")
        ax.set_ylabel("change of attention deviation")
    np.atleast_1d(axes)[0].legend(frameon=False)
    fig.tight_layout()
    return fig


def plot_example(image, table: pd.DataFrame, names: dict[str, str], title: str = ""):
    """The worked example: its image, then the per-step attention deviation (the quantity the
    chapter tests) of the dominant and the dominated token (``table``: one case and seed of `deviation_table`)."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, CONTROL_COLOR, use_style

    use_style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3.3), gridspec_kw={"width_ratios": [1, 1.7]})
    left.imshow(image)
    left.set_axis_off()
    left.set_title("image")
    for role, color in (("dominant", BENCH_COLOR), ("dominated", CONTROL_COLOR)):
        t = table[table.role == role].sort_values("step")
        right.plot(t["label"] * PAPER_STEPS / t["label"].max(), t["deviation"], color=color, marker=".", label=names[role])
    right.axhline(0, color="black", lw=0.6)
    right.set_xticks(list(PAPER_BOUNDARIES))
    right.invert_xaxis()
    right.set_xlabel("step, paper's count-down (50 = first)")
    right.set_ylabel("attention deviation of the token")
    right.legend(frameon=False, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
