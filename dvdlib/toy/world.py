"""The toy world: seeded 32×32 RGB scenes of one or two concepts, with controlled diversity.

Every concept is drawn by a *kind* of drawing and has a number of *variants*:

- ``variants=None``: every render draws a fresh random appearance (colour, size, shape details).
  These are the flexible objects — ``ball``, ``box``, ``ring``, ``bar`` — and the category words
  ``landmark``, ``character``, ``style``, which mean "any building", "any figure", "any style".
- ``variants=k``: the concept has exactly ``k`` fixed appearances (drawn once from the concept's
  name and ``pool``); each render picks one of them. ``tower`` (a landmark-like building, 1
  variant), ``robot`` (a character-like figure, 3 variants) and ``mosaic`` (an artist-like style
  over the whole image, 1 variant) are the rigid concepts.

So a rigid concept and its category word differ *only* in diversity, the paper's causal variable
(paper §3.3): ``World().with_variants(tower=10)`` gives the tower ten appearances. Position is
never part of a concept's identity: sprites and objects land anywhere they fit. A style recolours
and textures the whole scene (light textured background, dark objects) and keeps every object's
shape, so the other concept of a pair stays recognisable.

A caption is one concept (``"ball"``), two joined by ``" and "`` (``"tower and ball"``), or empty.
Pairs always render both concepts, without overlap: any dominance a model learns comes from the
concepts' diversity, never from the training data leaving one out. Renders are pure functions of
(world, caption, seed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar, Sequence

import numpy as np

from ..scenes.concepts import ConceptLookup
from ..scenes.sprites import (BACKGROUND, apart, apply_style, as_rng, bright, building_params, draw_building, draw_figure,
                              draw_object, figure_params, name_key, style_params)

SIZE = 32
JOINER = " and "
#: Kinds of drawing: the four flexible shapes, and one per rigid role.
OBJECT_KINDS = ("ball", "box", "ring", "bar")
ROLE_OF_KIND = {"building": "landmark", "figure": "character", "style": "style"}


@dataclass(frozen=True)
class Concept:
    """A word of the toy world and how it is drawn.

    ``kind``: one of `OBJECT_KINDS`, ``"building"``, ``"figure"`` or ``"style"``.
    ``variants``: None (a fresh appearance per render) or the number of fixed appearances.
    ``pool``: seed of the fixed appearances (two pools give two different sets of k variants).
    """

    name: str
    kind: str
    variants: int | None = None
    pool: int = 0

    def __post_init__(self):
        if self.kind not in OBJECT_KINDS and self.kind not in ROLE_OF_KIND:
            raise ValueError(f"unknown kind {self.kind!r}; use one of {OBJECT_KINDS + tuple(ROLE_OF_KIND)}")
        if self.variants is not None and self.variants < 1:
            raise ValueError(f"{self.name}: variants must be None or ≥ 1, got {self.variants}")
        if not self.name or JOINER.strip() in self.name.split():
            raise ValueError(f"concept name {self.name!r} must be non-empty and not contain 'and'")

    @property
    def role(self) -> str:
        """``"object"``, ``"landmark"``, ``"character"`` or ``"style"``."""
        return ROLE_OF_KIND.get(self.kind, "object")

    @property
    def rigid(self) -> bool:
        """A non-object concept with a fixed, finite set of appearances."""
        return self.role != "object" and self.variants is not None


def default_concepts() -> tuple[Concept, ...]:
    """Four flexible objects, three rigid concepts (one per role) and the three category words."""
    return (
        Concept("ball", "ball"), Concept("box", "box"), Concept("ring", "ring"), Concept("bar", "bar"),
        Concept("tower", "building", variants=1), Concept("robot", "figure", variants=3),
        Concept("mosaic", "style", variants=1),
        Concept("landmark", "building"), Concept("character", "figure"), Concept("style", "style"),
    )


@dataclass
class Scene:
    """A rendered scene: image [32, 32, 3] float32 in [0, 1], and per concept its pixel mask and
    the variant drawn (None for flexible concepts). A style's mask is the whole image."""

    caption: str
    image: np.ndarray
    masks: dict[str, np.ndarray]
    variants: dict[str, int | None]


# ---------------------------------------------------------------- appearances (parameters)

def _object_params(kind: str, rng) -> dict:
    """Random appearance of a flexible object: colour, size and shape details."""
    p = {"colour": bright(rng)}
    if kind == "ball":
        p["d"] = int(rng.integers(6, 13))
    elif kind == "box":
        p["h"], p["w"] = (int(x) for x in rng.integers(5, 13, size=2))
    elif kind == "ring":
        p["d"], p["t"] = int(rng.integers(8, 14)), int(rng.integers(2, 4))
    elif kind == "bar":
        p["orient"] = str(rng.choice(["h", "v", "d", "a"]))
        p["len"] = int(rng.integers(9, 13)) if p["orient"] in "da" else int(rng.integers(10, 17))
        p["t"] = int(rng.integers(2, 4))
    return p


def appearance(concept: Concept, rng) -> dict:
    """Draw one appearance of ``concept`` from ``rng`` (all its visual parameters)."""
    if concept.kind in OBJECT_KINDS:
        return _object_params(concept.kind, rng)
    return {"building": building_params, "figure": figure_params, "style": style_params}[concept.kind](rng)


def variant_appearance(concept: Concept, index: int) -> dict:
    """The ``index``-th fixed appearance of a concept with finite variants (a pure function)."""
    return appearance(concept, np.random.default_rng([concept.pool, name_key(concept.name), index]))


# ---------------------------------------------------------------- drawing (`dvdlib.scenes.sprites`)

def draw(concept: Concept, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, mask) of a sprite or object with the given appearance (not for styles)."""
    if concept.kind in OBJECT_KINDS:
        return draw_object(concept.kind, params)
    if concept.kind == "building":
        return draw_building(params)
    if concept.kind == "figure":
        return draw_figure(params)
    raise ValueError(f"{concept.name} is a style: use apply_style")


# ---------------------------------------------------------------- layout

def place(shapes: Sequence[tuple[int, int]], rng, size: int = SIZE, tries: int = 100) -> list[tuple[int, int]]:
    """Top-left corners for boxes of the given (h, w), inside the canvas and at least 1 px apart.

    Uniform rejection sampling; after ``tries`` failures two boxes go side by side (or one above
    the other), which always fits for the world's sizes.
    """
    for _ in range(tries):
        corners = [(int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))) for h, w in shapes]
        boxes = [(y, x, h, w) for (y, x), (h, w) in zip(corners, shapes)]
        if all(apart(boxes[i], boxes[j]) for i in range(len(boxes)) for j in range(i)):
            return corners
    if len(shapes) != 2:
        raise RuntimeError(f"cannot place {shapes} on a {size}² canvas")
    (h1, w1), (h2, w2) = shapes
    order = [0, 1] if rng.random() < 0.5 else [1, 0]
    if w1 + w2 + 1 <= size:  # side by side, random vertical positions
        xs = {order[0]: 0, order[1]: size - shapes[order[1]][1]}
        return [(int(rng.integers(0, size - h + 1)), xs[i]) for i, (h, w) in enumerate(shapes)]
    if h1 + h2 + 1 <= size:
        ys = {order[0]: 0, order[1]: size - shapes[order[1]][0]}
        return [(ys[i], int(rng.integers(0, size - w + 1))) for i, (h, w) in enumerate(shapes)]
    raise RuntimeError(f"cannot place {shapes} on a {size}² canvas")


# ---------------------------------------------------------------- the world

@dataclass(frozen=True)
class World(ConceptLookup):
    """The concepts of the toy world and how scenes are drawn. Immutable; `with_variants` and
    `with_concept` return changed copies (look-ups: `dvdlib.scenes.concepts.ConceptLookup`)."""

    #: The question set (`dvdlib.judge.load_questions`) written for this world's concepts.
    question_set: ClassVar[str] = "toy"
    #: The world's plug-in name (``dvd <name> ...``, `dvdlib.worlds`) and its name in prose.
    name: ClassVar[str] = "toy"
    title: ClassVar[str] = "the toy world"
    concepts: tuple[Concept, ...] = field(default_factory=default_concepts)
    size: int = SIZE

    def category_word(self, name: str) -> str:
        """The category word that can replace a rigid concept (paper §3.8): its role's flexible
        concept, e.g. "tower" → "landmark", "robot" → "character", "mosaic" → "style"."""
        role = self.concept(name).role
        words = [c.name for c in self.by_role(role, rigid=False)] if role != "object" else []
        if not words:
            raise KeyError(f"{name!r} ({role}) has no category word in this world")
        return words[0]

    # -- captions
    def captions(self, **mix) -> "Captions":
        """The training caption distribution over this world (`Captions`; ``mix`` overrides)."""
        return Captions(self, **mix)

    def evaluation_captions(self, held_out=None) -> dict[str, list[str]]:
        """Captions a judge is evaluated on: every concept alone (``single``), every pair of
        training with ``held_out`` (default `DEFAULT_HELD_OUT`) kept out (``pair``), and the
        held-out pairs (``held_out``), both orders."""
        captions = Captions(self, held_out=DEFAULT_HELD_OUT if held_out is None else tuple(held_out))
        return {"single": self.names, "pair": [c for c in captions.training() if JOINER in c],
                "held_out": captions.held_out_captions()}

    # -- changes
    def with_concept(self, concept: Concept) -> "World":
        """A copy with one more concept (or ``concept`` replacing the one of the same name)."""
        kept = tuple(c for c in self.concepts if c.name != concept.name)
        return replace(self, concepts=kept + (concept,))

    # -- captions
    def parse(self, caption: str) -> list[Concept]:
        """The concepts of a caption: "" → [], "ball" → [ball], "tower and ball" → [tower, ball]."""
        caption = caption.strip()
        if not caption:
            return []
        concepts = [self.concept(w.strip()) for w in caption.split(JOINER)]
        if len(concepts) > 2 or len({c.name for c in concepts}) != len(concepts):
            raise ValueError(f"caption {caption!r}: at most two different concepts")
        if sum(c.role == "style" for c in concepts) > 1:
            raise ValueError(f"caption {caption!r}: at most one style per scene")
        return concepts

    # -- rendering
    def draw_appearance(self, concept: Concept, rng) -> tuple[dict, int | None]:
        """(appearance, variant index or None) of one render of ``concept``."""
        if concept.variants is None:
            return appearance(concept, rng), None
        index = int(rng.integers(concept.variants))
        return variant_appearance(concept, index), index

    def render(self, caption: str, seed=0) -> Scene:
        """Render ``caption`` with ``seed`` (an int, a sequence of ints or a numpy Generator)."""
        rng = as_rng(seed)
        concepts = self.parse(caption)
        drawn = [(c, *self.draw_appearance(c, rng)) for c in concepts]
        sprites = [(c, p, v) for c, p, v in drawn if c.role != "style"]
        styles = [(c, p, v) for c, p, v in drawn if c.role == "style"]
        image = np.broadcast_to(np.array(BACKGROUND, np.float32), (self.size, self.size, 3)).copy()
        masks, variants = {}, {c.name: v for c, _, v in drawn}
        pictures = [draw(c, p) for c, p, _ in sprites]
        corners = place([m.shape for _, m in pictures], rng, self.size)
        for (c, _, _), (rgb, m), (y, x) in zip(sprites, pictures, corners):
            h, w = m.shape
            image[y:y + h, x:x + w][m] = rgb[m]
            full = np.zeros((self.size, self.size), bool)
            full[y:y + h, x:x + w] = m
            masks[c.name] = full
        for c, p, _ in styles:
            objects = np.any(list(masks.values()), axis=0) if masks else np.zeros((self.size, self.size), bool)
            image = apply_style(p, image, objects)
            masks[c.name] = np.ones((self.size, self.size), bool)
        return Scene(caption, np.clip(image, 0.0, 1.0).astype(np.float32), masks, variants)

    def to_dict(self) -> dict:
        return {"size": self.size, "concepts": [asdict(c) for c in self.concepts]}

    @classmethod
    def from_dict(cls, data: dict) -> "World":
        return cls(concepts=tuple(Concept(**c) for c in data["concepts"]), size=data.get("size", SIZE))


# ---------------------------------------------------------------- captions and data

def pair_class(world: World, a: str, b: str) -> str:
    """``"object+object"``, ``"rigid+object"`` (any non-object with an object) or ``"rigid+rigid"``."""
    n = sum(world.concept(x).role == "object" for x in (a, b))
    return {2: "object+object", 1: "rigid+object", 0: "rigid+rigid"}[n]


#: Pairs kept out of training by default: one flexible pair (the composition control) and, for
#: each role, one rigid + object and category word + object pair (where dominance can show).
DEFAULT_HELD_OUT = (("ball", "bar"), ("tower", "ring"), ("landmark", "ring"), ("robot", "box"),
                    ("character", "box"), ("mosaic", "ball"), ("style", "ball"))


@dataclass(frozen=True)
class Captions:
    """The caption distribution of training: ``empty`` of them "", ``single`` one concept
    (uniform over concepts), the rest pairs: a pair class by ``pair_mix``, then a pair uniform
    within the class, then a random word order. Pairs of the same role (two styles, a landmark
    with "landmark", ...) and ``held_out`` pairs (either order) never occur."""

    world: World = field(default_factory=World)
    empty: float = 0.1
    single: float = 0.35
    pair_mix: tuple[tuple[str, float], ...] = (("object+object", 0.4), ("rigid+object", 0.45), ("rigid+rigid", 0.15))
    held_out: tuple[tuple[str, str], ...] = DEFAULT_HELD_OUT

    def _allowed(self, a: str, b: str) -> bool:
        ca, cb = self.world.concept(a), self.world.concept(b)
        same_role = ca.role == cb.role and ca.role != "object"
        return not same_role and {a, b} not in [set(p) for p in self.held_out]

    def pairs(self) -> dict[str, list[tuple[str, str]]]:
        """Unordered training pairs by pair class."""
        names = self.world.names
        out = {cls: [] for cls, _ in self.pair_mix}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if self._allowed(a, b):
                    out[pair_class(self.world, a, b)].append((a, b))
        return out

    def sample(self, rng) -> str:
        """One training caption."""
        rng = as_rng(rng)
        u = rng.random()
        if u < self.empty:
            return ""
        names = self.world.names
        if u < self.empty + self.single:
            return names[int(rng.integers(len(names)))]
        pairs = self.pairs()
        classes = [c for c, _ in self.pair_mix if pairs[c]]
        weights = np.array([w for c, w in self.pair_mix if pairs[c]], float)
        cls = classes[int(rng.choice(len(classes), p=weights / weights.sum()))]
        a, b = pairs[cls][int(rng.integers(len(pairs[cls])))]
        return JOINER.join((a, b) if rng.random() < 0.5 else (b, a))

    def training(self) -> list[str]:
        """Every caption `sample` can produce."""
        pairs = [p for ps in self.pairs().values() for p in ps]
        return [""] + self.world.names + [JOINER.join(o) for a, b in pairs for o in ((a, b), (b, a))]

    def held_out_captions(self) -> list[str]:
        return [JOINER.join(o) for a, b in self.held_out for o in ((a, b), (b, a))]

    def all(self) -> list[str]:
        """Training and held-out captions (for caching text embeddings)."""
        return self.training() + self.held_out_captions()

    def to_dict(self) -> dict:
        return {"empty": self.empty, "single": self.single, "pair_mix": dict(self.pair_mix),
                "held_out": [list(p) for p in self.held_out]}

    @classmethod
    def from_dict(cls, world: World, data: dict) -> "Captions":
        return cls(world, data["empty"], data["single"], tuple(data["pair_mix"].items()),
                   tuple(tuple(p) for p in data["held_out"]))


class SceneStream:
    """An endless, deterministic sequence of (image, caption): item ``i`` is a pure function of
    (world, captions, seed, i). Images are float32 [3, 32, 32] in [-1, 1] (what the model eats)."""

    def __init__(self, captions: Captions, seed: int = 0):
        self.captions, self.world, self.seed = captions, captions.world, int(seed)

    def scene(self, i: int) -> Scene:
        rng = np.random.default_rng([self.seed, int(i)])
        return self.world.render(self.captions.sample(rng), rng)

    def __getitem__(self, i: int) -> tuple[np.ndarray, str]:
        s = self.scene(i)
        return s.image.transpose(2, 0, 1) * 2 - 1, s.caption

    def batch(self, start: int, size: int) -> tuple[np.ndarray, list[str]]:
        """Items ``start .. start+size-1``: images [size, 3, 32, 32] and their captions."""
        items = [self[i] for i in range(start, start + size)]
        return np.stack([x for x, _ in items]), [c for _, c in items]

    def data_hash(self, n: int = 256) -> str:
        """sha256 over the world, the caption distribution and the first ``n`` items."""
        h = hashlib.sha256(json.dumps({"world": self.world.to_dict(), "captions": self.captions.to_dict(),
                                       "seed": self.seed}, sort_keys=True, default=str).encode())
        images, captions = self.batch(0, n)
        h.update(np.ascontiguousarray(images).tobytes())
        h.update("\n".join(captions).encode())
        return h.hexdigest()
