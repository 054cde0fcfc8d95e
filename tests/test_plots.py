"""Figures shared by chapters (dvdlib.plots): they say what they show."""

import matplotlib.pyplot as plt
import pandas as pd

from dvdlib import plots


def test_ablation_by_layer_marks_the_papers_layers_and_the_placebo():
    """Paper §3.6's layers 1–6 are shaded; swept layers outside them are labelled the placebo;
    the legend gives n; a sweep inside 1–6 has no placebo label."""
    rates = {"DvD": pd.DataFrame({"layer": [1, 3, 6, 9, 12, 15], "mitigated": 0, "prompts": 14, "rate": 0.0})}
    fig = plots.ablation_by_layer(rates, {"DvD": 3})
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "paper's layers 1–6" in texts and "placebo: outside 1–6" in texts and "paper's peak: 3" in texts
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["DvD (n = 14 prompts)"]
    shaded = [p for p in ax.patches if p.get_facecolor()[:3] != (1.0, 1.0, 1.0)]
    assert len(shaded) == 1 and shaded[0].get_x() == 0.5 and shaded[0].get_width() == 6.0
    plt.close(fig)
    inside = {"DvD": rates["DvD"][rates["DvD"].layer <= 6]}
    fig = plots.ablation_by_layer(inside)
    assert "placebo: outside 1–6" not in [t.get_text() for t in fig.axes[0].texts]
    plt.close(fig)


def test_an_empty_image_grid_says_why():
    fig = plots.image_grid([], empty="no prompt was collapsed before ablation")
    assert [t.get_text() for t in fig.texts] == ["no prompt was collapsed before ablation"]
    plt.close(fig)
