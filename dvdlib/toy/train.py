"""Training the toy model: DDPM with v-prediction on endless rendered scenes, deterministic and
resumable.

Recipe (defaults of `TrainConfig`, from the earlier measured attempts): batch 64; captions from
`Captions` (10% empty, for classifier-free guidance; seven pairs held out); cosine noise
schedule, v-prediction, uniform timesteps, plain MSE; AdamW (lr 2e-3, weight decay 0.01),
linear warm-up over 200 steps, then lr ∝ 1/√step from step 1,000 (so extending a run never
changes its past); gradient norm clipped at 1; EMA of the weights (0.999, warmed up). The text
encoder is frozen: every caption's token states are computed once, by the pipeline's own
``encode_prompt``, so sampling sees exactly the conditioning training saw.

Everything random is a pure function of (seed, step): batch ``s`` holds scenes
``s·B … s·B+B−1`` of a `SceneStream`, and its noise and timesteps come from a generator seeded
with (seed, s). A checkpoint (model, EMA, optimizer, step, loss window, wall time) therefore
resumes bitwise-identically (with the same number of threads).

Files in the run folder: ``checkpoints/last.pt`` (atomic, every ``checkpoint_every`` steps),
``loss.csv`` (mean loss, lr and gradient norm per ``log_every`` steps, and the run's wall
time so far: training, evaluation and checkpoints, summed over resumptions), ``eval.csv`` (EMA model:
loss with the right caption, the empty caption and a wrong caption, at fixed noise levels, per
checkpoint), and after `export`: ``model/`` (fp16 EMA pipeline, see `dvdlib.toy.model.save_toy`)
and ``manifest.json``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..progress import task
from . import model as toy_model
from .world import DEFAULT_HELD_OUT, Captions, SceneStream, World

#: Config fields that may change when a run is resumed (they do not change the weights).
RESUMABLE_CHANGES = {"steps", "checkpoint_every", "threads"}
LOSS_COLUMNS = ["step", "loss", "lr", "grad_norm", "wall_s"]
EVAL_COLUMNS = ["step", "t", "loss_right", "loss_empty", "loss_wrong", "wrong_over_right"]


@dataclass
class TrainConfig:
    """Everything that determines a run (``steps`` is how far to go, not part of its identity)."""

    steps: int = 20_000
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 200
    decay_start: int = 1_000
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema: float = 0.999
    seed: int = 0
    empty: float = 0.1
    single: float = 0.35
    variants: dict = field(default_factory=dict)  # World.with_variants overrides, e.g. {"tower": 10}
    held_out: list = field(default_factory=lambda: [list(p) for p in DEFAULT_HELD_OUT])
    unet: dict = field(default_factory=dict)  # overrides of dvdlib.toy.model.UNET_CONFIG
    eval_images: int = 96
    eval_timesteps: list = field(default_factory=lambda: [200, 500, 800])
    checkpoint_every: int = 400  # ≈ 10 min at ~1.5 s/step on one CPU thread
    log_every: int = 10
    threads: int = 1

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}")
        return cls(**data)

    def world(self) -> World:
        return World().with_variants(**self.variants)

    def captions(self) -> Captions:
        return Captions(self.world(), empty=self.empty, single=self.single,
                        held_out=tuple(tuple(p) for p in self.held_out))


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """lr at 0-based ``step``: linear warm-up, flat, then ∝ 1/√step after ``decay_start``."""
    n = step + 1
    return cfg.lr * min(1.0, n / cfg.warmup) * min(1.0, math.sqrt(cfg.decay_start / n))


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit torch seed for (run seed, step, stream)."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def embedding_table(pipe, captions: list[str]) -> tuple[dict[str, int], torch.Tensor]:
    """Token states [n, tokens, 384] of each caption, as ``pipe.encode_prompt`` computes them."""
    with torch.no_grad():
        states, _ = pipe.encode_prompt(list(captions), torch.device("cpu"), 1, False)
    return {c: i for i, c in enumerate(captions)}, states.float()


def noisy_batch(pipe, images: torch.Tensor, generator: torch.Generator, timesteps=None, noise_offset: float = 0.0):
    """(noisy latents, timesteps, target) for clean images [-1, 1]; noise from ``generator``. The
    target is what the pipeline's scheduler says the UNet predicts: the velocity v (world 1's
    ``v_prediction``) or the noise ε (world 2's ``epsilon``, SD 1.x's objective). ``noise_offset``
    σ adds σ·N(0, 1) per image and channel to the noise ("offset noise", diffusers'
    ``--noise_offset``): the first step's overall colour then carries no signal, so the model must
    take it from the caption."""
    latents = pipe.vae.encode(images).latent_dist.mode() * pipe.vae.config.scaling_factor
    n = latents.shape[0]
    if timesteps is None:
        timesteps = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (n,), generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    if noise_offset:
        noise = noise + noise_offset * torch.randn((n, latents.shape[1], 1, 1), generator=generator)
    noisy = pipe.scheduler.add_noise(latents, noise, timesteps)
    kind = pipe.scheduler.config.prediction_type
    if kind not in ("v_prediction", "epsilon"):
        raise ValueError(f"no training target for prediction type {kind!r}")
    return noisy, timesteps, pipe.scheduler.get_velocity(latents, noise, timesteps) if kind == "v_prediction" else noise


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights of Min-SNR-γ (Hang et al., 2023): the signal-to-noise ratio capped
    at ``gamma``, over the SNR for an ε target and over SNR + 1 for a v target, so the
    low-noise timesteps, whose loss is easy and large in number, stop dominating the gradient."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    capped = torch.clamp(snr, max=gamma)
    return capped / (snr + 1) if scheduler.config.prediction_type == "v_prediction" else capped / snr


def high_noise_weights(scheduler, timesteps: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-sample weights of an ε loss: 1 + 1/SNR, capped at ``cap``. Uncapped, this is the
    v-objective (Salimans & Ho, 2022), since v̂ − v = (ε̂ − ε)/√ᾱ; the target stays ε. Plain ε loss
    sees the image through ᾱ/(1 − ᾱ) = 0.007 at SD's first steps, so what the caption says there is
    learnt slowly; these weights count the noise-dominated steps up to ``cap`` times more."""
    from diffusers.training_utils import compute_snr

    if scheduler.config.prediction_type != "epsilon":
        raise ValueError("high-noise weights are for an ε target; this scheduler predicts "
                         f"{scheduler.config.prediction_type!r}")
    return torch.clamp(1 + 1 / compute_snr(scheduler, timesteps), max=cap)


def loss_weights(cfg, scheduler, timesteps: torch.Tensor) -> torch.Tensor | None:
    """Per-sample loss weights the run's config asks for (Min-SNR-γ or high-noise), or None for
    SD's plain MSE. World 1's config has neither option."""
    gamma, cap = getattr(cfg, "min_snr_gamma", None), getattr(cfg, "high_noise_cap", None)
    if gamma:
        return min_snr_weights(scheduler, timesteps, gamma)
    return high_noise_weights(scheduler, timesteps, cap) if cap else None


def _wrong_captions(captions: list[str]) -> list[str]:
    """Each caption swapped for the next different one in the list (a mismatched condition)."""
    out = []
    for i, c in enumerate(captions):
        j = next((k % len(captions) for k in range(i + 1, i + len(captions)) if captions[k % len(captions)] != c), i)
        out.append(captions[j])
    return out


class CaptionTable:
    """Token states of a fixed caption list, computed once in one batch (`embedding_table`);
    called with captions, their states [n, tokens, 384] (world 1's text conditioning)."""

    def __init__(self, pipe, captions: list[str]):
        self.index, self.states = embedding_table(pipe, captions)

    def __call__(self, captions: list[str]) -> torch.Tensor:
        return self.states[[self.index[c] for c in captions]]


def conditioning_check(pipe, unet, cfg: TrainConfig, text, chunk: int = 64) -> list[dict]:
    """Loss of ``unet`` on fixed scenes with non-empty captions at each of ``cfg.eval_timesteps``:
    with the right caption, the empty one and a wrong one (``text``: captions → token states;
    ``chunk`` images per UNet call). Text conditioning is learned when the wrong caption costs
    clearly more than the right one. Any toy world whose config gives ``captions()`` (worlds 1, 2)."""
    stream = SceneStream(cfg.captions(), seed=cfg.seed + 1_000_003)
    scenes = [stream.scene(i) for i in range(4 * cfg.eval_images)]
    scenes = [s for s in scenes if s.caption][:cfg.eval_images]
    images = torch.from_numpy(np.stack([s.image.transpose(2, 0, 1) * 2 - 1 for s in scenes]))
    right = [s.caption for s in scenes]
    conditions = {"right": right, "empty": [""] * len(right), "wrong": _wrong_captions(right)}
    rows = []
    with torch.no_grad():
        for t in cfg.eval_timesteps:
            g = torch.Generator().manual_seed(step_seed(cfg.seed, t, stream=7))
            noisy, ts, target = noisy_batch(pipe, images, g, torch.full((len(right),), int(t)))
            loss = {}
            for name, caps in conditions.items():
                cond = text(caps)
                pred = torch.cat([unet(noisy[i:i + chunk], ts[i:i + chunk], encoder_hidden_states=cond[i:i + chunk]).sample
                                  for i in range(0, len(caps), chunk)])
                loss[name] = F.mse_loss(pred, target).item()
            rows.append({"t": int(t), "loss_right": loss["right"], "loss_empty": loss["empty"],
                         "loss_wrong": loss["wrong"], "wrong_over_right": loss["wrong"] / loss["right"]})
    return rows


# ---------------------------------------------------------------- the run

class Run:
    """A training run in a folder: builds or resumes the state, trains, checkpoints, logs.

    What a world changes is named here: ``model``, the model module (``build``, ``save``,
    ``load``, ``is_folder``, ``MARKER``: `dvdlib.toy.model`, `dvdlib.toy2.model`), ``stream``, the
    scene stream class of its world, `text_states` (how captions become token states) and
    ``chunk`` (images per UNet call in `conditioning_check`); the target follows the model's
    scheduler (`noisy_batch`). World 2's run (`dvdlib.toy2.train.Run`) sets these and nothing else."""

    model = toy_model
    stream_class = SceneStream
    chunk = 64

    def __init__(self, out, cfg):
        self.out, self.cfg = Path(out), cfg
        self.saved = self._load_checkpoint()
        torch.set_num_threads(cfg.threads)
        self.pipe = self.model.build(cfg.seed, **cfg.unet)
        self.unet = self.pipe.unet.train()
        self.ema = copy.deepcopy(self.unet).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.captions = cfg.captions()
        self.stream = self.stream_class(self.captions, cfg.seed)
        self.text = self.text_states()
        self.step, self.wall, self.window = 0, 0.0, []
        self.data_hash = None

    def text_states(self):
        """Captions → token states: world 1 encodes its whole (finite) caption list once."""
        return CaptionTable(self.pipe, self.captions.all())

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    # -- state
    def state(self) -> dict:
        return {"step": self.step, "config": asdict(self.cfg), "unet": self.unet.state_dict(),
                "ema": self.ema.state_dict(), "optimizer": self.opt.state_dict(), "window": list(self.window),
                "wall": self.wall, "data_hash": self.data_hash, "torch_rng": torch.get_rng_state()}

    def save(self) -> None:
        """Write the checkpoint atomically (temporary file, then rename)."""
        path = self.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)

    def _load_checkpoint(self) -> dict | None:
        """The latest checkpoint, if any; refuse one made with another config (before building anything)."""
        if not self.checkpoint_path.is_file():
            return None
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        changed = {k for k, v in state["config"].items() if asdict(self.cfg).get(k) != v} - RESUMABLE_CHANGES
        if changed:
            raise ValueError(f"{self.checkpoint_path} was trained with other settings ({sorted(changed)}: "
                             f"{ {k: state['config'][k] for k in sorted(changed)} }); use another --out folder")
        return state

    def resume(self) -> bool:
        """Restore the state of ``checkpoints/last.pt`` if there is one; drop log rows after it."""
        state, self.saved = self.saved, None
        if state is None:
            return False
        self.unet.load_state_dict(state["unet"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.window, self.wall = state["step"], list(state["window"]), state["wall"]
        self.data_hash = state["data_hash"]
        _truncate_csv(self.out / "loss.csv", self.step)
        _truncate_csv(self.out / "eval.csv", self.step)
        return True

    def warm_start(self) -> bool:
        """Without a checkpoint, continue from the exported model in ``out/model`` if there is one
        (how a run crosses sessions: checkpoints are not committed, the small export is).

        The UNet and its EMA start from the exported EMA weights (fp16), the step, the data stream
        and the learning-rate schedule continue; the optimizer's moments restart, so the run is
        resumed but not bitwise identical to an uninterrupted one."""
        folder = self.out / "model"
        if not self.model.is_folder(folder):
            return False
        info = json.loads((folder / self.model.MARKER).read_text())
        if info.get("seed") != self.cfg.seed:
            raise ValueError(f"{folder} was trained with seed {info.get('seed')}, not {self.cfg.seed}")
        loaded = self.model.load(folder)
        normalisation = [(vae.config.scaling_factor, vae.config.shift_factor) for vae in (loaded.vae, self.pipe.vae)]
        if normalisation[0] != normalisation[1]:
            raise ValueError(f"{folder} was trained with another latent normalisation (scale, shift "
                             f"{normalisation[0]}, not {normalisation[1]}); use another --out folder")
        exported = loaded.unet.float().state_dict()
        self.unet.load_state_dict(exported)
        self.ema.load_state_dict(exported)
        manifest = json.loads((self.out / "manifest.json").read_text())
        self.step, self.wall, self.data_hash = info["steps"], manifest["wall_time_s"], info["data_hash"]
        _truncate_csv(self.out / "loss.csv", self.step)
        _truncate_csv(self.out / "eval.csv", self.step)
        return True

    # -- training
    def train_step(self) -> tuple[float, float]:
        """One optimisation step on batch ``self.step``; returns (loss, gradient norm)."""
        cfg = self.cfg
        images, caps = self.stream.batch(self.step * cfg.batch_size, cfg.batch_size)
        g = torch.Generator().manual_seed(step_seed(cfg.seed, self.step))
        noisy, t, target = noisy_batch(self.pipe, torch.from_numpy(images), g,
                                       noise_offset=getattr(cfg, "noise_offset", 0.0))
        pred = self.unet(noisy, t, encoder_hidden_states=self.text(caps)).sample
        weights = loss_weights(cfg, self.pipe.scheduler, t)
        if weights is None:
            loss = F.mse_loss(pred, target)
        else:
            loss = (F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3)) * weights).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.unet.parameters(), cfg.grad_clip)
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(cfg, self.step)
        self.opt.step()
        self.update_ema()
        self.step += 1
        return loss.item(), float(grad_norm)

    def update_ema(self) -> None:
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.unet.parameters()), 1 - decay)

    def log(self, loss: float, grad_norm: float) -> None:
        """Keep the window; every ``log_every`` steps append its means to loss.csv."""
        self.window.append((loss, grad_norm))
        if self.step % self.cfg.log_every == 0:
            losses, norms = zip(*self.window)
            _append_csv(self.out / "loss.csv", LOSS_COLUMNS, [{
                "step": self.step, "loss": f"{np.mean(losses):.6f}", "lr": f"{learning_rate(self.cfg, self.step - 1):.3e}",
                "grad_norm": f"{np.mean(norms):.4f}", "wall_s": f"{self.wall:.1f}"}])
            self.window = []

    def evaluate(self) -> list[dict]:
        rows = conditioning_check(self.pipe, self.ema, self.cfg, self.text, self.chunk)
        _append_csv(self.out / "eval.csv", EVAL_COLUMNS,
                    [{"step": self.step, **{k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()}} for r in rows])
        return rows

    def run(self, progress: bool = True) -> None:
        """Train until ``cfg.steps``, checkpointing and evaluating every ``checkpoint_every`` steps."""
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.resume() or self.warm_start()
        if self.data_hash is None:
            self.data_hash = self.stream.data_hash()
        (self.out / "config.json").write_text(json.dumps(asdict(self.cfg), indent=2) + "\n")
        # a live bar in a terminal; in a log or a page, checkpoint lines and one line at the end
        with task(self.cfg.steps - self.step, f"toy {'resumed' if resumed else 'training'} steps → {self.out}",
                  stored=self.step, show=progress, unit="step", mininterval=20,
                  kept="resumed from the checkpoint") as update:
            while self.step < self.cfg.steps:
                started = time.perf_counter()
                loss, grad_norm = self.train_step()
                self.log(loss, grad_norm)
                update(1, loss=f"{loss:.4f}")
                if self.step % self.cfg.checkpoint_every == 0 or self.step == self.cfg.steps:
                    rows = self.evaluate()
                    self.wall += time.perf_counter() - started
                    started = time.perf_counter()
                    self.save()
                    tqdm.write(f"step {self.step}: checkpoint; wrong/right caption loss at t={rows[-1]['t']}: "
                               f"{rows[-1]['wrong_over_right']:.3f}", file=sys.stderr)
                self.wall += time.perf_counter() - started


def _append_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def _truncate_csv(path: Path, step: int) -> None:
    """Drop rows logged after ``step`` (they belong to steps a resumed run will redo)."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
        columns = list(rows[0]) if rows else None
    if columns is None:
        return
    kept = [r for r in rows if int(r["step"]) <= step]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, path)


def train(out, cfg: TrainConfig | None = None, progress: bool = True, run_class=Run) -> Run:
    """Train (or resume) the run in folder ``out`` up to ``cfg.steps``; returns the `Run`
    (``run_class``: another world's, e.g. `dvdlib.toy2.train.Run`)."""
    run = run_class(out, cfg or TrainConfig())
    run.run(progress)
    return run


# ---------------------------------------------------------------- export

def export(out, folder=None, config=TrainConfig, model=toy_model, describe=None) -> dict:
    """Write the EMA UNet of ``out``'s latest checkpoint as a toy pipeline (fp16) to ``folder``
    (default ``out/model``) and ``out/manifest.json``; returns the manifest. Another world passes
    its ``config`` class, ``model`` module and ``describe`` (the manifest; default `_manifest`)."""
    out = Path(out)
    state = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    cfg = config.from_dict(state["config"])
    pipe = model.build(cfg.seed, **cfg.unet)
    pipe.unet.load_state_dict(state["ema"])
    folder = Path(folder) if folder else out / "model"
    # saved before the manifest's measurements run the pipeline (its tokenizer keeps its last call's settings)
    model.save(pipe, folder, info={"steps": state["step"], "seed": cfg.seed, "data_hash": state["data_hash"]})
    manifest = (describe or _manifest)(out, cfg, state, pipe)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _manifest(out: Path, cfg: TrainConfig, state: dict, pipe) -> dict:
    import diffusers
    import transformers

    losses = _read_csv(out / "loss.csv")
    recent = [float(r["loss"]) for r in losses if int(r["step"]) > state["step"] - 500]
    evals = [r for r in _read_csv(out / "eval.csv") if int(r["step"]) == state["step"]]
    return {
        "model": "dvdlib toy world: UNet2DConditionModel (SD 1.x block layout) on 2×2 space-to-depth "
                 "32×32 scenes, frozen all-MiniLM-L6-v2 text encoder, v-prediction, cosine schedule",
        "steps": state["step"], "seed": cfg.seed, "config": asdict(cfg),
        "world": cfg.world().to_dict(), "captions": cfg.captions().to_dict(),
        "data_hash": state["data_hash"], "wall_time_s": round(state["wall"], 1),
        "s_per_step": round(state["wall"] / max(state["step"], 1), 3),
        "final_loss": round(float(np.mean(recent)), 6) if recent else None,
        "final_loss_steps": "mean of loss.csv over the last 500 steps",
        "conditioning": [{k: (float(v) if k != "t" else int(v)) for k, v in r.items() if k != "step"} for r in evals],
        "unet_parameters": sum(p.numel() for p in pipe.unet.parameters()),
        "weights": "model/unet/diffusion_pytorch_model.safetensors (EMA, float16)",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__},
        "threads": cfg.threads,
    }


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
