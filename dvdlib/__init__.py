"""dvdlib — the library behind the executable companion to "Dominating vs. Dominated: Generative
Collapse in Diffusion Models" (Jeong & Lee, arXiv:2512.20666).

One concept per module: `models` (loading), `layers` (cross-attention registry, forward order),
`tokens` (concept → token positions), `attention` (recording / head scaling), `metrics` (Focus
Score, DvD Score, attention deviation, noise-prediction norm), `bench` (prompt sets), `judge` +
`vqa` (yes/no judges), `dvd` (judging a run), `generate` + `store` (deterministic, resumable
generation; `noise_norm`, one more thing a generation records), `clip` (the image encoder); the
experiments: `diversity` (CLIP training-data diversity, §3.1), `causal` + `finetune` (the causal
test and DreamBooth, §3.3), `focus` (Focus Score, §3.4), `temporal` (attention over all steps,
§3.5), `ablation` + `outcome` (head ablation and its outcome judge, §3.6), `memorization`
(noise-prediction norm, §3.7), `detect` + `replace` (the early detector, `dvd check`,
category-word replacement, §3.8); `profiles` and `worlds` (what a run studies: Stable Diffusion,
the smoke model, the toy world), `run` (`setup`: one chapter's models, stores, judge and report),
`stats` (intervals, tests, the verdict rule), `plots`, `report` and `paper` (paper vs this run),
`scheduler` (running the chapters), `executed` (what a run left in ``book/``), `pages` (the generated
pages), `book` (``dvd book``: run, then build the HTML), `findings` (the claims engine: each claim's
verdict from a findings snapshot) and `scenes` (what the toy worlds draw and share); `adapters`
(one module per model family: layer registry, the token sequence the attention sees, recording and
head scaling), `plan` (each chapter's work as data, keyed as the store keys it) and `prefetch`
(computing plans into the store, sharded over processes).
"""

import os
import warnings

# transformers warns at import that torchvision is absent, and tqdm (imported by diffusers and
# transformers) that ipywidgets is; both harmless here (progress bars stay text): keep pages readable.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore", message="IProgress not found")

from . import adapters  # registers the model families with the core (`dvdlib.family`)
from .attention import intervene, record
from .generate import PAPER_SEEDS, generate
from .layers import registry
from .metrics import attention_deviation, focus_score, noise_prediction_norm
from .models import load
from .profiles import load_profile
from .run import setup

__all__ = ["PAPER_SEEDS", "attention_deviation", "focus_score", "generate", "intervene", "load", "load_profile",
           "noise_prediction_norm", "record", "registry", "setup"]
