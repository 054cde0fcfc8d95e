"""dvdlib.findings (the claims engine), dvdlib.toy.snapshot (the snapshot made and read back),
dvdlib.toy.findings (chapter 09's page), Report's structured fields, and chapter 09 on a fixture
snapshot."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import reference

from dvdlib import findings as F
from dvdlib import stats as S
from dvdlib.toy import findings as page
from dvdlib.toy import snapshot
from dvdlib.report import Report

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- Report


class _Profile:
    def asdict(self):
        return {"name": "fixture"}


def test_report_keeps_structured_numbers_and_old_rows_unchanged(tmp_path):
    report = Report("99_fixture", _Profile(), tmp_path)
    report.add("plain", "a plain row", 1, 2, glue=False)
    report.add("rich", "a rich row", "x", "y", glue=False, value=np.float64(0.25), n=np.int64(8),
               ci=(np.float32(0.1), 0.5), p=float("nan"), layers=np.array([8, 9]))
    body = json.loads(report.save().read_text())
    rows = {r["key"]: r for r in body["results"]}
    assert rows["plain"] == {"key": "plain", "quantity": "a plain row", "paper": "1", "this run": "2"}
    assert rows["rich"]["value"] == 0.25 and rows["rich"]["n"] == 8 and rows["rich"]["layers"] == [8, 9]
    assert rows["rich"]["ci"] == pytest.approx([0.1, 0.5]) and rows["rich"]["p"] is None
    assert list(report.table().columns) == ["paper", "this run"]


# ----------------------------------------------------------------------------- the snapshot


def _row(key, ours, **numbers):
    return {"key": key, "quantity": key.replace("_", " "), "paper": "p", "this run": ours, **numbers}


def write_fixture(folder: Path, chapters=("02_dvd_benchmark", "04_focus_score", "08_detection_replacement")) -> Path:
    """A hand-made snapshot: three chapters, gates that fail, and a chapter 03 that failed."""
    rows = {
        "02_dvd_benchmark": [_row("dvd_gap", "+31.0", value=31.0, n=[24, 12], ci=[18.0, 44.0], p=0.0004,
                                  test="difference")],
        "04_focus_score": [_row("fs_layers_gap", "-0.001", value=-0.001, n=[24, 12], ci=[-0.003, -0.0005],
                                n_clusters=[3, 6]),
                           _row("fs_peak_on_concept", "14/24 (58%)", value=14 / 24, n=24, ci=[0.40, 0.75], null=0.5,
                                n_clusters=3, per_cluster={"tower": 0.5, "robot": 0.5, "mosaic": 0.75})],
        "08_detection_replacement": [_row("det_gap", "12.50", value=12.5, n=[24, 12], ci=[5.0, 40.0], scale_bound=True),
                                     _row("repl_toy_run1_model", "0.2 → 0.6", value=0.4, n=24, ci=[0.2, 0.5],
                                          n_clusters=3, median_before=60.0),
                                     _row("repl_summary", "all")],
    }
    (folder / "results").mkdir(parents=True)
    for name in chapters:
        (folder / "results" / f"{name}.json").write_text(json.dumps({"chapter": name, "results": rows[name]}))
    gate = lambda hits, n, req: {"hits": hits, "n": n, "rate": hits / n, "ci_low": S.rate(hits, n)["ci"][0],
                                 "ci_high": S.rate(hits, n)["ci"][1], "required": req,
                                 "passed": None if req is None else hits / n >= req}
    (folder / "gates.json").write_text(json.dumps({"seeds": [1, 2], "gates": {
        "singles": gate(45, 120, 0.9), "composition": gate(2, 120, 0.6), "conditioning": gate(660, 660, None)}}))
    from PIL import Image

    (folder / "figures" / "02_dvd_benchmark").mkdir(parents=True)
    Image.new("RGB", (4, 4), "red").save(folder / "figures" / "02_dvd_benchmark" / "dvd_by_category.png")
    index = {"profile": "toy", "model": {"path": "toy/run1/model", "hash": "ab" * 32, "step": 3200,
                                         "wall_time_s": 5088.8, "data_hash": "90fc", "final_loss": 0.0466},
             "chapters": {**{c: {"ok": True, "seconds": 300.0, "error": None,
                                 "figures": ["dvd_by_category.png"] if c == "02_dvd_benchmark" else []}
                             for c in chapters},
                          "03_diversity_causal": {"ok": False, "seconds": 12.0, "error": "ValueError: no dogs"}}}
    (folder / "snapshot.json").write_text(json.dumps(index))
    return folder


def test_claims_table_applies_the_rule(tmp_path):
    snap = snapshot.load_snapshot(write_fixture(tmp_path / "findings"))
    t = F.claims_table(snap)
    by = lambda name: t[t.claim == name].iloc[0]
    assert by("suppression").verdict == "reproduced" and by("suppression")["95% CI"] == "[18, 44]"
    assert by("focus_layers").verdict == "not reproduced"  # the interval lies below 0
    assert by("focus_layers").clusters == "3 vs 6"
    assert by("peak_token").verdict == "inconclusive" and by("peak_token").null == "0.5"
    assert "mosaic: 0.75" in by("peak_token")["per cluster"]
    assert by("detection").verdict == "not applicable" and by("detection")["n"] == "24 vs 12"
    assert "scale-free" in by("detection").why
    assert list(t[t.claim == "replacement"].verdict) == ["reproduced"]  # the summary row is not a measurement
    causal = by("causal")
    assert causal.verdict == "inconclusive" and "chapter failed: ValueError: no dogs" in causal.why
    assert "not in this snapshot" in by("dominated_falls").why
    assert set(t.claim) == {c.name for c in F.CLAIMS}


def test_gates_table_and_paragraphs(tmp_path):
    snap = snapshot.load_snapshot(write_fixture(tmp_path / "findings"))
    g = F.gates_table(snap)
    assert list(g.result) == ["FAIL", "FAIL", "pass"] and g.loc["singles", "rate"] == "37.5%"
    assert F.gates_passed(snap) is False
    assert page.figures(snap) == [("02_dvd_benchmark", snap.folder / "figures" / "02_dvd_benchmark" / "dvd_by_category.png")]
    texts = F.paragraphs(snap)
    assert len(texts) == len(F.CLAIMS) + 1 and "does not pass its quality gates" in texts[0]
    assert "draws together in only 2/120 images" in texts[1]  # suppression: the control's own failure
    assert any("**reproduced**" in t and "n = 24 vs 12" in t for t in texts)
    assert any("Per cluster: tower: 0.5; robot: 0.5; mosaic: 0.75" in t for t in texts)
    card = page.model_table(snap)
    assert card.loc["training step", "toy model"] == 3200 and "1.41 h" in card.loc["training wall time", "toy model"]
    assert card.loc["model hash (SHA-256)", "toy model"] == "ab" * 8 + "…"  # short enough for book width
    ran = page.chapters_table(snap)  # words for people, not Python's True / None / {}
    assert ran.loc["03_diversity_causal"].to_dict() == {"ran": "no", "seconds": 12.0, "parameters": "the profile's",
                                                        "error": "ValueError: no dogs"}
    assert ran.loc["02_dvd_benchmark", "ran"] == "yes" and ran.loc["02_dvd_benchmark", "error"] == ""


def test_missing_snapshot_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvd toy findings --out toy/findings"):
        snapshot.load_snapshot(tmp_path / "nothing")


TINY_CHAPTER_CODE = """
import json, pathlib
out = pathlib.Path(out_dir) / "results"
out.mkdir(parents=True, exist_ok=True)
(out / "50_tiny.json").write_text(json.dumps({"chapter": "50_tiny", "results": [{"key": "k", "quantity": "q",
    "paper": "1", "this run": "2", "value": 2}]}))
fig = pathlib.Path(out_dir) / "figures" / "50_tiny"
fig.mkdir(parents=True, exist_ok=True)
(fig / "a.png").write_bytes(b"0" * 100)
(fig / "b.png").write_bytes(b"0" * 100)
"""


def test_make_snapshot_keeps_what_is_done_for_the_same_model(tmp_path):
    import nbformat

    root = tmp_path / "repo"
    model = root / "models" / "m"
    model.mkdir(parents=True)
    (model / "toy.json").write_text(json.dumps({"steps": 10, "data_hash": "dd"}))
    (model / "w.safetensors").write_bytes(b"weights-1")
    profile = root / "p.yaml"
    toy = (REPO / "dvdlib" / "profiles" / "toy.yaml").read_text().replace("model: toy/run1/model", "model: models/m")
    profile.write_text(toy)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "smoke"\nout_dir = "book"\nsweep_layers = None', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(TINY_CHAPTER_CODE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (root / "chapters").mkdir()
    nbformat.write(nb, root / "chapters" / "50_tiny.ipynb")
    logs = []
    index = snapshot.make_snapshot("snap", profile=str(profile), chapters=["50"], scratch=root / "scratch", cwd=root,
                            measure=False, png_budget=150, log=logs.append)
    assert index["chapters"]["50_tiny"]["ok"] and index["model"]["step"] == 10
    assert index["chapters"]["50_tiny"]["figures"] == ["a.png"]  # the second PNG is over the budget
    assert json.loads((root / "snap" / "results" / "50_tiny.json").read_text())["results"][0]["value"] == 2
    snapshot.make_snapshot("snap", profile=str(profile), chapters=["50"], scratch=root / "scratch", cwd=root,
                    measure=False, log=logs.append)
    assert any("done for this model, kept" in line for line in logs)
    (model / "w.safetensors").write_bytes(b"weights-2")  # a new export: everything is redone
    logs.clear()
    index = snapshot.make_snapshot("snap", profile=str(profile), chapters=["50"], scratch=root / "scratch", cwd=root,
                            measure=False, log=logs.append)
    assert any("model changed" in line for line in logs) and index["chapters"]["50_tiny"]["ok"]
    logs.clear()
    index = snapshot.make_snapshot("snap", profile=str(profile), chapters=["50"], scratch=root / "scratch", cwd=root,
                            measure=False, parameters={"sweep_layers": [1, 3]}, log=logs.append)
    assert not any("kept" in line for line in logs)  # other parameters: run again, and say which
    assert index["chapters"]["50_tiny"]["parameters"] == {"sweep_layers": [1, 3]}
    logs.clear()
    snapshot.make_snapshot("snap", profile=str(profile), chapters=["50"], scratch=root / "scratch", cwd=root, measure=False,
                    parameters={"sweep_layers": [1, 3]}, rerun=True, log=logs.append)
    assert not any("kept" in line for line in logs) and any("50_tiny: ok" in line for line in logs)
    assert snapshot.load_snapshot(root / "snap").index["model"]["hash"] == snapshot.model_hash(model)


# ----------------------------------------------------------------------------- chapter 09


def test_toy_findings_chapter_runs_on_a_fixture_snapshot(tmp_path):
    from dvdlib import scheduler
    from test_book import copy_book

    root = copy_book(tmp_path)
    write_fixture(root / "toy" / "findings")
    (outcome,) = scheduler.run_chapters("smoke", only="09_toy_findings", cwd=root, verbose=False)
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    assert (root / "book" / "figures" / "09_toy_findings" / "gates.png").is_file()
    results = json.loads((root / "book" / "results" / "09_toy_findings.json").read_text())
    reference.check("09", root / "book" / "results" / "09_toy_findings.json")  # the numbers as before
    rows = {r["key"]: r for r in results["results"]}
    assert results["profile"]["name"] == "toy"  # the snapshot's profile, not the book's
    assert rows["model_step"]["this run"] == "3200" and rows["gates"]["this run"] == "no"
    assert rows["claim_suppression"]["this run"] == "+31.0 → reproduced"
    assert rows["claim_focus_layers"]["paper"].startswith("At the first step, DominanceBench")
    assert rows["verdicts"]["this run"].startswith("2 / 1 / ")  # suppression, replacement / focus layers
    import nbformat

    executed = nbformat.read(root / "book" / "09_toy_findings.ipynb", as_version=4)
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the gates figure and the snapshot's one PNG


def test_toy_findings_chapter_without_a_snapshot_says_how_to_make_it(tmp_path):
    from dvdlib import scheduler
    from test_book import copy_book

    root = copy_book(tmp_path)
    shutil.rmtree(root / "toy", ignore_errors=True)
    (outcome,) = scheduler.run_chapters("smoke", only="09_toy_findings", cwd=root, verbose=False)
    assert outcome.ok, outcome.error
    text = (root / "book" / "09_toy_findings.ipynb").read_text()
    assert "dvd toy findings --out toy/findings" in text
    rows = {r["key"]: r for r in json.loads((root / "book" / "results" / "09_toy_findings.json").read_text())["results"]}
    assert rows["verdicts"]["this run"] == "no snapshot"


def _clustered():
    """Three concepts of eight prompts each: one shows a large effect, two none at all."""
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(5.0, 0.5, 8), rng.normal(0.0, 0.5, 8), rng.normal(-0.3, 0.5, 8)]
    return x, ["mosaic"] * 8 + ["tower"] * 8 + ["robot"] * 8


def test_why_says_when_the_effect_is_the_opposite_rests_on_one_cluster_or_is_underpowered():
    suppression = next(c for c in F.CLAIMS if c.name == "suppression")
    text = F._why("not reproduced", suppression, {"value": -21.2, "ci": [-29.5, -13.7]}, 0.0)
    assert "[-29.5, -13.7] lies below the null 0" in text and "opposite of the paper's effect" in text
    loo = {"low": {"cluster": "mosaic", "value": 0.2, "ci": [-0.4, 0.8]}, "high": {"cluster": "tower", "value": 3.0,
                                                                                  "ci": [1.0, 5.0]}}
    s = {"value": 2.0, "ci": [0.5, 3.5], "n_clusters": [4, 6], "loo": loo}
    v = S.verdict(s["ci"], 0.0, 1, n_clusters=s["n_clusters"], loo=loo)
    assert v == "inconclusive: rests on mosaic"
    text = F._why(v, suppression, s, 0.0)
    assert "without mosaic it is [-0.4, 0.8]" in text and "does not survive leaving one concept out" in text
    x, clusters = _clustered()
    under = S.difference(x, np.zeros(12), clusters=(clusters, np.repeat(list("ab"), 6)))
    v = S.decide(under)
    assert v == "underpowered (2 concepts)" and "at least 3 on each side" in F._why(v, suppression, under, 0.0)


def test_claims_csv_has_the_agreed_columns_and_chapter_09_reads_it(tmp_path):
    snap = snapshot.load_snapshot(write_fixture(tmp_path / "findings"))
    path = F.write_claims(snap)
    import pandas as pd

    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert tuple(table.columns) == F.CSV_COLUMNS
    assert set(table.power_check) <= set(S.POWER)
    peak = table.set_index("claim").loc["peak_token"]
    assert peak.null == 0.5 and peak.n_prompts == 24 and peak.clusters_a == 3 and np.isnan(peak.clusters_b)
    assert peak.verdict.split(":")[0] == "inconclusive"
    report = Report("09_fixture", _Profile(), tmp_path / "book")
    shown = page.add_claims(snapshot.load_snapshot(snap.folder), report)
    assert list(shown.verdict) == list(table.verdict)


def test_auc_is_the_mann_whitney_area_and_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    assert S.auc([3, 4, 5], [0, 1, 2])["value"] == 1.0
    assert S.auc([1, 2], [1, 2])["value"] == 0.5  # ties count half: (0.5 + 0 + 1 + 0.5) / 4
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 30), rng.normal(0, 1, 20)
    r = S.auc(a, b)
    assert r["value"] == pytest.approx(roc_auc_score(np.r_[np.ones(30), np.zeros(20)], np.r_[a, b]))
    assert r["ci"][0] < r["value"] < r["ci"][1] and r["n"] == [30, 20]


def test_replacement_without_a_collapse_to_relieve_is_inconclusive(tmp_path):
    folder = write_fixture(tmp_path / "findings")
    path = folder / "results" / "08_detection_replacement.json"
    body = json.loads(path.read_text())
    body["results"] = [_row("repl_toy", "0 → 0", value=0.0, n=24, ci=[0.0, 0.0], median_before=0.0),
                       _row("det_auc", "0.700", **S.auc([3, 4, 5, 6], [0, 1, 2, 5]))]
    path.write_text(json.dumps(body))
    t = F.claims_table(snapshot.load_snapshot(folder)).set_index("claim")
    assert t.loc["replacement", "verdict"] == "inconclusive" and "no collapse" in t.loc["replacement", "why"]
    assert t.loc["detection_auc", "n"] == "4 vs 4"
    assert t.loc["detection_auc", "verdict"].split(":")[0] in ("reproduced", "inconclusive")


def test_too_few_prompts_give_no_verdict(tmp_path):
    folder = write_fixture(tmp_path / "findings")
    path = folder / "results" / "02_dvd_benchmark.json"
    body = json.loads(path.read_text())
    body["results"][0].update(n=[24, S.MIN_N - 1])  # a clear effect, but the control has too few prompts
    path.write_text(json.dumps(body))
    row = F.claims_table(snapshot.load_snapshot(folder)).set_index("claim").loc["suppression"]
    assert row.verdict == "inconclusive" and "too few" in row.why


def test_the_contract_check_names_the_missing_claim():
    assert F.unwritten_claims("04_focus_score", ["fs_layers_gap", "fs_peak_on_concept"]) == []
    assert F.unwritten_claims("04_focus_score", ["fs_layers_gap"]) == ["peak_token"]
    assert F.unwritten_claims("08_detection_replacement", ["det_gap", "det_matched", "det_auc", "repl_smoke"]) == []
    assert F.unwritten_claims("08_detection_replacement", ["det_gap", "det_auc", "repl_summary"]) != []


def test_numeric_cluster_labels_name_their_clusters_as_text():
    """Fine-tune indices or seeds as cluster labels: the same clusters as their text spelling."""
    x, names = _clustered()
    numbers = [{"mosaic": 0, "tower": 1, "robot": 2}[n] for n in names]
    by_text = S.location(x, alternative="greater", clusters=[str(n) for n in numbers])
    by_number = S.location(x, alternative="greater", clusters=numbers)
    assert by_number["per_cluster"] == by_text["per_cluster"] and set(by_number["per_cluster"]) == {"0", "1", "2"}
    assert by_number["per_cluster"]["0"] == pytest.approx(np.mean(x[:8]))
    assert by_number["loo"] == by_text["loo"] and by_number["ci"] == by_text["ci"]
    assert {by_number["loo"]["low"]["cluster"], by_number["loo"]["high"]["cluster"]} <= {"0", "1", "2"}


def test_a_chapters_closing_paragraph_follows_its_own_verdicts():
    """`findings.this_run`: each claim of the chapter under its verdict's sentence, with this run's
    number, the paper's where given and why an undecided claim is undecided; then what the profile
    lets the verdicts say; no claim of another chapter, no "nan"."""
    from types import SimpleNamespace

    from dvdlib import findings
    from dvdlib.profiles import load_profile

    decided = {"value": 0.3, "ci": [0.2, 0.4], "n": [40, 40], "n_clusters": [6, 6], "null": 0.0,
               "loo": {"low": {"cluster": "a", "value": 0.25, "ci": [0.1, 0.4]},
                       "high": {"cluster": "b", "value": 0.35, "ci": [0.2, 0.5]}}}
    rows = [{"key": "fs_layers_gap", "this run": "+0.300 [+0.200, +0.400]", **decided},
            {"key": "fs_peak_on_concept", "this run": "7/24 (29%); chance 33%", "value": 0.29, "ci": [0.0, 1.0],
             "n": 24, "n_clusters": 2, "null": 0.33}]
    for profile, ending in (("toy", "toy world's model"), ("smoke", "random weights")):
        text = findings.this_run(SimpleNamespace(chapter="04_focus_score", rows=rows, profile=load_profile(profile)))
        assert text.startswith("**Reproduced:** mean Focus Score over the paper's layers 5–10") and ending in text
        assert "**Underpowered:** share of prompts whose peak token spells the rigid concept: 7/24 (29%); chance 33% " \
               "(paper: share 0.83 (249/300; chance not reported)) — 2 concepts" in text
        assert "nan" not in text and "DvD" not in text
