"""dvdlib.detect: the first-step detector (paper §3.8) and `dvd check`."""

import pytest

from dvdlib import models
from dvdlib.cli import main
from dvdlib.detect import check_prompt, flags
from dvdlib.store import Store


def test_flags_by_hand():
    scores = {8: 0.5, 9: 0.012, 10: 0.009}
    assert flags(scores)  # mean(0.012, 0.009) = 0.0105 > 0.010
    assert not flags(scores, threshold=0.011)
    assert not flags(scores, combine="min") and flags(scores, combine="max")
    assert flags(scores, layers=[8])
    with pytest.raises(ValueError, match="combine"):
        flags(scores, combine="median")


def test_check_prompt_reads_the_first_step(tmp_path):
    pipe = models.load("smoke")
    store = Store(tmp_path, "smoke", {"resolution": 64, "steps": 5, "guidance": 7.5, "eta": 0.0})
    result = check_prompt(pipe, "Van Gogh's Starry Night Notebook", ["van gogh", "notebook"], store=store)
    assert sorted(result.focus) == list(range(1, 17))
    assert result.concepts == {"van gogh": [1, 2], "notebook": [6]}
    assert result.flagged == flags(result.focus)
    assert check_prompt(pipe, "Van Gogh's Starry Night Notebook", store=store, threshold=-1.0).flagged
    assert "← detector" in result.report()


def test_check_prompt_locates_words_before_generating(tmp_path):
    """Concepts are words, found by the model's tokenizer (a repeated word: its first occurrence);
    a word the prompt lacks is named before any step is run (nothing stored)."""
    from dvdlib.tokens import ConceptNotFound, concept_span, sequence_tokenizer

    pipe = models.load("smoke")
    store = Store(tmp_path, "smoke", {"resolution": 64, "steps": 5, "guidance": 7.5, "eta": 0.0})
    prompt = "a mug beside a carry-all pouch and a mug"
    result = check_prompt(pipe, prompt, ["carry-all pouch", "mug"], store=store)
    tok = sequence_tokenizer(pipe)
    assert result.concepts == {"carry-all pouch": concept_span(tok, prompt, "carry-all pouch"), "mug": [2]}
    assert len(result.concepts["carry-all pouch"]) == 4
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConceptNotFound, match="concept 'notebook' not found in prompt 'a red mug'"):
        check_prompt(pipe, "a red mug", ["mug", "notebook"], store=store)
    assert sorted(tmp_path.rglob("*")) == before  # nothing generated


def test_dvd_check_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["check", "a red mug on a table", "--concepts", "mug"]) == 0
    out = capsys.readouterr().out
    assert "'mug' → token positions [3]" in out and "detector (layers 9, 10" in out
    assert main(["check", "a red mug", "--concepts", "pouch"]) == 2
    assert "not found" in capsys.readouterr().err


def _long(scores: dict[str, dict[int, float]]):
    import pandas as pd

    return pd.DataFrame([{"prompt": p, "layer": l, "focus": f} for p, by in scores.items() for l, f in by.items()])


def test_combined_scores_and_rates_by_hand():
    from dvdlib.detect import combined_scores, detection_rate

    pp = _long({"a": {9: 0.012, 10: 0.009}, "b": {9: 0.004, 10: 0.020}, "c": {9: 0.001, 10: 0.002}})
    mean = combined_scores(pp)  # layers 9–10, mean
    assert mean.to_dict() == pytest.approx({"a": 0.0105, "b": 0.012, "c": 0.0015})
    assert combined_scores(pp, (9,), "max").to_dict() == pytest.approx({"a": 0.012, "b": 0.004, "c": 0.001})
    # agrees with `flags` prompt by prompt
    for prompt, group in pp.groupby("prompt"):
        assert (mean[prompt] > 0.010) == flags(dict(zip(group.layer, group.focus)))
    # rates count prompt-set rows: a repeated prompt counts twice
    assert detection_rate(mean, ["a", "b", "c"]) == pytest.approx(2 / 3)
    assert detection_rate(mean, ["a", "a", "c", "c"], threshold=0.011) == 0.0
    with pytest.raises(ValueError, match="no score"):
        detection_rate(mean, ["z"])
    with pytest.raises(ValueError, match=r"layer\(s\) \[8\]"):
        combined_scores(pp, (8, 9))


def test_detection_grid_and_roc_by_hand():
    from dvdlib.detect import combined_scores, detection_grid, roc

    bench = _long({"b1": {9: 0.02, 10: 0.02}, "b2": {9: 0.012, 10: 0.006}, "b3": {9: 0.005, 10: 0.005}})
    control = _long({"c1": {9: 0.011, 10: 0.001}, "c2": {9: 0.001, 10: 0.001}})
    grid = detection_grid(bench, control, ["b1", "b2", "b3"], ["c1", "c2"], thresholds=(0.008, 0.010),
                          layer_sets=((9,), (9, 10)))
    row = grid.set_index(["layers", "threshold"])
    # layer 9 alone, > 0.010: b1, b2 of 3 (66.7%) vs c1 of 2 (50%)
    assert row.loc[("9", 0.010)].tolist() == pytest.approx([200 / 3, 50.0, 200 / 3 - 50])
    # layers 9–10 (mean: b 0.02, 0.009, 0.005; c 0.006, 0.001), > 0.008: b1, b2 vs none
    assert row.loc[("9–10", 0.008)].tolist() == pytest.approx([200 / 3, 0.0, 200 / 3])
    curve, auc = roc(combined_scores(bench).values, combined_scores(control).values)
    # bench 0.02, 0.009, 0.005 vs control 0.006, 0.001: 5 of the 6 pairs ordered correctly
    assert auc == pytest.approx(5 / 6)
    assert curve.fpr.iloc[-1] == 1.0 and curve.tpr.iloc[-1] == 1.0 and curve.tpr.is_monotonic_increasing
    with pytest.raises(ValueError, match="both sets"):
        roc([], [0.1])


def test_check_prompt_refuses_unreadable_input_before_generating(tmp_path, monkeypatch):
    """A blank prompt or concept, a one-token prompt, a concept (or part of one) read as the
    tokenizer's unknown token: refused before any step (nothing stored); a peak on an unknown word
    that is no concept is labelled as what the model saw."""
    from dvdlib import detect
    from dvdlib.tokens import BlankText, UnknownWords

    pipe = models.load("tiny:flux")
    store = Store(tmp_path, "tiny:flux", {"resolution": 64, "steps": 2, "guidance": 0.0, "eta": 0.0})
    before = sorted(tmp_path.rglob("*"))
    real = detect.generate
    monkeypatch.setattr(detect, "generate", lambda *_, **__: pytest.fail("a step was computed"))
    for prompt, concepts in (("", []), (" ", []), ("a mug", [""]), ("mug", [])):
        with pytest.raises(BlankText):
            check_prompt(pipe, prompt, concepts, store=store)
    for concept in ("zebra", "zebra mug"):
        with pytest.raises(UnknownWords, match=r"'zebra' is outside the vocabulary .*'tiny-t5'.*'<unk>'"):
            check_prompt(pipe, "a zebra mug", [concept], store=store)
    assert sorted(tmp_path.rglob("*")) == before
    monkeypatch.setattr(detect, "generate", real)
    result = check_prompt(pipe, "a zebra mug", ["mug"], store=store, threshold=-1.0)
    assert set(result.peak_token.values()) <= {"a", "mug", "zebra (read as <unk>)"}


def test_a_grid_that_reads_the_same_everywhere_is_one_sentence():
    """Paper §3.8's grid: a table where the configurations differ; where all 30 flag every row of both
    sets (thresholds on Stable Diffusion's scale below every score of another model), one sentence;
    the largest gap says where it lies, and when every configuration ties."""
    import pandas as pd
    from IPython.display import Markdown

    from dvdlib.detect import detection_grid, grid_table, largest_gap, layers_text

    sets, thresholds = [[8], [9], [10], [9, 10], [8, 9, 10], [5, 6, 7, 8, 9, 10]], [0.006, 0.008, 0.010, 0.012, 0.014]
    high = _long({p: {layer: 0.5 for layer in range(5, 11)} for p in ("b1", "b2", "c1")})
    grid = detection_grid(high, high, ["b1", "b2"], ["c1"], thresholds, sets)
    said = grid_table(grid, sets)
    assert isinstance(said, Markdown) and said.data.startswith(
        "All 30 configurations of the grid (6 layer sets × 5 thresholds) flag 100% of the benchmark rows and 100% "
        "of the balanced rows, a gap of 0 points. Every threshold of the grid lies below")
    assert largest_gap(grid) == "0.00 points, at all 30 configurations"
    bench = _long({"b1": {9: 0.02, 10: 0.02}, "b2": {9: 0.012, 10: 0.006}})
    control = _long({"c1": {9: 0.011, 10: 0.001}})
    grid = detection_grid(bench, control, ["b1", "b2"], ["c1"], (0.008, 0.010), ((9,), (9, 10)))
    table = grid_table(grid, ((9,), (9, 10)))
    assert isinstance(table, pd.DataFrame) and len(table) == 4
    # 9–10 mean: b 0.02, 0.009; c 0.006 → 0.008 flags both b, no c (gap 100); 0.010 flags b1 (50)
    assert largest_gap(grid) == "100.00 points, at layers 9–10 and threshold 0.008"
    assert layers_text("9") == "layer 9" and layers_text("9–10") == "layers 9–10"
    tie = grid.assign(gap=[50.0, 50.0, 10.0, 0.0])
    assert largest_gap(tie) == "50.00 points, at 2 of the 4 configurations (the first: layer 9 and threshold 0.008)"
