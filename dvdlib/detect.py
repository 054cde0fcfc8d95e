"""Early detection of generative collapse (paper §3.8): the Focus Score at the first denoising step,
in chosen layers, against a threshold — the one-prompt check behind ``dvd check``, and the
detector over whole prompt sets (rates, the threshold × layer-set grid, the ROC curve).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .family import of
from .focus import focus_table
from .generate import generate
from .layers import registry
from .store import Store
from .tokens import BlankText, check_text, content_positions, known_span, sequence_tokenizer, unknown_tokens

#: The paper's best configuration (paper §3.8): layers 9 and 10, threshold 0.010.
LAYERS, THRESHOLD = (9, 10), 0.010


def flags(focus_by_layer: dict[int, float], layers=LAYERS, threshold: float = THRESHOLD,
          combine: str = "mean") -> bool:
    """Whether a prompt is flagged: its Focus Scores in ``layers`` combined by ``combine`` (open:
    "mean", the default, or "max" / "min") exceed ``threshold``."""
    reducers = {"mean": np.mean, "max": np.max, "min": np.min}
    if combine not in reducers:
        raise ValueError(f"combine must be one of {sorted(reducers)}, got {combine!r}")
    return bool(reducers[combine]([focus_by_layer[layer] for layer in layers]) > threshold)


@dataclass
class Check:
    """The first-step reading of one prompt: Focus Score and peak token per layer, the verdict."""

    prompt: str
    focus: dict[int, float]
    peak_token: dict[int, str]
    concepts: dict[str, list[int]]
    flagged: bool
    layers: tuple[int, ...] = LAYERS
    #: each concept's share of the first step's cross-attention in the detector's layers (mean
    #: over seeds and layers; its tokens together)
    shares: dict[str, float] = field(default_factory=dict)

    @property
    def dominant(self) -> str | None:
        """The concept that takes more of the first step's attention in the detector's layers (the
        one expected to dominate, paper §3.4), or None with fewer than two concepts."""
        return max(self.shares, key=self.shares.get) if len(self.shares) >= 2 else None

    def report(self, layers=None, threshold: float = THRESHOLD) -> str:
        layers = layers or self.layers
        lines = [f"prompt: {self.prompt!r}"]
        lines += [f"  {name!r} → token positions {span}" + (f", {self.shares[name]:.1%} of the detector layers' "
                                                             "attention" if name in self.shares else "")
                  for name, span in self.concepts.items()]
        lines.append("layer  Focus Score  peak token")
        lines += [f"{layer:5d}  {score:11.4f}  {self.peak_token[layer]}" + ("   ← detector" if layer in layers else "")
                  for layer, score in self.focus.items()]
        verdict = "FLAGGED: one concept may swallow the other" if self.flagged else "not flagged"
        lines.append(f"detector (layers {', '.join(map(str, layers))}, mean > {threshold}): {verdict}")
        return "\n".join(lines)


def detector_layers(pipe, every=None) -> tuple[int, ...]:
    """The detector's layers for ``pipe``: the paper's 9 and 10 where the registry has SD's 16
    layers, else the blocks its family's adapter puts at their depth (`dvdlib.family.of`).
    ``every``: the pipeline's registry when the caller has it (else built here)."""
    layers = registry(pipe) if every is None else every
    return LAYERS if len(layers) == 16 else of(pipe).semantic_layers(layers)


def locate(pipe, prompt: str, concepts=()) -> dict[str, list[int]]:
    """The token positions of each of ``concepts`` in ``prompt`` under ``pipe``'s tokenizer
    (`dvdlib.tokens.known_span`), after refusing what the detector cannot read: a blank prompt or
    concept, or a prompt of fewer than two tokens (`dvdlib.tokens.BlankText`), a missing concept
    (`dvdlib.tokens.ConceptNotFound`), one read as the unknown token (`dvdlib.tokens.UnknownWords`)."""
    check_text(prompt, concepts)
    tokenizer = sequence_tokenizer(pipe)
    if len(content_positions(tokenizer, prompt)) < 2:
        raise BlankText(f"prompt {prompt!r} has fewer than two tokens, and the Focus Score compares a prompt's "
                        "tokens: give a prompt of at least two words")
    return {c: known_span(tokenizer, prompt, c) for c in concepts}


def check_prompt(pipe, prompt: str, concepts=(), *, store: Store, seeds=(1825,), layers=None,
                  threshold: float = THRESHOLD) -> Check:
    """One step-1 pass per seed (no full generation; sampler settings from ``store``): per-layer
    Focus Score (mean over seeds), the most frequent peak token, and the detector's verdict on
    ``layers`` (None: `detector_layers`). ``concepts`` are words ("van gogh"), located in the
    prompt by the model's tokenizer before anything is generated (`locate`: the first occurrence;
    `Check.concepts` holds their token positions); what `locate` refuses raises before any step."""
    spans = locate(pipe, prompt, concepts)
    tokenizer = sequence_tokenizer(pipe)
    every = registry(pipe)  # built once, passed on
    layers = tuple(layers or detector_layers(pipe, every))
    samples = generate(pipe, [prompt], seeds, store=store, attention={"layers": "all", "steps": [1]},
                       until_step=1, progress=False, registry=every)
    table = focus_table(samples, tokenizer, [layer.index for layer in every])
    unknown = unknown_tokens(tokenizer, prompt)  # a peak on a word the model read as <unk> says so
    table["peak_token"] = [f"{word} (read as {unknown[at][1].unk_token})" if at in unknown else word
                           for at, word in zip(table["peak"], table["peak_token"])]
    focus = table.groupby("layer")["focus"].mean().to_dict()
    peak = table.groupby("layer")["peak_token"].agg(lambda s: s.mode().iloc[0]).to_dict()
    shares = {c: float(np.mean([x.share(layer)[span].sum() for x in samples for layer in layers]))
              for c, span in spans.items()}
    return Check(prompt, focus, peak, spans, flags(focus, layers, threshold), layers, shares)


# ------------------------------------------------------------------ the detector over prompt sets

#: Open (paper §3.8 gives only the best configuration): the grid the chapter sweeps by default.
THRESHOLDS = (0.006, 0.008, 0.010, 0.012, 0.014)
LAYER_SETS = ((8,), (9,), (10,), (9, 10), (8, 9, 10), (5, 6, 7, 8, 9, 10))


def combined_scores(per_prompt, layers=LAYERS, combine: str = "mean"):
    """Per prompt, its Focus Scores in ``layers`` combined as `flags` combines them: a Series
    indexed by prompt. ``per_prompt`` is long format (``prompt``, ``layer``, ``focus``;
    `dvdlib.focus.per_prompt`); a prompt lacking one of the layers is an error."""
    import pandas as pd

    if combine not in ("mean", "max", "min"):
        raise ValueError(f"combine must be one of ['max', 'mean', 'min'], got {combine!r}")
    wide = per_prompt.pivot_table(index="prompt", columns="layer", values="focus", sort=False)
    absent = [layer for layer in layers if layer not in wide.columns]
    if absent or wide[list(layers)].isna().any().any():
        raise ValueError(f"Focus Scores missing for layer(s) {absent or list(layers)}: record these layers at step 1")
    return pd.Series(wide[list(layers)].agg(combine, axis=1), name="score")


def detection_rate(scores, prompts, threshold: float = THRESHOLD) -> float:
    """Share of ``prompts`` (one per prompt-set row; repeats count) whose score exceeds ``threshold``."""
    missing = sorted(set(prompts) - set(scores.index))
    if missing:
        raise ValueError(f"no score for {len(missing)} prompt(s), e.g. {missing[:2]}")
    return float((scores.loc[list(prompts)] > threshold).mean())


def detection_grid(bench_pp, control_pp, bench_prompts, control_prompts, thresholds=THRESHOLDS,
                   layer_sets=LAYER_SETS, combine: str = "mean"):
    """Every threshold × layer set (paper §3.8): the share of benchmark rows and of control rows
    flagged, and the gap between them in percentage points. One row per configuration."""
    import pandas as pd

    from .report import ranges

    rows = []
    for layers in layer_sets:
        b, c = combined_scores(bench_pp, layers, combine), combined_scores(control_pp, layers, combine)
        for threshold in thresholds:
            rb, rc = detection_rate(b, bench_prompts, threshold), detection_rate(c, control_prompts, threshold)
            rows.append({"layers": ranges(layers), "threshold": threshold, "benchmark": 100 * rb,
                         "control": 100 * rc, "gap": 100 * (rb - rc)})
    return pd.DataFrame(rows)


def roc(bench_scores, control_scores):
    """ROC of the detector's score, benchmark rows positive, control rows negative
    (scikit-learn): (table of ``fpr``, ``tpr``, ``threshold``; area under the curve)."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(bench_scores)), np.zeros(len(control_scores))]
    s = np.r_[np.asarray(bench_scores, float), np.asarray(control_scores, float)]
    if len(bench_scores) == 0 or len(control_scores) == 0:
        raise ValueError("a ROC curve needs scores of both sets")
    fpr, tpr, thresholds = roc_curve(y, s)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds}), float(roc_auc_score(y, s))


#: The paper's operating point on the ROC (paper §3.8): 33.67% of the balanced prompts flagged,
#: 70.67% of DominanceBench.
PAPER_POINT = (0.3367, 0.7067)


def roc_figure(curves: dict, marks: dict | None = None, matched: dict | None = None, threshold: float | None = None,
               n: tuple[int, int] | None = None):
    """One ROC curve per layer set (``{label: (table, auc)}``); ``marks`` ({label: (fpr, tpr)})
    places the operating points of ``threshold`` (the paper's, on Stable Diffusion's scale) as
    circles, ``matched`` those of the threshold that flags the paper's share of the control as
    squares; the paper's own point (0.337, 0.707) is a black star. ``n``: benchmark and control rows."""
    import matplotlib.pyplot as plt

    from .plots import use_style
    from .report import number

    use_style()
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    for label, (table, auc) in curves.items():  # the area as the table beside it writes it
        line, = ax.plot(table["fpr"], table["tpr"], label=f"{layers_text(label)} (AUC {number(auc)})")
        if marks and label in marks:
            ax.plot(*marks[label], "o", color=line.get_color(), ms=7, mfc="white", mew=1.5)
        if matched and label in matched:
            ax.plot(*matched[label], "s", color=line.get_color(), ms=6)
    ax.plot(*PAPER_POINT, "*", color="black", ms=13, label="paper: layers 9–10 > 0.010 (0.337, 0.707)")
    if marks:
        ax.plot([], [], "o", color="0.3", mfc="white", mew=1.5, label=f"this run at threshold {threshold_text(threshold)}")
    if matched:
        ax.plot([], [], "s", color="0.3", label="this run at the paper's control rate")
    ax.plot([0, 1], [0, 1], ":", color="0.5", lw=1)
    title = f" ({n[0]} benchmark vs {n[1]} control rows)" if n else ""
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="control prompts flagged (false-positive rate)",
           ylabel="benchmark prompts flagged\n(true-positive rate)")
    ax.set_title("ROC of the first-step detector" + title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def matched_threshold(control_scores, rate: float = PAPER_POINT[0]) -> float:
    """The threshold whose "score > threshold" flags ``rate`` of the control scores (as near as
    their ties allow): the scale-free operating point the paper's control rate fixes."""
    import numpy as np

    return float(np.quantile(np.asarray(control_scores, float), 1 - rate))


def matched_gap(bench_scores, control_scores, clusters, rate: float = PAPER_POINT[0]) -> dict:
    """Flagged benchmark rows − flagged control rows (percentage points) at `matched_threshold`,
    with the cluster interval of `dvdlib.stats.difference`; ``threshold`` added."""
    import numpy as np

    from .stats import difference

    t = matched_threshold(control_scores, rate)
    gap = difference(100.0 * (np.asarray(bench_scores) > t), 100.0 * (np.asarray(control_scores) > t), clusters=clusters)
    return {**gap, "threshold": t}


def grid_table(grid, layer_sets):
    """`detection_grid` as the chapter shows it: a row per (layer set, in the given order; threshold),
    the benchmark's and the control's share flagged and their gap; one sentence instead where every
    configuration reads the same (`dvdlib.report.rows_or_sentence`), which says, where every row or
    none is flagged, that the grid's thresholds all lie below (above) every row's score."""
    from .report import ranges, rows_or_sentence

    table = grid.set_index(["layers", "threshold"])[["benchmark", "control", "gap"]].round(1)
    table = table.loc[[ranges(s) for s in layer_sets]]
    say = (f"All {{n}} configurations of the grid ({grid.layers.nunique()} layer sets × {grid.threshold.nunique()} "
           "thresholds) flag {benchmark}% of the benchmark rows and {control}% of the balanced rows, a gap of {gap} points.")
    if (grid.benchmark == 100).all() and (grid.control == 100).all():
        say += (" Every threshold of the grid lies below the combined Focus Score of every row in both sets: on this "
                "model the grid cannot tell them apart.")
    elif (grid.benchmark == 0).all() and (grid.control == 0).all():
        say += (" Every threshold of the grid lies above the combined Focus Score of every row in both sets: on this "
                "model the grid cannot tell them apart.")
    return rows_or_sentence(table, "configurations of the grid", say)


def layers_text(label: str) -> str:
    """A layer set's label (`dvdlib.report.ranges`) in words: "layer 9", "layers 9–10", "layers 5, 9"."""
    return f"layer{'s' if '–' in label or ',' in label else ''} {label}"


def threshold_text(t: float) -> str:
    """A threshold as the paper writes it: three decimals (0.010), more where it has them (0.0125)."""
    return f"{t:.3f}" if round(t, 3) == t else f"{t:g}"


def largest_gap(grid) -> str:
    """The largest gap on `detection_grid` and where (paper §3.8's: 37.00 points at layers 9–10 and
    threshold 0.010); where configurations tie, how many: "0.00 points, at all 30 configurations",
    "12.50 points, at 3 of the 30 configurations (the first: layer 8 and threshold 0.006)"."""
    top = grid.gap.max()
    at = grid[np.isclose(grid.gap, top)]
    first = f"{layers_text(at.layers.iloc[0])} and threshold {threshold_text(at.threshold.iloc[0])}"
    if len(at) == 1:
        return f"{top:.2f} points, at {first}"
    if len(at) == len(grid):
        return f"{top:.2f} points, at all {len(grid)} configurations"
    return f"{top:.2f} points, at {len(at)} of the {len(grid)} configurations (the first: {first})"


def roc_curves(bench_pp, control_pp, bench_prompts, control_prompts, layer_sets, combine: str, threshold: float):
    """Per layer set (by its label), the ROC of the detector's score (`roc`) and the operating
    point of ``threshold`` as (false-positive rate, true-positive rate), and that of the threshold
    flagging the paper's share of the control (`matched_threshold`): (curves, marks, matched)."""
    from .report import ranges

    curves, marks, matched = {}, {}, {}
    for layers in layer_sets:
        b = combined_scores(bench_pp, layers, combine).loc[bench_prompts]
        c = combined_scores(control_pp, layers, combine).loc[control_prompts]
        curves[ranges(layers)] = roc(b.values, c.values)
        marks[ranges(layers)] = ((c > threshold).mean(), (b > threshold).mean())
        t = matched_threshold(c.values)
        matched[ranges(layers)] = ((c > t).mean(), (b > t).mean())
    return curves, marks, matched


def areas(curves: dict):
    """The area under each ROC curve, one row."""
    import pandas as pd

    return pd.Series({label: auc for label, (_, auc) in curves.items()}, name="AUC").to_frame().T.round(3)


def configuration(grid, bench_pp, control_pp, bench_prompts, control_prompts, layers, threshold: float, combine: str):
    """The grid's row of the detector's configuration, computed on its own when the grid lacks it."""
    from .report import ranges

    config = grid[(grid.layers == ranges(layers)) & (grid.threshold == threshold)]
    if config.empty:
        config = detection_grid(bench_pp, control_pp, bench_prompts, control_prompts, [threshold], [tuple(layers)], combine)
    return config.iloc[0]


def layers_in(layer_sets) -> list[int]:
    """Every layer that some layer set of the grid reads, in order."""
    return sorted({layer for layers in layer_sets for layer in layers})


def best_area(curves: dict) -> tuple[str, float]:
    """(label, area) of the layer set whose ROC curve has the largest area."""
    auc = {label: a for label, (_, a) in curves.items()}
    top = max(auc, key=auc.get)
    return top, auc[top]
