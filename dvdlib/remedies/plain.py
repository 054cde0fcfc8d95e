"""No remedy: the plain image, generated as every chapter generates it (the comparison's baseline).

Follows the remedies' contract (`dvdlib.remedies`) so that the comparison (`dvdlib.remedies.compare`)
times and stores it as it does every remedy: the seed's own initial latents, the profile's sampler,
one pipeline call per batch; the image is the run store's plain image of the same prompt and seed.
"""

from __future__ import annotations

from ..generate import pipeline_call

#: The remedy's name in its stored images' key.
NAME = "none"

#: images per pipeline call
BATCH = 8


def key(**params) -> dict:
    """The key of its stored images: its name (it takes no parameter)."""
    if params:
        raise TypeError(f"no remedy takes no parameter, got {sorted(params)}")
    return {"remedy": NAME}


def applies(pipe) -> str | None:
    """Always None: every model generates its plain image."""
    return None


def generate(pipe, prompts, seeds, sampler: dict, *, dominant=None, dominated=None) -> list:
    """Every prompt × seed plainly, images in the order ``[(p, s) for p in prompts for s in seeds]``."""
    jobs = [(p, int(s)) for p in prompts for s in seeds]
    images = []
    for start in range(0, len(jobs), BATCH):
        images += pipe(**pipeline_call(pipe, jobs[start:start + BATCH], sampler)).images
    return images
