"""The toy world's causal test (paper §3.3): a new figure, "dvddog", whose fixed appearances stand
in for dog breeds, and the prompts that pair it with the world's other concepts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from ..causal import per_breed
from ..finetune import TOKEN
from .world import JOINER, Concept, World

#: Seed of the toy figure's fixed appearances (a pool no toy-world concept uses).
TOY_POOL = 3303
#: What chapter 03 tells the reader about these images.
NOTE = "toy-world renders of a new figure, \"dvddog\", whose fixed appearances stand in for breeds — **not dog photos**"
#: What the toy images of a variant are spread over (the figure's fixed appearances), in chapter 03's labels.
UNIT = "variant"


def toy_concept(n_breeds: int) -> Concept:
    """The toy world's stand-in for the dog: a new figure ("dvddog") with ``n_breeds`` variants."""
    return Concept(TOKEN, "figure", variants=n_breeds, pool=TOY_POOL)


def toy_images(n_breeds: int, n_images: int, seed: int = 0, size: int | None = None) -> list[tuple[str, Image.Image]]:
    """(variant, image) renders of the toy "dvddog" figure, ``n_images / n_breeds`` per variant.

    Variant ``i`` is the same appearance in every variant set, so the sets nest like breeds.
    ``size`` resizes (nearest) the 32² renders, e.g. to the smoke model's 128².
    """
    return variant_renders(World().with_concept(toy_concept(n_breeds)), n_breeds, n_images, seed, size)


def variant_renders(world, n_breeds: int, n_images: int, seed: int = 0,
                    size: int | None = None) -> list[tuple[str, Image.Image]]:
    """(variant, image) renders of ``world``'s concept "dvddog" (one with ``n_breeds`` fixed
    appearances), ``n_images / n_breeds`` per appearance, render ``i`` drawn with seed
    ``[seed, i]`` until every appearance has its share; sorted by variant (paper §3.3's variants).
    Any toy world whose ``render`` gives a scene with ``variants`` (worlds 1 and 2)."""
    k = per_breed(n_images, n_breeds)
    out, count, i = [], [0] * n_breeds, 0
    while len(out) < n_images:
        scene = world.render(TOKEN, [seed, i])
        v = scene.variants[TOKEN]
        if count[v] < k:
            count[v] += 1
            image = Image.fromarray((scene.image * 255).round().astype(np.uint8))
            out.append((f"variant {v}", image.resize((size, size), Image.NEAREST) if size else image))
        i += 1
    return sorted(out, key=lambda item: item[0])


def toy_prompts(world=None) -> pd.DataFrame:
    """The toy world's prompts of the causal test, in `dvdlib.bench.load_dreambooth_prompts`'s
    columns: "dvddog" with every concept of another role, both word orders — objects (object
    co-occurrence), the landmarks (scene context), the styles (style modifiers). The toy judge
    cannot know "dvddog": it is asked about ``character``, the category word of every figure; the
    other concept is asked the questions of its role (``nm_kind``: object, landmark, style)."""
    world = world or World()
    group = {"object": "object", "landmark": "scene", "style": "style"}
    rows = [{"content_type": "character", "content": "character", "nm_word": c.name,
             "prompt": JOINER.join(order), "group": group[c.role], "nm_kind": c.role}
            for c in world.concepts if c.role in group for order in ((TOKEN, c.name), (c.name, TOKEN))]
    return pd.DataFrame(rows).assign(case_num=lambda d: range(1, len(d) + 1))

