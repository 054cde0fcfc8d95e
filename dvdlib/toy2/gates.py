"""World 2's quality gates: what the model must do before its findings count.

- **singles**: each concept alone is recognised (≥ 90%);
- **two objects**: both objects of a pair present (≥ 60%);
- **three objects**: all three objects of a triple present (≥ 40%);
- **conditioning**: different single-concept prompts give different images for the same seed
  (≥ 95%);
- **positive control**: ablating every head of every cross-attention layer at the first step
  changes the image (≥ 90%): head ablation (paper §3.6) has the power to change something here.

A gate passes when its rate reaches the required level (`dvdlib.stats.gate_passes`, the book's one
gate rule), its 95% Clopper–Pearson interval printed beside it. Presence and "images differ" are world 1's definitions
(`dvdlib.toy.gates`).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ..attention import intervene
from ..generate import generate
from ..layers import registry
from ..stats import gate_passes, rate
from ..store import Store
from ..toy.gates import images_differ, presence
from .world import World, caption

REQUIRED = {"singles": 0.90, "two_objects": 0.60, "three_objects": 0.40, "conditioning": 0.95,
            "positive_control": 0.90}


def gate(hits: int, n: int, required: float) -> dict:
    """A gate's rate, its 95% interval, and whether the rate reaches ``required``."""
    r = rate(hits, n)
    low, high = r["ci"] or (float("nan"), float("nan"))
    return {"hits": hits, "n": n, "rate": r["value"] if n else float("nan"), "ci_low": low, "ci_high": high,
            "required": required, "passed": bool(n and gate_passes(r["value"], required))}


def gate_prompts(world: World) -> dict[str, list[str]]:
    """The prompts of each gate: every concept alone, every object pair, every object triple."""
    objects = world.objects
    return {"singles": [caption(world, [n]) for n in world.names],
            "two_objects": [caption(world, p, 3) for p in itertools.permutations(objects, 2)],
            "three_objects": [caption(world, t, 1) for t in itertools.combinations(objects, 3)]}


def everything_ablated(pipe) -> dict[tuple[int, int], float]:
    """Every head of every cross-attention layer, factor 0 (uniform attention over the prompt)."""
    return {(layer.index, head): 0.0 for layer in registry(pipe) for head in range(layer.heads)}


def measure_gates(pipe, judge, store: Store, seeds, world: World | None = None, present_at: int = 3,
                  batch_size: int = 40, control_prompts: int = 21) -> pd.DataFrame:
    """Generate the gate prompts with every seed (through ``store``), judge them, and run the
    positive control on the first ``control_prompts`` single-concept prompts."""
    world = world or World()
    prompts = gate_prompts(world)
    everything = [p for ps in prompts.values() for p in ps]
    generate(pipe, everything, seeds, store=store, batch_size=batch_size, progress=False)
    images = {(p, s): store.image(p, s).convert("RGB") for p in everything for s in seeds}

    def present(prompt: str, concept: str) -> list[bool]:
        kind = world.concept(concept).role
        counts = presence(judge, [images[prompt, s] for s in seeds], concept, "objects" if kind == "object" else kind)
        return [c >= present_at for c in counts]

    def all_present(prompt: str) -> list[bool]:
        return list(np.all([present(prompt, c.name) for c in world.parse(prompt)], axis=0))

    singles = [hit for p, name in zip(prompts["singles"], world.names) for hit in present(p, name)]
    two = [hit for p in prompts["two_objects"] for hit in all_present(p)]
    three = [hit for p in prompts["three_objects"] for hit in all_present(p)]
    pixels = {k: np.asarray(v, np.float32) / 255 for k, v in images.items()}
    differ = [images_differ(pixels[a, s], pixels[b, s]) for a, b in itertools.combinations(prompts["singles"], 2)
              for s in seeds]
    control = prompts["singles"][:control_prompts]
    ablated = Store(store.root, store.model, {**store.settings, "intervention": "all heads, step 1"})
    with intervene(pipe, everything_ablated(pipe), steps=(1,)):
        generate(pipe, control, seeds, store=ablated, batch_size=batch_size, progress=False)
    changed = [images_differ(pixels[p, s], np.asarray(ablated.image(p, s).convert("RGB"), np.float32) / 255)
               for p in control for s in seeds]
    rows = {"singles": gate(sum(singles), len(singles), REQUIRED["singles"]),
            "two_objects": gate(sum(two), len(two), REQUIRED["two_objects"]),
            "three_objects": gate(sum(three), len(three), REQUIRED["three_objects"]),
            "conditioning": gate(sum(differ), len(differ), REQUIRED["conditioning"]),
            "positive_control": gate(sum(changed), len(changed), REQUIRED["positive_control"])}
    return pd.DataFrame(rows).T
