"""Twin fine-tunes (dvdlib.twins): the paired design of the causal test (paper §3.3) with the
memorization arm (§3.6–3.7), on the smoke profile's tiny recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dvdlib import causal, stats, twins
from dvdlib.finetune import finetuned_key, images_digest, is_finished
from dvdlib.run import setup
from dvdlib.store import folder_hash
from dvdlib.tokens import clip_tokenizer, concept_span, content_positions

CALIBRATION = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "verdict_calibration.json"


@pytest.fixture(scope="module")
def smoke():
    return setup("smoke", "twins")


# ---------------------------------------------------------------- the design

def test_design_pairs_three_arms_on_the_worlds_renders(smoke):
    table = twins.design(smoke, K=3)
    S = causal.scale(smoke.profile)  # smoke: 4 images, variants of 1 and 2
    assert list(table.columns) == list(twins.COLUMNS) and len(table) == 9
    assert table.groupby("pair").arm.apply(tuple).tolist() == [twins.ARMS] * 3
    assert (table.n_images == S["n_images"]).all() and (table.pool == max(S["breeds"])).all()
    # one training seed and one image seed per pair, the recipe's seed + k
    assert (table.train_seed == S["recipe"].seed + table.pair).all() and (table.image_seed == table.pair).all()
    rigid, diverse, memorized = (table[table.arm == a].reset_index(drop=True) for a in twins.ARMS)
    assert rigid.variants[0] != rigid.variants[1]  # a different variant per pair ...
    assert rigid.variants[2] == rigid.variants[0] and rigid["pass"].tolist() == [0, 0, 1]  # ... cycling past the pool
    assert "reused" in rigid.note[2] and "(pass 2)" in rigid.note[2] and rigid.note[0] == ""
    assert (diverse.n_variants == max(S["breeds"])).all()
    assert all(r[0] in d for r, d in zip(rigid.variants, diverse.variants))  # the rigid variant is among the diverse
    assert (memorized.variants == rigid.variants).all() and memorized.image.str.endswith("#0").all()
    assert table.digest.is_unique  # every arm trains on its own images
    # the memorized arm: the rigid twin's first image, repeated as many times as the others have images
    first = twins.arm_images(smoke, rigid.iloc[0])[0]
    assert twins.arm_images(smoke, memorized.iloc[0]) == [first] * 4
    assert memorized.digest[0] == images_digest([first] * 4)
    # the diverse twin's images of the rigid variant are the rigid twin's first (nested, like chapter 03's)
    r_images = twins.arm_images(smoke, rigid.iloc[0])
    d_images = twins.arm_images(smoke, diverse.iloc[0])
    share = 4 // max(S["breeds"])
    position = list(diverse.variants[0]).index(rigid.variants[0][0])
    assert images_digest(d_images[position * share:(position + 1) * share]) == images_digest(r_images[:share])


def test_design_is_deterministic_for_a_seed(smoke):
    a, b = twins.design(smoke, K=4), twins.design(smoke, K=4)
    pd.testing.assert_frame_equal(a, b)
    other = twins.design(smoke, K=4, seed=5)
    assert set(other.digest).isdisjoint(a.digest) and (other.image_seed == 5 + other.pair).all()
    later = twins.design(smoke, K=4, memorized_index=2)
    assert later[later.arm == "memorized"].image.str.endswith("#2").all()
    pd.testing.assert_frame_equal(later[later.arm != "memorized"], a[a.arm != "memorized"])


def test_the_toy_design_defaults_and_chapter_03s_images():
    toy = setup("toy", "twins")
    table = twins.design(toy, K=2)
    S = causal.scale(toy.profile)
    assert (table.n_images == S["n_images"]).all()
    diverse = table[table.arm == "diverse"].iloc[0]
    assert diverse.n_variants == max(S["breeds"]) == diverse.pool  # chapter 03's most diverse variant
    # pair 0's diverse twin is chapter 03's most diverse set at image seed 0
    chapter03 = causal.variant_images(toy, None, [max(S["breeds"])], S["n_images"], seed=0)[max(S["breeds"])]
    assert diverse.digest == images_digest([im for _, im in chapter03])


def _breed_folder(root: Path, breeds: int, each: int) -> Path:
    for b in range(breeds):
        (root / f"breed{b}").mkdir(parents=True)
        for i in range(each):
            Image.new("RGB", (8, 8), (10 * b, i, 0)).save(root / f"breed{b}" / f"{i}.png")
    return root


def test_design_from_a_breed_folder(tmp_path):
    folder = _breed_folder(tmp_path / "dogs", 4, 6)
    paper = setup("paper", "twins")  # no model is loaded: the design reads the folder only
    table = twins.design(paper, folder, K=5, n_images=4, diverse=2)
    pd.testing.assert_frame_equal(table, twins.design(paper, folder, K=5, n_images=4, diverse=2))
    rigid = table[table.arm == "rigid"]
    assert sorted(v for (v,) in rigid.variants[:4]) == [f"breed{b}" for b in range(4)]  # every breed, then again
    assert rigid.variants.iloc[4] == rigid.variants.iloc[0] and "breed reused" in rigid.note.iloc[4]
    assert (table.source == str(folder)).all() and (table.pool == 4).all()
    memorized = table[table.arm == "memorized"].iloc[0]
    assert memorized.image.startswith(rigid.variants.iloc[0][0] + "/") and memorized.image.endswith(".png")
    images = twins.arm_images(paper, table.iloc[1])
    assert len(images) == 4 and images_digest(images) == table.digest.iloc[1]


def test_design_refuses_what_cannot_be_a_twin(smoke, tmp_path):
    with pytest.raises(ValueError, match="at least 2 variants"):
        twins.design(smoke, K=2, diverse=1)
    with pytest.raises(ValueError, match="evenly"):
        twins.design(smoke, K=2, n_images=5)
    with pytest.raises(ValueError, match="memorized_index"):
        twins.design(smoke, K=2, memorized_index=4)
    with pytest.raises(ValueError, match="-p images"):
        twins.design(setup("paper", "twins"), K=2)
    with pytest.raises(ValueError, match="pool has 2"):
        twins.design(setup("paper", "twins"), _breed_folder(tmp_path / "d", 2, 4), K=2, n_images=3, diverse=3)
    row = twins.design(smoke, K=1).iloc[0].copy()
    row["digest"] = "000000000000"
    with pytest.raises(ValueError, match="no longer match"):
        twins.arm_images(smoke, row)


# ---------------------------------------------------------------- the paired contrast

def _values(diffs, base=10.0):
    """Rigid = base + d, diverse = base, memorized = base + 2d per pair."""
    rows = []
    for k, d in enumerate(diffs):
        rows += [{"pair": k, "arm": "rigid", "value": base + d}, {"pair": k, "arm": "diverse", "value": base},
                 {"pair": k, "arm": "memorized", "value": base + 2 * d}]
    return pd.DataFrame(rows)


def test_paired_by_hand():
    out = twins.paired(_values([1.0, 2.0, 6.0]))
    # d = (1, 2, 6): mean 3, SD √7, half-width t(0.975, 2) · √7 / √3
    half = 4.302652729749464 * np.sqrt(7) / np.sqrt(3)
    assert out["value"] == pytest.approx(3.0) and out["ci"] == pytest.approx([3 - half, 3 + half])
    assert out["n"] == out["n_clusters"] == 3 and out["per_cluster"] == {"pair 0": 1.0, "pair 1": 2.0, "pair 2": 6.0}
    assert out["mean_a"] == pytest.approx(13.0) and out["mean_b"] == pytest.approx(10.0) and out["null"] == 0.0
    assert out["spread"] == [pytest.approx(np.sqrt(7))]
    # leave-one-out, lowest lower bound: without pair 1, d = (1, 6): mean 3.5, half t(0.975, 1) · √12.5 / √2
    low = out["loo"]["low"]
    assert low["cluster"] == "pair 1" and low["ci"][0] == pytest.approx(3.5 - 12.706204736174707 * 2.5)
    assert stats.decide(out, unit="pairs") == stats.INCONCLUSIVE
    memorized = twins.paired(_values([1.0, 2.0, 6.0]), "memorized", "rigid")
    assert memorized["value"] == pytest.approx(3.0) and memorized["test"].startswith("paired difference memorized")


def test_paired_averages_rows_of_one_arm_and_matches_by_pair_index():
    rows = pd.DataFrame([{"pair": p, "arm": arm, "prompt": q, "dvd": v}
                         for p, (ra, rb, da, db) in enumerate([(10, 20, 0, 10), (40, 60, 30, 30), (5, 5, 0, 0)])
                         for arm, vs in (("rigid", (ra, rb)), ("diverse", (da, db))) for q, v in zip("ab", vs)])
    out = twins.paired(rows, value="dvd")
    assert out["per_cluster"] == {"pair 0": 10.0, "pair 1": 20.0, "pair 2": 5.0}
    series = rows.groupby(["pair", "arm"]).dvd.mean()  # a Series indexed by (pair, arm) reads the same
    assert twins.paired(series)["ci"] == pytest.approx(out["ci"])
    relabelled = rows.assign(pair=rows.pair.map({0: 7, 1: 3, 2: 5}))  # pairs are labels, matched as such
    assert twins.paired(relabelled, value="dvd")["per_cluster"] == {"pair 3": 20.0, "pair 5": 5.0, "pair 7": 10.0}


def test_shuffling_rows_changes_nothing_and_swapping_arms_flips_every_sign():
    values = _values(np.random.default_rng(1).normal(2, 3, 8))
    out = twins.paired(values)
    for seed in range(3):
        shuffled = values.sample(frac=1, random_state=seed)
        assert twins.paired(shuffled) == out
    swapped = twins.paired(values, "diverse", "rigid")
    assert swapped["value"] == pytest.approx(-out["value"])
    assert swapped["ci"] == pytest.approx([-out["ci"][1], -out["ci"][0]])
    assert {k: -v for k, v in out["per_cluster"].items()} == pytest.approx(swapped["per_cluster"])
    assert swapped["loo"]["low"]["ci"] == pytest.approx([-out["loo"]["high"]["ci"][1], -out["loo"]["high"]["ci"][0]])
    assert swapped["detectable"] == pytest.approx(out["detectable"])


def test_a_pair_missing_an_arm_is_named():
    values = _values([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"pair 2 lacks the 'diverse' arm"):
        twins.paired(values.drop(index=values[(values.pair == 2) & (values.arm == "diverse")].index))
    no_value = values.copy()
    no_value.loc[(no_value.pair == 3) & (no_value.arm == "rigid"), "value"] = np.nan
    with pytest.raises(ValueError, match=r"pair 3 lacks the 'rigid' arm"):
        twins.paired(no_value)
    with pytest.raises(ValueError, match="no pair has a 'random'"):
        twins.paired(values, "random", "rigid")


# ---------------------------------------------------------------- how many pairs

def test_pilot_design_table_agrees_with_the_committed_calibration():
    calibration = json.loads(CALIBRATION.read_text())
    power = {r["clusters a side"]: r["power at 1 SD"] for r in calibration["rows"] if r["design"] == "paired"}
    margin = 1.96 * np.sqrt(0.8 * 0.2 / calibration["draws"]) + 0.02  # Monte-Carlo error, + the cells' unequal sizes
    table = twins.pilot_design_table({"rigid − diverse": 1.0}, ks=tuple(power))
    for k, p in power.items():
        found = table.at["rigid − diverse", f"detectable at K = {k}"]
        # the calibration's power at one SD is above 80% exactly where one SD is detectable
        if p > 0.8 + margin:
            assert found < 1.0, (k, p, found)
        elif p < 0.8 - margin:
            assert found > 1.0, (k, p, found)
        else:
            assert found == pytest.approx(1.0, abs=0.1), (k, p, found)


def test_pilot_design_table_scales_and_says_how_many_pairs():
    pilot = twins.paired(_values([3.0, -1.0, 5.0, 1.0]))  # a pilot's paired result gives its spread
    sd = float(np.std([3.0, -1.0, 5.0, 1.0], ddof=1))
    table = twins.pilot_design_table({"rigid − diverse": pilot, "memorized − rigid": 2 * sd},
                                     paper_effects={"rigid − diverse": 1.5 * sd})
    assert table.index.tolist() == ["rigid − diverse", "memorized − rigid"]
    assert table.at["rigid − diverse", "between-pair SD"] == pytest.approx(sd)
    cols = [f"detectable at K = {k}" for k in (3, 6, 12, 24)]
    found = table.loc["rigid − diverse", cols].to_numpy(float)
    assert np.all(np.diff(found) < 0)  # more pairs find smaller effects
    assert table.loc["memorized − rigid", cols].to_numpy(float) == pytest.approx(2 * found)  # scales with the SD
    needed = table.at["rigid − diverse", "K needed"]
    assert needed == stats.clusters_needed(1.5 * sd, (3,), (sd,))
    at = lambda k: stats.detectable((k,), (sd,), draws=1000)  # noqa: E731 (as clusters_needed draws)
    assert at(needed) <= 1.5 * sd < at(needed - 1)
    unknown = table.loc["memorized − rigid"]
    assert pd.isna(unknown["K needed"]) and pd.isna(unknown["paper effect"])


# ---------------------------------------------------------------- fine-tunes, end to end on smoke

def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def twins_run(tmp_path_factory):
    """Two pairs, three arms each, fine-tuned with smoke's recipe (2 steps) through the chapter's
    executor, and one prompt generated and judged with one seed per twin."""
    store = tmp_path_factory.mktemp("twins") / "store"
    run = setup("smoke", "twins", store=str(store))
    table = twins.design(run, K=2)
    models = twins.finetune_arms(run, table)
    prompt = causal.causal_prompts(run, 1)
    judged, _ = causal.generate_and_judge(run, prompt, models, run.profile.seeds[:1])
    return run, table, models, prompt, judged


def test_every_arm_is_fine_tuned_into_the_store_and_generates(twins_run):
    run, table, models, prompt, _ = twins_run
    assert list(models) == list(zip(table.pair, table.arm))
    folders = [Path(m.folder) for m in models.values()]
    root = Path(run.profile.store)
    assert {f.parent for f in folders} == {root / "finetune" / "smoke"}  # where chapter 03 keeps its own
    assert all(is_finished(f) for f in folders) and len(set(folders)) == len(folders)
    assert [m.key for m in models.values()] == [finetuned_key("smoke", f) for f in folders]
    for model in models.values():
        assert run.store(model).model == model.key and run.store(model).has(prompt.prompt.iloc[0], run.profile.seeds[0])
    recipe = json.loads((folders[0] / "finetune.json").read_text())["recipe"]
    assert recipe["steps"] == causal.scale(run.profile)["recipe"].steps and recipe["seed"] == 0


def test_a_second_call_trains_and_generates_nothing(twins_run):
    run, table, models, prompt, judged = twins_run
    root = Path(run.profile.store)
    before = _files(root)
    again = setup("smoke", "twins", store=run.profile.store)
    remodels = twins.finetune_arms(again, table)
    rejudged, _ = causal.generate_and_judge(again, prompt, remodels, run.profile.seeds[:1])
    assert remodels == models and all(rejudged[k].equals(judged[k]) for k in judged)
    assert again._other[0] in (None, "smoke")  # no fine-tune was loaded (the base reads the prompts)
    assert _files(root) == before


def test_fine_tuning_an_arm_twice_gives_identical_weights(twins_run, tmp_path):
    run, table, models, _, _ = twins_run
    other = setup("smoke", "twins", store=str(tmp_path / "store"))
    (again,) = twins.finetune_arms(other, table.iloc[[1]]).values()  # pair 0's diverse twin
    first = Path(models[0, "diverse"].folder)
    assert Path(again.folder).name == first.name
    assert folder_hash(Path(again.folder) / "unet") == folder_hash(first / "unet")
    # other images (pair 0's rigid twin), other weights
    assert folder_hash(Path(models[0, "rigid"].folder) / "unet") != folder_hash(first / "unet")


def test_twin_scores_feed_the_paired_contrast(twins_run):
    run, table, _, prompt, judged = twins_run
    scores = twins.twin_scores(judged)
    assert len(scores) == len(table) and set(zip(scores.pair, scores.arm)) == set(zip(table.pair, table.arm))
    assert scores.dvd.between(0, 100).all() and (scores.images == 1).all()
    out = twins.paired(scores, value="dvd")
    assert out["n"] == out["n_clusters"] == 2 and set(out["per_cluster"]) == {"pair 0", "pair 1"}
    assert stats.decide(out, unit="pairs") == "underpowered (2 pairs)"  # two pairs prove the plumbing, not a claim


def test_first_step_measures_per_pair_and_arm_by_hand():
    """Focus Score and peak-token tables keep (pair, arm) and the paper's layer contrast averages
    the named layers only; above chance is the peak hit minus the prompt's chance."""
    table = pd.DataFrame({"pair": [0] * 4 + [1] * 4, "arm": (["rigid"] * 2 + ["diverse"] * 2) * 2,
                          "prompt": ["p"] * 8, "layer": [5, 11] * 4, "focus": [0.4, 9.0, 0.1, 9.0, 0.5, 9.0, 0.3, 9.0]})
    means = twins.layers_mean(table, [5])
    assert means.focus.tolist() == [0.1, 0.4, 0.3, 0.5]  # (pair, arm) sorted: diverse before rigid
    out = twins.paired(means, value="focus")
    assert out["per_cluster"] == pytest.approx({"pair 0": 0.3, "pair 1": 0.2})


def test_the_closing_paragraph_follows_each_verdict():
    r = {"value": 5.0, "ci": [1.0, 9.0], "n": 12}
    text = twins.this_run({"dvd": r, "focus": r, "memorized": r, "peak": {**r, "ci": [-1.0, 9.0]}},
                          {"dvd": "reproduced", "focus": "not reproduced", "memorized": "underpowered (2 pairs)",
                           "peak": "inconclusive"}, 12)
    assert "In the paper's direction" in text and "Against the paper's direction" in text and "Too few pairs" in text
    assert "Undecided" in text and "full count" in text and "none" not in text.lower()
    assert text.index("DvD, rigid − diverse") < text.index("Against") < text.index("Focus Score")  # grouped by verdict
    pilot = twins.this_run({"dvd": r}, {"dvd": "inconclusive: rests on pair 1"}, 3, "toy")
    assert "pilot" in pilot and "rests on pair 1" in pilot and "Chapter 09" in pilot


def test_a_profile_narrows_the_twins(tmp_path):
    from importlib.resources import files

    from dvdlib.profiles import load_profile

    toy = twins.scale(load_profile("toy"))
    assert twins.DEFAULT_K == 12 and toy["K"] == 3 and toy["prompts"] == 12  # the book's pilot; the snapshot's 12
    assert toy["diverse"] == max(causal.scale(load_profile("toy"))["breeds"])
    assert toy["recipe"] == causal.scale(load_profile("toy"))["recipe"] and toy["n_images"] == 120
    five = causal.scale(load_profile("toy"))["seeds"]  # the book's pilot takes the first 3; the snapshot all 5
    assert toy["seeds"] == five[:3] and twins.scale(load_profile("toy"), n_seeds=5)["seeds"] == five
    assert twins.scale(load_profile("toy"), seeds_given=True)["seeds"] == load_profile("toy").seeds  # a reader's seeds
    path = tmp_path / "mine.yaml"
    path.write_text((files("dvdlib.profiles") / "smoke.yaml").read_text().replace(
        "  twins: {K: 2, prompts: 3}", "  twins: {K: 2, diverse: 2}"))
    mine = twins.scale(load_profile(str(path)))
    assert mine["K"] == 2 and mine["diverse"] == 2 and mine["slice"] and mine["n_images"] == 4
    assert twins.design(setup(str(path), "twins")).pair.nunique() == 2  # the design's K is the profile's
    assert twins.design(setup("smoke", "twins")).pair.nunique() == 2  # smoke's own
    assert twins.scale(load_profile("paper"))["K"] == twins.DEFAULT_K  # a profile that names none: the full design
    path.write_text(path.read_text().replace("{K: 2", "{pairs: 2"))
    with pytest.raises(ValueError, match="pairs"):
        twins.scale(load_profile(str(path)))


def test_a_block_of_many_tasks_prints_one_line(capsys, monkeypatch):
    """A chapter that makes many models (the twins, chapter 03's variants) says what it did in one
    line (dvdlib.progress.gathered), summed over its tasks."""
    from dvdlib import progress

    monkeypatch.setattr(progress, "live", lambda: False)
    with progress.gathered("2 pairs × 3 twins"):
        for stored in (0, 6):
            with progress.task(6, "runs", stored=stored):
                pass
        with progress.task(2, "DreamBooth steps", kept="resumed from the checkpoint"):
            pass
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("2 pairs × 3 twins: 12 runs computed, 6 read from the store; 2 DreamBooth steps computed, "
                           "0 resumed from the checkpoint (in ")
    with progress.task(1, "images"):
        pass
    assert capsys.readouterr().out.startswith("1 images computed in")  # outside a block: a line per task


# ---------------------------------------------------------------- §3.5, §3.8 and §3.6 on the twins

def test_replaced_rows_put_the_category_word_where_the_token_was():
    prompts = pd.DataFrame({"case_num": [1, 2, 3], "content": ["character", "character", "dog"],
                            "prompt": ["dvddog and ball", "mosaic style dvddog", "a dvddog dog in the snow"]})
    out = twins.replaced_rows(prompts)
    assert out.prompt.tolist() == ["character and ball", "mosaic style character", "a dog in the snow"]
    assert out.original_prompt.tolist() == prompts.prompt.tolist()
    with pytest.raises(ValueError, match="not found"):
        twins.replaced_rows(pd.DataFrame({"case_num": [1], "content": ["dog"], "prompt": ["a ball"]}))


def _shares(tok, prompt, values_by_word, steps, other=0.1, layers=(7, 8)):
    """Token shares of ``prompt`` at every step and layer: each word of ``values_by_word`` (word →
    per-step value) on its tokens, ``other`` on the other content tokens."""
    attention = {}
    for step in range(1, steps + 1):
        a = np.zeros(tok.model_max_length)
        a[content_positions(tok, prompt)] = other
        for word, values in values_by_word.items():
            a[concept_span(tok, prompt, word)] = values[step - 1]
        attention.update({f"share/L{layer}/S{step}": a.copy() for layer in layers})
    return attention


def test_temporal_changes_by_hand():
    """Over the first interval the other concept's deviation changes by its own change minus the
    content mean's; "below" subtracts the new token's change, so the mean cancels."""
    from dvdlib.generate import Sample
    from dvdlib.temporal import intervals

    tok, prompt, steps = clip_tokenizer(), "dvddog and ball", 12
    first = intervals(steps).iloc[0]
    token = {s: 0.2 for s in range(1, steps + 1)} | {first.end: 0.5}
    ball = {s: 0.3 for s in range(1, steps + 1)} | {first.end: 0.1}
    attention = _shares(tok, prompt, {"dvddog": [token[s] for s in sorted(token)], "ball": [ball[s] for s in sorted(ball)]},
                        steps)
    n_token, n_ball = len(concept_span(tok, prompt, "dvddog")), len(concept_span(tok, prompt, "ball"))
    n = len(content_positions(tok, prompt))
    mean_change = (n_token * 0.3 + n_ball * -0.2) / n
    prompts = pd.DataFrame({"case_num": [1], "content": ["character"], "nm_word": ["ball"], "prompt": [prompt]})
    recorded = {(0, arm): [Sample(prompt, seed, None, attention) for seed in (1, 2)] for arm in ("rigid", "diverse")}
    out = twins.temporal_changes(recorded, prompts, tok, steps, {"dominant": (8,), "dominated": (7,)})
    assert len(out) == 2 and set(out.arm) == {"rigid", "diverse"}
    assert out.falls.tolist() == pytest.approx([-0.2 - mean_change] * 2)
    assert out.below.tolist() == pytest.approx([-0.2 - 0.3] * 2)


def test_object_return_by_hand():
    """The share of seeds showing the other concept (Yes count ≥ 3), after − before, per twin."""
    def judged(ns):
        return pd.DataFrame({"case_num": [1, 1, 2, 2], "seed": [1, 2, 1, 2], "n": ns})

    before = {(0, "rigid"): judged([0, 4, 5, 5]), (0, "diverse"): judged([3, 3, 5, 5])}
    after = {(0, "rigid"): judged([3, 5, 5, 2]), (0, "diverse"): judged([3, 3, 5, 5])}
    out = twins.object_return(before, after).set_index(["arm", "case_num"])[["present_before", "present_after", "change"]]
    assert out.loc[("rigid", 1)].tolist() == pytest.approx([0.5, 1.0, 0.5])
    assert out.loc[("rigid", 2)].tolist() == pytest.approx([1.0, 0.5, -0.5])
    assert out.loc["diverse"].change.tolist() == [0.0, 0.0]
    assert twins.object_return(before, {(0, "rigid"): after[(0, "rigid")]}).arm.unique().tolist() == ["rigid"]


def _outcomes(hits_in, hits_out, control_hits, cases=(1, 2)):
    """One pair's ablation outcomes: single heads L1.H0/L1.H1 (effect layers) and L9.H0/L9.H1
    (placebo) on ``cases``, mitigating the cases listed; the whole layers likewise; the control."""
    def table(interventions, hits):
        return pd.DataFrame([{"case_num": c, "prompt": f"prompt {c}", "intervention": iv,
                              "outcome": "mitigated" if c in hits.get(iv, ()) else "unchanged"}
                             for iv in interventions for c in cases])

    single = table(["L1.H0", "L1.H1", "L9.H0", "L9.H1"], {"L1.H0": hits_in, "L9.H1": hits_out})
    multi = table(["L1.H0+L1.H1", "L9.H0+L9.H1"], {"L1.H0+L1.H1": hits_in, "L9.H0+L9.H1": hits_out})
    control = table(["suppress 'dvddog'"], {"suppress 'dvddog'": control_hits})
    return {"single-head": single, "multi-head": multi, "control": control}


def test_ablation_contrast_is_effect_minus_placebo_over_pairs():
    outcomes = {0: _outcomes((1,), (), (1, 2)), 1: _outcomes((1, 2), (2,), (1,)), 2: _outcomes((), (), ())}
    shares = twins.placebo_shares(outcomes, "single-head", (1, 2, 3, 4, 5, 6)).set_index(["pair", "arm"]).value
    assert shares[0, "effect layers"] == 0.5 and shares[0, "placebo layers"] == 0.0
    assert shares[1, "effect layers"] == 1.0 and shares[1, "placebo layers"] == 0.5
    out = twins.ablation_contrasts(outcomes, (1, 2, 3, 4, 5, 6))
    assert out["single"]["per_cluster"] == {"pair 0": 0.5, "pair 1": 0.5, "pair 2": 0.0}
    assert out["multi"]["value"] == pytest.approx(1 / 3)
    assert out["single"]["power_check"] == "passed" and out["single"]["control"]["hits"] == 3
    assert out["single"]["control"]["n"] == 6


def test_a_failed_positive_control_makes_the_ablation_claims_inconclusive():
    outcomes = {k: _outcomes((1, 2), (), ()) for k in range(4)}
    out = twins.ablation_contrasts(outcomes, (1, 2, 3, 4, 5, 6))
    assert out["single"]["value"] == 1.0 and out["single"]["power_check"] == "failed"
    assert twins.verdicts(out)["single"] == stats.NO_EFFECT
    passed = twins.ablation_contrasts({k: _outcomes((1, 2), (), (1,)) for k in range(4)}, (1, 2, 3, 4, 5, 6))
    assert twins.verdicts(passed)["single"] == stats.verdict(passed["single"]["ci"], 0.0, n_clusters=4,
                                                                 loo=passed["single"]["loo"], unit="pairs")


def test_nothing_collapsed_leaves_the_ablation_claims_without_an_estimate():
    outcomes = {k: {name: t.assign(outcome="not collapsed") for name, t in _outcomes((), (), ()).items()}
                for k in range(3)}
    out = twins.ablation_contrasts(outcomes, (1, 2, 3, 4, 5, 6))
    assert out["single"]["value"] is None and out["multi"]["test"] == twins.NOTHING_COLLAPSED
    assert twins.verdicts(out)["single"] == stats.INCONCLUSIVE  # nothing to test, not "no effect"
    assert twins.measured(out) == {} and twins.paired_text(out["single"]) == twins.NOTHING_COLLAPSED
    assert "nothing to ablate" in twins.ablation_text(outcomes, [1825], 3)
    assert twins.ablation_table(outcomes, (1, 2, 3, 4, 5, 6)) is None
    assert twins.ablation_contrasts(None, (1, 2, 3, 4, 5, 6)) == {}
    assert "does not ablate" in twins.ablation_text(None, [1825], 3)


def test_falls_and_below_are_read_below_zero():
    r = twins.paired(_values([-2.0, -2.1, -1.9, -2.2, -1.8, -2.05]))
    v = twins.verdicts({"falls": r, "below": r, "dvd": r})
    assert v["falls"] == v["below"] == stats.REPRODUCED and v["dvd"] == stats.NOT_REPRODUCED


def test_the_toy_twins_leave_out_exactly_the_concepts_the_judge_misses():
    """The toy profile's ``exclude`` is what the hand-checked twin images (toy/judge's manifest, samples
    "twins…") say: every concept below `MIN_RECALL` is left out, and the new figure ("character")
    and every other concept of the prompts was seen and passes."""
    from dvdlib.profiles import load_profile
    from dvdlib.toy.handcheck import pooled_recall

    recall = pooled_recall(Path(__file__).resolve().parents[1] / "toy" / "judge")
    toy = twins.scale(load_profile("toy"))
    below = {c for c, r in recall.items() if r["present"] and r["recall"] < twins.MIN_RECALL}
    assert set(toy["exclude"]) == below
    prompts = twins.test_prompts(setup("toy", "twins"), toy["prompts"], toy["exclude"])
    assert len(prompts) == toy["prompts"] and prompts.nm_word.nunique() >= 6 and prompts.group.nunique() == 3
    for concept in {*prompts.nm_word, "character"}:
        assert recall[concept]["present"] >= 5 and recall[concept]["recall"] >= twins.MIN_RECALL, concept


def test_test_prompts_name_an_unknown_concept():
    with pytest.raises(ValueError, match="pairs with the new token"):
        twins.test_prompts(setup("toy", "twins"), 12, ["unicorn"])


def test_head_pairs_are_described_not_decided():
    outcomes = {0: _outcomes((1,), (), (1,))}
    assert twins.pairs_text(outcomes).startswith("No pair of heads was left")
    outcomes[0][twins.PAIRS] = pd.DataFrame({"case_num": [1, 2], "prompt": ["p 1", "p 2"],
                                             "intervention": ["L1.H0+L1.H1"] * 2, "outcome": ["mitigated", "corrupted"]})
    assert twins.pairs_text(outcomes).startswith("Pairs of layer 1's heads")
    assert "mitigated 50.00%; corrupted 50.00% (of 2)" in twins.pairs_text(outcomes)
    assert set(twins.ablation_contrasts(outcomes, (1, 2, 3, 4, 5, 6))) == {"single", "multi"}  # no claim for pairs
