"""The book's chapters, each defined once: its name (the notebook ``chapters/<name>.ipynb``), the
chapters whose stored work it reads, whether a fresh clone should start it early, whether the toy
findings snapshot runs it, and the result keys that other modules read from its results JSON.

The book's scheduler (`dvdlib.book`), the toy findings (`dvdlib.findings`, `dvdlib.toy.snapshot`)
and `dvd plan` (`dvdlib.plan`) read these definitions; none of them spells a chapter's name or a
result key again. Adding a chapter: write its notebook and one `Chapter` here (see the forking
page of the book).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chapter:
    """One chapter: ``name`` its notebook's stem; ``reads_from`` the chapters whose stored work it
    reads (it starts after them when both run, so the work is done once); ``long`` its place among
    the chapters a fresh clone, with no times of its own, starts first (None: not long);
    ``snapshot`` whether `dvd toy findings` runs it; ``keys`` role → the key of a results row that
    another module reads (`dvdlib.findings.CLAIMS`)."""

    name: str
    reads_from: tuple[str, ...] = ()
    long: int | None = None
    snapshot: bool = False
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, role: str) -> str:
        """The results key this chapter writes for ``role`` (an error naming the roles it has)."""
        if role not in self.keys:
            raise KeyError(f"chapter {self.name} records no {role!r}; it records {sorted(self.keys)}")
        return self.keys[role]


# Chapter 05's runs record attention over the whole schedule and keep their images and
# noise-prediction norms (`dvdlib.generate`): chapter 02's DvD images, chapter 06's baseline and
# chapter 07's norms of the same prompts; chapter 08's detector reads chapter 04's first steps;
# chapter 10 reads chapter 02's images and answers. The long ones (`benchmarks/book_time.py` on a
# quiet 2-core machine, world 2: chapter 03's fine-tunes 385 s; chapter 06's ablation 311 s, which
# starts after chapter 05's recordings, 150 s; chapter 11's factorial 273 s) start first, in this
# order, so that 05 and then 06 run beside 03.
TRAINING_DIVERSITY = Chapter("01_training_diversity")
TEMPORAL = Chapter("05_temporal_dynamics", long=1, snapshot=True,
                   keys={"dominated_falls": "dominated_first", "dominated_below": "claim"})
DVD_BENCHMARK = Chapter("02_dvd_benchmark", reads_from=(TEMPORAL.name,), snapshot=True, keys={"gap": "dvd_gap"})
CAUSAL = Chapter("03_diversity_causal", long=0, snapshot=True, keys={"paired": "paired", "trend": "spearman"})
FOCUS = Chapter("04_focus_score", snapshot=True, keys={"layers_gap": "fs_layers_gap", "peak": "fs_peak_on_concept"})
ABLATION = Chapter("06_head_ablation", reads_from=(TEMPORAL.name,), long=2, snapshot=True,
                   keys={"single": "single_dvd", "multi": "multi_dvd"})
MEMORIZATION = Chapter("07_memorization", reads_from=(TEMPORAL.name,), snapshot=True,
                       keys={"bench_over_balanced": "bench_over_balanced"})
DETECTION = Chapter("08_detection_replacement", reads_from=(FOCUS.name,), snapshot=True,
                    keys={"gap": "det_gap", "matched": "det_matched", "auc": "det_auc", "replacement": "repl_*"})
TOY_FINDINGS = Chapter("09_toy_findings")
UNSELECTED = Chapter("10_unselected_prompts", reads_from=(DVD_BENCHMARK.name,))
THREE_CONCEPTS = Chapter("11_three_concepts", long=3)

#: Every chapter, in the book's order.
ALL = (TRAINING_DIVERSITY, DVD_BENCHMARK, CAUSAL, FOCUS, TEMPORAL, ABLATION, MEMORIZATION, DETECTION, TOY_FINDINGS,
       UNSELECTED, THREE_CONCEPTS)
BY_NAME = {c.name: c for c in ALL}


def reads_from() -> dict[str, tuple[str, ...]]:
    """Chapter name → the chapters whose work it reads (only chapters that read any)."""
    return {c.name: c.reads_from for c in ALL if c.reads_from}


def long_chapters() -> tuple[str, ...]:
    """The long chapters' names, in the order a fresh clone starts them."""
    return tuple(c.name for c in sorted((c for c in ALL if c.long is not None), key=lambda c: c.long))


def snapshot_chapters() -> tuple[str, ...]:
    """The chapters `dvd toy findings` runs, in the book's order."""
    return tuple(c.name for c in ALL if c.snapshot)
