"""Training world 2's model: SD 1.x's ε-prediction objective on endless rendered scenes,
deterministic and resumable.

The machinery is world 1's (`dvdlib.toy.train.Run`: checkpoints, logs, EMA, resumption, export
across sessions); what differs is the world, the model (`dvdlib.toy2.model`) and the target (the
noise ε, not the velocity). Text states are computed per caption with the frozen causal encoder
through the pipeline's own ``encode_prompt`` and cached (the caption space is too large to
enumerate up front); each caption is encoded alone, so its states never depend on the batch.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..toy import train as base
from . import model as toy2_model
from .world import Captions, SceneStream, World, default_held_out


@dataclass
class TrainConfig:
    steps: int = 30_000
    batch_size: int = 32
    lr: float = 1.5e-3
    warmup: int = 200
    decay_start: int = 1_000
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema: float = 0.999
    seed: int = 0
    empty: float = 0.1
    memorized: float = 0.03
    single: float = 0.32
    pair: float = 0.35
    named_alone: float = 3.0
    named_with_object: float = 0.25
    objects_only: float = 3.0
    variants: dict = field(default_factory=dict)
    held_out: list = field(default_factory=lambda: [list(p) for p in default_held_out()])
    unet: dict = field(default_factory=dict)
    eval_images: int = 96
    eval_timesteps: list = field(default_factory=lambda: [200, 500, 800])
    checkpoint_every: int = 400
    log_every: int = 10
    threads: int = 1

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}")
        return cls(**data)

    def world(self) -> World:
        return World().with_variants(**self.variants)

    def captions(self) -> Captions:
        return Captions(self.world(), empty=self.empty, memorized=self.memorized, single=self.single, pair=self.pair,
                        named_alone=self.named_alone, named_with_object=self.named_with_object,
                        objects_only=self.objects_only,
                        held_out=tuple(tuple(p) for p in self.held_out))


class TextStates:
    """Token states of captions, computed on first use, one caption at a time (batch-independent)."""

    def __init__(self, pipe):
        self.pipe, self.cache = pipe, {}

    def __call__(self, captions: list[str]) -> torch.Tensor:
        for c in captions:
            if c not in self.cache:
                with torch.no_grad():
                    self.cache[c] = self.pipe.encode_prompt([c], torch.device("cpu"), 1, False)[0][0].float()
        return torch.stack([self.cache[c] for c in captions])


def noisy_batch(pipe, images: torch.Tensor, generator: torch.Generator, timesteps=None):
    """(noisy latents, timesteps, ε target) for clean images in [-1, 1]."""
    latents = pipe.vae.encode(images).latent_dist.mode() * pipe.vae.config.scaling_factor
    n = latents.shape[0]
    if timesteps is None:
        timesteps = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (n,), generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    return pipe.scheduler.add_noise(latents, noise, timesteps), timesteps, noise


class Run(base.Run):
    """World 1's run with world 2's model, data and ε target."""

    def __init__(self, out, cfg: TrainConfig):
        self.out, self.cfg = Path(out), cfg
        self.saved = self._load_checkpoint()
        torch.set_num_threads(cfg.threads)
        self.pipe = toy2_model.build(cfg.seed, **cfg.unet)
        self.unet = self.pipe.unet.train()
        self.ema = copy.deepcopy(self.unet).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.captions = cfg.captions()
        self.stream = SceneStream(self.captions, cfg.seed)
        self.text = TextStates(self.pipe)
        self.step, self.wall, self.window = 0, 0.0, []
        self.data_hash = None

    def warm_start(self) -> bool:
        folder = self.out / "model"
        if not toy2_model.is_folder(folder):
            return False
        info = json.loads((folder / toy2_model.MARKER).read_text())
        if info.get("seed") != self.cfg.seed:
            raise ValueError(f"{folder} was trained with seed {info.get('seed')}, not {self.cfg.seed}")
        exported = toy2_model.load(folder).unet.float().state_dict()
        self.unet.load_state_dict(exported)
        self.ema.load_state_dict(exported)
        manifest = json.loads((self.out / "manifest.json").read_text())
        self.step, self.wall, self.data_hash = info["steps"], manifest["wall_time_s"], info["data_hash"]
        base._truncate_csv(self.out / "loss.csv", self.step)
        base._truncate_csv(self.out / "eval.csv", self.step)
        return True

    def train_step(self) -> tuple[float, float]:
        cfg = self.cfg
        images, caps = self.stream.batch(self.step * cfg.batch_size, cfg.batch_size)
        g = torch.Generator().manual_seed(base.step_seed(cfg.seed, self.step))
        noisy, t, target = noisy_batch(self.pipe, torch.from_numpy(images), g)
        pred = self.unet(noisy, t, encoder_hidden_states=self.text(caps)).sample
        loss = torch.nn.functional.mse_loss(pred, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.unet.parameters(), cfg.grad_clip)
        for group in self.opt.param_groups:
            group["lr"] = base.learning_rate(cfg, self.step)
        self.opt.step()
        self.update_ema()
        self.step += 1
        return loss.item(), float(grad_norm)

    def evaluate(self) -> list[dict]:
        rows = conditioning_check(self.pipe, self.ema, self.cfg, self.text)
        base._append_csv(self.out / "eval.csv", base.EVAL_COLUMNS,
                         [{"step": self.step, **{k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()}} for r in rows])
        return rows


def conditioning_check(pipe, unet, cfg: TrainConfig, text: TextStates) -> list[dict]:
    """ε loss on fixed scenes with the right, the empty and a wrong caption at fixed noise levels."""
    stream = SceneStream(cfg.captions(), seed=cfg.seed + 1_000_003)
    scenes = [s for s in (stream.scene(i) for i in range(4 * cfg.eval_images)) if s.caption][:cfg.eval_images]
    images = torch.from_numpy(np.stack([s.image.transpose(2, 0, 1) * 2 - 1 for s in scenes]))
    right = [s.caption for s in scenes]
    conditions = {"right": right, "empty": [""] * len(right), "wrong": base._wrong_captions(right)}
    rows = []
    with torch.no_grad():
        for t in cfg.eval_timesteps:
            g = torch.Generator().manual_seed(base.step_seed(cfg.seed, t, stream=7))
            noisy, ts, target = noisy_batch(pipe, images, g, torch.full((len(right),), int(t)))
            loss = {}
            for name, caps in conditions.items():
                cond = text(caps)
                pred = torch.cat([unet(noisy[i:i + 48], ts[i:i + 48], encoder_hidden_states=cond[i:i + 48]).sample
                                  for i in range(0, len(caps), 48)])
                loss[name] = torch.nn.functional.mse_loss(pred, target).item()
            rows.append({"t": int(t), "loss_right": loss["right"], "loss_empty": loss["empty"],
                         "loss_wrong": loss["wrong"], "wrong_over_right": loss["wrong"] / loss["right"]})
    return rows


def train(out, cfg: TrainConfig | None = None, progress: bool = True) -> Run:
    run = Run(out, cfg or TrainConfig())
    run.run(progress)
    return run


def export(out, folder=None) -> dict:
    """Write the EMA UNet of the latest checkpoint (fp16) to ``out/model`` and ``out/manifest.json``."""
    out = Path(out)
    state = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(state["config"])
    pipe = toy2_model.build(cfg.seed, **cfg.unet)
    pipe.unet.load_state_dict(state["ema"])
    manifest = _manifest(out, cfg, state, pipe)
    folder = Path(folder) if folder else out / "model"
    toy2_model.save(pipe, folder, info={"steps": state["step"], "seed": cfg.seed, "data_hash": state["data_hash"]})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _manifest(out: Path, cfg: TrainConfig, state: dict, pipe) -> dict:
    """World 1's manifest (`dvdlib.toy.train`) with world 2's model description and first timestep."""
    pipe.scheduler.set_timesteps(25)
    return {**base._manifest(out, cfg, state, pipe),
            "model": "dvdlib toy world 2: UNet2DConditionModel (SD 1.x block layout, 16 cross-attention layers, "
                     "8 heads each) on 32×32 scenes, frozen causal all-MiniLM-L6-v2 text encoder, ε-prediction, "
                     "scaled-linear betas, DDIM leading spacing",
            "first_timestep_at_25_steps": int(pipe.scheduler.timesteps[0])}
