"""Worlds: where a profile's model, judge, prompts and images come from.

A profile names its world (``world: sd``, ``smoke``, ``toy`` in its YAML). A world is one module
that builds a `World` and registers it by name; the rest of dvdlib asks the world a profile names
(`get`) and never imports a world's own code, nor asks which world it runs.

Shipped worlds: ``sd`` (Stable Diffusion and the paper's data, `dvdlib.worlds.sd`), ``smoke``
(a tiny random-weight model that proves the pipeline, `dvdlib.worlds.smoke`) and ``toy`` (the
book's own trained toy world, `dvdlib.worlds.toy`).

Adding a world: write ``dvdlib/worlds/<name>.py`` (or any importable module, named in the profile
by its import name, e.g. ``world: mypackage.myworld``) that ends with::

    WORLD = register(dataclasses.replace(sd.WORLD, name="<name>", load_model=..., ...))

changing only the fields in which it differs from Stable Diffusion (see `World`), and a profile
with ``world: <name>``. No other module changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True)
class World:
    """Everything a chapter takes from the world it studies (the paper: Stable Diffusion, §1).

    ``load_model(name, *, dtype, device)`` → a diffusers `StableDiffusionPipeline`;
    ``load_judge(name, *, device, cache)`` → a `dvdlib.judge.Judge`;
    ``questions``: the judge's question set (`dvdlib.judge.load_questions` name or path);
    ``roles``: the prompt set of each role a chapter uses (``benchmark``, ``control``,
    ``balanced``, optionally ``memorized``, ``unselected``, ``factorial`` and ``pilot``: a world
    without three-concept captions names no ``factorial``/``pilot``, and chapter 11 says so), by
    the names `dvdlib.bench.load_prompt_set` knows;
    ``prompt_sets``: the named prompt sets this world adds to those (name → table loader);
    ``category_words()`` → {concept or category: word} for the replacement test (§3.8);
    ``diversity_source`` and ``image_sources``: the training-image source of §3.1 when a chapter
    names none, and the named sources this world adds (name → ``fn(profile, *, centred)`` →
    (table, provenance));
    ``clip``: the CLIP image encoder of §3.1 when a chapter names none;
    ``training_images(n_breeds, n_images, seed, size)`` → [(variant, PIL image)]: the causal
    test's images (§3.3) when a chapter gives no folder (None: a folder is required), described
    to the reader by ``training_images_note``, what they are spread over named by
    ``training_images_unit`` ("breed": dog breeds; a toy world's "variant": a fixed appearance);
    ``causal_prompts()`` → the causal test's prompts (§3.3), DominanceBench's columns plus ``group``;
    ``judge_check(judge)`` → how a judge of this world agrees with people (a table), or None;
    ``judge_name(judge)`` → the name a judge stores its answers under, read without loading it
    (`dvdlib.plan` keys judge work by it; the profile's judge string where the judge keeps it);
    ``command(argv)`` → exit status: the world's own command line, ``dvd <name> ...``;
    ``limits``: the label of the book's section on what this world can and cannot test, which
    every card of a chapter run in it links to ("" where the world has none), and
    ``limits_section(profile, root, findings)`` → that section's Markdown (None: the world has none).
    """

    name: str
    description: str
    load_model: Callable
    load_judge: Callable
    questions: str
    roles: Mapping[str, str]
    category_words: Callable[[], dict]
    causal_prompts: Callable
    clip: str
    diversity_source: str = "generated"
    prompt_sets: Mapping[str, Callable] = field(default_factory=dict)
    image_sources: Mapping[str, Callable] = field(default_factory=dict)
    training_images: Callable | None = None
    training_images_note: str = ""
    training_images_unit: str = "breed"
    judge_check: Callable | None = None
    judge_name: Callable[[str], str] = str
    command: Callable | None = None
    limits: str = ""
    limits_section: Callable | None = None


_REGISTERED: dict[str, World] = {}


def register(world: World, name: str | None = None) -> World:
    """Make ``world`` known under ``name`` (default its own name); returns it."""
    _REGISTERED[name or world.name] = world
    return world


def available() -> list[str]:
    """The names of the worlds shipped in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__))


def get(name: str) -> World:
    """The world registered as ``name``: a shipped one (``dvdlib/worlds/<name>.py``) or one that
    the importable module ``name`` registers; importing the module registers it."""
    if name not in _REGISTERED:
        module = f"{__name__}.{name}" if name in available() else name
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            raise ValueError(f"unknown world {name!r}: use one of {available()} or an importable module "
                             "that registers a world (dvdlib.worlds.register)") from None
        if name not in _REGISTERED and isinstance(getattr(loaded, "WORLD", None), World):
            register(loaded.WORLD, name)
    if name not in _REGISTERED:
        raise ValueError(f"the module {name!r} registers no world named {name!r}")
    return _REGISTERED[name]
