"""Training world 2's model: SD 1.x's ε-prediction objective on endless rendered scenes,
deterministic and resumable.

The machinery is world 1's (`dvdlib.toy.train.Run`: checkpoints, logs, EMA, resumption, warm
start and export across sessions, the conditioning check); what differs is the world, the model
(`dvdlib.toy2.model`, whose scheduler makes the target the noise ε, not the velocity) and how
captions become token states. Text states are computed per caption with the frozen causal encoder
through the pipeline's own ``encode_prompt`` and cached (the caption space is too large to
enumerate up front); each caption is encoded alone, so its states never depend on the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

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
    shared_identity: bool = False  # the world's named concepts: unrelated appearances, or one identity (`World`)
    held_out: list = field(default_factory=lambda: [list(p) for p in default_held_out()])
    unet: dict = field(default_factory=dict)
    min_snr_gamma: float | None = None  # None: SD's plain ε MSE; γ: Min-SNR-γ loss weights (`dvdlib.toy.train.min_snr_weights`)
    high_noise_cap: float | None = None  # None: SD's plain ε MSE; c: weights min(1 + 1/SNR, c) (`dvdlib.toy.train.high_noise_weights`)
    noise_offset: float = 0.0  # 0: SD 1.x's noise; σ: offset noise (`dvdlib.toy.train.noisy_batch`)
    eval_images: int = 96
    eval_timesteps: list = field(default_factory=lambda: [200, 500, 800])
    checkpoint_every: int = 400
    log_every: int = 10
    threads: int = 1

    def __post_init__(self):
        if self.min_snr_gamma and self.high_noise_cap:
            raise ValueError("choose one loss weighting: min_snr_gamma or high_noise_cap, not both")

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}")
        return cls(**data)

    def world(self) -> World:
        return World(shared_identity=self.shared_identity).with_variants(**self.variants)

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


class Run(base.Run):
    """World 1's run (`dvdlib.toy.train.Run`: checkpoints, logs, EMA, resumption, warm start,
    evaluation) with world 2's model, scene stream and text states; the ε target follows from
    the model's scheduler (`dvdlib.toy.train.noisy_batch`)."""

    model = toy2_model
    stream_class = SceneStream
    chunk = 48

    def text_states(self) -> TextStates:
        """World 2's caption space is too large to encode up front: each caption on first use."""
        return TextStates(self.pipe)


def conditioning_check(pipe, unet, cfg: TrainConfig, text: TextStates) -> list[dict]:
    """ε loss on fixed scenes with the right, the empty and a wrong caption at fixed noise levels
    (`dvdlib.toy.train.conditioning_check`, 48 images per UNet call)."""
    return base.conditioning_check(pipe, unet, cfg, text, Run.chunk)


def train(out, cfg: TrainConfig | None = None, progress: bool = True) -> Run:
    return base.train(out, cfg or TrainConfig(), progress, Run)


def export(out, folder=None) -> dict:
    """Write the EMA UNet of the latest checkpoint (fp16) to ``out/model`` and ``out/manifest.json``."""
    return base.export(out, folder, TrainConfig, toy2_model, _manifest)


def _manifest(out: Path, cfg: TrainConfig, state: dict, pipe) -> dict:
    """World 1's manifest (`dvdlib.toy.train`) with world 2's model description, first timestep and
    each named concept's advantage over its category word (`dvdlib.toy2.mechanisms.name_advantage`)."""
    from .mechanisms import name_advantage

    pipe.scheduler.set_timesteps(25)
    advantage = name_advantage(pipe, cfg.world())
    return {**base._manifest(out, cfg, state, pipe),
            "model": "dvdlib toy world 2: UNet2DConditionModel (SD 1.x's 16 cross-attention layers, 8 heads "
                     "each, grids 16²/8²/4²) on 2×2 space-to-depth 32×32 scenes normalised as SD's latents, "
                     "frozen causal all-MiniLM-L6-v2 text encoder, ε-prediction, scaled-linear betas, "
                     "DDIM leading spacing",
            "first_timestep_at_25_steps": int(pipe.scheduler.timesteps[0]),
            "name_advantage": [{**r, "category_over_name": round(r["category_over_name"], 4)}
                               for r in advantage.to_dict("records")]}
