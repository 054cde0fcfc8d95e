"""Toy world 2 (`dvdlib.toy2`): a small text-to-image model built to Stable Diffusion 1.x's
mechanics (ε-prediction, scaled-linear betas, DDIM with leading spacing, a causal text encoder
with a fixed start state, 16 cross-attention layers × 8 heads), trained on scenes whose named
concepts come in doses of diversity; its judge trained on renders, prompt sets (the three-concept
pilot among them), category words, question set, renders as training images (§3.1) and a new
figure, "dvddog", for the causal test (§3.3). This module is where the rest of dvdlib meets it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..clip import JUDGE_FEATURES
from ..diversity import with_built
from ..judge import load_judge as load_sd_judge
from ..models import load as load_sd
from ..models import prepare, torch_dtype
from ..scenes.standins import UNIT
from ..toy.judge import MANIFEST, load_toy_judge, stored_name
from ..toy.renders import renders_source
from ..toy2 import causal
from ..toy2 import model as toy2_model
from ..toy2 import prompts
from ..toy2.world import BACKGROUND, draw
from ..toy2.world import World as World2
from . import register, sd


def load_model(name: str, *, dtype="float32", device: str = "cpu", **options):
    """A world-2 model folder (`dvdlib.toy2.model.load`), else whatever Stable Diffusion loads."""
    if not toy2_model.is_folder(name):
        return load_sd(name, dtype=dtype, device=device, **options)
    return prepare(toy2_model.load(name, dtype=torch_dtype(dtype)), dtype=dtype, device=device)


def load_judge(name: str, **options):
    """A world-2 judge folder (the toy judge over world 2's concepts), else Stable Diffusion's judges."""
    if (Path(name) / MANIFEST).is_file():
        return load_toy_judge(name, world_class=World2)
    return load_sd_judge(name, **options)


def diversity_renders(profile, *, centred: bool = True):
    """Chapter 01's images (§3.1): world 2's renders (`renders_source`, in their own folder: world 2's
    objects share world 1's names but not their drawing), each concept with what the world built
    into it (`dvdlib.diversity.with_built`)."""
    table, where = renders_source(profile, centred=centred, world=World2(), folder="toy2_renders", draw=draw,
                                  background=BACKGROUND)
    return with_built(table, World2()), where


def command(argv: list[str]) -> int:
    """``dvd toy2 ...``: train, export, judge (`dvdlib.toy2.__main__`)."""
    from ..toy2.__main__ import main

    return main(argv)


WORLD = register(replace(
    sd.WORLD,
    name="toy2",
    description="toy world 2, built to Stable Diffusion's mechanics (dvdlib.toy2)",
    load_model=load_model,
    load_judge=load_judge,
    judge_name=stored_name,
    questions="toy2",
    roles={"benchmark": "toy2-dominance", "control": "toy2-balanced", "balanced": "toy2-balanced",
           "memorized": "toy2-memorized", "unselected": "toy2-unselected", "factorial": "toy2-factorial",
           "pilot": "toy2-pilot"},
    prompt_sets={"toy2-dominance": prompts.dominance, "toy2-balanced": prompts.balanced,
                 "toy2-memorized": prompts.memorized, "toy2-unselected": prompts.unselected,
                 "toy2-factorial": prompts.factorial, "toy2-pilot": prompts.pilot},
    category_words=prompts.category_words,
    causal_prompts=causal.prompts,
    clip=JUDGE_FEATURES,  # the judge trained on this world's renders knows them; a CLIP never saw them
    diversity_source="toy2",
    image_sources={"toy2": diversity_renders},
    training_images=causal.images,
    training_images_note=causal.NOTE,
    training_images_unit=UNIT,
    command=command,
))
