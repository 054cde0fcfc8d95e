"""Paper-vs-this-run results of a chapter: one table, one JSON file, glued numbers (DESIGN).

Every headline number a chapter computes goes through `Report.add`, which keeps it beside the
paper's number, glues it for the prose (``{glue:text}`key```) and writes
``<out_dir>/results/<chapter>.json`` atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .store import atomic_write


class Report:
    """The results of one chapter under one profile."""

    def __init__(self, chapter: str, profile, out_dir: str | Path = "book"):
        self.chapter, self.profile = chapter, profile
        self.path = Path(out_dir) / "results" / f"{chapter}.json"
        self.rows: list[dict] = []

    def add(self, key: str, quantity: str, paper, ours, glue: bool = True) -> None:
        """Record one number of this run (``ours``) beside the paper's (``paper``)."""
        self.rows = [r for r in self.rows if r["key"] != key]
        self.rows.append({"key": key, "quantity": quantity, "paper": str(paper), "this run": str(ours)})
        if glue:
            from myst_nb import glue as myst_glue

            myst_glue(key, str(ours), display=False)

    def table(self) -> pd.DataFrame:
        """Paper vs this run, one row per quantity."""
        return pd.DataFrame(self.rows).set_index("quantity")[["paper", "this run"]]

    def save(self) -> Path:
        """Write the results JSON (with the profile that produced them)."""
        body = {"chapter": self.chapter, "profile": self.profile.asdict(), "results": self.rows}
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
