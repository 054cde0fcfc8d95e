"""Progress of a long task: a live bar in a terminal; in an executed page, one line when it ends
("240 images computed in 12 s, 0 read from the store"), never a screenful of bar updates."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


def live() -> bool:
    """Whether progress goes to a terminal (a live bar) rather than to a page or a log."""
    return sys.stderr.isatty()


@contextmanager
def task(total: int, what: str, stored: int = 0, show: bool = True, unit: str = "it"):
    """Count ``total`` pieces of work on ``what`` (e.g. "images"); yields ``update(n)``. In a
    terminal a tqdm bar; elsewhere one line at the end, naming how many were ``stored`` already."""
    from tqdm import tqdm

    started = time.perf_counter()
    bar = tqdm(total=total, unit=unit, desc=what, disable=not (show and live() and total))
    try:
        yield bar.update
    finally:
        bar.close()
        if show and not live() and (total or stored):
            seconds = time.perf_counter() - started
            print(f"{total:,} {what} computed in {seconds:,.0f} s, {stored:,} read from the store")
