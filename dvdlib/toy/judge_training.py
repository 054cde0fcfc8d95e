"""Training and evaluating the toy world's judge (`dvdlib.toy.judge`).

Training (`train_judge`, ``dvd toy judge --out toy/judge``): renders of every caption
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

import hashlib
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from .judge import JudgeConfig, ToyJudge, ToyNet
from .judge_data import (GARBAGE_KINDS, _caption_unstyled, degrade, fade, faded_presence, garbage_image, labels,
                         make_data, pipeline_mush, render_set)
from .world import World


def build_judge(cfg: JudgeConfig | None = None, world: World | None = None, **judge_options) -> ToyJudge:
    """An untrained judge (weights from ``cfg.seed``): what training starts from, and what tests use."""
    cfg, world = cfg or JudgeConfig(), world or World()
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        net = ToyNet(len(world.names), cfg.channels)
    return ToyJudge(net, world, **judge_options)


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


def _rate(x) -> float | None:
    return round(float(np.mean(x)), 4) if len(x) else None


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
    captions = world.captions()
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
    world = judge.world
    pairs = [c for c in world.evaluation_captions(held_out=())["pair"] if _caption_unstyled(world, c)]
    scenes = [world.render(pairs[i % len(pairs)], np.random.default_rng([seed, 6, i])) for i in range(n)]
    column, out = {name: i for i, name in enumerate(world.names)}, {}
    for contrast in contrasts:
        p, g = judge.probabilities([fade(s, list(s.masks)[0], contrast) for s in scenes])
        bad, t = judge.unrecognisable(p, g), np.array(judge.thresholds)
        c = lambda k: [0 if bad[j] else int((p[j, column[list(s.masks)[k]]] >= t).sum()) for j, s in enumerate(scenes)]  # noqa: E731
        out[str(contrast)] = {"c_faded": round(float(np.mean(c(0))), 2), "c_other": round(float(np.mean(c(1))), 2),
                              "unrecognisable": _rate(bad), "target": round(faded_presence(contrast), 2)}
    return out
