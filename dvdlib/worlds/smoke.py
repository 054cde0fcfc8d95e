"""The smoke world: Stable Diffusion's layout and data with a tiny random-weight model, a tiny
random-weight judge and CLIP (all built offline), and the toy world's "dvddog" figure
(`dvdlib.scenes.standins`, resized) as the causal test's stand-in training images. It proves that
every chapter runs; its numbers mean nothing about the paper."""

from __future__ import annotations

from dataclasses import replace

from ..clip import TINY_CLIP
from ..scenes.standins import NOTE, UNIT, figure_images
from . import register, sd

WORLD = register(replace(
    sd.WORLD,
    name="smoke",
    description="a tiny random-weight model with Stable Diffusion's layout, built offline",
    clip=TINY_CLIP,
    training_images=figure_images,
    training_images_note=NOTE,
    training_images_unit=UNIT,
))
