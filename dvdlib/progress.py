"""Progress of a long task: a live bar in a terminal; in an executed page or a log, one line when
it ends ("240 images computed in 12 s, 0 read from the store"), never a screenful of bar updates;
`gathered`, one line for a block that runs many tasks (a chapter that makes many models); and
`quiet`, which keeps the libraries' own bars and warnings ("Loading weights: 0/46") out of pages
while a model loads."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


def live() -> bool:
    """Whether progress goes to a terminal (a live bar) rather than to a page or a log."""
    return sys.stderr.isatty()


class _Counter:
    """What `task` yields: ``update(n=1, **postfix)`` advances the count; ``postfix`` (e.g.
    ``loss="0.0123"``) shows beside a live bar and ends the one-line summary elsewhere."""

    def __init__(self, bar):
        self.bar, self.postfix = bar, {}

    def __call__(self, n: int = 1, **postfix) -> None:
        self.bar.update(n)
        if postfix:
            self.postfix = postfix
            self.bar.set_postfix(postfix, refresh=False)


@contextmanager
def task(total: int, what: str, stored: int = 0, show: bool = True, unit: str = "it",
         mininterval: float = 0.1, kept: str = "read from the store"):
    """Count ``total`` pieces of work on ``what`` (e.g. "images"); yields ``update(n, **postfix)``.
    In a terminal a tqdm bar; elsewhere one line at the end, naming how many were ``stored``
    already (``kept`` says how: "resumed from the checkpoint") and the last postfix (e.g. "400 DreamBooth steps computed in 52 s, 0 read from the
    store; loss 0.0123")."""
    from tqdm import tqdm

    started = time.perf_counter()
    bar = tqdm(total=total, unit=unit, desc=what, mininterval=mininterval,
               disable=not (show and live() and total))
    counter = _Counter(bar)
    try:
        yield counter
    finally:
        bar.close()
        if show and not live() and (total or stored):
            seconds = time.perf_counter() - started
            if _GATHERED:  # one line for the whole block (`gathered`)
                tally = _GATHERED[-1].setdefault((what, kept), [0, 0, 0.0])
                tally[0], tally[1], tally[2] = tally[0] + total, tally[1] + stored, tally[2] + seconds
                return
            tail = "; " + ", ".join(f"{k} {v}" for k, v in counter.postfix.items()) if counter.postfix else ""
            print(f"{total:,} {what} computed in {seconds:,.0f} s, {stored:,} {kept}{tail}")


#: The tallies of the `gathered` blocks open now, innermost last.
_GATHERED: list[dict] = []


@contextmanager
def gathered(label: str):
    """Inside the block, every `task` adds to one tally per kind of work instead of printing its
    own line; at its end one line says what the block did ("twin fine-tunes: 9 DreamBooth runs
    (1,800 steps computed, 0 resumed from the checkpoint); 540 runs computed, 0 read from the
    store ..."), so a page that makes many models shows one line, not one per model."""
    _GATHERED.append({})
    started = time.perf_counter()
    try:
        yield
    finally:
        tallies = _GATHERED.pop()
        if tallies and not live():
            parts = [f"{total:,} {what} computed, {stored:,} {kept}" for (what, kept), (total, stored, _) in
                     tallies.items()]
            print(f"{label}: {'; '.join(parts)} (in {time.perf_counter() - started:,.0f} s)")


@contextmanager
def quiet():
    """Silence diffusers' and transformers' warnings and progress bars while a model loads (their
    "Loading weights" bar; expected warnings: a BERT encoder and a custom VAE where SD has CLIP and
    AutoencoderKL, no text encoder saved, a UNet cast to fp16); what was set before is restored."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    bars = diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
    try:
        yield
    finally:  # restore what was there (quiet blocks nest)
        for library, level, bar in zip((diffusers_logging, transformers_logging), levels, bars):
            library.set_verbosity(level)
            if bar:
                library.enable_progress_bar()
