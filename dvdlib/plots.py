"""One figure style for the whole book, and the figures more than one chapter draws."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

BENCH_COLOR, CONTROL_COLOR = "#c0392b", "#2c7fb8"
STYLE = {"figure.dpi": 110, "savefig.dpi": 150, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.25, "font.size": 10, "axes.titlesize": 11}


def use_style() -> None:
    """Apply the book's matplotlib style."""
    plt.rcParams.update(STYLE)


def save(fig, name: str, folder: str | Path) -> Path:
    """Save ``fig`` as ``folder/name.png`` and ``.pdf``; returns the PNG path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.pdf", bbox_inches="tight")
    fig.savefig(folder / f"{name}.png", bbox_inches="tight")
    return folder / f"{name}.png"


def _stars(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _layer_axis(ax, layers, highlight, shaded: str) -> None:
    """An x axis of cross-attention layers (one tick each, in forward order) with the ``highlight``
    layers shaded grey, and a label that says what the shading is (``shaded``)."""
    for i, layer in enumerate(layers):
        if layer in highlight:
            ax.axvspan(i - 0.5, i + 0.5, color="0.9", zorder=0)
    ax.set_xticks(range(len(layers)), [str(layer) for layer in layers])
    ax.set_xlabel(f"cross-attention layer (forward order; shaded: {shaded})")


def focus_by_layer(bench, control, tests, labels=("DominanceBench", "control"), highlight=(5, 6, 7, 8, 9, 10)):
    """Per-layer Focus Score distributions of two prompt sets (n prompts each in the legend), with
    the corrected test's stars; shaded, the paper's significant layers 5–10."""
    use_style()
    layers = sorted(bench["layer"].unique())
    labels = [f"{name} (n = {data['prompt'].nunique()})" for name, data in zip(labels, (bench, control))]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for offset, data, color, label in ((-0.2, bench, BENCH_COLOR, labels[0]), (0.2, control, CONTROL_COLOR, labels[1])):
        values = [data.loc[data["layer"] == layer, "focus"].to_numpy() for layer in layers]
        parts = ax.boxplot(values, positions=np.arange(len(layers)) + offset, widths=0.35, patch_artist=True,
                           showfliers=False, medianprops={"color": "black"})
        for box in parts["boxes"]:
            box.set(facecolor=color, alpha=0.55)
        ax.plot([], [], color=color, lw=6, alpha=0.55, label=label)
    for i, layer in enumerate(layers):
        p = tests.set_index("layer").loc[layer, "p_adjusted"]
        ax.text(i, 0.97, _stars(p), ha="center", va="top", transform=ax.get_xaxis_transform())
    _layer_axis(ax, layers, highlight, "the paper's significant layers 5–10")
    ax.set_ylabel("Focus Score at step 1\n(per prompt, mean over seeds)")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=2, frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def _upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(grid.astype(np.float32), mode="F").resize(size, Image.BILINEAR)
    return np.asarray(img)


#: Colour map of attention maps: perceptually uniform, readable in grey (not jet).
ATTENTION_CMAP = "magma"


def attention_overlay(image: Image.Image, maps: dict[str, np.ndarray], title: str = "",
                      label: str = "share of the pixel's attention on the word's tokens"):
    """The image, then one panel per named attention map [side, side] (paper §3.4's figure),
    upsampled to the image's size, all on **one** colour scale from 0 to the largest value of any
    map, with a colour bar saying what the value is (``label``), so the maps compare; each panel's
    title gives its own maximum."""
    use_style()
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2.3 * (len(maps) + 1) + 0.9, 2.9),
                             layout="constrained")
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=10)
    top = max(float(np.max(grid)) for grid in maps.values()) or 1.0
    shown = None
    for ax, (word, grid) in zip(axes[1:], maps.items()):
        shown = ax.imshow(_upsample(grid, image.size), cmap=ATTENTION_CMAP, vmin=0.0, vmax=top)
        ax.set_title(textwrap.fill(f'"{word}" (max {float(np.max(grid)):.2f})', 26), fontsize=10)
    for ax in axes:
        ax.set_axis_off()
    if shown is not None:
        bar = fig.colorbar(shown, ax=list(axes[1:]), shrink=0.85, pad=0.02)
        bar.set_label(textwrap.fill(label, 28), fontsize=9)
    fig.suptitle(textwrap.fill(title, 95), fontsize=10)
    return fig


def dvd_by_category(table, order=None, tau: float | None = None, paper: dict | None = None):
    """Per-prompt DvD Scores by category (box + points), one colour per model (paper §3.2), n per
    category under its name; ``tau``: the DvD-image threshold (dashed); ``paper``: category →
    (value, label) of the paper's number, drawn as a black diamond."""
    use_style()
    order = order or list(dict.fromkeys(table["content_type"]))
    models = list(dict.fromkeys(table["model"]))
    fig, ax = plt.subplots(figsize=(min(1.6 * len(order) + 2.4, 8.0), 3.6))
    width = 0.8 / len(models)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for m, model in enumerate(models):
        offset = (m - (len(models) - 1) / 2) * width
        values = [table.loc[(table["model"] == model) & (table["content_type"] == c), "dvd"].to_numpy() for c in order]
        parts = ax.boxplot(values, positions=np.arange(len(order)) + offset, widths=width * 0.9,
                           patch_artist=True, showfliers=False, medianprops={"color": "black"})
        for box in parts["boxes"]:
            box.set(facecolor=colors[m % len(colors)], alpha=0.5)
        for i, v in enumerate(values):
            ax.plot(np.full(len(v), i + offset), v, ".", color=colors[m % len(colors)], alpha=0.6, ms=4)
        ax.plot([], [], color=colors[m % len(colors)], lw=6, alpha=0.5, label=Path(str(model)).name or str(model))
    if tau is not None:
        ax.axhline(tau, color="0.3", ls="--", lw=1, label=f"τ = {tau:g} (this book's default)")
    for i, c in enumerate(order):
        if paper and c in paper:
            ax.plot(i, paper[c][0], "D", color="black", ms=7, zorder=5)
            ax.annotate(paper[c][1], (i, paper[c][0]), xytext=(8, 0), textcoords="offset points", fontsize=8, va="center")
    counts = table.groupby("content_type")["dvd"].size()
    ax.set_xticks(range(len(order)), [f"{c}\n(n = {counts.get(c, 0) // max(len(models), 1)})" for c in order])
    ax.set_ylim(-3, 103)
    ax.set_ylabel("DvD Score per prompt\n(mean over seeds)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


#: At most this many images per row of `image_grid`: the grid stays legible at the book's width.
GRID_COLUMNS = 6


def image_grid(rows: list[tuple[str, list[tuple[Image.Image, str]]]], columns: int = GRID_COLUMNS,
               empty: str = "no images to show"):
    """One row per prompt (its text above, wrapped to the row's width), its first ``columns``
    images (at most 6) with a caption under each; about 8 inches wide, so that the captions stay
    readable at the book's width (about 800 px). Without rows, a strip that says ``empty``."""
    use_style()
    if not rows:
        fig = plt.figure(figsize=(8, 0.6))
        fig.text(0.5, 0.5, empty, ha="center", va="center", fontsize=11, color="0.3")
        return fig
    n = min(max(len(images) for _, images in rows), columns, GRID_COLUMNS)
    width = 1.35 * n + 0.2
    fig = plt.figure(figsize=(width, 1.95 * len(rows)), layout="constrained")
    for sub, (title, images) in zip(np.atleast_1d(fig.subfigures(len(rows), 1)), rows):
        sub.suptitle(textwrap.fill(title, int(width * 10)), fontsize=10, x=0.01, ha="left")
        for ax, image in zip(np.atleast_1d(sub.subplots(1, n)), (images + [None] * n)[:n]):
            ax.set_axis_off()
            if image is not None:
                ax.imshow(image[0])
                ax.text(0.5, -0.04, image[1], fontsize=9, ha="center", va="top", transform=ax.transAxes)
    return fig


def ablation_by_layer(rates: dict, peaks: dict | None = None, highlight=(1, 2, 3, 4, 5, 6)):
    """Head ablation (paper §3.6): per layer, the share of prompts that at least one of its heads
    mitigates, one line per prompt set (n prompts in the legend); ``peaks`` marks the paper's peak
    layer of each set; shaded, the paper's layers 1–6 (``highlight``), where it finds the
    effects: swept layers outside them are the placebo."""
    use_style()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    colors = [BENCH_COLOR, CONTROL_COLOR, "#7f7f7f", "#2ca02c"]
    layers = sorted({int(layer) for table in rates.values() for layer in table["layer"]})
    inside = [i for i in layers if i in highlight]
    if inside:
        ax.axvspan(min(inside) - 0.5, max(inside) + 0.5, color="0.9", zorder=0)
        ax.text((min(inside) + max(inside)) / 2, 0.93, "paper's layers 1–6", color="0.4", fontsize=8, ha="center",
                va="center", transform=ax.get_xaxis_transform())
    outside = [i for i in layers if i not in highlight]
    if outside:
        ax.text((min(outside) + max(outside)) / 2, 0.93, "placebo: outside 1–6", color="0.4", fontsize=8,
                ha="center", va="center", transform=ax.get_xaxis_transform())
    for (label, table), color in zip(rates.items(), colors):
        n = int(table["prompts"].max()) if "prompts" in table and len(table) else None
        ax.plot(table["layer"], table["rate"], "o-", color=color, label=f"{label} (n = {n} prompts)" if n else label)
        if peaks and label in peaks:
            ax.axvline(peaks[label], color=color, ls=":", lw=1.2)
            ax.text(peaks[label], 1.02, f"paper's peak: {peaks[label]}", color=color, fontsize=8, ha="center",
                    transform=ax.get_xaxis_transform())
    ax.set_xticks(layers)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("cross-attention layer of the ablated head (forward order)")
    ax.set_ylabel("prompts mitigated by\nat least one head of the layer")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def outcome_shares(table, colors=("#2ca02c", "#bdbdbd", "#c0392b"), n=None, paper=None):
    """Stacked horizontal bars: one row per setting (index), columns mitigated / unchanged / corrupted;
    ``n`` (per row) goes into the row's label, ``paper`` (row → the paper's mitigated share) is
    drawn as a black diamond."""
    use_style()
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(table) + 1.2))
    left = np.zeros(len(table))
    labels = [f"{name} (n = {int(n[name])})" if n is not None else name for name in table.index]
    for column, color in zip(table.columns, colors):
        values = table[column].fillna(0).to_numpy(dtype=float)
        ax.barh(labels, values, left=left, color=color, label=column)
        for y, (x, v) in enumerate(zip(left, values)):
            if v >= 0.06:
                ax.text(x + v / 2, y, f"{v:.0%}", ha="center", va="center", fontsize=8)
        left += values
    for y, name in enumerate(table.index):
        if paper is not None and name in paper and paper[name] == paper[name]:
            ax.plot(paper[name], y, "D", color="black", ms=7, label="paper: mitigated" if y == min(
                i for i, k in enumerate(table.index) if k in paper) else None)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of prompts (or of prompt × intervention pairs, as labelled)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(table.columns) + 1, frameon=False)
    fig.tight_layout()
    return fig


def dvd_by_template(table, order=None):
    """Per-prompt DvD Scores per template (points, the mean as a bar), one row per template,
    coloured by category (the unselected set, the paper's ACCV version)."""
    use_style()
    order = order or list(dict.fromkeys(table["template"]))
    categories = list(dict.fromkeys(table["content_type"]))
    colors = dict(zip(categories, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(order) + 1.2))
    for i, template in enumerate(order):
        rows = table[table["template"] == template]
        for category, group in rows.groupby("content_type", sort=False):  # a template may span categories
            ax.plot(group["dvd"], np.full(len(group), i), "o", color=colors[category], alpha=0.5, ms=4)
        ax.plot([rows["dvd"].mean()] * 2, [i - 0.35, i + 0.35], color="black", lw=2)
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-3, 103)
    ax.set_xlabel("DvD Score per prompt (mean over seeds); bar: the template's mean")
    for category, color in colors.items():
        ax.plot([], [], "o", color=color, label=category)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(colors), frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def unavailable(text: str):
    """A small figure that says why there is nothing to draw (a world that cannot run a design)."""
    use_style()
    fig, ax = plt.subplots(figsize=(7.5, 1.2))
    ax.set_axis_off()
    ax.text(0.5, 0.5, textwrap.fill(text, 95), ha="center", va="center", fontsize=9, transform=ax.transAxes)
    return fig


def factorial_effects(effects, slot_names=None):
    """The three-concept factorial (the paper's ACCV version): per slot's target (one panel each),
    every effect's mean within-case contrast of presence with its 95% interval over the crossed
    concept clusters (`dvdlib.factorial.crossed_mean`); its two-sided p-value as stars."""
    use_style()
    slots = list(dict.fromkeys(effects["slot"]))
    names = slot_names or {}
    fig, axes = plt.subplots(1, len(slots), figsize=(2.6 * len(slots) + 0.8, 3.2), sharey=True, sharex=True)
    for ax, slot in zip(np.atleast_1d(axes), slots):
        rows = effects[effects["slot"] == slot].reset_index(drop=True)
        y = np.arange(len(rows))
        ax.axvline(0, color="grey", lw=0.8)
        ax.errorbar(rows["estimate"], y, xerr=[rows["estimate"] - rows["ci_low"], rows["ci_high"] - rows["estimate"]],
                    fmt="o", color=BENCH_COLOR, ms=4, capsize=2)
        for i, r in rows.iterrows():
            ax.annotate(_stars(r["p"]), (r["ci_high"], i), xytext=(3, -3), textcoords="offset points", fontsize=8)
        ax.set_yticks(y, rows["effect"])
        ax.set_xlim(-1.05, 1.05)  # a contrast of presence lies in [-1, 1]
        ax.set_title(f"target of slot {slot}" + (f"\n({names[slot]})" if slot in names else ""), fontsize=9)
        ax.set_xlabel("effect on presence")
    np.atleast_1d(axes)[0].invert_yaxis()
    fig.tight_layout()
    return fig


def presence_and_survivors(presence, survivors, slot_names=None):
    """Left: each slot's target's presence per condition (a heatmap, shares written in); right: per
    condition, the share of images with 0, 1, 2 or 3 targets present (stacked bars)."""
    use_style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 0.38 * len(presence) + 1.6),
                                      gridspec_kw={"width_ratios": [1, 1.4]})
    left.imshow(presence.to_numpy(float), cmap="Greens", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(presence.to_numpy(float)):
        left.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=8, color="white" if v > 0.6 else "black")
    labels = [f"slot {k}" + (f"\n{slot_names[k]}" if slot_names and k in slot_names else "")
              for k in range(1, presence.shape[1] + 1)]
    left.set_xticks(range(presence.shape[1]), labels, fontsize=8)
    left.set_yticks(range(len(presence)), presence.index)
    left.set_ylabel("condition (h1 h2 h3; 1 = named)")
    left.set_title("target present", fontsize=10)
    left.grid(False)
    colors = ["#d9d9d9", "#fdae6b", "#9ecae1", "#31a354"]
    start = np.zeros(len(survivors))
    for n, color in zip(survivors.columns, colors):
        right.barh(range(len(survivors)), survivors[n], left=start, color=color, label=f"{n} present")
        start += survivors[n].to_numpy()
    right.set_yticks(range(len(survivors)), survivors.index)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("share of images")
    right.set_title("targets present per image", fontsize=10)
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def pilot_bars(winners):
    """The pilot (artist + landmark + character): per category, the share of images in which it is
    present and the share in which it is the only target present."""
    use_style()
    fig, ax = plt.subplots(figsize=(5.5, 2.8))
    x = np.arange(len(winners))
    ax.bar(x - 0.2, winners["present"], 0.4, color=CONTROL_COLOR, label="present")
    ax.bar(x + 0.2, winners["alone"], 0.4, color=BENCH_COLOR, label="the only one present")
    ax.set_xticks(x, winners.index)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of images")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def case_grid(rows: list[tuple[str, list[tuple[Image.Image, str]]]], width: float = 8.0):
    """One matched case across its conditions, compact: one row per condition, its prompt written
    on the left, its images to the right with a caption under each (the three-concept factorial)."""
    use_style()
    n = max(len(images) for _, images in rows)
    text = 2.0  # inches of prompt text on the left (30 characters a line)
    side = min(1.6, (width - text) / n)  # an image's side in inches
    fig, axes = plt.subplots(len(rows), n + 1, figsize=(text + side * n, (side + 0.25) * len(rows)),
                             gridspec_kw={"width_ratios": [text] + [side] * n}, squeeze=False)
    for line, (title, images) in zip(axes, rows):
        for ax in line:
            ax.set_axis_off()
        line[0].text(0, 0.5, textwrap.fill(title, 30), fontsize=8, va="center", ha="left",
                     transform=line[0].transAxes)
        for ax, (image, caption) in zip(line[1:], images):
            ax.imshow(image)
            ax.set_title(caption, fontsize=7, y=-0.17)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.03, wspace=0.05, hspace=0.3)
    return fig


ARM_COLORS = {"rigid": BENCH_COLOR, "diverse": CONTROL_COLOR, "memorized": "#7b3294"}


def paired_differences(contrasts: dict, verdicts: dict | None = None):
    """Twin pairs (paper §3.3, paired): one panel per claim (four a row), each pair's difference (a dot) and the
    95% interval over pairs (a bar through the mean); the null 0 dashed; the verdict in the title.
    ``contrasts``: claim label → `dvdlib.twins.paired` result (``per_cluster``, ``value``, ``ci``)."""
    use_style()
    verdicts = verdicts or {}
    columns = min(4, len(contrasts))
    rows = -(-len(contrasts) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(8, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(contrasts):]:
        ax.set_visible(False)
    for ax, (label, r) in zip(axes.flat, contrasts.items()):
        diffs = np.array(list(r["per_cluster"].values()), dtype=float)
        jitter = np.linspace(-0.12, 0.12, len(diffs)) if len(diffs) > 1 else np.zeros(1)
        ax.scatter(jitter, diffs, s=18, color="0.35", zorder=3, label="one pair")
        if r.get("ci") is not None and None not in r["ci"]:
            ax.errorbar([0.32], [r["value"]], yerr=[[r["value"] - r["ci"][0]], [r["ci"][1] - r["value"]]], fmt="D",
                        color=BENCH_COLOR, capsize=4, zorder=4, label="mean, 95% interval")
        ax.axhline(0, color="0.4", ls="--", lw=0.8)
        ax.set_xlim(-0.4, 0.6)
        ax.set_xticks([])
        ax.set_title("\n".join(textwrap.wrap(f"{label} ({len(diffs)} pairs)", 26) +
                               textwrap.wrap(verdicts.get(label, ""), 30)), fontsize=8.5)
    for row in axes:
        row[0].set_ylabel("difference within a pair")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / rows / 3))
    return fig


def focus_curves_by_arm(table, highlight=(5, 6, 7, 8, 9, 10)):
    """The first step's Focus Score per layer of each twin arm: the mean over pairs of each pair's
    mean over prompts (a line per arm), with the pairs' range shaded; the paper's layers 5–10
    shaded grey. ``table``: `dvdlib.twins.focus_by_layer`'s (pair, arm, prompt, layer, focus)."""
    use_style()
    per_pair = table.groupby(["arm", "pair", "layer"]).focus.mean().reset_index()
    layers = sorted(per_pair.layer.unique())
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for arm, group in per_pair.groupby("arm", sort=False):
        stats_ = group.groupby("layer").focus.agg(["mean", "min", "max"]).reindex(layers)
        x = np.arange(len(layers))
        color = ARM_COLORS.get(arm, "0.3")
        ax.plot(x, stats_["mean"], marker="o", ms=3, color=color, label=f"{arm} ({group.pair.nunique()} twins)")
        ax.fill_between(x, stats_["min"], stats_["max"], color=color, alpha=0.12)
    _layer_axis(ax, layers, highlight, "the paper's layers 5–10")
    ax.set_ylabel("Focus Score at step 1\n(mean over pairs)")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=3, frameon=False, fontsize=9)
    fig.tight_layout()
    return fig
