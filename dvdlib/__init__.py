"""dvdlib — the library behind the executable companion to "Dominating vs. Dominated: Generative
Collapse in Diffusion Models" (Jeong & Lee, arXiv:2512.20666).

One concept per module: `models` (loading), `layers` (cross-attention registry, forward order),
`tokens` (concept → token positions), `attention` (recording / head scaling), `metrics`
(Focus Score, DvD Score and friends), `focus` (the Focus Score experiment), `detect` (the early
detector, `dvd check`), `bench` (prompt sets), `judge` + `vqa` (yes/no judges), `dvd` (judging a
run), `generate` + `store` (deterministic, resumable generation), `profiles`, `plots`, `report`
and `paper` (paper vs this run), `book` (the runner), `toy` (the book's own trained world).
"""

import os

# transformers warns at import that torchvision is absent (harmless here); keep pages readable.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from .attention import intervene, record
from .generate import PAPER_SEEDS, generate
from .layers import registry
from .metrics import focus_score
from .models import load
from .profiles import load_profile

__all__ = ["PAPER_SEEDS", "focus_score", "generate", "intervene", "load", "load_profile", "record", "registry"]
