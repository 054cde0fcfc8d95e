"""World 2's causal test (paper §3.3): a new figure, "dvddog", whose fixed appearances stand in
for dog breeds (the training images of each variant), and the prompts that pair it with world 2's
other concepts. World 1's counterpart is `dvdlib.toy.dreambooth`; the loop is
`dvdlib.scenes.standins.variant_renders`."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from PIL import Image

from ..finetune import TOKEN
from ..scenes.standins import variant_renders
from .prompts import _pair_rows
from .world import Concept, World

#: What chapter 03 tells the reader about these images.
NOTE = ("renders of toy world 2: a new figure, \"dvddog\", whose fixed appearances stand in for breeds "
        "— **not dog photos**")


def with_dvddog(world: World, n_breeds: int = 1) -> World:
    """``world`` with the new figure "dvddog" of ``n_breeds`` fixed appearances (appearance ``i``
    is a pure function of the name and ``i``: the variant sets nest like breeds)."""
    return replace(world, concepts=world.concepts + (Concept(TOKEN, "figure", n_breeds),))


def images(n_breeds: int, n_images: int, seed: int = 0, size: int | None = None) -> list[tuple[str, Image.Image]]:
    """(variant, image) renders of world 2's "dvddog", ``n_images / n_breeds`` per variant
    (`dvdlib.scenes.standins.variant_renders`); ``size`` resizes (nearest)."""
    return variant_renders(with_dvddog(World(), n_breeds), n_breeds, n_images, seed, size)


def prompts(world: World | None = None) -> pd.DataFrame:
    """The causal test's prompts in `dvdlib.bench.load_dreambooth_prompts`'s columns: "dvddog" with
    every object (object co-occurrence), every landmark (scene context) and every artist (style
    modifiers), named concepts and category words, both orders ("a picture of dvddog and a ball";
    for a style its two forms). The judge cannot know "dvddog": it is asked about ``character``,
    the category word of every figure; the other concept the questions of its role (``nm_kind``)."""
    world = with_dvddog(world or World())
    group = {"object": "object", "landmark": "scene", "artist": "style"}
    rows = [{"content_type": "character", "content": "character", "nm_word": c.name, "prompt": r["prompt"],
             "group": group[c.role], "nm_kind": c.role}
            for c in world.concepts if c.role in group for r in _pair_rows(world, c.name, TOKEN)]
    return pd.DataFrame(rows).assign(case_num=lambda d: range(1, len(d) + 1))
