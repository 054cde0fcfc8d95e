"""The browser check's page logic, without a browser (tests/browser/check_pages.py)."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("check_pages", Path(__file__).parent / "browser" / "check_pages.py")
check_pages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_pages)


def test_redirect_pages_are_recognised_and_real_pages_are_not(tmp_path):
    redirect = tmp_path / "index.html"
    redirect.write_text('<meta http-equiv="Refresh" content="0; url=book/index.html" />')
    page = tmp_path / "page.html"
    page.write_text('<html><head><meta http-equiv="refresh" content="0; url=x.html"></head><body>'
                    + "text " * 1000 + "</body></html>")
    assert check_pages.redirect_target(redirect) == "book/index.html"
    assert check_pages.redirect_target(page) is None  # a long page with a refresh is still read


def test_problems_names_what_a_reader_would_see():
    page = {"text": "| a | b |\n| --- | --- |\nvalue np.float64(0.5)\nrun with –jobs 2", "images": [{"src": "x.png", "ok": False}],
            "mathSource": 2, "mathOut": 1, "pre": [], "overflow": True, "cut": ["+20.8 over 3 fine-tunes; p..."],
            "wideTables": ["model hash be4c6b9979e11019524382825f0e35470f881ef5c057c6ec80bb0a44c161"]}
    found = check_pages.problems(page)
    assert any(f.startswith("raw table") for f in found) and any(f.startswith("python repr") for f in found)
    assert any(f.startswith("option's -- turned into a dash") for f in found)
    assert "image not loaded: x.png" in found and "math not typeset: 1 of 2 formulas" in found
    assert "the page scrolls sideways at book width" in found
    assert any(f.startswith("table cell cut off") for f in found)
    assert any(f.startswith("table scrolls sideways") for f in found)
    clean = {"text": "A sentence – with a dash, layers 8–10, `--jobs 2`.", "images": [], "mathSource": 0, "mathOut": 0, "pre": [], "overflow": False}
    assert check_pages.problems(clean) == []


def page(text="", **more):
    """A page as `CHECKS_JS` returns it, clean but for ``text`` and ``more``."""
    return {"text": text, "images": [], "mathSource": 0, "mathOut": 0, "pre": [], "overflow": False, **more}


def named(found, name):
    return [f for f in found if f.startswith(name)]


def test_skip_text_inside_a_sentence_fails_and_a_skip_standing_alone_passes():
    for sentence in ("The memorized half was not run: profile `toy` has no memorized prompts (no `memorized` prompt set).",
                     "Three slots, not run: this world has no three-concept prompts.",
                     "The share (not applicable: no memorized prompts) is left out.",
                     "The peak layer is not applicable in this world: its captions name two concepts.",
                     "'not run: profile `toy` has no memorized prompts'"):
        assert named(check_pages.problems(page(sentence)), "skip message inside a sentence"), sentence
    for alone in ("not run: this world has no three-concept prompts",
                  "memorized: not run: profile `toy` has no memorized prompts (no `memorized` prompt set)",
                  "claim\tpaper\tthis run\nsingle head (memorized)\t392/500\tnot run: profile `toy` has no memorized prompts",
                  "0.00 (n = 24 vs 12 prompts) — not applicable: the measurement applies a threshold on Stable Diffusion's scale",
                  "reproduced / not reproduced / inconclusive / underpowered / not applicable: 2 / 0 / 23 / 0 / 1 of 26",
                  "where token suppression cannot run: SD3 and Flux's joint attention",
                  "12 chapter(s): 12 ok, 0 not applicable, 0 failed, 0 not run.",
                  "multi-head: memorized outcome shares      not run: profile `toy` has no memorized prompts"):
        assert check_pages.problems(page(alone)) == [], alone


def test_values_that_are_not_values_fail_and_english_passes():
    for text in ("the DvD mitigation peaks at layer None", "the peak is at layer none", "mean DvD: nan over 3 prompts",
                 "ρ = NaN", "peak token: None", "first − third\tpresent\t0\t6\tNaN", "resolution\tNone\nseed\t0", "resolution        None\nseed              0",
                 "None", "start\tNaT", "a\t<NA>"):
        assert named(check_pages.problems(page(text)), "not a value"), text
    for text in ("None of the prompts collapsed, and none of the heads mitigated anything.",
                 "Result: None of the ten seeds reproduces the image.",
                 "A parameter left at None in a chapter keeps the profile's value.",
                 "no layer (nothing mitigated)", "Nancy's nanometre scale", "layers none of which"):
        assert check_pages.problems(page(text)) == [], text


def test_raw_reprs_fail_and_intervals_and_defaults_in_brackets_pass():
    for text in ("images written to PosixPath('/tmp/store/figures')", "WindowsPath('C:/store')",
                 "(1, 0)", "layer\thead\n1\t(1, 0)\t0.5", "factor 0 at step(s) [1]. This is a slice",
                 "the seeds [1825, 410] of the profile", "breeds [1, 2, 3, 5, 10] in turn", "[1, 2, 3]"):
        assert named(check_pages.problems(page(text)), "python repr"), text
    for text in ("95% CI [0, 1], null 0.333", "the 95% interval [0, 1] includes the null",
                 "+0.00 [+0.00, +0.00] over 9 pairs", "unchanged if the mean DvD is still ≥ τ [48]; else mitigated if c ≥ [3]",
                 "a threshold [0.5], corrupted when blank", "lies above control_min_lower [0]: a mitigation",
                 "seeds (1825, 410 and 4507) in turn", "rate\t[84.8%, 96.5%]\tpass"):
        assert check_pages.problems(page(text)) == [], text


def test_tables_with_no_rows_fail():
    found = check_pages.problems(page("Empty DataFrame\nColumns: [layer, rate]\nIndex: []", headerOnly=["layer\trate"]))
    assert named(found, "table with no rows") and "table with a header and no rows: 'layer\\trate'" in found
    assert check_pages.problems(page("layer\trate\n1\t0.5", headerOnly=[])) == []


def png(path, draw):
    """Save a figure drawn by ``draw(ax)`` (matplotlib, Agg) to ``path``; its file:// address."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    draw(ax)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path.resolve().as_uri()


def test_images_that_show_nothing_fail_and_real_plots_pass(tmp_path):
    import numpy as np
    from PIL import Image

    from dvdlib import plots

    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), "white").save(blank)
    speckled = np.full((300, 400, 3), 250, np.uint8)
    speckled[::50, ::50] = 0  # a few dots: still one colour
    Image.fromarray(speckled).save(tmp_path / "speckled.png")
    green = tmp_path / "green.png"  # one colour that is not white (a colour whose channels pass 127)
    Image.new("RGB", (400, 300), (30, 200, 140)).save(green)
    transparent = tmp_path / "transparent.png"
    Image.new("RGBA", (400, 300), (0, 0, 0, 0)).save(transparent)
    fig = plots.unavailable("this world has no three-concept prompts: the factorial does not run here, because "
                            "its captions name two concepts, never three")
    unavailable = plots.save(fig, "unavailable", tmp_path)
    empty_axes = png(tmp_path / "empty_axes.png", lambda ax: ax.set_axis_off())
    line = png(tmp_path / "line.png", lambda ax: ax.plot([1, 2, 3, 5, 10], [3, 1, 4, 1, 5], "o-"))
    bars = png(tmp_path / "bars.png", lambda ax: ax.bar(["rigid", "diverse"], [40, 12]))
    grid = tmp_path / "grid.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 256, 3), dtype=np.uint8)).save(grid)

    def image(url):
        return {"src": url.rsplit("/", 1)[-1], "url": url, "ok": True}

    for url in (blank.as_uri(), (tmp_path / "speckled.png").as_uri(), green.as_uri(), transparent.as_uri(), empty_axes):
        found = check_pages.problems(page(images=[image(url)]))
        assert len(found) == 1 and "one colour" in found[0], (url, found)
    found = check_pages.problems(page(images=[image(unavailable.resolve().as_uri())]))
    assert len(found) == 1 and "only text" in found[0], found
    assert check_pages.problems(page(images=[image(u) for u in (line, bars, grid.as_uri())])) == []
    # a data: URI is read too; an address that is not a file is not judged
    import base64
    data = "data:image/png;base64," + base64.b64encode(blank.read_bytes()).decode()
    assert "one colour" in check_pages.image_problem(data)
    assert "#1ec88c" in check_pages.image_problem(green.as_uri())
    assert check_pages.image_problem("https://example.org/x.png") is None


CHAPTERS = [{"caption": "Chapters", "title": t, "href": f"file:///b/book/{s}.html"} for s, t in
            (("08_detection_replacement", "Detection and replacement"),
             ("09_toy_findings", "What the toy world shows, claim by claim"),
             ("12_twin_finetunes", "Twin fine-tunes: dominance made to order"))]


def book(**texts):
    """Pages named ``<name>.html`` with the given texts, each with the table of contents."""
    return {f"book/{name}.html": page(text, toc=CHAPTERS, url=f"file:///b/book/{name}.html", title=name)
            for name, text in texts.items()}


LANDING = ("Its quality gates, read from toy/findings/gates.json as chapter 09 reads them: single concepts recognised 92.0% "
           "(95% CI [84.8%, 96.5%]; required ≥ 90%): {singles}; two objects composed 81.7% (95% CI [73.6%, 88.1%]; "
           "required ≥ 60%): pass; the text changes the image 100.0% (95% CI [99.2%, 100.0%]; required ≥ 95%): pass.")
GATES = ("\thits\tn\trate\t95% CI\trequired\tresult\ngate\t\t\t\t\t\t\n"
         "singles\t92\t100\t92.0%\t[84.8%, 96.5%]\t≥ 90%\t{singles}\n"
         "composition\t98\t120\t81.7%\t[73.6%, 88.1%]\t≥ 60%\tpass\n"
         "conditioning\t450\t450\t100.0%\t[99.2%, 100.0%]\t≥ 95%\tpass\n"
         "World 2's gates:\n\t\thits\tn\trate\t95% CI\trequired\tresult\nguidance\tgate\t\t\t\t\t\t\n"
         "2\tsingles\t55\t105\t52.4%\t[42.4%, 62.2%]\t≥ 90%\tFAIL\nconditioning\t1050\t1050\t100.0%\t[99.6%, 100.0%]\t≥ 95%\tpass\n")


def test_gate_names_match_the_landing_pages_words():
    from dvdlib.pages import GATE_WORDS

    assert check_pages.GATE_NAMES == {words: name for name, words in GATE_WORDS.items()}


def test_a_gate_passing_on_the_landing_page_and_failing_in_chapter_09_is_a_contradiction():
    agree = book(index=LANDING.format(singles="pass"), **{"09_toy_findings": GATES.format(singles="pass")})
    assert check_pages.contradictions(agree) == []  # world 2's failing gates are another model's
    disagree = book(index=LANDING.format(singles="pass"), **{"09_toy_findings": GATES.format(singles="FAIL")})
    found = check_pages.contradictions(disagree)
    assert len(found) == 1 and found[0].startswith("toy quality gate (singles):"), found
    assert "book/index.html" in found[0] and "book/09_toy_findings.html" in found[0]


def test_the_fine_tune_recipe_stated_differently_on_two_pages_is_a_contradiction():
    methods = "| recipe | the DreamBooth recipe: learning rate 5e-6, batch 1, 400 steps, text encoder and VAE frozen |"
    for chapter, same in (("Open choices: learning\nrate 5e-6, batch 1, 400 steps (the recipe's 400–800)", True),
                          ("Open choices: learning rate 5.0e-06, batch 1, 400 steps", True),
                          ("Open choices: learning rate 1e-5, batch 1, 400 steps", False),
                          ("Open choices: learning rate 5e-6, batch 2, 800 steps", False)):
        found = check_pages.contradictions(book(methods=methods, **{"03_diversity_causal": chapter}))
        assert (found == []) == same, (chapter, found)
    found = check_pages.contradictions(book(methods=methods, **{"03_diversity_causal": "learning rate 1e-5, batch 1, 400 steps"}))
    assert found == ["fine-tune recipe: 'lr 5e-06, batch 1, steps 400' on book/methods.html, "
                     "'lr 1e-05, batch 1, steps 400' on book/03_diversity_causal.html"]


def test_the_last_chapter_must_be_the_last_in_the_table_of_contents():
    for text, same in (("… and the last chapter, What the toy world shows, claim by claim, says what reproduces", False),
                       ("chapter 09, the last chapter, says what reproduces", False),
                       ("the last chapter (chapter 12) makes a concept dominant to order", True),
                       ("and the last chapter, Twin fine-tunes, makes a concept dominant to order", True),
                       ("… and chapter 09, What the toy world shows, claim by claim, says what reproduces", True)):
        found = check_pages.contradictions(book(index=text))
        assert (found == []) == same, (text, found)
    found = check_pages.contradictions(book(index="the last chapter, What the toy world shows"))
    assert found == ["the last chapter: '09_toy_findings' on book/index.html, '12_twin_finetunes' on the table of contents"]
    assert check_pages.contradictions(book(**{"09_toy_findings": "This is the last chapter of the book."}))
    assert check_pages.contradictions(book(**{"12_twin_finetunes": "This is the last chapter of the book."})) == []


def test_the_page_script_finds_header_only_tables_and_image_files_in_chromium(tmp_path):
    """The rules that need the DOM, on a tiny page (skipped where Chromium is not installed)."""
    import shutil

    import pytest
    from PIL import Image

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("no Chromium/ChromeDriver here (.ci/run installs them)")
    Image.new("RGB", (40, 30), "white").save(tmp_path / "blank.png")
    (tmp_path / "page.html").write_text(
        "<html><body><main><h1>A page</h1>"
        "<table><thead><tr><th>layer</th><th>rate</th></tr></thead><tbody></tbody></table>"
        "<table><thead><tr><th>seed</th><th>DvD</th></tr></thead><tbody><tr><td>1825</td><td>40</td></tr></tbody></table>"
        "<div class='cell_output'><table><thead><tr><th></th><th>DvD</th></tr></thead><tbody></tbody></table></div>"
        "<img src='blank.png'></main></body></html>", encoding="utf-8")
    browser = check_pages.driver()
    try:
        browser.get((tmp_path / "page.html").as_uri())
        seen = browser.execute_script(check_pages.CHECKS_JS)
    finally:
        browser.quit()
    assert seen["headerOnly"] == ["layer\trate", "DvD"] and seen["title"] == "A page"
    found = check_pages.problems(seen)
    assert "table with a header and no rows: 'layer\\trate'" in found
    assert any(f.startswith("image shows nothing: blank.png") for f in found), found
