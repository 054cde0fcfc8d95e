"""The causal test's stand-in training images (paper §3.3): a new figure, "dvddog", whose fixed
appearances stand in for dog breeds. `figure_images` draws it alone as toy world 1 draws a figure
(the toy and smoke worlds' images); `variant_renders` takes any world that renders "dvddog"
(toy world 2's, `dvdlib.toy2.causal`)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from PIL import Image

from ..causal import per_breed
from ..finetune import TOKEN
from .sprites import BACKGROUND, as_rng, draw_figure, figure_params, name_key

#: What chapter 03 tells the reader about `figure_images`.
NOTE = "toy-world renders of a new figure, \"dvddog\", whose fixed appearances stand in for breeds — **not dog photos**"
#: What the images of a variant are spread over (the figure's fixed appearances), in chapter 03's labels.
UNIT = "variant"
#: Seed of the figure's fixed appearances (a pool no toy-world concept uses).
POOL = 3303


@dataclass(frozen=True)
class FigureScenes:
    """Scenes of "dvddog" alone, a figure with ``variants`` fixed appearances, pixel for pixel as
    toy world 1 renders a figure with them (`dvdlib.toy.world.World.render`): one appearance,
    anywhere on the background."""

    variants: int
    size: int = 32

    def render(self, caption: str, seed=0) -> SimpleNamespace:
        """The scene of ``caption`` ("dvddog"): ``image`` [size, size, 3] float32 in [0, 1] and
        ``variants`` {"dvddog": the appearance drawn}."""
        if caption != TOKEN:
            raise ValueError(f"these scenes draw {TOKEN!r} alone, not {caption!r}")
        rng = as_rng(seed)
        index = int(rng.integers(self.variants))
        rgb, mask = draw_figure(figure_params(np.random.default_rng([POOL, name_key(TOKEN), index])))
        h, w = mask.shape
        y, x = int(rng.integers(0, self.size - h + 1)), int(rng.integers(0, self.size - w + 1))
        image = np.broadcast_to(np.array(BACKGROUND, np.float32), (self.size, self.size, 3)).copy()
        image[y:y + h, x:x + w][mask] = rgb[mask]
        return SimpleNamespace(image=np.clip(image, 0.0, 1.0).astype(np.float32), variants={TOKEN: index})


def figure_images(n_breeds: int, n_images: int, seed: int = 0, size: int | None = None) -> list[tuple[str, Image.Image]]:
    """(variant, image) renders of the "dvddog" figure (`FigureScenes`), ``n_images / n_breeds``
    per variant. Variant ``i`` is the same appearance in every variant set, so the sets nest like
    breeds. ``size`` resizes (nearest) the 32² renders, e.g. to the smoke model's 128²."""
    return variant_renders(FigureScenes(n_breeds), n_breeds, n_images, seed, size)


def variant_renders(world, n_breeds: int, n_images: int, seed: int = 0,
                    size: int | None = None) -> list[tuple[str, Image.Image]]:
    """(variant, image) renders of ``world``'s concept "dvddog" (one with ``n_breeds`` fixed
    appearances), ``n_images / n_breeds`` per appearance, render ``i`` drawn with seed
    ``[seed, i]`` until every appearance has its share; sorted by variant (paper §3.3's variants).
    Any world whose ``render`` gives a scene with ``image`` and ``variants``."""
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
