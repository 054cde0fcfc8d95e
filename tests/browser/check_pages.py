"""Open every page of a built book in headless Chromium and check what a reader sees.

    python tests/browser/check_pages.py _build/html [--screenshots _build/screenshots]

Per page: every Markdown table rendered (no raw "| --- |" rows in the text), math typeset
(MathJax output present wherever the source has math, no raw ``\\(`` or ``$$``), every image
loaded (naturalWidth > 0), no Python reprs in the prose or the outputs (numpy scalars, dicts,
lists of numbers; code cells themselves are not prose), no command-line option turned into a dash, no table cell cut off with "...", no horizontal overflow (neither the page, nor a code block, nor a table cut off at book width). A
screenshot of each page is written. Exit status 1 and one line per problem when anything fails.

Chromium and ChromeDriver come from Debian's packages (``chromium``, ``chromium-driver``;
``.ci/run`` installs them when missing); Selenium drives them. The network is not needed: the
pages are opened as files, and the browser is started with its background networking off.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

#: Text a rendered page never shows: raw Markdown tables, raw math, Python reprs, a command-line
#: option whose "--" became a dash ("–jobs": Sphinx's smart quotes at work on text outside code).
PATTERNS = {
    "raw table": re.compile(r"^\s*\|.*\|\s*$|\|\s*:?-{3,}:?\s*\||\|\s*—\s*\|", re.M),
    "raw math": re.compile(r"\\\(|\\\)|\\\[|\$\$|\\frac|\\mathrm|\\dfrac"),
    "python repr": re.compile(r"np\.(?:int|float|bool)\d*\(|array\(\[|\{'[^']*': |\[np\.|dtype="),
    "option's -- turned into a dash": re.compile(r"(?:^|[\s(])[–—][a-z]{2,}", re.M),
}
#: Book width the pages are checked at (CSS pixels).
WIDTH, HEIGHT = 1280, 900
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}")

CHECKS_JS = """
const main = document.querySelector('main') || document.body;
const prose = main.cloneNode(true);  // what a reader reads: prose and outputs, not the code itself
prose.querySelectorAll('.cell_input, .cell .highlight:not(.output *)').forEach(e => e.remove());
document.body.appendChild(prose); prose.style.position = 'absolute'; prose.style.left = '-99999px';
const text = prose.innerText; prose.remove();
const images = [...document.images].filter(i => !i.closest('.headerbtn, .navbar-brand'))
  .map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}));
const mathSource = document.querySelectorAll('.math, span.math, div.math').length;
const mathOut = document.querySelectorAll('mjx-container, .katex').length;
const pre = [...main.querySelectorAll('pre')].filter(p => p.scrollWidth > p.clientWidth + 1)
  .map(p => p.innerText.split('\\n').find(l => l.length > 0) || '');
const overflow = document.documentElement.scrollWidth > window.innerWidth + 1;
const scrolls = e => { for (; e && e !== main; e = e.parentElement) {
  if (e.scrollWidth > e.clientWidth + 1 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)) return true; }
  return false; };
const wideTables = [...main.querySelectorAll('table')].filter(scrolls)
  .map(t => t.innerText.trim().split('\\n')[0].slice(0, 80));
const cut = [...main.querySelectorAll('td, th')].map(c => c.innerText.trim()).filter(t => t.endsWith('...'));
return {text, images, mathSource, mathOut, pre, overflow, cut, wideTables};
"""


def driver(chromium: str = "/usr/bin/chromium", chromedriver: str = "/usr/bin/chromedriver"):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def wait_for_math(browser, timeout: float = 30.0) -> None:
    """Wait until MathJax, if the page started it, has typeset the page."""
    browser.set_script_timeout(timeout)
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.startup && MathJax.startup.promise) MathJax.startup.promise.then(() => done(true));"
        "else done(false);")


def problems(page: dict) -> list[str]:
    """What is wrong on one page (the dict `CHECKS_JS` returns)."""
    found = []
    for name, pattern in PATTERNS.items():
        hit = pattern.search(page["text"])
        if hit:
            line = page["text"][max(0, hit.start() - 40):hit.end() + 40].replace("\n", " ⏎ ")
            found.append(f"{name}: …{line}…")
    found += [f"image not loaded: {i['src']}" for i in page["images"] if not i["ok"]]
    if page["mathSource"] and page["mathOut"] < page["mathSource"]:
        found.append(f"math not typeset: {page['mathSource'] - page['mathOut']} of {page['mathSource']} formulas")
    found += [f"code line cut off at book width: {line[:80]!r}" for line in page["pre"]]
    found += [f"table cell cut off (pandas' column width): {cell[-80:]!r}" for cell in page.get("cut", [])]
    found += [f"table scrolls sideways at book width: {first!r}" for first in page.get("wideTables", [])]
    if page["overflow"]:
        found.append("the page scrolls sideways at book width")
    return found


REDIRECT = re.compile(r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', re.I)


def redirect_target(page: Path) -> str | None:
    """Where a redirect-only page (like Jupyter Book's root ``index.html``) sends the reader, else None.

    Such a page navigates away as soon as it loads, so a script run on it may find no document."""
    text = page.read_text(encoding="utf-8", errors="replace")
    hit = REDIRECT.search(text)
    return hit.group(1) if hit and len(text) < 2000 else None


def check(html: Path, screenshots: Path | None) -> dict[str, list[str]]:
    """{page: problems} for every page of the built book under ``html``."""
    pages = sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and p.name not in ("genindex.html", "search.html"))
    if not pages:
        raise SystemExit(f"no pages under {html}: build the book first (make book PROFILE=smoke)")
    out, redirects = {}, {p: redirect_target(p) for p in pages}
    for page, to in redirects.items():  # a redirect is not read: check where it points
        if to:
            target = (page.parent / to).resolve()
            out[str(page.relative_to(html))] = [] if target.is_file() else [f"redirects to a missing page: {target}"]
    pages, browser = [p for p in pages if not redirects[p]], driver()
    try:
        for page in pages:
            browser.get(page.resolve().as_uri())
            wait_for_math(browser)
            out[str(page.relative_to(html))] = problems(browser.execute_script(CHECKS_JS))
            if screenshots:
                target = screenshots / page.relative_to(html).with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                height = browser.execute_script("return document.documentElement.scrollHeight")
                browser.set_window_size(WIDTH, min(max(height, HEIGHT), 16000))
                browser.save_screenshot(str(target))
                browser.set_window_size(WIDTH, HEIGHT)
    finally:
        browser.quit()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the built book's HTML folder (e.g. _build/html)")
    parser.add_argument("--screenshots", type=Path, default=None, help="write a PNG of each page here")
    args = parser.parse_args(argv)
    results = check(args.html, args.screenshots)
    bad = {page: found for page, found in results.items() if found}
    for page, found in bad.items():
        for problem in found:
            print(f"{page}: {problem}")
    print(f"{len(results)} pages checked in Chromium, {len(bad)} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
