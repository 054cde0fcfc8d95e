"""The toy world (`dvdlib.toy`): a small text-to-image model this project trains on procedural
scenes whose concepts' visual diversity it controls, a judge trained on renders, its own prompt
sets, category words, question set, renders as training images (§3.1) and a new figure,
"dvddog", for the causal test (§3.3). This module is where the rest of dvdlib meets it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..clip import JUDGE_FEATURES
from ..diversity import with_built
from ..judge import load_judge as load_sd_judge
from ..models import load as load_sd
from ..models import prepare, torch_dtype
from ..scenes.standins import NOTE, UNIT, figure_images
from ..toy.dreambooth import toy_prompts
from ..toy.handcheck import results_table
from ..toy.judge import MANIFEST, load_toy_judge, stored_name
from ..toy.model import is_toy_folder, load_toy
from ..toy.prompts import category_words, toy_balanced, toy_dominance, toy_unselected
from ..toy.renders import renders_source
from ..toy.world import World as ToyWorld
from . import register, sd


def load_model(name: str, *, dtype="float32", device: str = "cpu", **options):
    """A toy-model folder (`dvdlib.toy.model.load_toy`), else whatever Stable Diffusion loads."""
    if not is_toy_folder(name):
        return load_sd(name, dtype=dtype, device=device, **options)
    return prepare(load_toy(name, dtype=torch_dtype(dtype)), dtype=dtype, device=device)


def load_judge(name: str, **options):
    """A toy-judge folder (`dvdlib.toy.judge.load_toy_judge`), else Stable Diffusion's judges."""
    return load_toy_judge(name) if (Path(name) / MANIFEST).is_file() else load_sd_judge(name, **options)


def judge_check(judge: str):
    """The toy judge's agreement with hand labels (`dvdlib.toy.handcheck.results_table`), or None."""
    return results_table(judge) if (Path(judge) / MANIFEST).is_file() else None


def diversity_renders(profile, *, centred: bool = True):
    """Chapter 01's images (§3.1): world 1's renders (`renders_source`), each concept with what the
    world built into it (`dvdlib.diversity.with_built`; its "style" is the paper's artist)."""
    table, where = renders_source(profile, centred=centred)
    return with_built(table, ToyWorld(), {"style": "artist"}), where


def limits_section(profile, root, findings) -> str:
    """What world 1 can and cannot test, concept by concept (`dvdlib.toy.limits.section`), from the
    profile's judge under ``root`` and the snapshot in ``findings``."""
    from ..toy.limits import section

    judge = Path(root) / profile.judge
    if not (judge / MANIFEST).is_file():
        return f"No toy judge with a hand check is stored here (`{profile.judge}/{MANIFEST}`: `dvd toy judge` writes it).\n"
    return section(judge, findings, profile.exclude_concepts)


def command(argv: list[str]) -> int:
    """``dvd toy ...``: train, export, sample, render, gates, hand-check, findings (`dvdlib.toy.__main__`)."""
    from ..toy.__main__ import main

    return main(argv)


WORLD = register(replace(
    sd.WORLD,
    name="toy",
    description="the book's own trained toy world (dvdlib.toy)",
    load_model=load_model,
    load_judge=load_judge,
    judge_name=stored_name,
    questions="toy",
    # no "factorial" or "pilot": world 1's captions name two concepts, never three
    roles={"benchmark": "toy-dominance", "control": "toy-balanced", "balanced": "toy-balanced",
           "unselected": "toy-unselected"},
    prompt_sets={"toy-dominance": toy_dominance, "toy-balanced": toy_balanced, "toy-unselected": toy_unselected},
    category_words=category_words,
    causal_prompts=toy_prompts,
    clip=JUDGE_FEATURES,  # the judge trained on this world's renders knows them; a CLIP never saw them
    diversity_source="toy",
    image_sources={"toy": diversity_renders},
    training_images=figure_images,
    training_images_note=NOTE,
    training_images_unit=UNIT,
    judge_check=judge_check,
    command=command,
    limits="toy-limits",
    limits_section=limits_section,
))
