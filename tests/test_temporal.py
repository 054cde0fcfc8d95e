"""Attention deviation and the temporal-dynamics procedure (paper §3.5):
pure functions against values worked out by hand, recording over every step on the smoke model."""
import numpy as np
import pandas as pd
import pytest
import torch

import dvdlib
from dvdlib import temporal
from dvdlib.generate import Sample
from dvdlib.metrics import attention_deviation
from dvdlib.tokens import ConceptNotFound, clip_tokenizer, concept_span, content_positions
from dvdlib.findings import unwritten_claims


# attention deviation ------------------------------------------------------------------------------

def test_deviation_by_hand():
    # content positions 1..3 hold 0.1, 0.2, 0.3: mean 0.2 → deviations −0.1, 0, +0.1
    a = np.array([0.4, 0.1, 0.2, 0.3, 0.0])
    assert attention_deviation(a, [1, 2, 3]) == pytest.approx([-0.1, 0.0, 0.1], abs=1e-15)
    # a boolean content mask means the same positions
    assert attention_deviation(a, np.array([False, True, True, True, False])) == pytest.approx([-0.1, 0.0, 0.1])
    # order follows the positions given
    assert attention_deviation(a, [3, 1]) == pytest.approx([0.1, -0.1])


def test_deviation_ignores_non_content_tokens_and_is_not_normalised():
    a = np.array([0.90, 0.02, 0.05, 0.03])
    b = np.array([0.50, 0.02, 0.05, 0.03, 0.40])  # start/end tokens take other mass
    assert attention_deviation(a, [1, 2, 3]) == pytest.approx(attention_deviation(b, [1, 2, 3]))
    # scaling every content share by 2 doubles the deviation (no entropy normalisation)
    assert attention_deviation(2 * a, [1, 2, 3]) == pytest.approx(2 * attention_deviation(a, [1, 2, 3]))


def test_deviation_along_last_axis_per_step():
    a = np.array([[0.0, 0.2, 0.4], [0.0, 0.5, 0.5]])  # two steps
    assert attention_deviation(a, [1, 2]) == pytest.approx(np.array([[-0.1, 0.1], [0.0, 0.0]]))


def test_deviation_rejects_positions_outside_the_vector():
    with pytest.raises(ValueError, match="outside"):
        attention_deviation(np.ones(4) / 4, [1, 4])
    with pytest.raises(ValueError):
        attention_deviation(np.ones(4) / 4, [])


# step intervals -----------------------------------------------------------------------------------

def test_paper_schedule_is_identity():
    assert [temporal.schedule_step(t, 50) for t in (50, 40, 30, 20, 10, 1)] == [1, 11, 21, 31, 41, 50]
    spans = temporal.intervals(50)
    assert list(spans.interval) == ["50–40", "40–30", "30–20", "20–10", "10–1"]
    assert list(spans.labels) == list(spans.interval)


def test_intervals_scale_to_shorter_schedules():
    # 10 steps: labels 50,40,30,20,10,1 → round(t/5) = 10, 8, 6, 4, 2, max(1, 0) = 1 → steps 1,3,5,7,9,10
    ten = temporal.intervals(10)
    assert list(zip(ten.start, ten.end)) == [(1, 3), (3, 5), (5, 7), (7, 9), (9, 10)]
    assert list(ten.labels) == ["10–8", "8–6", "6–4", "4–2", "2–1"]
    # 25 steps: t/2 = 25, 20, 15, 10, 5, 0.5 → 1 (rounded half up)
    assert list(temporal.intervals(25).labels) == ["25–20", "20–15", "15–10", "10–5", "5–1"]


def test_too_short_schedule_is_an_error():
    with pytest.raises(ValueError, match="too short"):
        temporal.intervals(4)
    with pytest.raises(ValueError, match="down to 1"):
        temporal.scaled_label(51, 50)


def _table(n_steps, dev):
    rows = [{"case_num": 1, "prompt": "p", "seed": 0, "role": role, "step": s, "label": n_steps - s + 1,
             "share": 0.0, "deviation": dev(role, s)} for role in ("dominant", "dominated")
            for s in range(1, n_steps + 1)]
    return pd.DataFrame(rows)


def test_interval_changes_by_hand():
    # deviation = step² for the dominant token, −step for the dominated one, 10-step schedule
    table = _table(10, lambda role, s: s**2 if role == "dominant" else -s)
    changes = temporal.interval_changes(table, 10).set_index(["role", "interval"])["change"]
    # 50–40 ↔ steps 1 → 3: 9 − 1 = 8 and −3 − (−1) = −2; 10–1 ↔ steps 9 → 10: 100 − 81 = 19
    assert changes["dominant", "50–40"] == 8 and changes["dominated", "50–40"] == -2
    assert changes["dominant", "10–1"] == 19 and changes["dominated", "10–1"] == -1
    summary = temporal.summary(changes.reset_index().assign(case_num=1, seed=0)).set_index(["role", "interval"])
    assert summary.loc[("dominated", "50–40"), "mean"] == -2 and summary.loc[("dominant", "50–40"), "mean"] == 8


def test_interval_changes_need_every_step():
    table = _table(10, lambda role, s: 0.0)
    with pytest.raises(ValueError, match="lacks steps \\[3\\]"):
        temporal.interval_changes(table[table.step != 3], 10)


def test_deviation_table_by_hand():
    tok = clip_tokenizer()
    prompt = "Colosseum Carry-all Pouch"
    positions = content_positions(tok, prompt)
    dominant, dominated = concept_span(tok, prompt, "colosseum"), concept_span(tok, prompt, "carry-all pouch")
    n = len(positions)
    rng = np.random.default_rng(0)
    attention = {}
    for layer in (7, 8, 9, 10):
        for step in (1, 2):
            a = np.zeros(77)
            a[0] = 0.8
            a[positions] = rng.uniform(0.0, 0.04, n)
            attention[f"share/L{layer}/S{step}"] = a
    rows = pd.DataFrame({"case_num": [112], "prompt": [prompt], "content": ["Colosseum"], "nm_word": ["carry-all pouch"]})
    table = temporal.deviation_table([Sample(prompt, 5, None, attention)], rows, tok, 2).set_index(["role", "step"])
    for step in (1, 2):
        a8 = np.mean([attention[f"share/L{layer}/S{step}"] for layer in (8, 9, 10)], axis=0)
        a7 = attention[f"share/L7/S{step}"]
        mean8, mean7 = a8[positions].mean(), a7[positions].mean()
        assert table.loc[("dominant", step), "deviation"] == pytest.approx(np.mean(a8[dominant]) - mean8)
        assert table.loc[("dominated", step), "deviation"] == pytest.approx(np.mean(a7[dominated]) - mean7)
        assert table.loc[("dominated", step), "share"] == pytest.approx(np.mean(a7[dominated]))
    assert table.loc[("dominant", 1), "label"] == 2  # count-down label: the first step is n
    # span_reduce="max": the concept's most-attended token
    top = temporal.deviation_table([Sample(prompt, 5, None, attention)], rows, tok, 2, span_reduce="max")
    a7 = attention["share/L7/S1"]
    assert top.set_index(["role", "step"]).loc[("dominated", 1), "deviation"] == pytest.approx(
        np.max(a7[dominated]) - a7[positions].mean())
    assert len(dominated) > 1  # "carry-all pouch" is several tokens, so mean and max differ
    with pytest.raises(ValueError, match="span_reduce"):
        temporal.deviation_table([Sample(prompt, 5, None, attention)], rows, tok, 2, span_reduce="sum")


def _random_attention(tok, prompt, steps, layers=(7, 8, 9, 10), seed=0):
    positions = content_positions(tok, prompt)
    rng = np.random.default_rng(seed)
    attention = {}
    for layer in layers:
        for step in range(1, steps + 1):
            a = np.zeros(77)
            a[0] = 0.7
            a[positions] = rng.uniform(0.0, 0.05, len(positions))
            attention[f"share/L{layer}/S{step}"] = a
    return attention


@pytest.mark.parametrize("span_reduce", ["mean", "max"])
def test_deviation_table_by_words_equals_by_positions(span_reduce):
    """Words resolved by the packaged CLIP tokenizer give the numbers of their positions: multi-token
    concepts ("carry-all pouch": 4 tokens, "van gogh": 2), a word written twice (its first
    occurrence), an object located as the prompt writes it (``object_prompt_phrase``)."""
    tok = clip_tokenizer()
    cases = [(112, "Colosseum Carry-all Pouch", "colosseum", "carry-all pouch", None, [1, 2], [3, 4, 5, 6]),
             (4, "Van Gogh's Starry Night Notebook", "van gogh", "notebook", None, [1, 2], [6]),
             (7, "a mug and a pouch, then a mug", "mug", "pouch", None, [2], [5]),
             (9, "a cat on a mouse pad", "cat", "mousepad", "mouse pad", [2], [5, 6])]
    rows = pd.DataFrame(cases, columns=["case_num", "prompt", "content", "nm_word", "object_prompt_phrase",
                                        "content_span", "nm_span"])
    rows["object_prompt_phrase"] = rows["object_prompt_phrase"].fillna(rows["nm_word"])
    assert [concept_span(tok, p, w) for p, w in zip(rows.prompt, rows.content)] == list(rows.content_span)
    assert [concept_span(tok, p, w) for p, w in zip(rows.prompt, rows.object_prompt_phrase)] == list(rows.nm_span)
    samples = [Sample(p, s, None, _random_attention(tok, p, 3, seed=k * 10 + s)) for k, p in enumerate(rows.prompt)
               for s in (1, 2)]
    by_words = temporal.deviation_table(samples, rows.drop(columns=["content_span", "nm_span"]), tok, 3,
                                        span_reduce=span_reduce)
    by_positions = temporal.deviation_table_at(samples, rows, tok, 3, span_reduce=span_reduce)
    pd.testing.assert_frame_equal(by_words, by_positions)
    assert len(by_words) == 4 * 2 * 2 * 3  # cases × seeds × roles × steps
    with pytest.raises(ConceptNotFound, match="concept 'mousepad' not found in prompt 'a cat on a mouse pad'"):
        temporal.deviation_table(samples, rows.drop(columns="object_prompt_phrase"), tok, 3)  # nm_word as is


def test_word_rank_equals_span_rank_and_names_a_missing_word():
    tok = clip_tokenizer()
    prompt = "The Colosseum, Rome Italy Carry-all Pouch"
    a = _random_attention(tok, prompt, 1)["share/L7/S1"]
    positions = content_positions(tok, prompt)
    for word in ("carry-all pouch", "colosseum", "rome", "pouch"):
        assert temporal.word_rank(a, tok, prompt, word) == temporal.span_rank(a, positions, concept_span(tok, prompt, word))
    assert temporal.word_rank(a, tok, "a mug and a mug", "mug") == temporal.span_rank(a, [1, 2, 3, 4, 5], [2])  # first
    with pytest.raises(ConceptNotFound, match="concept 'notebook' not found"):
        temporal.word_rank(a, tok, prompt, "notebook")


def test_role_word_reads_the_object_as_the_prompt_writes_it():
    row = pd.Series({"content": "cat", "nm_word": "mousepad", "object_prompt_phrase": "mouse pad"})
    assert temporal.role_word(row, "dominant") == "cat" and temporal.role_word(row, "dominated") == "mouse pad"
    assert temporal.role_word(row.drop("object_prompt_phrase"), "dominated") == "mousepad"
    (plain,) = pd.DataFrame([row]).itertuples()
    assert temporal.role_word(plain, "dominated") == "mouse pad"
    with pytest.raises(ValueError, match="needs a column"):
        temporal.role_word(row.drop(["nm_word", "object_prompt_phrase"]), "dominated")


# recording every step keeps token shares only --------------------------------------------------------

def _held_bytes(obj, seen=None) -> int:
    """Bytes of every tensor / array reachable from ``obj``'s attributes and containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_held_bytes(k, seen) + _held_bytes(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sum(_held_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_held_bytes(v, seen) for k, v in vars(obj).items() if k != "layers")  # layers: the UNet's modules
    return 0


@pytest.fixture(scope="module")
def smoke():
    return dvdlib.load("smoke")


def test_recording_all_steps_grows_by_share_vectors_only(smoke):
    """Per step a recording keeps [images, tokens] per layer — O(tokens), never the pixel maps."""
    options = temporal.record_options()
    held = {}
    for steps in (5, 20):
        with dvdlib.record(smoke, **options) as rec:
            smoke(["Colosseum Carry-all Pouch"], num_inference_steps=steps, height=128, width=128,
                  guidance_scale=7.5, output_type="latent", generator=torch.Generator().manual_seed(0))
        assert rec.keys() == [(layer, s) for layer in (7, 8, 9, 10) for s in range(1, steps + 1)]
        assert all(rec.share(layer, s).shape == (1, 77) for layer, s in rec.keys())
        with pytest.raises(KeyError):
            rec.map(7, 1)
        held[steps] = _held_bytes(rec)
    share_vector = 77 * 4  # one image's float32 shares of one layer at one step
    assert held[20] - held[5] == 15 * 4 * share_vector
    # a 16×16 latent's layer-7/8–10 maps would be ≥ 2²·77 floats per step and layer: far more
    assert held[20] < 20 * 4 * share_vector + 4096


def test_span_rank_by_hand():
    a = np.array([0.9, 0.01, 0.05, 0.02, 0.03])  # position 0 (start token) is not content
    assert temporal.span_rank(a, [1, 2, 3, 4], [2]) == 1
    assert temporal.span_rank(a, [1, 2, 3, 4], [3]) == 3
    assert temporal.span_rank(a, [1, 2, 3, 4], [1, 4]) == 2  # the span's best token (0.03) counts
    with pytest.raises(ValueError, match="not inside"):
        temporal.span_rank(a, [1, 2], [0])


def test_find_example_falls_back_to_the_first_row():
    table = pd.DataFrame({"content": ["eiffel tower", "colosseum"], "nm_word": ["mug", "carry-all pouch"]})
    row, found = temporal.find_example(table, "Colosseum", "Carry-all Pouch")
    assert found and row["content"] == "colosseum"
    row, found = temporal.find_example(table, "colosseum", "tie")
    assert not found and row["content"] == "eiffel tower"


def test_the_example_is_named_as_shown_and_layers_in_words():
    """The worked example's sentence names the prompt the page shows (the paper's, or the row that
    stands in for it); layers are written as words, never as a Python list."""
    row = pd.Series({"case_num": 1, "content": "tower", "nm_word": "ball", "prompt": "tower and ball"})
    text = temporal.example_text(row, "colosseum", "carry-all pouch", "toy-dominance", 1825)
    assert text == ("It is not in this run's benchmark set (`toy-dominance`), so the set's first row stands in: "
                    '"tower and ball" (case 1), with seed 1825.')
    found = temporal.example_text(row.replace({"tower": "Colosseum"}), "colosseum", "ball", "db", 7)
    assert found.startswith('This run shows it, "tower and ball" (case 1 of `db`)')
    assert temporal.layer_words([7]) == "layer 7" and temporal.layer_words((8, 9, 10)) == "layers 8, 9 and 10"
    assert temporal.example_labels(row, [8, 9], [7]) == {"dominant": "tower (layers 8 and 9)", "dominated": "ball (layer 7)"}


def test_the_summary_table_says_why_a_value_is_missing():
    """No NaN on the page: one prompt has no standard error and no test, a change that is 0 on
    every prompt no Wilcoxon test; each cell says so."""
    changes = pd.DataFrame({"case_num": [1, 2, 1, 2, 1], "seed": 0, "role": ["dominant"] * 4 + ["dominated"],
                            "interval": ["50–40", "50–40", "40–30", "40–30", "50–40"],
                            "change": [0.5, 0.25, 0.0, 0.0, -0.1]})
    table = temporal.summary_table({"set": temporal.summary(changes)})
    assert not table.isna().any().any() and " nan" not in f" {table.to_string().lower()}".replace("\n", " ")
    assert table.loc[("set", "dominant", "50–40"), "mean change"] == "+0.375"
    assert table.loc[("set", "dominant", "40–30"), "Wilcoxon p"] == "— (every change is 0)"
    assert table.loc[("set", "dominated", "50–40"), "s.e."] == "— (one prompt)"
    assert table.loc[("set", "dominated", "50–40"), "Wilcoxon p"] == "— (one prompt)"


# the chapter ----------------------------------------------------------------------------------------

def test_temporal_chapter_runs_on_smoke(tmp_path):
    """Chapter 05 through papermill with profile smoke: figures, results, the paper's claims beside."""
    import json

    from dvdlib import paper, scheduler
    from test_book import copy_book

    root = copy_book(tmp_path)
    (outcome,) = scheduler.run_chapters("smoke", only="05_temporal_dynamics", cwd=root, verbose=False)
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    figures = root / "book" / "figures" / "05_temporal_dynamics"
    assert {p.name for p in figures.glob("*.png")} == {"deviation_per_step.png", "change_per_interval.png",
                                                       "worked_example.png"}
    results = json.loads((root / "book" / "results" / "05_temporal_dynamics.json").read_text())
    # every key a toy-findings claim reads from this chapter is written by it
    assert unwritten_claims("05_temporal_dynamics", [r["key"] for r in results["results"]]) == []
    rows = {r["key"]: r for r in results["results"]}
    assert {"n_steps", "tracked_layers", "example_prompt", "example_object_rank", "dominated_first",
            "dominant_first", "dominated_first_balanced", "claim"} <= set(rows)
    assert rows["dominated_first"]["paper"] == paper.TEMPORAL["dominated_first_interval"] == "strongly negative"
    assert rows["dominant_first"]["paper"] == "positive or near zero"
    assert rows["example_prompt"]["this run"] == "The Colosseum, Rome Italy Carry-all Pouch"
    assert rows["n_steps"]["this run"] == "10" and rows["claim"]["value"] is not None  # the verdict: findings.this_run
    assert rows["tracked_layers"]["this run"] == "dominant token in layers 8, 9 and 10, dominated token in layer 7"
    import nbformat

    shown = [str(out.get("text", "")) + "".join(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
             for cell in nbformat.read(outcome.output, as_version=4).cells for out in cell.get("outputs", [])]
    assert not [text for text in shown if "PosixPath" in text or "layer(s)" in text or "NaN" in text]
    assert float(rows["dominated_first"]["this run"]) != 0.0
    assert results["profile"]["name"] == "smoke"
