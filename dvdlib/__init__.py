"""dvdlib — the library behind the executable companion to "Dominating vs. Dominated: Generative
Collapse in Diffusion Models" (Jeong & Lee, arXiv:2512.20666).

One concept per module: `models` (loading), `layers` (cross-attention registry, forward order),
`tokens` (concept → token positions), `attention` (recording / head scaling), `metrics`
(Focus Score and friends), `focus` (the Focus Score experiment), `bench` (prompt sets),
`generate` + `store` (deterministic, resumable generation), `profiles`, `plots`, `book`.
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
