"""The toy world's causal test (paper §3.3): the prompts that pair the new figure "dvddog" with
the world's other concepts. Its training images, the figure's fixed appearances standing in for
dog breeds, are `dvdlib.scenes.standins.figure_images`."""

from __future__ import annotations

import pandas as pd

from ..finetune import TOKEN
from .world import JOINER, World


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

