"""Detect, then fix, one prompt (``dvd fix``): the first-step check of paper §3.8 decides whether
a remedy (`dvdlib.remedies`) is applied; a prompt the detector does not flag is generated plainly.

The concept that takes more of the first step's attention in the detector's layers is the one
treated as dominant (`dvdlib.detect.Check.dominant`); the other is the one the remedy brings back.
Images are stored as every chapter's are: plain ones in the run store, a remedy's in a store keyed
by the remedy and its parameters, so running the same fix twice computes nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..detect import THRESHOLD, Check, check_prompt
from ..store import Store, model_key

#: the remedies ``dvd fix`` knows, by name (each a module of `dvdlib.remedies`)
NAMES = ("rebalance", "attend_excite", "weighting")

#: the remedy applied where none is named, per world, from chapter 13's measurement there: on the
#: toy world's twins (`dvd toy findings`, 12 pairs), the remedy of `NAMES` with the largest paired
#: estimate over replacement in the share with both concepts present on the memorized twins; no
#: remedy beats replacement, or the plain images, there by the book's rule (all within ±0.05), so
#: the choice rests on estimates (tests/test_fix.py checks both against toy/findings)
MEASURED = {"toy": "weighting"}

#: where chapter 13 has measured nothing for the model (Stable Diffusion until it runs at the paper's
#: scale): early attention rebalancing, which keeps both concepts in the prompt; a choice
DEFAULT = "rebalance"


def default_remedy(world: str) -> tuple[str, str]:
    """The remedy ``dvd fix`` applies when none is named, for a profile's ``world``, and why."""
    if world in MEASURED:
        return MEASURED[world], (f"the largest estimate of chapter 13 on the {world} world's twins, against replacement, "
                                 "in images with both concepts present; no remedy beats replacement there by the book's "
                                 "rule, so this is the best estimate, not a decided winner")
    return DEFAULT, "a choice, not a measurement: chapter 13 has measured no remedy on this model family yet"


def remedy_module(name: str):
    """The module of the remedy ``name`` (one of `NAMES`); a clear error otherwise."""
    if name not in NAMES:
        raise ValueError(f"unknown remedy {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"{__package__}.{name}")


@dataclass
class Fixed:
    """What ``dvd fix`` did with one prompt: the check, the remedy applied (None: none), why, and
    the image of each seed."""

    check: Check
    remedy: str | None
    why: str
    images: list[Image.Image] = field(repr=False)
    params: dict = field(default_factory=dict)

    def report(self) -> str:
        """The lines ``dvd fix`` prints."""
        shown = {k: v for k, v in self.params.items() if k != "remedy"}
        done = (f"applied {self.remedy}" + (f" ({', '.join(f'{k} {v}' for k, v in shown.items())})" if shown else "")
                if self.remedy else "no remedy applied")
        return f"{self.check.report()}\n{done}: {self.why}"


def remedy_store(run, key: dict, model=None) -> Store:
    """The store of a remedy's images under ``model`` (default the profile's; a fine-tune samples as
    its base) and the profile's sampler (``key``: the remedy's `key`, which names it and its
    parameters)."""
    from ..finetune import base_of

    P, model = run.profile, model or run.profile.model
    return Store(P.store, model_key(model), {**P.sampler(base_of(model)), "remedy": key}, P.store_mode)


def fix_prompt(run, prompt: str, concepts, *, remedy: str = DEFAULT, seeds=None, layers=None,
               threshold: float = THRESHOLD, params: dict | None = None) -> Fixed:
    """Check ``prompt`` at the first step (`dvdlib.detect.check_prompt`, on the first seed) and
    generate it for every seed: with ``remedy`` (and its ``params``) when the detector flags it, the
    dominant concept being the one the check finds, else plainly (the image every chapter draws).
    Refuses, before any compute, two concepts not given, an unknown remedy, or one that does not
    apply to the model."""
    concepts, params = list(concepts), dict(params or {})
    if len(concepts) != 2:
        raise ValueError(f"give the prompt's two concepts (--concepts A B), got {len(concepts)}")
    module = remedy_module(remedy)
    why_not = module.applies(run.pipe)
    if why_not:
        raise ValueError(f"remedy {remedy!r} does not apply to {run.profile.model}: {why_not}")
    seeds = [int(s) for s in (seeds or run.profile.seeds[:1])]
    check = check_prompt(run.pipe, prompt, concepts, store=run.store(), seeds=seeds[:1], layers=layers,
                         threshold=threshold)
    if not check.flagged:
        samples = run.generate([prompt], seeds)
        return Fixed(check, None, "the detector does not flag the prompt, so it is generated as it is",
                     [Image.open(s.image) for s in samples])
    dominant = check.dominant
    dominated = next(c for c in concepts if c != dominant)
    store = remedy_store(run, module.key(**params))
    todo = store.todo([(prompt, s) for s in seeds], what=f"images under {remedy}")
    if todo:
        made = module.generate(run.pipe, [prompt], [s for _, s in todo], run.profile.sampler(),
                               dominant=[dominant], dominated=[dominated], **params)
        for (p, s), image in zip(todo, made):
            store.save(p, s, image=image)
    images = [store.image(prompt, s) for s in seeds]
    why = (f"the detector flags the prompt, and {dominant!r} takes {check.shares[dominant]:.1%} of the first step's "
           f"attention in its layers against {check.shares[dominated]:.1%} for {dominated!r}")
    return Fixed(check, remedy, why, images, module.key(**params))


def write_images(fixed: Fixed, out: str | Path, seeds) -> list[Path]:
    """Write the fixed images: ``out`` itself for one seed, else ``out`` with ``-<seed>`` before its suffix."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out] if len(fixed.images) == 1 else [out.with_name(f"{out.stem}-{s}{out.suffix}") for s in seeds]
    for image, path in zip(fixed.images, paths):
        image.save(path)
    return paths
