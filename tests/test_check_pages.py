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
