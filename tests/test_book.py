"""The book runner (papermill), the generated pages and the Jupyter Book build.

The builds run in a temporary copy of the book (``_config.yml``, ``_toc.yml``, ``book/``,
``chapters/``), so no test leaves build output in the checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from dvdlib import book, cli, executed, pages, scheduler
from dvdlib.findings import unwritten_claims

REPO = Path(__file__).resolve().parents[1]
GENERATED = ["*.ipynb", "figures", "results", "status.md", "benchmarks.md", "_build_info.md"]


def make_chapter(path: Path, title: str, body: list[str], after: str = "") -> Path:
    """A chapter notebook: heading, a ``parameters`` cell, code cells, an optional closing text."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"  # which profile (dvdlib/profiles/)')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nA test chapter."), params]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in body]
    if after:
        nb.cells.append(nbformat.v4.new_markdown_cell(after))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


FIGURE = """\
import matplotlib.pyplot as plt
from pathlib import Path
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([0, 1, 2], [0, 1, 4])
Path("book/figures").mkdir(parents=True, exist_ok=True)
fig.savefig("book/figures/tiny.png")   # relative to the repository root
plt.show()"""
UNGLUED = """Early {glue:text}`early`, late {glue:text}`late:.2f` and {glue}`late`.

```{glue:figure} late_figure
:name: fig-late

A figure the chapter never made.
```
"""
GLUE = 'from myst_nb import glue\nglue("answer", 42, display=False)\nprint("profile is", profile)'


def copy_book(dest: Path, chapters: bool = True) -> Path:
    """The hand-written part of the book (no generated pages) in ``dest``."""
    shutil.copy(REPO / "_config.yml", dest / "_config.yml")
    shutil.copy(REPO / "_toc.yml", dest / "_toc.yml")
    shutil.copytree(REPO / "book", dest / "book", ignore=shutil.ignore_patterns(*GENERATED))
    if chapters and (REPO / "chapters").is_dir():
        shutil.copytree(REPO / "chapters", dest / "chapters")
    # stray Markdown a real checkout has outside the toc: the build must ignore it, not warn
    for stray in (".pytest_cache/README.md", "README.md", "tests/fixtures/notes.md"):
        (dest / stray).parent.mkdir(parents=True, exist_ok=True)
        (dest / stray).write_text("# Not part of the book\n")
    return dest


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    """Two fixture chapters run through the runner: the first raises, the second draws a figure."""
    root = copy_book(tmp_path_factory.mktemp("fixture_book"), chapters=False)
    make_chapter(root / "chapters" / "01_fails.ipynb", "A failing chapter",
                 ['from myst_nb import glue\nglue("early", 7, display=False)',
                  'raise ValueError("broken on purpose: `quoted` | piped\\nsecond line, `quoted` too")',
                  'glue("late", 3.14159, display=False)'],
                 after=UNGLUED)
    make_chapter(root / "chapters" / "02_tiny.ipynb", "A tiny chapter", [FIGURE, GLUE],
                 after="The answer is {glue:text}`answer`.")
    # every hand-written page (they link to each other), as in the real toc
    pages = sorted(p.stem for p in (REPO / "book").glob("*.md") if not p.stem.startswith("_")
                   and p.stem not in ("index", "status", "benchmarks"))
    toc = {"format": "jb-book", "root": "book/index", "parts": [
        {"caption": "Chapters", "chapters": [{"file": "book/01_fails"}, {"file": "book/02_tiny"}]},
        {"caption": "About this run", "chapters": [{"file": f"book/{p}"} for p in ("status", "benchmarks", *pages)]}]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "benchmarks" / "results" / "recording_overhead.json").write_text(json.dumps({
        "title": "Attention-recording overhead", "device": "CPU (x86_64, 2 threads)",
        "model": "smoke, float32, 128², 10 DDIM steps", "when": "2025-01-01T00:00:00",
        "command": "python benchmarks/recording_overhead.py --model smoke",
        "rows": [{"setting": "plain", "seconds": 1.0, "ratio": 1.0, "target": "", "met": None},
                 {"setting": "step-1 recording", "seconds": 1.02, "ratio": 1.02,
                  "target": "≤ 1.05×", "met": True}],
        "targets": {"step-1 recording": "≤ 1.05×"}}))
    outcomes = scheduler.run_chapters("smoke", cwd=root, verbose=False)
    return root, outcomes


def test_a_failing_chapter_does_not_stop_the_others(fixture_run):
    root, outcomes = fixture_run
    assert [o.name for o in outcomes] == ["01_fails", "02_tiny"]
    fails, tiny = outcomes
    assert not fails.ok and fails.error.startswith(
        "ValueError: broken on purpose: `quoted` | piped\nsecond line")
    assert tiny.ok and tiny.error is None
    for o in outcomes:
        assert o.output == root / "book" / f"{o.name}.ipynb" and o.output.exists()
    # the kernel ran in the repository root: the chapter's relative path landed there
    assert (root / "book" / "figures" / "tiny.png").exists()
    nb = nbformat.read(tiny.output, as_version=4)
    assert nb.metadata.papermill.parameters == {"profile": "smoke"}
    assert any("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))
    failed = nbformat.read(fails.output, as_version=4)
    assert failed.metadata.papermill.exception is True
    # its prose no longer quotes values it never glued; the one glued before the error stays
    assert failed.metadata.dvd.not_glued == ["late", "late_figure"]
    assert "{glue:text}`early`" in failed.cells[-1].source
    prose = failed.cells[-1].source
    assert "}`late" not in prose and "{glue:figure}" not in prose and "not computed" in prose


def test_status_page_shows_profile_time_and_failure(fixture_run):
    root, _ = fixture_run
    info = {c["name"]: c for c in executed.executed_chapters(cwd=root)}
    assert info["01_fails"]["title"] == "A failing chapter"
    assert info["01_fails"]["outcome"] == "failed"
    assert info["01_fails"]["error"].startswith("ValueError: broken on purpose")
    assert info["02_tiny"]["outcome"] == "ok" and info["02_tiny"]["profile"] == "smoke"
    assert info["02_tiny"]["seconds"] > 0
    status = pages.write_status_page(cwd=root).read_text()
    rows = [line for line in status.splitlines() if line.startswith("| [")]
    assert len(rows) == 2
    assert "failed" in rows[0] and "ValueError" in rows[0] and "broken on purpose" in rows[0]
    assert "(01_fails.ipynb)" in rows[0] and "smoke" in rows[0]
    assert rows[1].rstrip(" |").endswith("ok") and " s |" in rows[1]
    info_page = (root / "book" / "_build_info.md").read_text()
    assert "**smoke**" in info_page and "1 failed" in info_page


def test_fixture_book_builds_with_a_failed_chapter(fixture_run):
    """Warnings are errors, yet a failed chapter is shown, not fatal; glue and figures render."""
    root, _ = fixture_run
    index = book.build_book(root)
    html = root / "_build" / "html"
    assert index == html / "index.html" and index.exists()
    tiny = (html / "book" / "02_tiny.html").read_text()
    assert "<img" in tiny and "42" in tiny
    fails = (html / "book" / "01_fails.html").read_text()
    assert "broken on purpose" in fails and "not computed" in fails
    status = (html / "book" / "status.html").read_text()
    assert "broken on purpose" in status
    assert "book/index.html" in index.read_text()  # the top-level index.html redirects
    landing = (html / "book" / "index.html").read_text()
    assert "smoke" in landing and "Jeong" in landing  # the build info and the citation
    assert "step-1 recording" in (html / "book" / "benchmarks.html").read_text()
    assert (html / "book" / "reproduce.html").exists()


def test_only_picks_chapters_and_reports_unknown_names(tmp_path):
    for name in ("01_a", "04_focus_score", "05_temporal"):
        make_chapter(tmp_path / "chapters" / f"{name}.ipynb", name, [])
    pick = lambda only: [p.stem for p in scheduler.chapter_sources(only=only, cwd=tmp_path)]  # noqa: E731
    assert pick(None) == ["01_a", "04_focus_score", "05_temporal"]
    assert pick("04") == ["04_focus_score"]
    assert pick("focus_score") == ["04_focus_score"]
    assert pick(["05_temporal.ipynb", "01_a"]) == ["01_a", "05_temporal"]
    with pytest.raises(ValueError, match="nope"):
        pick("nope")


def test_stub_for_a_chapter_in_the_toc_that_has_not_run(tmp_path):
    make_chapter(tmp_path / "chapters" / "07_later.ipynb", "Later", [])
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/index\n"
                                       "chapters:\n  - file: book/07_later\n")
    pages.write_generated_pages(cwd=tmp_path)
    stub = tmp_path / "book" / "07_later.ipynb"
    assert stub.exists()
    assert executed.chapter_info(stub)["outcome"] == "not run"
    assert "not run" in (tmp_path / "book" / "status.md").read_text()


def _executed(path: Path, title: str, profile: str = "toy") -> Path:
    """A notebook as papermill leaves it after a clean run (its metadata only)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}")]
    nb.metadata["papermill"] = {"parameters": {"profile": profile}, "duration": 2.5, "exception": None,
                                "start_time": "2025-01-01T00:00:00", "end_time": "2025-01-01T00:00:02"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_status_page_marks_a_chapter_that_does_not_apply_to_its_world(tmp_path):
    from types import SimpleNamespace

    from dvdlib.report import Report

    profile = SimpleNamespace(asdict=lambda: {"name": "toy"})
    _executed(tmp_path / "book" / "01_applies.ipynb", "Applies")
    _executed(tmp_path / "book" / "02_elsewhere.ipynb", "Elsewhere")
    applies = Report("01_applies", profile, tmp_path / "book")
    applies.add("n", "a number", "1", "2", glue=False)
    applies.save()
    elsewhere = Report("02_elsewhere", profile, tmp_path / "book")
    elsewhere.not_applicable("this world has no three-concept prompts")
    elsewhere.save()
    body = json.loads(applies.path.read_text())
    assert "applies" not in body and "why" not in body  # a chapter that applies: the format as before
    body = json.loads(elsewhere.path.read_text())
    assert body["applies"] is False and body["why"] == "this world has no three-concept prompts"
    assert body["results"] == [] and elsewhere.table().empty
    info = {c["name"]: c for c in executed.executed_chapters(cwd=tmp_path)}
    assert info["01_applies"]["outcome"] == "ok" and info["01_applies"]["why"] is None
    assert info["02_elsewhere"]["outcome"] == "not applicable"
    assert info["02_elsewhere"]["why"] == "this world has no three-concept prompts"
    status = pages.write_status_page(cwd=tmp_path).read_text()
    rows = [line for line in status.splitlines() if line.startswith("| Applies") or line.startswith("| Elsewhere")]
    assert rows[0].rstrip(" |").endswith("| ok")
    assert "not applicable in this world: this world has no three\\-concept prompts" in rows[1]
    assert "failed" not in rows[1]
    assert "2 chapter(s): 1 ok, 1 not applicable, 0 failed, 0 not run." in status
    assert "1 ok, 1 not applicable in this world, 0 failed" in (tmp_path / "book" / "_build_info.md").read_text()
    with pytest.raises(ValueError, match="why"):
        Report("03_silent", profile, tmp_path / "book").not_applicable("")


def test_benchmarks_page(tmp_path):
    page = pages.render_benchmarks(cwd=tmp_path).read_text()
    assert "no benchmark has been run yet" in page.lower()
    assert "python benchmarks/recording_overhead.py" in page
    (tmp_path / "book" / "results").mkdir(parents=True)
    (tmp_path / "book" / "results" / "benchmark_recording.json").write_text(json.dumps({
        "title": "Recording overhead", "device": "cpu", "model": "smoke",
        "rows": [{"setting": "plain", "seconds": 1.0, "ratio": 1.0},
                 {"setting": "step-1 recording", "seconds": 1.02, "ratio": 1.02}],
        "targets": {"step-1 recording": "<= 1.05x"}, "when": "2025-01-01T00:00:00Z"}))
    page = pages.render_benchmarks(cwd=tmp_path).read_text()
    assert "# Benchmarks" in page and "## Recording overhead" in page
    assert "| setting | seconds | ratio |" in page and "| step\\-1 recording | 1.02 | 1.02 |" in page
    assert "Targets" in page
    # the benchmark script's own result folder is read too (its rows say whether a target was met)
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "recording_overhead.json").write_text(json.dumps({
        "title": "Attention-recording overhead", "device": "CPU", "command": "python x.py",
        "notes": "a long note " * 40 + "that ends here",
        "rows": [{"setting": "step-1", "seconds": 2.0, "ratio": 1.01, "target": "≤ 1.05×",
                  "met": True}, {"setting": "one question", "seconds": 0.0093, "ratio": 383.25}]}))
    page = pages.render_benchmarks(cwd=tmp_path).read_text()
    assert "## Recording overhead" in page and "## Attention\\-recording overhead" in page
    assert "| step\\-1 | 2 | 1.01 | ≤ 1\\.05× | yes |" in page  # numbers without trailing zeros
    assert "| one question | 0.0093 | 383.2 |" in page
    assert "that ends here" in page  # notes are prose, never cut like a table cell


def test_cli_refuses_outside_the_repository_and_unknown_chapters(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["book", "--no-build"]) == 2
    assert "repository root" in capsys.readouterr().err
    (tmp_path / "_config.yml").write_text("title: x\n")
    assert cli.main(["book", "--only", "nope", "--no-build"]) == 2
    assert "no chapter matches 'nope'" in capsys.readouterr().err


def test_toc_lists_every_chapter():
    from sphinx_external_toc.parsing import parse_toc_yaml

    docs = set(parse_toc_yaml(REPO / "_toc.yml").keys())
    chapters = sorted(p.stem for p in (REPO / "chapters").glob("*.ipynb"))
    assert [c for c in chapters if f"book/{c}" not in docs] == [], "add these chapters to _toc.yml"
    generated = {"book/status", "book/benchmarks"}
    unknown = [d for d in docs if d not in generated and not list(REPO.glob(f"{d}.*"))
               and not (REPO / "chapters" / f"{Path(d).name}.ipynb").exists()]
    assert unknown == [], "toc entries with neither a page nor a chapter source"


def test_generated_files_are_ignored_by_git():
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    paths = ["book/04_focus_score.ipynb", "book/status.md", "book/benchmarks.md",
             "book/_build_info.md", "book/_run.json", "book/_toy_gates.md", "book/_toy_limits.md", "book/figures/x.png", "book/results/x.json", "_build/x",
             "store/x", ".venv/x"]
    done = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    assert sorted(done.stdout.split()) == sorted(paths)
    for hand_written in ("book/index.md", "book/reproduce.md", "book/references.bib"):
        assert subprocess.run(["git", "check-ignore", "-q", hand_written], cwd=REPO).returncode == 1


def test_focus_score_chapter_runs_on_smoke_and_the_book_builds(tmp_path):
    """End to end: the real chapter through papermill with profile smoke, then the HTML book."""
    root = copy_book(tmp_path)
    (outcome,) = scheduler.run_chapters("smoke", only="04_focus_score", cwd=root, verbose=False)
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    index = book.build_book(root)
    page = root / "_build" / "html" / "book" / "04_focus_score.html"
    assert page.exists(), "the chapter's page was not built"
    html = page.read_text()
    assert html.count("<img") >= 2, "the chapter's page lacks its figures (Focus Score by layer, maps)"
    assert "249/300" in html and "Caveat" in html, "paper numbers and the profile card belong on the page"
    assert "not computed" not in html
    figures = root / "book" / "figures" / "04_focus_score"
    assert {p.name for p in figures.glob("*.png")} == {"focus_by_layer.png", "example_maps.png"}
    results = json.loads((root / "book" / "results" / "04_focus_score.json").read_text())
    # every key a toy-findings claim reads from this chapter is written by it
    assert unwritten_claims("04_focus_score", [r["key"] for r in results["results"]]) == []
    assert results["profile"]["name"] == "smoke"
    assert {r["key"] for r in results["results"]} >= {"fs_significant_layers", "fs_peak_on_concept"}
    # the card, the landing page and the methods page state what the results JSON says of the run
    assert ", ".join(map(str, results["profile"]["seeds"])) in html and f"<code class=\"docutils literal notranslate\"><span class=\"pre\">{results['profile']['model']}" in html
    assert "<strong>smoke</strong>" in (root / "_build" / "html" / "book" / "index.html").read_text()
    assert 'id="toy-limits"' in (root / "_build" / "html" / "book" / "methods.html").read_text()
    assert (root / "_build" / "html" / "book" / "status.html").exists()
    assert index.exists()


def test_dvd_benchmark_chapter_runs_on_smoke(tmp_path):
    """The benchmark-construction chapter through papermill with profile smoke: figures, results."""
    root = copy_book(tmp_path)
    (outcome,) = scheduler.run_chapters("smoke", only="02_dvd_benchmark", cwd=root, verbose=False)
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    figures = root / "book" / "figures" / "02_dvd_benchmark"
    assert {p.name for p in figures.glob("*.png")} == {"dvd_by_category.png", "collapse_grid.png"}
    results = json.loads((root / "book" / "results" / "02_dvd_benchmark.json").read_text())
    # every key a toy-findings claim reads from this chapter is written by it
    assert unwritten_claims("02_dvd_benchmark", [r["key"] for r in results["results"]]) == []
    rows = {r["key"]: r for r in results["results"]}
    assert rows["balanced_median"]["paper"] == "11.6" and rows["balanced_mean"]["paper"] == "20.64"
    assert results["profile"]["judge"] == "tiny:qwen2-vl"


def test_unselected_prompts_chapter_runs_on_smoke_with_the_authors_questions(tmp_path):
    """Chapter 10 through papermill with profile smoke and a user's copy of the authors' release
    (the test fixture): figures, results, no paper numbers claimed, their question set used."""
    root = copy_book(tmp_path)
    release = REPO / "tests" / "fixtures" / "authors_release"
    (outcome,) = scheduler.run_chapters("smoke", only="10_unselected_prompts", cwd=root, verbose=False,
                                   parameters={"questions": f"authors:{release}"})
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    figures = root / "book" / "figures" / "10_unselected_prompts"
    assert {p.name for p in figures.glob("*.png")} == {"dvd_by_set.png", "dvd_by_template.png"}
    results = json.loads((root / "book" / "results" / "10_unselected_prompts.json").read_text())
    rows = {r["key"]: r for r in results["results"]}
    assert rows["selection_gap"]["paper"].startswith("not public") and "over concepts" in rows["selection_gap"]["test"]
    assert results["profile"]["questions"] == f"authors:{release}"
    assert "Question set: `authors`" in outcome.output.read_text()


def test_three_concepts_chapter_runs_on_smoke_and_says_what_world_1_cannot_run(tmp_path):
    """Chapter 11 through papermill: under smoke it draws the factorial's figures from the authors'
    sets; under toy (world 1, two-concept captions only) it runs and says it cannot run them."""
    root = copy_book(tmp_path)
    (outcome,) = scheduler.run_chapters("smoke", only="11_three_concepts", cwd=root, verbose=False,
                                   parameters={"cases": 2, "n_pilot": 2})
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    figures = root / "book" / "figures" / "11_three_concepts"
    assert {p.name for p in figures.glob("*.png")} == {"effects.png", "presence_and_survivors.png",
                                                       "matched_case.png", "pilot.png"}
    results = json.loads((root / "book" / "results" / "11_three_concepts.json").read_text())
    rows = {r["key"]: r for r in results["results"]}
    assert rows["own_effects"]["paper"].startswith("not public") and len(rows["own_effects"]["value"]) == 3
    (toy,) = scheduler.run_chapters("toy", only="11_three_concepts", cwd=root, verbose=False)
    assert toy.ok, f"the chapter failed under toy: {toy.error}"
    assert "gives no `factorial` prompt set" in toy.output.read_text()
    results = json.loads((root / "book" / "results" / "11_three_concepts.json").read_text())
    assert results["applies"] is False and "gives no `factorial` prompt set" in results["why"]
    assert not any("not run" in r["this run"] for r in results["results"])
    outputs = [out for c in nbformat.read(toy.output, as_version=4).cells for out in c.get("outputs", [])]
    assert not any(k.startswith("image/") for out in outputs for k in out.get("data", {}))
    assert not any("<table" in str(out.get("data", {}).get("text/html", "")) for out in outputs)
    status = pages.write_status_page(cwd=root).read_text()
    (row,) = [line for line in status.splitlines() if "(11_three_concepts.ipynb)" in line]
    assert "not applicable in this world" in row and "factorial" in row and "| ok |" not in row
    assert "0 ok, 1 not applicable, 0 failed" in status


def test_the_landing_page_states_the_gates_chapter_09_reads(tmp_path):
    """The landing page's sentence on the toy model's gates is written from the snapshot's gates.json
    (the file chapter 09 reads), gate by gate, with each verdict as `dvdlib.findings.gates_table` gives it."""
    from dvdlib.findings import gates_table
    from dvdlib.toy.snapshot import load_snapshot

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "book").mkdir()
    shutil.copytree(root / "toy" / "findings", tmp_path / "toy" / "findings")
    text = pages.write_toy_gates("book", tmp_path).read_text()
    table = gates_table(load_snapshot(tmp_path / "toy" / "findings"))
    for name, row in table.iterrows():
        assert f"{pages.GATE_WORDS[name]} {row['rate']} (95% CI {row['95% CI']}; required {row['required']}): " \
               f"**{row['result']}**" in text
    gates = json.loads((tmp_path / "toy" / "findings" / "gates.json").read_text())
    gates["gates"]["singles"]["rate"] = 0.5  # a failing gate reads FAIL on the landing page too
    (tmp_path / "toy" / "findings" / "gates.json").write_text(json.dumps(gates))
    assert "single concepts recognised 50.0%" in pages.write_toy_gates("book", tmp_path).read_text()
    assert "**FAIL**" in pages.write_toy_gates("book", tmp_path).read_text()
    shutil.rmtree(tmp_path / "toy")
    assert "No quality gates are recorded yet" in pages.write_toy_gates("book", tmp_path).read_text()
