"""The paper's world: Stable Diffusion 1.4 / 2.1 (Hub ids or local folders), the Qwen2-VL judge,
DominanceBench, the balanced and memorized sets, CLIP ViT-L/14, dog photos for DreamBooth
(paper §1–§3). Every other world is this one with some fields changed."""

from __future__ import annotations

from ..bench import load_dreambooth_prompts
from ..clip import PAPER_CLIP
from ..judge import load_judge
from ..models import load
from ..replace import CATEGORY_WORDS
from . import World, register

WORLD = register(World(
    name="sd",
    description="Stable Diffusion and the paper's data",
    load_model=load,
    load_judge=load_judge,
    questions="paper",
    roles={"benchmark": "dominancebench", "control": "balanced", "balanced": "balanced", "memorized": "memorized",
           # the ACCV version's sets (dvdlib.bench): unselected prompts, the three-concept factorial and pilot
           "unselected": "unselected", "factorial": "factorial", "pilot": "pilot"},
    category_words=lambda: dict(CATEGORY_WORDS),
    causal_prompts=load_dreambooth_prompts,
    clip=PAPER_CLIP,
))
