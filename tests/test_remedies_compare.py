"""Remedies compared (chapter 13, `dvdlib.remedies.compare`): the measures on a hand-made judged
table, a remedy's images stored and reused (a second call computes nothing), the chapter on smoke
end to end, and the plan counting what the chapter computes."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from dvdlib.remedies import compare

REPO = Path(__file__).resolve().parents[1]


def judged_table() -> pd.DataFrame:
    """Two concepts (tower: rows 1, 2; mosaic: row 3), two seeds, three remedies; c and n by hand."""
    rows = []
    counts = {  # remedy → [(case, seed, c, n)]
        "none": [(1, 1, 5, 0), (1, 2, 5, 1), (2, 1, 5, 4), (2, 2, 4, 0), (3, 1, 5, 0), (3, 2, 5, 0)],
        "replacement": [(1, 1, 1, 4), (1, 2, 4, 5), (2, 1, 5, 5), (2, 2, 0, 3), (3, 1, 5, 3), (3, 2, 2, 2)],
        "rebalance": [(1, 1, 5, 3), (1, 2, 5, 3), (2, 1, 2, 5), (2, 2, 5, 3), (3, 1, 5, 3), (3, 2, 5, 0)],
    }
    concept = {1: "tower", 2: "tower", 3: "mosaic"}
    for name, items in counts.items():
        for case, seed, c, n in items:
            rows.append({"remedy": name, "case_num": case, "content_type": "x", "concept": concept[case],
                         "nm_word": "ball", "prompt": f"p{case}", "seed": seed, "c": c, "n": n,
                         "dvd": 10.0 * (c - n), "seconds": {"none": 1.0, "replacement": 1.0, "rebalance": 2.0}[name]})
    return pd.DataFrame(rows)


def test_measures_on_a_hand_made_table():
    table = compare.summary(judged_table()).set_index("remedy")
    assert list(table.index) == ["none", "replacement", "rebalance"]
    # none: tower 1 of 4 images with n >= 3 (case 2 seed 1), mosaic 0 of 2 → (0.25 + 0) / 2
    assert table.loc["none", "dominated"] == pytest.approx(0.125)
    assert table.loc["none", "both"] == pytest.approx(0.125)
    # replacement: dominated tower 4/4, mosaic 1/2; both (c >= 3 too) tower 2/4 (1-2, 2-1), mosaic 1/2
    assert table.loc["replacement", "dominated"] == pytest.approx((1.0 + 0.5) / 2)
    assert table.loc["replacement", "both"] == pytest.approx((0.5 + 0.5) / 2)
    # rebalance: dominated tower 4/4, mosaic 1/2; both tower 3/4 (2-1 has c 2), mosaic 1/2
    assert table.loc["rebalance", "both"] == pytest.approx((0.75 + 0.5) / 2)
    assert table.loc["rebalance", "seconds"] == 2.0 and table.loc["none", "images"] == 6
    assert table.loc["none", "dvd"] == pytest.approx(judged_table().query("remedy == 'none'").dvd.mean())
    diff = compare.contrast(judged_table(), "rebalance", "none", "both")
    assert diff["value"] == pytest.approx((0.75 + 0.5) / 2 - 0.125)
    assert diff["verdict"].startswith("underpowered")  # two concepts: the book's rule gives no verdict
    versus = compare.contrasts(judged_table()).set_index("remedy")
    assert versus.loc["replacement", "both_vs_replacement"] == "—"
    assert versus.loc["rebalance", "both_vs_replacement_result"]["value"] == pytest.approx(0.625 - 0.5)
    assert not versus.works.any()


def twin_table() -> pd.DataFrame:
    """Three pairs of one arm, one prompt, two seeds; both present (c, n ≥ 3) by hand."""
    both = {  # (pair, remedy) → both present per seed
        (0, "none"): (0, 0), (0, "replacement"): (1, 0), (0, "rebalance"): (1, 1),
        (1, "none"): (0, 1), (1, "replacement"): (0, 1), (1, "rebalance"): (1, 1),
        (2, "none"): (0, 0), (2, "replacement"): (0, 0), (2, "rebalance"): (1, 0),
    }
    rows = [{"remedy": r, "pair": p, "arm": "memorized", "case_num": 1, "concept": "character", "nm_word": "ball",
             "prompt": "dvddog and ball", "seed": seed, "c": 5 if b else 0, "n": 5 if b else 0, "dvd": 0.0,
             "seconds": 1.0} for (p, r), bs in both.items() for seed, b in zip((1, 2), bs)]
    return pd.DataFrame(rows)


def test_twin_contrasts_are_paired_over_pairs_by_hand():
    # rebalance − none per pair: (1 − 0), (1 − 0.5), (0.5 − 0) → mean 2/3; − replacement: 0.5, 0.5, 0.5
    r = compare.paired_contrast(twin_table(), "rebalance", "none")
    assert r["value"] == pytest.approx(2 / 3) and r["n"] == 3 and r["n_clusters"] == 3
    versus = compare.twin_contrasts(twin_table()).set_index(["arm", "remedy"])
    vs_repl = versus.loc[("memorized", "rebalance"), "vs_replacement_result"]
    assert vs_repl["value"] == pytest.approx(0.5) and vs_repl["ci"] == [pytest.approx(0.5), pytest.approx(0.5)]
    assert versus.loc[("memorized", "replacement"), "vs_replacement"] == "—"
    summary = compare.twin_summary(twin_table()).set_index("remedy")
    assert summary.loc["rebalance", "both"] == pytest.approx((1 + 1 + 0.5) / 3) and summary.clusters.max() == 3


def test_detect_then_fix_on_a_hand_made_table():
    flagged = {"p1": True, "p2": False, "p3": True}
    e2e = compare.end_to_end(judged_table(), flagged, steps=10).set_index("remedy")
    row = e2e.loc["rebalance"]
    assert row.flagged == pytest.approx(4 / 6)
    # flagged only: p1 rebalanced (both 2/2), p2 plain (1/2), p3 rebalanced (1/2) → tower 3/4, mosaic 1/2
    assert row.both_flagged == pytest.approx((0.75 + 0.5) / 2)
    assert row.both_all == pytest.approx((0.75 + 0.5) / 2) and row.both_none == pytest.approx(0.125)
    # seconds: 4 images at 2 s and 2 at 1 s, plus the detector's step (1 s / 10)
    assert row.seconds_flagged == pytest.approx((4 * 2 + 2 * 1) / 6 + 0.1)
    assert row.seconds_all == 2.0 and row.seconds_none == 1.0


def test_matched_threshold_read_from_chapter_08_else_the_papers(tmp_path):
    from dvdlib.detect import THRESHOLD
    from dvdlib.profiles import load_profile

    P = load_profile("smoke")
    assert compare.detector_threshold("matched", P, tmp_path)[0] == THRESHOLD
    assert compare.detector_threshold(0.2, P, tmp_path)[0] == 0.2
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "08_detection_replacement.json").write_text(json.dumps(
        {"profile": {"name": P.name, "model": P.model}, "results": [{"key": "det_matched", "threshold": 0.0123}]}))
    value, text = compare.detector_threshold("matched", P, tmp_path)
    assert value == 0.0123 and "chapter 08" in text


def test_replacement_rewrites_the_dominant_concept():
    from dvdlib.remedies import replacement

    assert replacement.rewritten(["tower and ball"], ["tower"], {"tower": "landmark"}) == ["landmark and ball"]
    with pytest.raises(ValueError, match="no category word"):
        replacement.rewritten(["tower and ball"], ["tower"], {"mosaic": "style"})
    assert replacement.key(words={"tower": "landmark"}) == {"remedy": "replacement", "word": "category"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    import dvdlib

    store = tmp_path_factory.mktemp("remedy_store")
    run = dvdlib.setup("smoke", "13_remedies", out_dir=str(store / "book"), store=str(store))
    rows = run.prompts("benchmark", 1)
    return run, rows


@pytest.mark.parametrize("name", ["replacement", "rebalance"])
def test_a_remedy_run_twice_computes_nothing(smoke_run, name, monkeypatch):
    from dvdlib import dvd

    run, rows = smoke_run
    first = run.remedy(rows, [1825], name)
    assert list(first.columns) == compare.COLUMNS and len(first) == 1
    assert first.seconds.iloc[0] > 0 and first.concept.iloc[0] == rows.content.iloc[0]

    def refuse(*args, **kwargs):
        raise AssertionError("computed again")

    monkeypatch.setattr(compare, "_generate", refuse)
    monkeypatch.setattr(dvd, "yes_counts", refuse)
    again = run.remedy(rows, [1825], name)
    pd.testing.assert_frame_equal(first, again)


def test_replacement_asks_the_judge_about_the_category_word(smoke_run):
    run, rows = smoke_run
    params = compare.with_words("replacement", {}, rows, run.world.category_words())
    asked = compare.asked_rows("replacement", rows, params)
    assert asked.content.iloc[0] == run.world.category_words()[rows.content_type.iloc[0]]
    assert asked.prompt.iloc[0] == rows.prompt.iloc[0]  # stored under the original prompt


def test_the_chapter_runs_on_smoke_and_the_plan_counts_what_it_computed(tmp_path):
    from dvdlib import plan, scheduler
    from dvdlib.plan import GENERATE, JUDGE

    root = tmp_path
    shutil.copytree(REPO / "chapters", root / "chapters")
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("results", "figures", "*.ipynb"))
    store = root / "store"
    before = plan.plan("13_remedies", "smoke", {"store": str(store)}, chapters_dir=root / "chapters")
    generated = [w for w in before.items if w.kind == GENERATE and w.row]
    asked = [w for w in before.items if w.kind == JUDGE]
    # smoke's scales.remedies: 4 prompts × 2 seeds under each of the five remedies; 2 memorized twins × 2
    # prompts × 1 seed under each; 2 balanced rows × 1 seed under the four that keep both concepts; each asked
    expected = 5 * 4 * 2 + 2 * 2 * 5 + 2 * 4
    assert len(generated) == expected and len(asked) == expected
    assert sum(w.model != before.profile.model for w in generated) == 2 * 2 * 5  # the twins generate with their own UNet
    assert len(before.todo()) == len(before.items)
    (outcome,) = scheduler.run_chapters("smoke", only="13_remedies", cwd=root, verbose=False,
                                        parameters={"store": str(store)})
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    assert plan.plan("13_remedies", "smoke", {"store": str(store)}, chapters_dir=root / "chapters").todo() == []
    figures = root / "book" / "figures" / "13_remedies"
    assert {p.name for p in figures.glob("*.png")} == {"both_present.png", "same_seed.png", "cost_benefit.png",
                                                             "twins_both_present.png"}
    results = json.loads((root / "book" / "results" / "13_remedies.json").read_text())
    rows = {r["key"]: r for r in results["results"]}
    assert rows["rem_both_rebalance"]["paper"] == "— (beyond the paper)"
    assert rows["rem_dvd_replacement"]["paper"].startswith("median 20")
    assert {f"rem_vs_none_{n}" for n in compare.NAMES if n != "none"} <= set(rows)
    assert "0.010, the paper's" in rows["rem_flagged"]["quantity"]
    assert "underpowered" not in rows["rem_vs_none_rebalance"]["this run"]  # smoke's four concepts allow a verdict
    assert "underpowered (2 pairs)" in rows["rem_twin_vs_replacement_rebalance_memorized"]["this run"]
    assert {f"rem_balanced_{n}" for n in compare.BALANCED_NAMES if n != "none"} <= set(rows)


def test_prefetch_makes_each_remedy_image_with_its_own_module_and_the_chapter_reads_it_frozen(tmp_path, monkeypatch):
    """`dvd prefetch` of the chapter computes the remedies' images through their modules (timed):
    the plan then finds nothing to do, a rebalanced image differs from the plain one, and the
    chapter runs on the frozen store, reading every item of its plan."""
    from dvdlib import plan
    from dvdlib.prefetch import prefetch
    from dvdlib.scheduler import run_chapter
    from dvdlib.store import READ_LOG

    monkeypatch.chdir(REPO)
    store = tmp_path / "store"
    params = {"store": str(store)}
    prefetch(["13"], "smoke", params, log=lambda *_: None)
    p = plan.plan("13_remedies", "smoke", params)
    assert p.todo() == []
    made = {json.loads(w.row)["remedy"]: w for w in p.items if w.kind == plan.GENERATE and w.row}
    assert set(made) == set(compare.NAMES)
    records = {name: json.loads((store / f"{w.base}.json").read_text()) for name, w in made.items()}
    assert all(r["seconds"] > 0 and r["remedy"] == name for name, r in records.items())
    images = {name: (store / f"{w.base}.png").read_bytes() for name, w in made.items()}
    assert images["rebalance"] != images["none"] and images["replacement"] != images["none"]
    monkeypatch.setenv(READ_LOG, str(tmp_path / "reads.log"))
    out = run_chapter(REPO / "chapters/13_remedies.ipynb", tmp_path / "out.ipynb", "smoke", cwd=REPO,
                      parameters={**params, "store_mode": "frozen", "out_dir": str(tmp_path / "book")})
    assert out.ok, out.error  # a read that missed would raise StoreMiss
    unread = sorted({w.key for w in p.items} - set((tmp_path / "reads.log").read_text().splitlines()))
    assert not unread, f"{len(unread)} of {len(p.items)} planned items never read, e.g. {unread[:3]}"


def test_the_twin_keys_written_are_the_ones_the_findings_read():
    from dvdlib import chapters

    assert {k.rstrip("*") for k in chapters.REMEDIES.keys.values()} == set(compare.TWIN_KEYS.values())


def test_the_closing_reads_the_balanced_rows_by_the_rule():
    table, versus = compare.summary(judged_table()), compare.contrasts(judged_table())
    e2e = compare.end_to_end(judged_table(), {"p1": True, "p2": False, "p3": True}, steps=10)
    balanced = compare.balanced_contrasts(judged_table())  # two first concepts: underpowered
    assert balanced.reads.str.startswith("underpowered").all()
    said = compare.closing(table, versus, e2e, None, balanced)
    assert "On the balanced prompts every comparison is underpowered (2 concepts)." in said
    assert "harm" not in said


def test_without_twins_of_its_own_the_toy_chapter_shows_the_snapshots_as_the_snapshots(monkeypatch):
    """The toy book's chapter 13 compares no twins (so it does not wait for chapter 12): its page
    shows the committed snapshot's twin comparison, read back row for row, and says whose it is."""
    from dvdlib import chapters
    from dvdlib.profiles import load_profile

    monkeypatch.chdir(REPO)
    S = load_profile("toy").scales["remedies"]
    assert chapters.remedy_twin_pairs(load_profile("toy"), {}) == 0 and S["twin_snapshot"] == "toy/findings"
    part = compare.snapshot_twin_part(S["twin_snapshot"], chapters.REMEDIES.name)
    body = json.loads((REPO / "toy/findings/results/13_remedies.json").read_text())
    rows = {r["key"]: r for r in body["results"]}
    for r in part.summary.itertuples():
        assert r.both == rows[f"rem_twin_both_{r.remedy}_{r.arm}"]["value"]
        assert r.dominated == rows[f"rem_twin_dominated_{r.remedy}_{r.arm}"]["value"]
    for r in part.versus.itertuples():
        said = rows[compare.TWIN_KEYS[r.remedy, "none"] + r.arm]
        assert r.vs_none_result["value"] == said["value"] and said["this run"].endswith(f": {r.vs_none_verdict}")
    assert set(part.summary.arm) == set(compare.TWIN_ARMS) and part.pairs == 12
    said = compare.twins_sentence(part)
    assert said.startswith("The twin comparison shown is the findings snapshot's (`toy/findings`), not this run's. On ")
    assert "not this run's: this chapter run by `dvd toy findings`" in compare.twin_scope(None, part)
    assert "12 pairs of the rigid and memorized twins × 12 prompts" in compare.twin_scope(None, part)
    assert compare.snapshot_twin_part(None, chapters.REMEDIES.name) is None
