"""The toy judge's training and evaluation data: multi-label targets of a caption, sprites faded
toward the background, garbage images (what an untrained diffusion model makes), renders degraded
the way a generator draws, fresh render sets for evaluation.
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from .judge import JudgeConfig
from .world import BACKGROUND, World


#: A sprite faded toward the background to contrast a counts as absent for a ≤ 0.3, present for
#: a ≥ 0.8, linearly in between: the presence target the judge learns for ghosts (`fade`).
FADE_RAMP = (0.3, 0.8)
#: Garbage the judge is trained to call unrecognisable; `evaluate` adds unseen kinds.
GARBAGE_KINDS = ("noise", "mush", "blur", "blend", "noised")


def labels(world: World, caption: str, strength: dict[str, float] | None = None) -> np.ndarray:
    """Presence targets over `World.names`: 1 for the caption's concepts (``strength[name]`` for a
    faded one), and for each category word (a non-object concept with unlimited variants) the
    strongest present concept of its role, so a tower is a landmark."""
    present = {c.name: (strength or {}).get(c.name, 1.0) for c in world.parse(caption)}
    by_role: dict[str, float] = {}
    for name, s in present.items():
        role = world.concept(name).role
        by_role[role] = max(by_role.get(role, 0.0), s)
    return np.array([present.get(c.name, by_role.get(c.role, 0.0) if c.role != "object" and c.variants is None else 0.0)
                     for c in world.concepts], np.float32)


def fade(scene, name: str, contrast: float) -> np.ndarray:
    """The scene's image with concept ``name`` pulled toward the plain background (unstyled
    scenes): a ghost of it at ``contrast`` (1 = as rendered, 0 = gone)."""
    return np.where(scene.masks[name][..., None], contrast * scene.image + (1 - contrast) * np.array(BACKGROUND), scene.image)


def faded_presence(contrast: float) -> float:
    """Presence target of a sprite faded to ``contrast``: 0 up to `FADE_RAMP` [0], 1 from [1]."""
    lo, hi = FADE_RAMP
    return float(np.clip((contrast - lo) / (hi - lo), 0.0, 1.0))


def _fadeable(world: World, scene) -> list[str]:
    """The sprites of an unstyled scene (a style has no plain background to fade toward)."""
    names = list(scene.masks)
    return [] if any(world.concept(n).kind == "style" for n in names) else names


def _caption(captions, rng, styled: bool | None = None) -> str:
    """A non-empty caption of the mix; ``styled``: with a style (True), without one (False)."""
    while True:
        caption = captions.sample(rng)
        has_style = any(c.kind == "style" for c in captions.world.parse(caption))
        if caption and styled in (None, has_style):
            return caption


def garbage_image(kind: str, captions, rng) -> np.ndarray:
    """One garbage image [32, 32, 3] in [0, 1] of ``kind`` (`GARBAGE_KINDS`, or, only to
    evaluate, the unseen ``"uniform"`` noise, ``"washed"`` over-guided scenes and ``"plain_blend"``:
    two unstyled scenes mixed, which look like faded sprites and are *not* trained as garbage)."""
    world = captions.world
    render = lambda styled=None: world.render(_caption(captions, rng, styled), rng).image  # noqa: E731
    if kind == "noise":
        x = rng.uniform(0.2, 0.8, 3) + rng.uniform(0.1, 0.5) * rng.standard_normal((32, 32, 3))
    elif kind == "uniform":
        x = rng.random((32, 32, 3))
    elif kind == "mush":
        k = int(rng.integers(2, 9))
        grid = torch.from_numpy(rng.random((1, 3, k, k)).astype(np.float32))
        x = F.interpolate(grid, size=(32, 32), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
        x = x + rng.uniform(0, 0.1) * rng.standard_normal(x.shape)
    elif kind == "blur":
        x = gaussian_filter(render(), sigma=(*[rng.uniform(1.2, 3.0)] * 2, 0), mode="nearest")
    elif kind in ("blend", "plain_blend"):  # two scenes mixed; "blend": one styled, backgrounds clash
        a, (first, second) = rng.uniform(0.3, 0.7), (False, False) if kind == "plain_blend" else (None, True)
        x = a * render(first) + (1 - a) * render(second)
    elif kind == "washed":  # over-guided: the scene pushed toward a light flat colour (evaluated, not
        # trained: as garbage it made light styles such as the mosaic unrecognisable)
        a, tint = rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0, 3)
        x = a * tint + (1 - a) * render()
    elif kind == "noised":  # x_t of a diffusion model at a low signal level, in [-1, 1]
        ab = rng.uniform(0.02, 0.35)
        x = (np.sqrt(ab) * (render() * 2 - 1) + np.sqrt(1 - ab) * rng.standard_normal((32, 32, 3)) + 1) / 2
    else:
        raise ValueError(f"unknown garbage kind {kind!r}")
    return np.clip(x, 0, 1).astype(np.float32)


def make_data(cfg: JudgeConfig, world: World) -> tuple[np.ndarray, np.ndarray]:
    """Training set: images uint8 [N, 32, 32, 3] and targets [N, concepts + 1] (the last is
    garbage): ``cfg.renders`` renders of the caption mix — a share ``cfg.fade`` of the unstyled
    ones with one sprite faded to a random contrast and `faded_presence` as its target — and
    ``cfg.garbage`` garbage images (kinds in turn), all a pure function of ``cfg.seed``."""
    captions = world.captions(empty=cfg.empty, single=cfg.single, held_out=cfg.held_out)
    images, targets = [], []
    for i in range(cfg.renders):
        rng = np.random.default_rng([cfg.seed, 0, i])
        caption = captions.sample(rng)
        scene = world.render(caption, rng)
        sprites, image, strength = _fadeable(world, scene), scene.image, None
        if sprites and rng.random() < cfg.fade:
            name, contrast = sprites[int(rng.integers(len(sprites)))], rng.uniform(0.1, 1.0)
            image, strength = fade(scene, name, contrast), {name: faded_presence(contrast)}
        images.append(image)
        targets.append(np.append(labels(world, caption, strength), 0))
    for i in range(cfg.garbage):
        images.append(garbage_image(GARBAGE_KINDS[i % len(GARBAGE_KINDS)], captions, np.random.default_rng([cfg.seed, 1, i])))
        targets.append(np.append(np.zeros(len(world.names), np.float32), 1))
    return (np.round(np.stack(images) * 255).astype(np.uint8), np.stack(targets).astype(np.float32))


def degrade(x: torch.Tensor, cfg: JudgeConfig, gen: torch.Generator) -> torch.Tensor:
    """Renders [N, 3, H, W] as a generator might draw them: per image, stretched along each axis
    (up to ``cfg.stretch``, so a sprite gains or loses a pixel row or column), each channel's gain
    and the brightness shifted (up to ``cfg.colour_jitter``), the saturation scaled (up to
    ``cfg.saturation``), edges fringed with random colour (up to ``cfg.fringe``, on up to half the
    edge pixels) and a 3×3 box blur mixed in (up to ``cfg.blur``). With ``cfg.background`` > 0 the
    plain background is first lifted by a brightness up to ``cfg.background`` and tinted per
    channel by up to a third of it: a sampler whose last step keeps some signal (SD's
    scaled-linear schedule) cannot reach a uniformly dark ground and draws it lighter and tinted."""
    u = lambda *shape: torch.rand(len(x), *shape, generator=gen) * 2 - 1  # noqa: E731  uniform in [-1, 1]
    if cfg.background > 0:
        ground = torch.tensor(BACKGROUND, dtype=x.dtype).view(1, 3, 1, 1)
        plain = ((x - ground).abs().amax(1, keepdim=True) < 1.5 / 255).to(x.dtype)
        lift = cfg.background * ((u(1, 1, 1) + 1) / 2 + u(3, 1, 1) / 3)
        x = (x + plain * lift).clamp(0, 1)
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1 + cfg.stretch * u(), 1 + cfg.stretch * u()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)
    x = x * (1 + cfg.colour_jitter * u(3, 1, 1)) + cfg.colour_jitter / 2 * u(1, 1, 1)
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * (1 + cfg.saturation * u(1, 1, 1))
    spread = F.max_pool2d(x, 3, 1, 1) + F.max_pool2d(-x, 3, 1, 1)  # local max − local min
    edge = spread.amax(1, keepdim=True) > 0.15
    fringed = edge & (torch.rand(len(x), 1, *x.shape[2:], generator=gen) < (u(1, 1, 1) + 1) / 4)
    x = x + fringed * cfg.fringe * torch.rand(len(x), 1, 1, 1, generator=gen) * u(*x.shape[1:])
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    a = cfg.blur * (u(1, 1, 1) + 1) / 2
    return (1 - a) * x + a * blurred


def render_set(world: World, seed: int, per_caption: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Fresh renders (seeds disjoint from training) by group: ``single``, ``pair`` (the pairs of
    the world's default caption mix), ``held_out`` (its held-out pairs, both orders), ``empty``."""
    groups = {**world.evaluation_captions(), "empty": [""]}
    out = {}
    for g, caps in groups.items():
        n = per_caption if g != "pair" else max(1, per_caption // 4)
        out[g] = [(c, world.render(c, np.random.default_rng([seed, 3, k, j])).image)
                  for k, c in enumerate(caps) for j in range(n)]
    return out


def pipeline_mush(n: int, seed: int = 0, steps: int = 10) -> np.ndarray:
    """Samples of the toy pipeline with random UNet weights (what an untrained model makes)."""
    from .model import build_toy

    pipe = build_toy(seed)
    words = World().names
    prompts = [words[i % len(words)] for i in range(n)]
    out = pipe(prompts, num_inference_steps=steps, guidance_scale=1.0, output_type="np",
               generator=torch.Generator().manual_seed(seed)).images
    return np.clip(out, 0, 1).astype(np.float32)


def _caption_unstyled(world: World, caption: str) -> bool:
    return all(c.kind != "style" for c in world.parse(caption))
