"""World 2's prompt sets, in DominanceBench's columns (``case_num, content_type, content,
nm_word, prompt``), so every chapter runs on them unchanged.

- **dominance** (the DominanceBench analogue, paper §3.2): each named concept with the two
  objects it never met in training, in both orders — 12 concepts, 48 prompts;
- **balanced** (the control): a category word with the objects it never met ("a picture of a
  landmark and a ring": the same kind of thing as the named concept, at full diversity), and
  every pair of objects;
- **memorized**: the four captions trained on one exact scene each (paper §3.6–3.7);
- **unselected** (paper §3.9's analogue): every named concept with every object, through every
  pair template, never filtered by what the model draws;
- **factorial** (paper §3.10's analogue): three slots — artist, landmark, character — each a
  named concept (1) or an object (0), 2×2×2 conditions over matched cases;
- **pilot** (the ACCV version's three-concept pilot): a named artist, landmark and character in
  every caption, in the authors' pilot columns.

Extra columns: ``cluster`` (the unit of inference: the named concept, or the category word, or
the object pair), ``dose`` (the named concept's number of appearances), ``held_out``.
"""

from __future__ import annotations

import itertools

import pandas as pd

from .world import NAMED, PAIR_TEMPLATES, STYLE_TEMPLATES, World, caption, default_held_out

PAIR_TEMPLATE = PAIR_TEMPLATES.index("a picture of {0} and {1}")


def _pair_rows(world: World, content: str, obj: str, template: int = PAIR_TEMPLATE) -> list[dict]:
    """Both orders of (content, object); for a style the two style forms play the orders."""
    concept = world.concept(content)
    if concept.role == "artist":
        texts = [caption(world, [obj, content], 0, s) for s in range(len(STYLE_TEMPLATES))]
    else:
        texts = [caption(world, order, template) for order in ((content, obj), (obj, content))]
    return [{"content_type": concept.role, "content": content, "nm_word": obj, "prompt": t,
             "dose": concept.variants} for t in texts]


def _table(rows: list[dict], held_out) -> pd.DataFrame:
    held = {frozenset(p) for p in held_out}
    table = pd.DataFrame(rows)
    table["held_out"] = [frozenset((c, n)) in held for c, n in zip(table["content"], table["nm_word"])]
    table.insert(0, "case_num", range(1, len(table) + 1))
    if "cluster" not in table:
        table["cluster"] = table["content"]
    return table


def dominance(world: World | None = None, held_out=None) -> pd.DataFrame:
    """Each named concept with each object it never met in training, both orders."""
    world, held_out = world or World(), held_out or default_held_out(world)
    rows = [r for a, b in held_out for named, obj in [(a, b) if world.concept(a).rigid else (b, a)]
            if world.concept(named).rigid for r in _pair_rows(world, named, obj)]
    return _table(rows, held_out)


def balanced(world: World | None = None, held_out=None) -> pd.DataFrame:
    """Category word + never-met object (both orders), and every object pair (both orders)."""
    world, held_out = world or World(), held_out or default_held_out(world)
    rows = [r for a, b in held_out if a in NAMED for r in _pair_rows(world, a, b)]
    for a, b in itertools.combinations(world.objects, 2):
        for order in ((a, b), (b, a)):
            rows.append({"content_type": "object", "content": order[0], "nm_word": order[1],
                         "prompt": caption(world, order, PAIR_TEMPLATE), "dose": None, "cluster": f"{a}+{b}"})
    table = _table(rows, held_out)
    table["cluster"] = table["cluster"].fillna(table["content"])
    return table


def memorized(world: World | None = None) -> pd.DataFrame:
    world = world or World()
    return pd.DataFrame({"case_num": range(1, len(world.memorized) + 1), "prompt": list(world.memorized),
                         "cluster": list(world.memorized)})


def unselected(world: World | None = None, held_out=None) -> pd.DataFrame:
    """Every named concept × every object × every pair template (styles: both style forms)."""
    world, held_out = world or World(), held_out or default_held_out(world)
    rows = []
    for named in world.rigid:
        for obj in world.objects:
            templates = [0] if world.concept(named).role == "artist" else range(len(PAIR_TEMPLATES))
            rows += [dict(r, template=t) for t in templates for r in _pair_rows(world, named, obj, t)]
    return _table(rows, held_out)


def factorial(world: World | None = None, cases: int = 8) -> pd.DataFrame:
    """The 2×2×2 design: slot k holds a named concept of its role (1) or an object (0).

    Matched case i fixes the named artist, landmark and character (cycling through the four of
    each role) and three distinct objects; the eight conditions swap named concepts for those
    objects. Columns: ``condition`` ("101"), ``case``, ``target_1..3``, ``named_1..3``, ``prompt``."""
    world = world or World()
    roles, objects = ("artist", "landmark", "character"), world.objects
    rows = []
    for i in range(cases):
        named = [NAMED[r][(i + k) % len(NAMED[r])] for k, r in enumerate(roles)]
        objs = [objects[(i + 2 * k) % len(objects)] for k in range(3)]
        for bits in itertools.product((0, 1), repeat=3):
            targets = [n if b else o for n, o, b in zip(named, objs, bits)]
            sprites = targets[1:] + targets[:1] if bits[0] == 0 else targets[1:]
            order = sprites + ([targets[0]] if bits[0] else [])
            rows.append({"condition": "".join(map(str, bits)), "case": i + 1,
                         **{f"target_{k + 1}": t for k, t in enumerate(targets)},
                         **{f"named_{k + 1}": b for k, b in enumerate(bits)},
                         "prompt": caption(world, order, 0)})
    return pd.DataFrame(rows)


def pilot(world: World | None = None) -> pd.DataFrame:
    """The three-concept pilot: every caption names a named artist (slot 1), landmark (slot 2) and
    character (slot 3), in the authors' pilot columns (`dvdlib.bench.load_pilot`). Row ``i`` =
    16·z + 4·y + x takes the artist of dose index x, the landmark y and the character (x + y + z)
    mod 4, so every block of 16 rows is a Latin square (each named concept 4 times, each pair of
    roles' concepts together once) and the 64 rows hold every combination once. The landmark and
    the character alternate order, the style's two forms alternate, the pair template cycles.
    ``cluster``: the row (as the authors' pilot)."""
    world = world or World()
    artists, landmarks, characters = (NAMED[r] for r in ("artist", "landmark", "character"))
    rows = []
    for i in range(len(artists) * len(landmarks) * len(characters)):
        x, y, z = i % 4, i // 4 % 4, i // 16
        targets = (artists[x], landmarks[y], characters[(x + y + z) % 4])
        sprites = targets[1:] if i % 2 == 0 else targets[:0:-1]
        template, form = i // 4 % len(PAIR_TEMPLATES), i // 2 % len(STYLE_TEMPLATES)
        slots = {f"target{k}{part}": value for k, kind, name in zip((1, 2, 3), ("artist", "landmark", "character"), targets)
                 for part, value in (("_type", kind), ("", name))}
        rows.append({"case_num": i + 1, "prompt": caption(world, [*sprites, targets[0]], template, form), **slots,
                     "carrier": "", "template_id": f"pair {template}, style {form}"})
    return pd.DataFrame(rows).assign(cluster=lambda d: d["case_num"])


def category_words(world: World | None = None) -> dict[str, str]:
    """Replacement words (paper §3.8): each named concept → its role's category word."""
    world = world or World()
    return {name: world.category_word(name) for name in world.rigid}
