"""Toy-world renders as training images of the diversity experiment (paper §3.1): each concept
alone, one image per seed, whose visual diversity is known by construction. World 1's by default;
another toy world passes its world, its ``draw`` and ``background`` (world 2:
`dvdlib.worlds.toy2`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..diversity import SOURCE_COLUMNS
from ..store import atomic_write
from .world import BACKGROUND, World, draw


def toy_render(world, name: str, seed: int, centred: bool = True, draw=draw, background=BACKGROUND) -> np.ndarray:
    """One toy-world image of concept ``name`` alone, uint8 [size, size, 3]. With ``centred``
    (open, default) a sprite is drawn in the middle of the image: position is not part of a toy
    concept's identity (`dvdlib.toy.world`), so only its appearance varies; otherwise
    `World.render` (random position). A style fills the image either way."""
    concept = world.concept(name)
    if not centred or concept.kind == "style":
        image = world.render(name, int(seed)).image
    else:
        params, _ = world.draw_appearance(concept, np.random.default_rng(int(seed)))
        rgb, mask = draw(concept, params)
        image = np.broadcast_to(np.array(background, np.float32), (world.size, world.size, 3)).copy()
        y, x = (world.size - mask.shape[0]) // 2, (world.size - mask.shape[1]) // 2
        image[y:y + mask.shape[0], x:x + mask.shape[1]][mask] = rgb[mask]
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def toy_renders(folder: str | Path, seeds, world=None, names=None, centred: bool = True, **drawing) -> pd.DataFrame:
    """A source table of toy-world images (`toy_render`): each concept (``names``, default all)
    alone, one image per seed, saved as PNG under ``folder/<centred|placed>/<concept>/<seed>.png``
    (kept between runs). Category: "object (toy sprite)", or the role marked rigid or category
    word: "landmark (rigid)" (tower), "landmark (category word)" (landmark) — never a bare paper
    category, so that no toy number sits beside a LAION one by name. ``drawing``: `toy_render`'s
    ``draw`` and ``background``."""
    world = world or World()
    rows = []
    for name in names or world.names:
        concept = world.concept(name)
        kind = "rigid" if concept.rigid else "category word"
        category = "object (toy sprite)" if concept.role == "object" else f"{concept.role} ({kind})"
        for seed in seeds:
            file = Path(folder) / ("centred" if centred else "placed") / name / f"{seed}.png"
            if not file.exists():
                pixels = toy_render(world, name, seed, centred, **drawing)
                atomic_write(file, lambda p, a=pixels: Image.fromarray(a).save(p, format="PNG"))
            rows.append((name, category, str(file)))
    return pd.DataFrame(rows, columns=list(SOURCE_COLUMNS))


def renders_source(profile, *, centred: bool = True, world=None, folder: str = "toy_renders",
                   **drawing) -> tuple[pd.DataFrame, str]:
    """A toy world's image source of chapter 01 (world 1's ``"toy"`` by default): (`toy_renders`
    table under ``store/<folder>``, where its images come from)."""
    world = world or World()
    table = toy_renders(Path(profile.store) / folder, profile.seeds, world, centred=centred, **drawing)
    where = "drawn in the middle of the image" if centred else "placed at random as in training"
    return table, (f"**renders of {world.title}** (`{type(world).__module__}`), {len(profile.seeds)} per concept, "
                   f"each concept alone, {where}: diversity known by construction")
