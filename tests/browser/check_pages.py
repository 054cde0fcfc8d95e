"""Open every page of a built book in headless Chromium and check what a reader sees.

    python tests/browser/check_pages.py _build/html [--screenshots _build/screenshots]

Per page: every Markdown table rendered (no raw "| --- |" rows in the text), math typeset
(MathJax output present wherever the source has math, no raw ``\\(`` or ``$$``), every image
loaded (naturalWidth > 0), no Python reprs in the prose or the outputs (numpy scalars, dicts,
paths, a tuple or list standing alone as a line or a table cell, a list printed after a plural
("step(s) [1]") or after a word when it has three or more numbers; code cells themselves are not
prose, and a two-number list "[0, 1]" is read as an interval, a one-number "[3]" after a singular as
the book's "default in brackets"), no command-line option turned into a dash, no table cell cut off
with "...", no horizontal overflow (neither the page, nor a code block, nor a table cut off at book
width). Also, on what a reader sees (prose and the outputs of code cells):

- *values that are not values*: "NaN", "nan", "NaT", "<NA>", "layer none" / "layer None",
  ": None" (not ": None of"), and a table cell or output line that is only "None", "null" or
  "inf" (in a plain-text table, a column set off by two spaces or more); English ("none of the",
  "a parameter left at None") passes;
- *skip text inside a sentence*: a skip message ("not run: …", "not applicable: …", "not
  applicable in this world: …", the wordings of ``dvdlib``) may stand alone — at the start of a
  line or a table cell, or after a label's colon, a dash or a slash ("memorized: not run: …",
  "… — not applicable: …") or a plain-text table's column gap of two spaces or more — but not
  follow a word, a comma, a semicolon or a bracket and at most one space ("the memorized half was
  not run: …"), nor appear quoted as a Python string ("'not run: …'");
- *tables with no rows*: a rendered table with a header row and no body rows, or pandas'
  "Empty DataFrame" text;
- *images that show nothing*: read with PIL from the file the page loads, an image whose pixels
  are ≥ 99% within 24 (of 255, any channel) of its most common colour, or one that shows only
  text, as ``dvdlib.plots.unavailable`` draws it (no run of drawn pixels longer than 5% of the
  width in any row nor 20% of the height in any column: a plot has axes, bars or cells, a grid of
  images has pictures).

Across pages, once all are read: facts that two pages state differently (`FACTS`: the toy model's
quality gates on the landing page and in chapter 09, the fine-tune recipe on the methods page and
in chapter 03, which chapter is "the last chapter" against the table of contents), each reported
once with a page for each value.

A screenshot of each page is written. Exit status 1 and one line per problem when anything fails.

Chromium and ChromeDriver come from Debian's packages (``chromium``, ``chromium-driver``;
``.ci/run`` installs them when missing); Selenium drives them. The network is not needed: the
pages are opened as files, and the browser is started with its background networking off.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path

#: Text a rendered page never shows: raw Markdown tables, raw math, Python reprs, a command-line
#: option whose "--" became a dash ("–jobs": Sphinx's smart quotes at work on text outside code).
#: The text is the page's innerText: a table's cells are separated by tabs and its rows by newlines,
#: so ``(?:^|\t)…(?=\t|$)`` is "a whole table cell or a whole line".
PATTERNS = {
    "raw table": re.compile(r"^\s*\|.*\|\s*$|\|\s*:?-{3,}:?\s*\||\|\s*—\s*\|", re.M),
    "raw math": re.compile(r"\\\(|\\\)|\\\[|\$\$|\\frac|\\mathrm|\\dfrac"),
    "python repr": re.compile(
        r"np\.(?:int|float|bool)\d*\(|array\(\[|\{'[^']*': |\[np\.|dtype=|(?:Posix|Windows|Pure\w*)Path\("
        r"|(?:^|\t)[ ]*\(-?\d+(?:\.\d+)?(?:, -?\d+(?:\.\d+)?)+,?\)[ ]*(?=\t|$)"  # a tuple standing alone
        r"|(?:^|\t)[ ]*\[\d+(?:, \d+){2,}\][ ]*(?=\t|$)|(?:^|\t)[ ]*\[\d+\][ ]*(?=\t|$)"  # a list standing alone
        r"|(?:\(s\)|[a-z]s) \[\d+(?:, \d+)*\]"  # a plural followed by a list: "step(s) [1]", "seeds [1, 2]"
        r"|[A-Za-z] \[\d+(?:, \d+){2,}\]", re.M),  # a word followed by a list of three or more numbers
    "not a value": re.compile(
        r"\bNaN\b|\bnan\b|\bNaT\b|<NA>|\blayers? (?:[Nn]one|nan|NaN)\b(?! of)|: None\b(?! of)"
        r"|(?:^|\t| {2,})(?:None|null|inf|-inf)[ ]*(?=\t| {2,}|$)", re.M),
    "skip message inside a sentence": re.compile(
        r"(?:[^\W_]|[,;)(])[ ]?\bnot (?:run|applicable)(?: in this world)?:|'not (?:run|applicable)\b"),
    "table with no rows": re.compile(r"Empty DataFrame|^Index: \[\]$", re.M),
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
  .map(i => ({src: i.getAttribute('src'), url: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}));
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
const headerOnly = [...main.querySelectorAll('table')].filter(t => !t.closest('.cell_input'))
  .filter(t => t.tHead && t.tHead.rows.length && [...t.tBodies].every(b => b.rows.length === 0))
  .map(t => t.innerText.trim().split('\\n')[0].slice(0, 80));
const h1 = main.querySelector('h1');
const title = h1 ? h1.innerText.replace(/[#¶]\\s*$/, '').trim() : document.title;
const toc = [...document.querySelectorAll('.bd-sidebar li.toctree-l1 > a')].map(a => {
  let caption = a.closest('ul'); caption = caption && caption.previousElementSibling;
  return {caption: caption && caption.classList.contains('caption') ? caption.innerText.trim() : '',
          title: a.innerText.trim(), href: a.href}; });
return {text, images, mathSource, mathOut, pre, overflow, cut, wideTables, headerOnly, title, toc,
        url: location.href};
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


#: An image "shows nothing" when this share of its pixels lie within `NEAR` (largest difference of
#: one channel, 0–255) of its most common colour (transparency composed on white first).
ONE_COLOUR, NEAR = 0.99, 24
#: A figure "shows only text" (`dvdlib.plots.unavailable`: a sentence drawn where a plot would be)
#: when no row of its drawn pixels runs longer than this share of its width and no column longer
#: than `TEXT_ONLY_TALL` of its height: a plot has axes, bars, cells or images, text has glyphs only.
TEXT_ONLY_WIDE, TEXT_ONLY_TALL = 0.05, 0.2


def _longest_run(mask) -> int:
    """The longest run of True along the rows of a 2-D boolean array."""
    import numpy as np

    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    return int((ends[1] - starts[1]).max()) if starts[1].size else 0


@functools.lru_cache(maxsize=None)
def image_problem(url: str) -> str | None:
    """Why an image the page loads shows nothing (one colour; only text), or None: read with PIL
    from its ``file://`` path or ``data:`` URI. Other addresses and formats PIL cannot read (SVG)
    are not judged."""
    import io
    from base64 import b64decode
    from urllib.parse import unquote, urlparse
    from urllib.request import url2pathname

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if url.startswith("data:"):
        head, _, body = url.partition(",")
        source = io.BytesIO(b64decode(body) if head.endswith(";base64") else unquote(body).encode())
    elif url.startswith("file:"):
        source = Path(url2pathname(unquote(urlparse(url).path)))
        if not source.is_file():
            return None
    else:
        return None
    try:
        with Image.open(source) as image:
            image = image.convert("RGBA")
    except (UnidentifiedImageError, OSError):
        return None
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    pixels = np.asarray(Image.alpha_composite(white, image).convert("RGB"), dtype=np.int16)
    wide = pixels.astype(np.int32)
    packed = (wide[..., 0] << 16) | (wide[..., 1] << 8) | wide[..., 2]
    values, counts = np.unique(packed, return_counts=True)
    common = values[counts.argmax()]
    colour = np.array([(common >> 16) & 255, (common >> 8) & 255, common & 255], dtype=np.int16)
    drawn = np.abs(pixels - colour).max(axis=2) > NEAR
    share = 1 - drawn.mean()
    height, width = drawn.shape
    if share >= ONE_COLOUR:
        return f"{share:.1%} of its pixels are one colour (#{int(common):06x})"
    if _longest_run(drawn) < TEXT_ONLY_WIDE * width and _longest_run(drawn.T) < TEXT_ONLY_TALL * height:
        return "it shows only text (no axes, marks or pictures): a sentence drawn where a figure would be"
    return None


def problems(page: dict) -> list[str]:
    """What is wrong on one page (the dict `CHECKS_JS` returns)."""
    found = []
    for name, pattern in PATTERNS.items():
        hits = list(pattern.finditer(page["text"]))
        if hits:
            hit = hits[0]
            line = page["text"][max(0, hit.start() - 40):hit.end() + 40].replace("\n", " ⏎ ").replace("\t", " ⇥ ")
            found.append(f"{name}: …{line}…" + (f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""))
    found += [f"image not loaded: {i['src']}" for i in page["images"] if not i["ok"]]
    found += [f"image shows nothing: {i['src']}: {why}" for i in page["images"]
              if i["ok"] and i.get("url") and (why := image_problem(i["url"]))]
    found += [f"table with a header and no rows: {first!r}" for first in page.get("headerOnly", [])]
    if page["mathSource"] and page["mathOut"] < page["mathSource"]:
        found.append(f"math not typeset: {page['mathSource'] - page['mathOut']} of {page['mathSource']} formulas")
    found += [f"code line cut off at book width: {line[:80]!r}" for line in page["pre"]]
    found += [f"table cell cut off (pandas' column width): {cell[-80:]!r}" for cell in page.get("cut", [])]
    found += [f"table scrolls sideways at book width: {first!r}" for first in page.get("wideTables", [])]
    if page["overflow"]:
        found.append("the page scrolls sideways at book width")
    return found


#: The toy model's quality gates as the landing page words them (`dvdlib.pages.GATE_WORDS`, inverted:
#: chapter 09's table names them by these keys).
GATE_NAMES = {"single concepts recognised": "singles", "two objects composed": "composition",
              "the text changes the image": "conditioning"}

#: Facts that more than one page states, each in a fixed form: a name and the regexes that find it in
#: a page's text (one, or a tuple of the forms it takes). A match's group ``key`` (if any) says which
#: instance of the fact it is (which gate); every other named group that matched is part of the
#: value. Adding a fact is one entry here (and, only where its wording differs between pages, one
#: in `FACT_NORMALISE`).
FACTS = {
    # the landing page: "single concepts recognised 92.0% (95% CI [84.8%, 96.5%]; required ≥ 90%): pass";
    # chapter 09's gates table, one row per gate: "singles ⇥ 92 ⇥ 100 ⇥ 92.0% ⇥ [84.8%, 96.5%] ⇥ ≥ 90% ⇥ pass"
    # (a row of a table indexed by guidance scale as well starts with that index)
    "toy quality gate": (
        re.compile(r"(?P<key>[a-z][a-z ]*[a-z]) [\d.]+% \(95% CI [^)]*\): (?P<result>pass|FAIL)\b"),
        re.compile(r"^(?:[^\t\n]*\t)?(?P<key>[a-z_]+)\t\d+\t\d+\t[\d.]+%\t[^\t\n]*\t≥ [\d.]+%\t(?P<result>pass|FAIL)[ ]*$", re.M)),
    # the methods page's recipe row and chapter 03's open choices: "learning rate 5e-6, batch 1, 400 steps"
    "fine-tune recipe": re.compile(
        r"learning\s+rate\s+(?P<lr>\d[\d.]*(?:e-?\d+)?),\s+batch\s+(?P<batch>\d+),\s+(?P<steps>\d+)\s+steps", re.I),
    # "the last chapter, What the toy world shows", "the last chapter (chapter 12)", "chapter 12, the last
    # chapter", "This is the last chapter"; the table of contents states it too (its last chapter)
    "the last chapter": (
        re.compile(r"\b[Tt]he (?:last|final) chapter,?\s+\(?(?:[Cc]hapter\s+(?P<number>\d+)|[*“\"]?(?P<title>[A-Z][^,.;:*”\")\n]+))"),
        re.compile(r"\b[Cc]hapter\s+(?P<number>\d+),?\s+(?:is\s+)?the\s+(?:last|final)\b"),
        re.compile(r"\b(?P<this>[Tt]his)(?:\s+is\s+the|,\s+the)\s+(?:last|final)\s+chapter\b")),
}


def _toc_chapters(pages: dict[str, dict]) -> list[dict]:
    """The chapters in the order of the table of contents (the sidebar's "Chapters" caption)."""
    for page in pages.values():
        chapters = [e for e in page.get("toc", []) if e.get("caption") == "Chapters"]
        if chapters:
            return chapters
    return []


def _stem(href: str) -> str:
    return href.split("#")[0].rstrip("/").rsplit("/", 1)[-1].removesuffix(".html")


def _last_chapter(groups: dict, page: dict, chapters: list[dict]) -> tuple[str | None, str]:
    """The chapter a "last chapter" phrase names, as its page's file name (``12_twin_finetunes``)."""
    stems = [_stem(c["href"]) for c in chapters]
    if groups.get("number"):
        named = [s for s in stems if s.split("_")[0].lstrip("0") == groups["number"].lstrip("0")]
        return None, named[0] if named else f"chapter {groups['number']}"
    if groups.get("title"):
        said = groups["title"].strip().lower()
        named = [s for s, c in zip(stems, chapters) if c["title"].lower().startswith(said)]
        return None, named[0] if named else groups["title"].strip()
    return None, _stem(page.get("url", "")) or page.get("title", "this page")


#: How a fact's match becomes (key, value) where the pages word it differently: ``f(groups, page,
#: chapters) -> (key, value)`` with ``groups`` the match's named groups that matched, ``page`` the
#: page's dict and ``chapters`` the table of contents' chapters. Other facts: the key as matched, the
#: value the other groups, numbers as numbers ("5e-6" is "5.00e-06").
FACT_NORMALISE = {
    "toy quality gate": lambda g, page, chapters: (GATE_NAMES.get(g["key"], g["key"]), g["result"].lower()),
    "the last chapter": _last_chapter,
}


def _as_number(text: str) -> str:
    try:
        return f"{float(text):g}"
    except ValueError:
        return " ".join(text.split())


def facts(name: str, page: dict, chapters: list[dict]) -> list[tuple[str | None, str]]:
    """Every (key, value) of fact ``name`` that ``page`` states."""
    forms = FACTS[name] if isinstance(FACTS[name], tuple) else (FACTS[name],)
    found = []
    for form in forms:
        for hit in form.finditer(page.get("text", "")):
            groups = {k: v for k, v in hit.groupdict().items() if v is not None}
            if name in FACT_NORMALISE:
                found.append(FACT_NORMALISE[name](groups, page, chapters))
            else:
                found.append((groups.pop("key", None), ", ".join(f"{k} {_as_number(v)}" for k, v in groups.items())))
    return found


def contradictions(pages: dict[str, dict]) -> list[str]:
    """Facts that two pages state differently (`FACTS`), each once, with a page for each value. Two
    pages disagree on a fact when no value one gives is among those the other gives (a page may
    state one fact for several things, e.g. chapter 09 the gates of two worlds). The table of
    contents states which chapter is the last."""
    chapters = _toc_chapters(pages)
    out = []
    for name in FACTS:
        said: dict[str | None, dict[str, dict[str, None]]] = {}  # key → page → values (ordered)
        for page_name, page in pages.items():
            for key, value in facts(name, page, chapters):
                said.setdefault(key, {}).setdefault(page_name, {})[value] = None
        if name == "the last chapter" and chapters and None in said:
            said[None]["the table of contents"] = {_stem(chapters[-1]["href"]): None}
        for key, by_page in said.items():
            names = list(by_page)
            for i, a in enumerate(names):
                b = next((b for b in names[i + 1:] if not set(by_page[a]) & set(by_page[b])), None)
                if b:
                    what = f"{name}" + (f" ({key})" if key else "")
                    out.append(f"{what}: {' / '.join(by_page[a])!r} on {a}, {' / '.join(by_page[b])!r} on {b}")
                    break
    return out


REDIRECT = re.compile(r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', re.I)


def redirect_target(page: Path) -> str | None:
    """Where a redirect-only page (like Jupyter Book's root ``index.html``) sends the reader, else None.

    Such a page navigates away as soon as it loads, so a script run on it may find no document."""
    text = page.read_text(encoding="utf-8", errors="replace")
    hit = REDIRECT.search(text)
    return hit.group(1) if hit and len(text) < 2000 else None


#: Where `check` files the facts two pages state differently (`contradictions`).
ACROSS = "across pages"


def check(html: Path, screenshots: Path | None) -> dict[str, list[str]]:
    """{page: problems} for every page of the built book under ``html``, and under `ACROSS` the
    facts that two pages state differently, read once every page is read."""
    pages = sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and p.name not in ("genindex.html", "search.html"))
    if not pages:
        raise SystemExit(f"no pages under {html}: build the book first (make book PROFILE=smoke)")
    out, redirects = {}, {p: redirect_target(p) for p in pages}
    for page, to in redirects.items():  # a redirect is not read: check where it points
        if to:
            target = (page.parent / to).resolve()
            out[str(page.relative_to(html))] = [] if target.is_file() else [f"redirects to a missing page: {target}"]
    pages, browser, read = [p for p in pages if not redirects[p]], driver(), {}
    try:
        for page in pages:
            browser.get(page.resolve().as_uri())
            wait_for_math(browser)
            read[str(page.relative_to(html))] = seen = browser.execute_script(CHECKS_JS)
            out[str(page.relative_to(html))] = problems(seen)
            if screenshots:
                target = screenshots / page.relative_to(html).with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                height = browser.execute_script("return document.documentElement.scrollHeight")
                browser.set_window_size(WIDTH, min(max(height, HEIGHT), 16000))
                browser.save_screenshot(str(target))
                browser.set_window_size(WIDTH, HEIGHT)
    finally:
        browser.quit()
    across = contradictions(read)
    if across:
        out[ACROSS] = across
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
    pages = len(results) - (ACROSS in results)
    print(f"{pages} pages checked in Chromium, {len(bad) - (ACROSS in bad)} with problems"
          + (f", {len(bad[ACROSS])} fact(s) stated differently on two pages" if ACROSS in bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
