"""The toy model's quality gates, measured with the toy judge.

- **singles**: each concept alone is rendered and recognised (≥ 90% required);
- **composition**: two flexible objects both present (≥ 60% required);
- **conditioning**: different prompts give different images for the same seed (≥ 95% of the
  pairs of single-concept prompts × seeds; not all: a category word may rightly be drawn as its
  rigid concept — "landmark" as the tower — which is the collapse this book studies).

A concept counts as present when the judge answers Yes to at least ``present_at`` of its five
graded questions (open choice; default 3, i.e. presence probability ≥ 0.7). Rates come with
Clopper–Pearson 95% intervals, printed beside them; a gate passes when its rate reaches the
required level (`dvdlib.stats.gate_passes`).
"""

from __future__ import annotations

from itertools import combinations, permutations

import numpy as np
import pandas as pd

from ..stats import gate_passes, rate
from ..generate import generate
from ..judge import is_yes
from .world import JOINER, World

REQUIRED = {"singles": 0.90, "composition": 0.60, "conditioning": 0.95}


def _rate(hits: int, n: int, required: float | None = None) -> dict:
    """`dvdlib.stats.rate` (Clopper–Pearson) in gates.json's shape, with the required level; it
    passes when the rate reaches it (`dvdlib.stats.gate_passes`; the interval is shown beside it)."""
    r = rate(hits, n)
    low, high = r["ci"] or (float("nan"), float("nan"))
    return {"hits": hits, "n": n, "rate": r["value"] if n else float("nan"), "ci_low": low, "ci_high": high,
            "required": required, "passed": None if required is None else bool(n and gate_passes(r["value"], required))}


def presence(judge, images, concept: str, category: str) -> list[int]:
    """Yes counts (0–5) of the judge's five questions about ``concept`` for each image."""
    group = "objects" if category == "object" else category
    questions = judge.questions.group(group).texts(concept)
    return [sum(map(is_yes, answers)) for answers in judge.ask(images, questions)]


def images_differ(a: np.ndarray, b: np.ndarray, differ_at: float = 0.005, pixel_change: float = 0.1) -> bool:
    """Whether more than a share ``differ_at`` of the pixels of two images [H, W, 3] in [0, 1]
    change by more than ``pixel_change`` in some channel."""
    return float((np.abs(a - b).max(-1) > pixel_change).mean()) > differ_at


def measure_gates(pipe, judge, store, seeds, world: World | None = None, present_at: int = 3,
                  differ_at: float = 0.005, pixel_change: float = 0.1, batch_size: int = 40) -> pd.DataFrame:
    """Generate the gate prompts with every seed (through the store) and judge them.

    Two images "differ" when more than a share ``differ_at`` of their pixels (default 0.5%, 6 of
    1,024) change by more than ``pixel_change`` (in [0, 1]) in some channel (open choices; a mean
    absolute difference misses a ball drawn as a box at the same place and in the same colour)."""
    world = world or World()
    category = {name: world.concept(name).role for name in world.names}
    singles = world.names
    pairs = [JOINER.join(p) for p in permutations(world.objects, 2)]
    samples = generate(pipe, singles + pairs, seeds, store=store, batch_size=batch_size, progress=False)
    images = {(s.prompt, s.seed): store.image(s.prompt, s.seed).convert("RGB") for s in samples}

    def present(prompt, concept):
        shown = [images[prompt, seed] for seed in seeds]
        return [c >= present_at for c in presence(judge, shown, concept, category[concept])]

    single_hits = [hit for name in singles for hit in present(name, name)]
    both = [a and b for prompt in pairs
            for a, b in zip(*(present(prompt, concept) for concept in prompt.split(JOINER)))]
    pixels = {key: np.asarray(image, dtype=np.float32) / 255 for key, image in images.items()}
    differ = [images_differ(pixels[a, seed], pixels[b, seed], differ_at, pixel_change)
              for a, b in combinations(singles, 2) for seed in seeds]
    rows = {"singles": _rate(sum(single_hits), len(single_hits), REQUIRED["singles"]),
            "composition": _rate(sum(both), len(both), REQUIRED["composition"]),
            "conditioning": _rate(sum(differ), len(differ), REQUIRED["conditioning"])}
    return pd.DataFrame(rows).T
