"""The toy world's prompt sets, in DominanceBench's columns (paper §3.2), so every chapter runs on
them unchanged.

- **toy-dominance** (the DominanceBench analogue): a rigid concept (a fixed landmark, a character
  with few variants, a fixed style) paired with a flexible object, in both word orders.
- **toy-balanced** (the balanced control): two flexible objects, in both word orders.

``content`` is the concept expected to dominate (the rigid one; the first word for balanced
pairs), ``nm_word`` the one expected to vanish; ``held_out`` marks pairs never seen in training
(`dvdlib.toy.world.DEFAULT_HELD_OUT`).
"""

from __future__ import annotations

from itertools import permutations

import pandas as pd

from .world import DEFAULT_HELD_OUT, JOINER, World


def _table(world: World, pairs, content_type) -> pd.DataFrame:
    held = {frozenset(p) for p in DEFAULT_HELD_OUT}
    rows = [{"content_type": content_type(content), "content": content, "nm_word": obj,
             "prompt": JOINER.join(order), "held_out": frozenset((content, obj)) in held}
            for content, obj, order in pairs]
    return pd.DataFrame(rows).assign(case_num=lambda d: range(1, len(d) + 1))


def toy_dominance(world: World | None = None) -> pd.DataFrame:
    """Every rigid concept × flexible object, both orders (rigid = the dominant ``content``)."""
    world = world or World()
    pairs = [(rigid, obj, order) for rigid in world.rigid for obj in world.objects
             for order in ((rigid, obj), (obj, rigid))]
    return _table(world, pairs, lambda name: world.concept(name).role)


def toy_balanced(world: World | None = None) -> pd.DataFrame:
    """Every ordered pair of two flexible objects (the first word labelled ``content``)."""
    world = world or World()
    pairs = [(a, b, (a, b)) for a, b in permutations(world.objects, 2)]
    return _table(world, pairs, lambda name: "object")


def toy_unselected(world: World | None = None) -> pd.DataFrame:
    """The unselected set's analogue (the paper's ACCV version): every rigid concept × every
    flexible object, both orders, never filtered by what the model draws. World 1 writes one
    caption form ("X and Y"), so its two "templates" are the two orders; ``cluster`` is the
    concept (the unit of inference). These are the prompts of ``toy-dominance``: world 1's benchmark
    analogue was never filtered either."""
    table = toy_dominance(world)
    first = [p.startswith(c) for p, c in zip(table["prompt"], table["content"])]
    return table.assign(object_prompt_phrase=table["nm_word"], cluster=table["content"],
                        template_id=["concept first" if f else "object first" for f in first])


def category_words(world=None) -> dict[str, str]:
    """The toy world's replacement words (`World.category_word`), keyed by rigid concept:
    e.g. "tower" → "landmark", "robot" → "character", "mosaic" → "style" (paper §3.8)."""
    world = world or World()
    return {name: world.category_word(name) for name in world.rigid}
