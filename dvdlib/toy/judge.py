"""The toy world's judge: a small CNN behind the book's judge interface.

`ToyJudge` answers the yes/no questions of a `dvdlib.judge.QuestionSet` about toy scenes, so the
DvD Score machinery (paper §2) runs unchanged on the toy model. How it answers:

- **It reads the question.** The concept is found through the question set's templates (the text
  in place of ``{concept}``), or, for a question of no template, as the one concept word of the
  world it contains. A concept the world does not have is an error, never a silent No.
- **Presence probabilities.** The CNN gives, per concept of the world, the probability that the
  concept is in the image (multi-label; a category word such as "landmark" is present when any
  concept of its role is, the tower included), and a probability that the image is garbage.
- **Graded questions.** Question ``i`` of a group (in the set's order, weakest claim first) is
  Yes when the concept's probability reaches ``THRESHOLDS[i]`` = 0.5, 0.6, 0.7, 0.8, 0.9, so
  ``c`` counts how surely the concept is there. The judge is trained to give a ghost (a sprite
  faded toward the background) a presence that grows with its contrast (`FADE_RAMP`), so a faint
  object gets a small ``c`` rather than all or nothing. A question of no template uses 0.5.
- **Unrecognisable.** An image is unrecognisable when its garbage probability is ≥ 0.5. It then
  answers ``"No (unrecognisable)"`` to every question. Optionally (``guard=GUARD``) also when some
  concept's probability falls in the undecided band (0.2, 0.8), the guard of the earlier
  attempts; it is off by default because it turns one ambiguous concept into "nothing is there"
  (a clear tower beside a faint ball would score c = 0 instead of c = 5, n = 1).

Answers are ``"Yes (p=0.97)"`` / ``"No (p=0.03)"`` / ``"No (unrecognisable)"``, kept verbatim;
`dvdlib.judge.is_yes` reads them.

Training (`train_judge`, ``python -m dvdlib.toy.judge --out toy/judge``): renders of every caption
of the world, with light pixel noise and a quarter of the unstyled ones with one faded sprite (soft
target), half of them drawn the way a generator draws (`degrade`: stretched by a pixel or so,
colours shifted, edges fringed with stray colour, lightly blurred; trained on exact renders only,
the judge missed a third of the towers and nearly every robot a person recognised in a hand-checked
sample of generations, `dvdlib.toy.handcheck`), plus garbage labelled "garbage" with no concept:
Gaussian noise, blurry colour mush, blurred renders, blends of two scenes of which one is styled,
and heavily noised renders (what an untrained or half-finished diffusion model makes). The pairs
the diffusion model never sees are included: the judge must know what it measures (one trained
without them missed the ball in 29% of "mosaic / style and ball" renders, never having seen a
restyled ball). A blend of two *unstyled* scenes is not garbage: it is a scene of faded sprites,
and trained as garbage it made a clear tower beside a ghost ball "unrecognisable" (c = 0 where c =
5 is right).
Deterministic for a seed on one thread; the weights (fp16 safetensors), ``manifest.json``
(config, seed, steps, data hash, wall time, held-out accuracies) and ``REPORT.md`` go to the
output folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import sys
import time
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from ..judge import QuestionSet, load_questions
from ..report import percent
from .world import BACKGROUND, JOINER, Captions, World

#: Presence probability needed for a Yes to question i of a group (weakest claim first).
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
#: A sprite faded toward the background to contrast a counts as absent for a ≤ 0.3, present for
#: a ≥ 0.8, linearly in between: the presence target the judge learns for ghosts (`fade`).
FADE_RAMP = (0.3, 0.8)
#: With ``guard=GUARD``, concept probabilities strictly inside this band make an image unrecognisable.
GUARD = (0.2, 0.8)
UNRECOGNISABLE = "No (unrecognisable)"
#: Garbage the judge is trained to call unrecognisable; `evaluate` adds unseen kinds.
GARBAGE_KINDS = ("noise", "mush", "blur", "blend", "noised")
WEIGHTS, MANIFEST = "judge.safetensors", "manifest.json"


@dataclass
class JudgeConfig:
    """Everything that determines a trained judge."""

    seed: int = 0
    channels: tuple = (16, 32, 64)
    renders: int = 40_000
    garbage: int = 12_000
    steps: int = 2_400
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    pixel_noise: float = 0.04  # max std of the light noise added to training renders
    # generations are never pixel-exact renders (`dvdlib.toy.handcheck` measured what that costs):
    # a share `degraded` of the renders is drawn the way a generator draws (`degrade`); 0 turns a part off
    colour_jitter: float = 0.06  # max per-channel gain change and brightness shift
    saturation: float = 0.2  # max change of saturation (factor in [1 - s, 1 + s])
    blur: float = 0.5  # max weight of a 3×3 box blur mixed in
    stretch: float = 0.12  # max change of scale along each axis (nearest-pixel resampling)
    fringe: float = 0.5  # max amplitude of random colour on edge pixels (up to half of them per image)
    degraded: float = 0.5  # share of the renders of a batch degraded (the rest stay exact)
    fade: float = 0.25  # share of unstyled renders with one sprite faded (soft target)
    empty: float = 0.1
    single: float = 0.35
    held_out: tuple = ()  # pairs the judge never sees (none: it must know every pair it is asked about)
    threads: int = 1

    @classmethod
    def from_dict(cls, data: dict) -> "JudgeConfig":
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        cfg.channels = tuple(cfg.channels)
        cfg.held_out = tuple(tuple(p) for p in cfg.held_out)
        return cfg


class ToyNet(nn.Module):
    """Three conv blocks (32² → 4²), global mean and max pooling, one logit per concept plus one
    for garbage (the last)."""

    def __init__(self, concepts: int, channels=(16, 32, 64)):
        super().__init__()
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * c_in, concepts + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, 32, 32] in [0, 1] → logits [N, concepts + 1]."""
        h = self.features(x * 2 - 1)
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))


def _to_array(image) -> np.ndarray:
    """A PIL image or an array [H, W, 3] (uint8, or float in [0, 1]) → float32 [32, 32, 3]."""
    from PIL import Image

    if isinstance(image, Image.Image):
        image = image.convert("RGB")
        if image.size != (32, 32):
            image = image.resize((32, 32), Image.BOX)
        return np.asarray(image, np.float32) / 255
    a = np.asarray(image)
    a = a.astype(np.float32) / 255 if a.dtype == np.uint8 else a.astype(np.float32)
    if a.shape != (32, 32, 3):
        raise ValueError(f"the toy judge takes 32×32 RGB images, got an array of shape {a.shape}")
    return a


class ToyJudge:
    """The toy world's judge (see the module docstring); a `dvdlib.judge.Judge`."""

    name = "toy-cnn"

    def __init__(self, net: ToyNet, world: World | None = None, questions: QuestionSet | None = None,
                 thresholds=THRESHOLDS, guard: tuple[float, float] | None = None, garbage_at: float = 0.5):
        self.net, self.world = net.eval(), world or World()
        self.questions = questions or load_questions("toy")
        self.thresholds, self.guard, self.garbage_at = tuple(thresholds), guard, garbage_at
        if net.head.out_features != len(self.world.names) + 1:
            raise ValueError(f"the network has {net.head.out_features - 1} concept outputs, the world {len(self.world.names)}")

    @torch.no_grad()
    def probabilities(self, images) -> tuple[np.ndarray, np.ndarray]:
        """(presence probability [N, concepts] in `World.names` order, garbage probability [N])."""
        x = np.stack([_to_array(im) for im in images]) if len(images) else np.zeros((0, 32, 32, 3), np.float32)
        p = torch.sigmoid(self.net(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())).numpy()
        return p[:, :-1], p[:, -1]

    def unrecognisable(self, presence: np.ndarray, garbage: np.ndarray) -> np.ndarray:
        """Per image: garbage probability ≥ ``garbage_at`` or (guard) any presence in the band."""
        out = garbage >= self.garbage_at
        if self.guard is not None:
            lo, hi = self.guard
            out |= ((presence > lo) & (presence < hi)).any(1)
        return out

    def read(self, question: str) -> tuple[str, float]:
        """(concept, threshold) of a question: by the question set's templates, else the one
        concept word of the world in it. ValueError for a concept the world does not have."""
        found = self.questions.match(question)
        if found:
            _, index, concept = found
            concept = concept.lower()
            if concept not in self.world.names:
                raise ValueError(f"question {question!r} asks about {concept!r}, which is not a concept of "
                                 f"the toy world (known: {', '.join(self.world.names)})")
            return concept, self.thresholds[index]
        words = [n for n in self.world.names if re.search(rf"\b{re.escape(n)}\b", question, re.I)]
        if len(words) != 1:
            raise ValueError(f"question {question!r} names {'no' if not words else 'several'} concepts of the toy "
                             f"world ({', '.join(words or self.world.names)}) and matches no template of "
                             f"question set {self.questions.name!r}")
        return words[0], self.thresholds[0]

    def ask(self, images, questions) -> list[list[str]]:
        """Per image, the answer to each question (one forward pass for all images)."""
        asked = [self.read(q) for q in questions]
        presence, garbage = self.probabilities(images)
        bad = self.unrecognisable(presence, garbage)
        column = {n: i for i, n in enumerate(self.world.names)}
        return [[UNRECOGNISABLE if bad[k] else
                 f"{'Yes' if presence[k, column[c]] >= t else 'No'} (p={presence[k, column[c]]:.2f})" for c, t in asked]
                for k in range(len(presence))]


# ---------------------------------------------------------------- data

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
    return [] if any(world.concept(n).role == "style" for n in names) else names


def _caption(captions: Captions, rng, styled: bool | None = None) -> str:
    """A non-empty caption of the mix; ``styled``: with a style (True), without one (False)."""
    while True:
        caption = captions.sample(rng)
        has_style = any(c.role == "style" for c in captions.world.parse(caption))
        if caption and styled in (None, has_style):
            return caption


def garbage_image(kind: str, captions: Captions, rng) -> np.ndarray:
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
    captions = Captions(world, empty=cfg.empty, single=cfg.single, held_out=cfg.held_out)
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


# ---------------------------------------------------------------- training

def build_judge(cfg: JudgeConfig | None = None, world: World | None = None, **judge_options) -> ToyJudge:
    """An untrained judge (weights from ``cfg.seed``): what training starts from, and what tests use."""
    cfg, world = cfg or JudgeConfig(), world or World()
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        net = ToyNet(len(world.names), cfg.channels)
    return ToyJudge(net, world, **judge_options)


def degrade(x: torch.Tensor, cfg: JudgeConfig, gen: torch.Generator) -> torch.Tensor:
    """Renders [N, 3, H, W] as a generator might draw them: per image, stretched along each axis
    (up to ``cfg.stretch``, so a sprite gains or loses a pixel row or column), each channel's gain
    and the brightness shifted (up to ``cfg.colour_jitter``), the saturation scaled (up to
    ``cfg.saturation``), edges fringed with random colour (up to ``cfg.fringe``, on up to half the
    edge pixels) and a 3×3 box blur mixed in (up to ``cfg.blur``)."""
    u = lambda *shape: torch.rand(len(x), *shape, generator=gen) * 2 - 1  # noqa: E731  uniform in [-1, 1]
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


def train_judge(cfg: JudgeConfig, world: World | None = None, progress: bool = True) -> tuple[ToyJudge, dict]:
    """Train a judge; returns it and the facts of the run (steps, data hash, wall time, loss)."""
    torch.set_num_threads(cfg.threads)
    world, start = world or World(), time.time()
    images, targets = make_data(cfg, world)
    data_hash = hashlib.sha256(images.tobytes() + targets.tobytes()).hexdigest()
    judge, gen = build_judge(cfg, world), torch.Generator().manual_seed(cfg.seed)
    net = judge.net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    x_all, y_all = torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(targets)
    order, losses = np.zeros(0, int), []
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:  # a fresh permutation per epoch, from (seed, step)
            order = np.concatenate([order, np.random.default_rng([cfg.seed, 2, step]).permutation(len(images))])
        idx, order = order[:cfg.batch_size], order[cfg.batch_size:]
        x, y = x_all[idx].float() / 255, y_all[idx]
        clean = (y[:, -1] == 0)[:, None, None, None]
        noise = torch.randn(x.shape, generator=gen) * torch.rand(len(x), 1, 1, 1, generator=gen) * cfg.pixel_noise
        drawn = clean & (torch.rand(len(x), 1, 1, 1, generator=gen) < cfg.degraded)
        x = torch.where(drawn, degrade(x, cfg, gen), x)
        x = torch.where(clean, (x + noise).clamp(0, 1), x)
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress and (step + 1) % 100 == 0:
            print(f"step {step + 1}/{cfg.steps}  loss {np.mean(losses[-100:]):.4f}  {time.time() - start:.0f} s",
                  file=sys.stderr, flush=True)
    net.eval()
    return judge, {"steps": cfg.steps, "data_hash": data_hash, "train_wall_s": round(time.time() - start, 1),
                   "final_loss": round(float(np.mean(losses[-100:])), 5)}


# ---------------------------------------------------------------- evaluation

def _rate(x) -> float | None:
    return round(float(np.mean(x)), 4) if len(x) else None


def render_set(world: World, seed: int, per_caption: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Fresh renders (seeds disjoint from training) by group: ``single``, ``pair`` (the pairs of
    the world's default caption mix), ``held_out`` (its held-out pairs, both orders), ``empty``."""
    captions = Captions(world)
    groups = {"single": world.names, "pair": [c for c in captions.training() if JOINER in c],
              "held_out": captions.held_out_captions(), "empty": [""]}
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


def evaluate(judge: ToyJudge, seed: int = 12345, per_caption: int = 40, garbage_n: int = 200,
             pipeline_n: int = 0) -> dict:
    """Held-out accuracy of the presence question (threshold `THRESHOLDS[0]`) per concept and
    group, exact-match and c = 5 / c = 0 rates, false-unrecognisable rate, garbage caught per
    kind (seen and unseen kinds), and the commonest confusions."""
    world, names = judge.world, judge.world.names
    out = {"renders": {}, "per_concept": {}, "confusions": {}}
    confusions: dict[str, int] = {}
    for group, items in render_set(world, seed, per_caption).items():
        y = np.stack([labels(world, c) for c, _ in items]).astype(bool)
        p, g = judge.probabilities([im for _, im in items])
        bad = judge.unrecognisable(p, g)
        said = (p >= judge.thresholds[0]) & ~bad[:, None]
        c5 = (p >= max(judge.thresholds)) & ~bad[:, None]
        out["renders"][group] = {"images": len(items), "exact": _rate((said == y).all(1)),
                                 "label_accuracy": _rate(said == y), "unrecognisable": _rate(bad),
                                 "present_c5": _rate(c5[y]), "absent_c0": _rate(~((p >= min(judge.thresholds)) & ~bad[:, None])[~y])}
        for j, n in enumerate(names):
            out["per_concept"].setdefault(n, {})[group] = _rate(said[:, j] == y[:, j])
        for k in range(len(items)):
            for j in np.flatnonzero(said[k] != y[k]):
                key = f"{items[k][0] or '(empty)'}: {'missed' if y[k, j] else 'false'} {names[j]}"
                confusions[key] = confusions.get(key, 0) + 1
    out["confusions"] = dict(sorted(confusions.items(), key=lambda kv: -kv[1])[:15])
    captions = Captions(world)
    out["garbage"] = {}
    for kind in (*GARBAGE_KINDS, "uniform", "washed"):
        ims = [garbage_image(kind, captions, np.random.default_rng([seed, 4, i, len(kind)])) for i in range(garbage_n)]
        out["garbage"][kind] = _rate(judge.unrecognisable(*judge.probabilities(ims)))
    if pipeline_n:
        out["garbage"]["random_pipeline"] = _rate(judge.unrecognisable(*judge.probabilities(pipeline_mush(pipeline_n, seed))))
    out["garbage_seen_kinds"] = list(GARBAGE_KINDS)
    out["plain_blend_unrecognisable"] = _rate(judge.unrecognisable(*judge.probabilities(
        [garbage_image("plain_blend", captions, np.random.default_rng([seed, 5, i])) for i in range(garbage_n)])))
    out["faded"] = fade_curve(judge, seed)
    return out


def fade_curve(judge: ToyJudge, seed: int = 12345, n: int = 100, contrasts=(1.0, 0.8, 0.7, 0.6, 0.5, 0.4, 0.2)) -> dict:
    """Per contrast: ``n`` unstyled two-concept renders with one sprite faded; the mean ``c`` of
    the faded concept, of the other one, and the share called unrecognisable."""
    world, captions = judge.world, Captions(judge.world, held_out=())
    pairs = [c for c in captions.training() if JOINER in c and _caption_unstyled(world, c)]
    scenes = [world.render(pairs[i % len(pairs)], np.random.default_rng([seed, 6, i])) for i in range(n)]
    column, out = {name: i for i, name in enumerate(world.names)}, {}
    for contrast in contrasts:
        p, g = judge.probabilities([fade(s, list(s.masks)[0], contrast) for s in scenes])
        bad, t = judge.unrecognisable(p, g), np.array(judge.thresholds)
        c = lambda k: [0 if bad[j] else int((p[j, column[list(s.masks)[k]]] >= t).sum()) for j, s in enumerate(scenes)]  # noqa: E731
        out[str(contrast)] = {"c_faded": round(float(np.mean(c(0))), 2), "c_other": round(float(np.mean(c(1))), 2),
                              "unrecognisable": _rate(bad), "target": round(faded_presence(contrast), 2)}
    return out


def _caption_unstyled(world: World, caption: str) -> bool:
    return all(c.role != "style" for c in world.parse(caption))


# ---------------------------------------------------------------- files

def save_judge(judge: ToyJudge, folder, cfg: JudgeConfig, facts: dict) -> Path:
    """Write fp16 safetensors weights and ``manifest.json`` (config, world, thresholds, facts)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in judge.net.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    manifest = {"judge": judge.name, "config": asdict(cfg), "world": judge.world.to_dict(), "concepts": judge.world.names,
                "thresholds": list(judge.thresholds), "guard": judge.guard, "garbage_at": judge.garbage_at,
                "questions": judge.questions.name, **facts,
                "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def load_toy_judge(folder="toy/judge", **judge_options) -> ToyJudge:
    """Load a judge written by `save_judge` (weights back to float32); ``judge_options`` override
    the manifest's thresholds / guard / question set (`ToyJudge` arguments)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"{folder} holds no toy judge (no {MANIFEST}); train one with "
                                f"`python -m dvdlib.toy.judge --out {folder}`")
    m = json.loads((folder / MANIFEST).read_text())
    cfg, world = JudgeConfig.from_dict(m["config"]), World.from_dict(m["world"])
    net = ToyNet(len(world.names), cfg.channels)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in load_file(str(folder / WEIGHTS)).items()})
    options = {"thresholds": m["thresholds"], "guard": tuple(m["guard"]) if m["guard"] else None,
               "garbage_at": m["garbage_at"], **judge_options}
    return ToyJudge(net, world, **options)


def _table(rows: list[list], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(x) for x in r) + " |" for r in rows])


def report(m: dict) -> str:
    """``REPORT.md`` of a trained judge, from its manifest."""
    e, pct = m["evaluation"], partial(percent, digits=1)
    groups = list(e["renders"])
    return "\n\n".join([
        "# The toy world's judge: held-out accuracy",
        f"Written by `python -m dvdlib.toy.judge` from `manifest.json`. A {m['config']['channels']} CNN, "
        f"{m['steps']} steps (batch {m['config']['batch_size']}, seed {m['config']['seed']}) on "
        f"{m['config']['renders']:,} renders of every caption of the world and {m['config']['garbage']:,} garbage "
        f"images, {m['train_wall_s'] / 60:.1f} min on {m['config']['threads']} CPU thread(s). Questions 1–5 of a set "
        f"are Yes when the concept's presence probability reaches {', '.join(map(str, m['thresholds']))} "
        f"respectively; an image is unrecognisable when its garbage probability is ≥ {m['garbage_at']} "
        f"(undecided-band guard: {m['guard'] or 'off'}).",
        "## Fresh renders (new seeds)\n\n`exact`: all ten concepts right (presence question) and not rejected; "
        "`c = 5`: present concepts passing every threshold; `c = 0`: absent concepts passing none. "
        "`held_out`: the pairs the diffusion model never sees (the judge does see them).\n\n" + _table(
            [[g, r["images"], pct(r["exact"]), pct(r["label_accuracy"]), pct(r["present_c5"]) if r["present_c5"] is not None else "–",
              pct(r["absent_c0"]), pct(r["unrecognisable"])] for g, r in e["renders"].items()],
            ["scenes", "images", "exact", "per label", "c = 5", "c = 0", "called unrecognisable"]),
        "## Per concept (presence question right)\n\n" + _table(
            [[n, *[pct(v[g]) for g in groups]] for n, v in e["per_concept"].items()], ["concept", *groups]),
        "## Garbage called unrecognisable\n\nSeen kinds (new seeds): " + ", ".join(e["garbage_seen_kinds"]) +
        "; `uniform` noise and `random_pipeline` (the toy pipeline with random UNet weights, 10 DDIM steps) "
        "were never trained on.\n\n" + _table(
            [[k, pct(v), pct(m["with_guard"]["garbage"][k])] for k, v in e["garbage"].items()],
            ["kind", "judge", f"with guard {tuple(m['with_guard']['guard'])}"]) +
        "\n\nWith the guard, renders called unrecognisable: " + ", ".join(
            f"{g} {pct(v)}" for g, v in m["with_guard"]["renders_unrecognisable"].items()) + ".",
        "## Ghosts: one sprite of a two-concept scene faded toward the background\n\nMean `c` (0–5) of "
        "the faded concept and of the other one, share called unrecognisable; `target`: the presence the "
        "judge was trained to give the faded one. Blends of two unstyled scenes (not trained as garbage) "
        f"called unrecognisable: {pct(e['plain_blend_unrecognisable'])}.\n\n" + _table(
            [[k, v["target"], v["c_faded"], v["c_other"], pct(v["unrecognisable"])] for k, v in e["faded"].items()],
            ["contrast", "target", "c faded", "c other", "unrecognisable"]),
        "## Commonest errors (caption: error, count)\n\n" + ("\n".join(
            f"- {k}: {v}" for k, v in e["confusions"].items()) or "none"),
        handcheck_section(m.get("handcheck", {})),
        "## Not shown here\n\nThe judge knows the default world only: a world with other variants (e.g. "
        "`with_variants(tower=10)`) needs a judge trained on it.",
    ]) + "\n"


def handcheck_section(results: dict) -> str:
    """REPORT.md section: agreement with each hand-labelled sample of generated images."""
    if not results:
        return ("## Generated images (hand-checked)\n\nNo labelled sample: see `dvdlib.toy.handcheck` "
                "(`dvd toy handcheck --out ...`, fill the label column of `labels.csv`, then `--report-only`).")
    pct = partial(percent, missing="–")

    parts = ["## Generated images (hand-checked)\n\nSamples of the toy model's generations, labelled by a "
             "person from an enlarged, shuffled contact sheet (`toy/judge/handcheck/<sample>/`). `exact`: the "
             "judge sees exactly the labelled concepts (presence ≥ 0.7, i.e. c ≥ 3, as in the gates), or calls "
             "an image unrecognisable that the person did."]
    for name, r in results.items():
        parts.append(f"**{name}** ({r['about']}): exact {r['exact_n']}/{r['images']} ({pct(r['exact'])}); "
                     f"unrecognisable by hand {r['hand_unrecognisable']}, by the judge {r['judge_unrecognisable']}, "
                     f"both {r['both_unrecognisable']}.\n\n" + _table(
                         [[n, v["present"], pct(v["recall"]), v["said_present"], pct(v["precision"])]
                          for n, v in r["per_concept"].items()],
                         ["concept", "present (hand)", "recall", "said present", "precision"]))
    return "\n\n".join(parts)


def score_handchecks(judge: ToyJudge, root) -> dict:
    """`dvdlib.toy.handcheck.agreement` for every labelled sample folder under ``root``."""
    from .handcheck import agreement, describe

    folders = sorted(p.parent for p in Path(root).glob("*/labels.csv"))
    return {f.name: {"about": describe(f), **agreement(judge, f)} for f in folders}


def main(argv=None) -> int:
    """``python -m dvdlib.toy.judge --out toy/judge [--steps N] [--seed S]``: train, evaluate, save
    the weights, ``manifest.json`` and ``REPORT.md``."""
    p = argparse.ArgumentParser(prog="python -m dvdlib.toy.judge", description="Train the toy world's judge.")
    p.add_argument("--out", default="toy/judge")
    for name in ("seed", "steps", "renders", "garbage", "threads"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--pipeline-samples", type=int, default=32, help="random-weight pipeline samples to evaluate on")
    p.add_argument("--report-only", action="store_true", help="only rescore the hand-checked samples and rewrite "
                                                              "REPORT.md (no training)")
    p.add_argument("--handcheck", default="toy/judge/handcheck", help="folder of hand-labelled samples of generations")
    args = p.parse_args(argv)
    if args.report_only:
        m = json.loads((Path(args.out) / MANIFEST).read_text())
        m["handcheck"] = score_handchecks(load_toy_judge(args.out), args.handcheck)
        (Path(args.out) / MANIFEST).write_text(json.dumps(m, indent=2) + "\n")
        (Path(args.out) / "REPORT.md").write_text(report(m))
        return 0
    cfg = JudgeConfig(**{k: v for k, v in vars(args).items() if k in {f.name for f in fields(JudgeConfig)} and v is not None})
    judge, facts = train_judge(cfg)
    start = time.time()
    facts["evaluation"] = evaluate(judge, pipeline_n=args.pipeline_samples)
    guarded = evaluate(ToyJudge(judge.net, judge.world, guard=GUARD), pipeline_n=args.pipeline_samples)
    facts["with_guard"] = {"guard": GUARD, "renders_unrecognisable": {g: r["unrecognisable"] for g, r in guarded["renders"].items()},
                           "garbage": guarded["garbage"]}
    facts["eval_wall_s"] = round(time.time() - start, 1)
    facts["handcheck"] = score_handchecks(judge, args.handcheck)
    save_judge(judge, args.out, cfg, facts)
    (Path(args.out) / "REPORT.md").write_text(report(json.loads((Path(args.out) / MANIFEST).read_text())))
    print(json.dumps({k: facts["evaluation"][k] for k in ("renders", "garbage")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
