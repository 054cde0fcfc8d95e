"""World 2's scenes and captions: concepts whose visual diversity is a dose, prompts like prompts.

Concepts (`default_concepts`):

- six flexible **objects** (``ball``, ``box``, ``ring``, ``bar``, ``kite``, ``cross``): every
  render draws a fresh colour, size and shape;
- three **roles** as in DominanceBench — landmark (a building), character (a figure), artist (a
  style over the whole scene) — each with four **rigid named concepts** of 1, 2, 4 and 8 fixed
  appearances (the dose of diversity), and a flexible **category word** (``landmark``,
  ``character``, ``artist``) drawn fresh every time. A named concept and its category word differ
  only in diversity; a category word beside an object isolates diversity from kind. A named
  concept's appearances are unrelated draws, or (``World(shared_identity=True)``) variations of
  one identity;
- four **memorized** captions, each always drawn as one exact scene (the paper's memorized set).

Captions use templates ("a picture of orvel castle and a ball", "lady fenn, a kite and a box, van
rell style"): 1, 2 or 3 concepts in any order, multi-token names, 5–12 content tokens on average.
The caption distribution (`Captions`) has a frequency knob: named concepts are common alone and
rare beside an object, as famous things are in web captions; ``held_out`` pairs never occur
together in training (the test prompts). Renders are pure functions of (world, caption, seed).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Sequence

import numpy as np

from ..scenes.concepts import ConceptLookup
from ..scenes.sprites import (BACKGROUND, apart, apply_style, as_rng, bright, building_params, draw_building, draw_figure,
                              draw_object, figure_params, name_key, style_params)

SIZE = 32
OBJECT_KINDS = ("ball", "box", "ring", "bar", "kite", "cross")
ROLE_OF_KIND = {"building": "landmark", "figure": "character", "style": "artist"}


@dataclass(frozen=True)
class Concept:
    """A concept: its ``name`` (as written in captions, without article), drawing ``kind`` and
    ``variants`` (None: fresh appearance per render; k: k fixed appearances)."""

    name: str
    kind: str
    variants: int | None = None

    def __post_init__(self):
        if self.kind not in OBJECT_KINDS and self.kind not in ROLE_OF_KIND:
            raise ValueError(f"unknown kind {self.kind!r}; use one of {OBJECT_KINDS + tuple(ROLE_OF_KIND)}")
        if self.variants is not None and self.variants < 1:
            raise ValueError(f"{self.name}: variants must be None or ≥ 1, got {self.variants}")

    @property
    def role(self) -> str:
        return ROLE_OF_KIND.get(self.kind, "object")

    @property
    def rigid(self) -> bool:
        return self.role != "object" and self.variants is not None

    @property
    def phrase(self) -> str:
        """How the concept appears in a caption: "a ball", "a landmark", "orvel castle", "van rell"."""
        if self.rigid or self.role == "artist":
            return self.name
        return f"a {self.name}"


#: Named concepts per role, in dose order (1, 2, 4, 8 appearances).
NAMED = {
    "landmark": ("orvel castle", "dunmor tower", "pellan abbey", "vasko gate"),
    "character": ("captain zorin", "robo kip", "mister quill", "lady fenn"),
    "artist": ("van rell", "mora kest", "ilse brandt", "sofi oum"),
}
DOSES = (1, 2, 4, 8)
KIND_OF_ROLE = {role: kind for kind, role in ROLE_OF_KIND.items()}

#: Memorized captions: each always drawn as one exact scene.
MEMORIZED = ("the blue harbour at dawn poster", "portrait of the old king wall art",
             "sunset over green hills canvas print", "the lighthouse keeper book cover")


def default_concepts() -> tuple[Concept, ...]:
    objects = tuple(Concept(k, k) for k in OBJECT_KINDS)
    named = tuple(Concept(n, KIND_OF_ROLE[r], d) for r, names in NAMED.items() for n, d in zip(names, DOSES))
    words = tuple(Concept(r, KIND_OF_ROLE[r]) for r in NAMED)
    return objects + named + words


# ---------------------------------------------------------------- appearances (`dvdlib.scenes.sprites`)

def _object_params(kind: str, rng) -> dict:
    """A flexible object: fresh colour, size and shape details (sizes for three-object scenes)."""
    p = {"colour": bright(rng)}
    if kind == "ball":
        p["d"] = int(rng.integers(5, 11))
    elif kind == "box":
        p["h"], p["w"] = (int(x) for x in rng.integers(4, 10, size=2))
    elif kind == "ring":
        p["d"], p["t"] = int(rng.integers(7, 12)), 2
    elif kind == "bar":
        p["orient"] = str(rng.choice(["h", "v", "d", "a"]))
        p["len"] = int(rng.integers(8, 11)) if p["orient"] in "da" else int(rng.integers(8, 13))
        p["t"] = int(rng.integers(2, 4))
    elif kind in ("kite", "cross"):
        p["d"] = int(rng.integers(7, 12)) | 1  # odd: a centre pixel
        p["t"] = int(rng.integers(2, 4))
    return p


def _draw_shape(kind: str, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, mask) of an object; kites (diamonds) and crosses drawn here, the rest as world 1
    (`dvdlib.scenes.sprites.draw_object`)."""
    if kind not in ("kite", "cross"):
        return draw_object(kind, p)
    d, c = p["d"], p["d"] // 2
    y, x = np.mgrid[:d, :d]
    if kind == "kite":
        mask = np.abs(y - c) + np.abs(x - c) <= c
    else:
        half = p["t"] / 2
        mask = (np.abs(y - c) < half) | (np.abs(x - c) < half)
    return np.broadcast_to(p["colour"], mask.shape + (3,)).copy(), mask


#: Building and figure sizes (``[low, high)``), smaller than world 1's: three sprites share a scene.
BUILDING_SIZES = {"w": (6, 11), "body": (7, 11), "roof_h": (3, 5)}
FIGURE_SIZES = {"head": (4, 6), "body_w": (5, 9), "body_h": (4, 6), "leg_h": (2, 4)}


def appearance(concept: Concept, rng) -> dict:
    if concept.kind in OBJECT_KINDS:
        return _object_params(concept.kind, rng)
    if concept.kind == "building":
        return building_params(rng, **BUILDING_SIZES)
    if concept.kind == "figure":
        return figure_params(rng, **FIGURE_SIZES)
    return style_params(rng)


#: What every appearance of a named concept keeps when the world's appearances share an identity:
#: a building's roof and its wall and roof colours, a figure's head shape and its head and body
#: colours, a style's texture and main colour. Sizes, details and the other colours vary.
IDENTITY = {"building": ("roof", "wall", "roof_c"), "figure": ("round", "head_c", "body_c"), "style": ("texture", "bg")}


def variant_appearance(concept: Concept, index: int, shared_identity: bool = False) -> dict:
    """The ``index``-th fixed appearance of a named concept (a pure function of name and index).
    Unrelated draws by default; with ``shared_identity`` every appearance keeps the `IDENTITY`
    attributes of the first, as photographs of one landmark share its shape and colours."""
    own = appearance(concept, np.random.default_rng([name_key(concept.name), index]))
    if not shared_identity:
        return own
    first = appearance(concept, np.random.default_rng([name_key(concept.name), 0]))
    return {**own, **{k: first[k] for k in IDENTITY[concept.kind]}}


def draw(concept: Concept, params: dict) -> tuple[np.ndarray, np.ndarray]:
    if concept.kind in OBJECT_KINDS:
        return _draw_shape(concept.kind, params)
    return {"building": draw_building, "figure": draw_figure}[concept.kind](params)


def place(shapes: Sequence[tuple[int, int]], rng, size: int = SIZE, tries: int = 200) -> list[tuple[int, int]] | None:
    """Top-left corners for boxes of the given (h, w), inside the canvas, ≥ 1 px apart; None if
    ``tries`` uniform draws all overlap (the caller redraws the appearances)."""
    for _ in range(tries):
        corners = [(int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))) for h, w in shapes]
        boxes = [(y, x, h, w) for (y, x), (h, w) in zip(corners, shapes)]
        if all(apart(boxes[i], boxes[j]) for i in range(len(boxes)) for j in range(i)):
            return corners
    return None


# ---------------------------------------------------------------- scenes

@dataclass
class Scene:
    """A render: image [32, 32, 3] float32 in [0, 1]; per concept its mask and the variant drawn."""

    caption: str
    image: np.ndarray
    masks: dict[str, np.ndarray]
    variants: dict[str, int | None]


@dataclass(frozen=True)
class World(ConceptLookup):
    """World 2's concepts and how scenes are drawn (immutable; `with_variants` returns a copy;
    look-ups: `dvdlib.scenes.concepts.ConceptLookup`)."""

    #: The question set (`dvdlib.judge.load_questions`) written for this world's concepts.
    question_set: ClassVar[str] = "toy2"
    #: The world's plug-in name (``dvd <name> ...``, `dvdlib.worlds`) and its name in prose.
    name: ClassVar[str] = "toy2"
    title: ClassVar[str] = "toy world 2"
    concepts: tuple[Concept, ...] = field(default_factory=default_concepts)
    memorized: tuple[str, ...] = MEMORIZED
    size: int = SIZE
    #: Whether a named concept's appearances share an identity (`variant_appearance`).
    shared_identity: bool = False

    def category_word(self, name: str) -> str:
        """The flexible word of a named concept's role ("orvel castle" → "landmark")."""
        role = self.concept(name).role
        if role == "object":
            raise KeyError(f"{name!r} is an object: it has no category word")
        return role

    def captions(self, **mix) -> "Captions":
        """A caption distribution over this world (`Captions`; ``mix`` overrides)."""
        return Captions(self, **mix)

    def evaluation_captions(self, held_out=None) -> dict[str, list[str]]:
        """Captions a judge is evaluated on: every concept alone (``single``), every concept pair
        of training with ``held_out`` (default `default_held_out`) kept out (``pair``), and the
        held-out pairs (``held_out``), both orders."""
        held = default_held_out(self) if held_out is None else tuple(held_out)
        pairs = Captions(self, held_out=held).sets(2)[0]
        return {"single": [caption(self, [n]) for n in self.names], "pair": [caption(self, p) for p in pairs],
                "held_out": [caption(self, o) for a, b in held for o in ((a, b), (b, a))]}

    def parse(self, text: str) -> list[Concept]:
        """The concepts a caption names, in caption order (`parse`)."""
        return parse(self, text)

    def draw_appearance(self, concept: Concept, rng) -> tuple[dict, int | None]:
        if concept.variants is None:
            return appearance(concept, rng), None
        index = int(rng.integers(concept.variants))
        return variant_appearance(concept, index, self.shared_identity), index

    def render(self, caption: str, seed=0) -> Scene:
        """Render a caption (any `Captions` caption, or a memorized one) with ``seed``."""
        if caption in self.memorized:
            return self.render_concepts(caption, _memorized_content(self, caption), np.random.default_rng(
                [name_key(caption), 0]))
        return self.render_concepts(caption, parse(self, caption), as_rng(seed))

    def render_concepts(self, caption: str, concepts: Sequence[Concept], rng) -> Scene:
        """Render concepts (≤ 3 sprites or objects and ≤ 1 style) without overlap."""
        styles = [c for c in concepts if c.role == "artist"]
        sprites = [c for c in concepts if c.role != "artist"]
        while True:
            drawn = [(c, *self.draw_appearance(c, rng)) for c in sprites]
            pictures = [draw(c, p) for c, p, _ in drawn]
            corners = place([m.shape for _, m in pictures], rng, self.size)
            if corners is not None:
                break
        image = np.broadcast_to(np.array(BACKGROUND, np.float32), (self.size, self.size, 3)).copy()
        masks, variants = {}, {c.name: v for c, _, v in drawn}
        for (c, _, _), (rgb, m), (y, x) in zip(drawn, pictures, corners):
            h, w = m.shape
            image[y:y + h, x:x + w][m] = rgb[m]
            full = np.zeros((self.size, self.size), bool)
            full[y:y + h, x:x + w] = m
            masks[c.name] = full
        for c in styles:
            p, v = self.draw_appearance(c, rng)
            objects = np.any(list(masks.values()), axis=0) if masks else np.zeros((self.size, self.size), bool)
            image = apply_style(p, image, objects)
            masks[c.name], variants[c.name] = np.ones((self.size, self.size), bool), v
        return Scene(caption, np.clip(image, 0.0, 1.0).astype(np.float32), masks, variants)

    def to_dict(self) -> dict:
        data = {"size": self.size, "concepts": [asdict(c) for c in self.concepts], "memorized": list(self.memorized)}
        return {**data, "shared_identity": True} if self.shared_identity else data

    @classmethod
    def from_dict(cls, data: dict) -> "World":
        return cls(concepts=tuple(Concept(**c) for c in data["concepts"]), memorized=tuple(data["memorized"]),
                   size=data.get("size", SIZE), shared_identity=data.get("shared_identity", False))


def _memorized_content(world: World, caption: str) -> list[Concept]:
    """The fixed content of a memorized caption's scene: a building, a figure and a style of its
    own (appearances drawn once from the caption, not any named concept's)."""
    return [Concept(f"{caption}/building", "building", 1), Concept(f"{caption}/figure", "figure", 1),
            Concept(f"{caption}/style", "style", 1)]


# ---------------------------------------------------------------- captions

SINGLE_TEMPLATES = ("{0}", "a picture of {0}", "a photo of {0}")
PAIR_TEMPLATES = ("{0} and {1}", "{0} with {1}", "{0} next to {1}", "a picture of {0} and {1}")
TRIPLE_TEMPLATES = ("{0}, {1} and {2}", "a picture of {0}, {1} and {2}")
STYLE_TEMPLATES = ("{rest}, {style} style", "{style} style painting of {rest}")
STYLE_ALONE = ("{style} style", "a painting in {style} style")


def caption(world: World, names: Sequence[str], template: int = 0, style_template: int = 0) -> str:
    """The caption of concepts in the given order: non-style concepts through the ``template``-th
    template of their count, a style (at most one) through the ``style_template``-th form."""
    concepts = [world.concept(n) for n in names]
    styles = [c for c in concepts if c.role == "artist"]
    rest = [c.phrase for c in concepts if c.role != "artist"]
    if len(styles) > 1 or not 1 <= len(concepts) <= 3 or len(rest) > 3:
        raise ValueError(f"a caption holds 1–3 concepts with at most one style, got {list(names)}")
    templates = {1: SINGLE_TEMPLATES, 2: PAIR_TEMPLATES, 3: TRIPLE_TEMPLATES}
    if styles and style_template % len(STYLE_TEMPLATES) == 1:
        template = 0  # "van rell style painting of X and Y", never "... of a picture of X and Y"
    body = templates[len(rest)][template % len(templates[len(rest)])].format(*rest) if rest else ""
    if not styles:
        return body
    style = styles[0].name
    if not rest:
        return STYLE_ALONE[style_template % len(STYLE_ALONE)].format(style=style)
    return STYLE_TEMPLATES[style_template % len(STYLE_TEMPLATES)].format(rest=body, style=style)


def parse(world: World, text: str) -> list[Concept]:
    """The concepts a caption names, in caption order ("" → [])."""
    padded = f" {text.replace(',', ' ')} "
    found = [(padded.find(f" {c.name} "), c) for c in world.concepts if f" {c.name} " in padded]
    if text.strip() and not found:
        raise ValueError(f"caption {text!r} names no concept of toy world 2")
    return [c for _, c in sorted(found, key=lambda x: x[0])]


@dataclass(frozen=True)
class Captions:
    """The training caption distribution.

    ``empty`` of captions are "" (for classifier-free guidance), ``memorized`` one of the
    memorized captions (none unless asked: training asks for 3%), ``single`` one concept,
    ``pair`` two, the rest three. Within each, a caption's concept set is drawn with weight ``named_alone`` for a named concept alone,
    ``named_with_object`` for a set holding a named concept and an object (rare: the frequency
    knob), ``objects_only`` for two or three objects (composition is learned from them), 1
    otherwise; then a uniform order and template. Sets with two concepts of one role, or
    holding a ``held_out`` pair, never occur."""

    world: World = field(default_factory=World)
    empty: float = 0.1
    memorized: float = 0.0
    single: float = 0.32
    pair: float = 0.35
    named_alone: float = 3.0
    named_with_object: float = 0.25
    objects_only: float = 3.0
    held_out: tuple[tuple[str, str], ...] = ()

    def allowed(self, names: Sequence[str]) -> bool:
        roles = [self.world.concept(n).role for n in names]
        non_object = [r for r in roles if r != "object"]
        if len(set(non_object)) != len(non_object):
            return False
        held = [set(p) for p in self.held_out]
        return not any({a, b} in held for a, b in itertools.combinations(names, 2))

    def weight(self, names: Sequence[str]) -> float:
        concepts = [self.world.concept(n) for n in names]
        if len(concepts) == 1:
            return self.named_alone if concepts[0].rigid else 1.0
        if any(c.rigid for c in concepts) and any(c.role == "object" for c in concepts):
            return self.named_with_object
        return self.objects_only if all(c.role == "object" for c in concepts) else 1.0

    def sets(self, size: int) -> tuple[list[tuple[str, ...]], np.ndarray]:
        """Allowed concept sets of ``size`` (unordered) and their sampling probabilities."""
        sets = [s for s in itertools.combinations(self.world.names, size) if self.allowed(s)]
        w = np.array([self.weight(s) for s in sets], float)
        return sets, w / w.sum()

    def sample(self, rng) -> str:
        rng = as_rng(rng)
        u = rng.random()
        if u < self.empty:
            return ""
        if u < self.empty + self.memorized:
            return self.world.memorized[int(rng.integers(len(self.world.memorized)))]
        size = 1 if u < self.empty + self.memorized + self.single else 2 if u < self.empty + self.memorized + self.single + self.pair else 3
        sets, p = self._sets_cached(size)
        names = list(sets[int(rng.choice(len(sets), p=p))])
        rng.shuffle(names)
        return caption(self.world, names, int(rng.integers(6)), int(rng.integers(2)))

    def _sets_cached(self, size: int):
        cache = self.__dict__.setdefault("_cache", {})
        if size not in cache:
            cache[size] = self.sets(size)
        return cache[size]

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "world"} | {"held_out": [list(p) for p in self.held_out]}


def default_held_out(world: World | None = None) -> tuple[tuple[str, str], ...]:
    """Pairs never seen together in training: each named concept and each category word with
    two objects (rotating through the six, so every object is held out with every role), and
    two object pairs (the composition control)."""
    world = world or World()
    objects = world.objects
    out = []
    for role in NAMED:
        for i, c in enumerate([*NAMED[role], role]):
            j = (2 * i + list(NAMED).index(role)) % len(objects)
            out += [(c, objects[j]), (c, objects[(j + 3) % len(objects)])]
    return tuple(out) + (("ball", "kite"), ("box", "cross"))


class SceneStream:
    """Endless deterministic (image, caption) items: item i is a pure function of (captions, seed, i)."""

    def __init__(self, captions: Captions, seed: int = 0):
        self.captions, self.world, self.seed = captions, captions.world, int(seed)

    def scene(self, i: int) -> Scene:
        rng = np.random.default_rng([self.seed, int(i)])
        return self.world.render(self.captions.sample(rng), rng)

    def batch(self, start: int, size: int) -> tuple[np.ndarray, list[str]]:
        scenes = [self.scene(i) for i in range(start, start + size)]
        return np.stack([s.image.transpose(2, 0, 1) * 2 - 1 for s in scenes]), [s.caption for s in scenes]

    def data_hash(self, n: int = 256) -> str:
        h = hashlib.sha256(json.dumps({"world": self.world.to_dict(), "captions": self.captions.to_dict(),
                                       "seed": self.seed}, sort_keys=True, default=str).encode())
        images, captions = self.batch(0, n)
        h.update(np.ascontiguousarray(images).tobytes())
        h.update("\n".join(captions).encode())
        return h.hexdigest()
