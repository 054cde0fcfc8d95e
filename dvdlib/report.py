"""Paper-vs-this-run results of a chapter: one table, one JSON file, glued numbers.

Every headline number a chapter computes goes through `Report.add`, which keeps it beside the
paper's number, glues it for the prose (``{glue:text}`key```) and writes
``<out_dir>/results/<chapter>.json`` atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .store import atomic_write, plain


class Report:
    """The results of one chapter under one profile."""

    def __init__(self, chapter: str, profile, out_dir: str | Path = "book"):
        self.chapter, self.profile = chapter, profile
        self.path = Path(out_dir) / "results" / f"{chapter}.json"
        self.rows: list[dict] = []
        self.why: str | None = None  # set by `not_applicable`

    def add(self, key: str, quantity: str, paper, ours, glue: bool = True, **numbers) -> None:
        """Record one number of this run (``ours``) beside the paper's (``paper``).

        Optional structured fields (``value=``, ``n=``, ``ci=``, ``p=``, ``test=`` …) are kept in
        the row as JSON numbers for `dvdlib.findings`, which reads claims and their uncertainty
        from the results JSON; the printed table shows ``ours`` only."""
        self.rows = [r for r in self.rows if r["key"] != key]
        row = {"key": key, "quantity": quantity, "paper": str(paper), "this run": str(ours)}
        row.update({name: plain(v) for name, v in numbers.items() if v is not None})
        self.rows.append(row)
        if glue:
            from myst_nb import glue as myst_glue

            myst_glue(key, str(ours), display=False)

    def values(self) -> dict[str, str]:
        """Results key → this run's text, as recorded so far (what a chapter's closing paragraph reads)."""
        return {r["key"]: r["this run"] for r in self.rows}

    def not_applicable(self, why: str) -> None:
        """Record that this chapter does not apply to the profile's world, and why (one sentence).

        The results JSON then says ``"applies": false, "why": ...`` at its top level (no rows), and
        the status page (`dvdlib.pages.write_status_page`) marks the chapter "not applicable in this
        world" instead of "ok". A chapter that applies never calls it: its JSON has neither field."""
        if not why:
            raise ValueError("a chapter that does not apply must say why")
        self.why, self.rows = str(why), []

    @property
    def applies(self) -> bool:
        """False once `not_applicable` was called."""
        return self.why is None

    def table(self) -> pd.DataFrame:
        """Paper vs this run, one row per quantity (none: an empty table of those columns)."""
        if not self.rows:
            return pd.DataFrame(columns=["paper", "this run"]).rename_axis("quantity")
        return pd.DataFrame(self.rows).set_index("quantity")[["paper", "this run"]]

    def save(self) -> Path:
        """Write the results JSON (with the profile that produced them)."""
        body = {"chapter": self.chapter, "profile": self.profile.asdict(), "results": self.rows}
        if not self.applies:
            body.update({"applies": False, "why": self.why})
        return atomic_write(self.path, lambda p: p.write_text(json.dumps(body, indent=1, ensure_ascii=False)))


def ranges(numbers) -> str:
    """Layer numbers as compact ranges: [5, 6, 7, 9] → "5–7, 9"; empty → "none"."""
    numbers, parts = sorted(set(int(n) for n in numbers)), []
    for n in numbers:
        if parts and n == parts[-1][1] + 1:
            parts[-1][1] = n
        else:
            parts.append([n, n])
    return ", ".join(f"{a}–{b}" if b > a else f"{a}" for a, b in parts) or "none"


def listing(values, fmt: str = "{:.1f}", name=str) -> str:
    """A mapping (or Series) in one line: "a: 1.0; b: 2.0" (``name`` writes each key)."""
    return "; ".join(f"{name(k)}: {fmt.format(v)}" for k, v in values.items())


def counts(values) -> str:
    """How many of each value, for prose: "2 artist, 2 landmark, 2 character" (first-seen order)."""
    import pandas as pd

    return ", ".join(f"{n} {value}" for value, n in pd.Series(list(values)).value_counts(sort=False).items())


def percent(x, digits: int = 0, missing: str = "—") -> str:
    """A share as a percentage: "93%" (``digits`` decimals: "93.4%"), or ``missing`` where there
    is none (None or NaN). The one percent formatter of the book's tables and reports."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return missing
    return f"{x:.{digits}%}"


def number(x: float) -> str:
    """A number as a reader reads it: three significant digits (0.022, 25.4), four from 100 (404.1,
    100), thousands grouped from 1,000 (18,319), an exponent only below 0.0001 (2.00e-06). The
    book's tables show every float this way (`dvdlib.setup`)."""
    a = abs(x)
    if a == 0 or not math.isfinite(x):
        return f"{x:g}"
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.4g}"
    return f"{x:.3g}" if a >= 1e-4 else f"{x:.2e}"


def glue(key: str, text: str) -> None:
    """Glue ``text``, a sentence or paragraph in Markdown, as ``key`` for the page's prose: the page
    writes ``{glue:md}`key``` (inline Markdown, in the prose's weight; myst-nb shows ``{glue:text}``
    in bold, as it should a number). Nothing outside a notebook."""
    try:
        from IPython.display import Markdown
        from myst_nb import glue as myst_glue
    except ImportError:  # pragma: no cover - the book's environment has it
        return
    myst_glue(key, Markdown(text), display=False)


def same_rows(table: pd.DataFrame, rows: str, say: str | None = None) -> str | None:
    """One sentence for a table whose rows all hold the same values (two rows or more; a missing
    value equals a missing value), else None: a grid of identical rows tells the reader no more than
    the sentence. ``rows`` names what a row is, plural ("configurations of the grid"); the default
    sentence is "All 30 configurations of the grid read: benchmark 100, control 100, gap 0."
    ``say``, where given, is the sentence as a format string over ``n`` (the rows) and the columns
    (a tuple of column labels joined by a space, e.g. ``{DvD rate}``), each value written by `number`."""
    if len(table) < 2 or len(table.drop_duplicates()) > 1:
        return None
    first = table.iloc[0]
    words = {" ".join(map(str, k)) if isinstance(k, tuple) else str(k): _word(v) for k, v in first.items()}
    if say is not None:
        return say.format(n=len(table), rows=rows, **words)
    return f"All {len(table)} {rows} read: " + ", ".join(f"{k} {v}" for k, v in words.items()) + "."


def rows_or_sentence(table: pd.DataFrame, rows: str, say: str | None = None, shown=None, empty: str | None = None):
    """What a chapter displays for ``table``: the sentence of `same_rows` (as Markdown) where every
    row holds the same values, ``empty`` (as Markdown) where it has no row and ``empty`` is given,
    else ``shown`` (e.g. the table's Styler) or the table itself."""
    sentence = empty if empty is not None and not len(table) else same_rows(table, rows, say)
    if sentence is None:
        return table if shown is None else shown
    from IPython.display import Markdown

    return Markdown(sentence)


def _word(value) -> str:
    """A table cell in a sentence: a float by `number` (a missing one as "no value"), else as it reads."""
    import numpy as np

    if pd.api.types.is_scalar(value) and pd.isna(value):
        return "no value"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, float, np.number)):
        return f"{int(value)}" if float(value).is_integer() and abs(value) < 1000 else number(float(value))
    return str(value)
