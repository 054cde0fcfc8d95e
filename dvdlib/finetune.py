"""DreamBooth fine-tuning of a `StableDiffusionPipeline`'s UNet (Ruiz et al. 2023), as the causal
test of paper §3.3 uses it (`dvdlib.causal`).

- `Recipe`: the fine-tuning choices (the paper leaves them **open**; defaults are the DreamBooth recipe:
  lr 5e-6, batch 1, 400 steps, text encoder frozen, instance prompt "a photo of dvddog dog",
  prior preservation off — the recipe's own default, ``--with_prior_preservation`` is opt-in).
- `DreamBooth`: the training loop on diffusers / torch (no example script): the frozen text
  encoder's states of the instance prompt are computed once, the VAE's latent distribution of
  every image once; each step's image choice, noise and timestep are a pure function of
  (seed, step), so a run resumed from its checkpoint is bitwise the run that never stopped (same
  device and threads). Only the UNet is trained. `train` writes ``checkpoints/last.pt``
  atomically every ``checkpoint_every`` steps and, at the end, the fine-tuned UNet (``unet/``,
  diffusers format), ``loss.csv`` and ``finetune.json``.
- `finetune_dir` / `load_finetuned` / `finetuned_key`: where a fine-tune lives in the run store
  and how the rest of dvdlib uses it (a `StableDiffusionPipeline`, a run-store model name);
  `Tuned` names one as a model a chapter's executor generates with (`dvdlib.run.Run.finetune`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .store import atomic_write, digest, slug

TOKEN = "dvddog"


@dataclass(frozen=True)
class Recipe:
    """The DreamBooth choices (paper §3.3, **open**; defaults: the DreamBooth recipe).

    ``instance_prompt`` names the new concept with its class word; ``class_prompt`` is the prior
    preservation prompt (images of the class made by the base model, weighted ``prior_weight``);
    ``n_class_images`` of them. ``resolution`` None: the UNet's native size. ``checkpoint_every``
    does not change the weights (it is not part of a run's identity).
    """

    instance_prompt: str = f"a photo of {TOKEN} dog"
    steps: int = 400
    lr: float = 5e-6
    batch_size: int = 1
    prior_preservation: bool = False
    class_prompt: str = "a photo of dog"
    prior_weight: float = 1.0
    n_class_images: int = 100
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    seed: int = 0
    resolution: int | None = None
    checkpoint_every: int = 100

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"steps and batch_size must be ≥ 1 and lr > 0, got {self}")

    def identity(self) -> dict:
        """What determines the weights (everything but ``checkpoint_every``)."""
        return {k: v for k, v in asdict(self).items() if k != "checkpoint_every"}


def to_tensor(image: Image.Image, resolution: int) -> torch.Tensor:
    """An RGB image → [3, r, r] in [-1, 1]: shorter side resized to ``r`` (bicubic), centre crop
    (the DreamBooth recipe's transforms)."""
    image = image.convert("RGB")
    w, h = image.size
    s = resolution / min(w, h)
    image = image.resize((max(resolution, round(w * s)), max(resolution, round(h * s))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    return torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)


def images_digest(images) -> str:
    """A short hash of training images (their pixels, in order), so other images never reuse a
    fine-tune. A stand-in for an image not at hand (its name, a string: what `dvd plan` counts
    without the photos, `dvdlib.causal.standin_images`) is hashed by its name."""
    h = hashlib.sha1()
    for image in images:
        if isinstance(image, str):
            h.update(b"stand-in:" + image.encode())
            continue
        rgb = np.asarray(image.convert("RGB"))
        h.update(str(rgb.shape).encode() + rgb.tobytes())
    return h.hexdigest()[:12]


# ---------------------------------------------------------------- the training loop

def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of one training step: a pure function of (seed, step)."""
    state = np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0]
    return torch.Generator("cpu").manual_seed(int(state >> np.uint64(1)))


class DreamBooth:
    """DreamBooth on a `StableDiffusionPipeline` (Ruiz et al. 2023; paper §3.3): only the UNet learns.

    ``images``: PIL images of the new concept; ``class_images``: images of its class made by the
    base model (needed when ``recipe.prior_preservation``). The pipeline's text encoder and VAE
    are frozen and used once, to encode the prompts and the images. ``unet``: the UNet to train
    (default: the pipeline's own, trained in place, in float32).
    """

    def __init__(self, pipe, images, recipe: Recipe = Recipe(), class_images=None, unet=None):
        from diffusers import DDPMScheduler

        if not images:
            raise ValueError("DreamBooth needs at least one instance image")
        if recipe.prior_preservation and not class_images:
            raise ValueError("prior preservation needs class images: make them with `class_images(...)`")
        self.pipe, self.recipe = pipe, recipe
        self.unet = unet if unet is not None else pipe.unet
        self.device = self.unet.device
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.resolution = recipe.resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.instance = self._moments(images), self._states(recipe.instance_prompt)
        self.prior = ((self._moments(class_images), self._states(recipe.class_prompt))
                      if recipe.prior_preservation else None)
        pipe.text_encoder.requires_grad_(False)
        pipe.vae.requires_grad_(False)
        if self.unet.dtype != torch.float32:
            self.unet.to(torch.float32)
        self.unet.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.step, self.losses = 0, []

    @torch.no_grad()
    def _moments(self, images) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of the VAE's latent distribution of every image, scaled, on the CPU."""
        vae = self.pipe.vae
        means, stds = [], []
        for image in images:
            x = to_tensor(image, self.resolution)[None].to(self.device, vae.dtype)
            dist = vae.encode(x).latent_dist
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
        factor = vae.config.scaling_factor
        return torch.cat(means) * factor, torch.cat(stds) * factor

    @torch.no_grad()
    def _states(self, prompt: str) -> torch.Tensor:
        """The frozen text encoder's token states of ``prompt`` [1, tokens, dim], as sampling sees them."""
        states, _ = self.pipe.encode_prompt(prompt, self.device, 1, False)
        return states.float()

    def batch(self, step: int) -> dict:
        """The batch of 0-based ``step``: latents (sampled from the stored moments), noise,
        timesteps and token states, for the instance images then (prior preservation) the class
        images; everything random is drawn from `step_generator` (seed, step)."""
        g = step_generator(self.recipe.seed, step)
        parts = [self.instance] + ([self.prior] if self.prior else [])
        latents, states = [], []
        for (mean, std), text in parts:
            idx = torch.randint(len(mean), (self.recipe.batch_size,), generator=g)
            latents.append(mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g))
            states.append(text.expand(self.recipe.batch_size, -1, -1))
        latents = torch.cat(latents)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(latents),), generator=g)
        noise = torch.randn(latents.shape, generator=g)
        return {"latents": latents, "noise": noise, "timesteps": timesteps, "states": torch.cat(states).cpu()}

    def loss(self, batch: dict) -> torch.Tensor:
        """The DreamBooth loss of a batch: MSE between the UNet's prediction and its target (noise
        for epsilon models, velocity for v-prediction), instance part + ``prior_weight`` × class part."""
        sched, dev = self.noise_scheduler, self.device
        latents, noise, t = (batch[k].to(dev) for k in ("latents", "noise", "timesteps"))
        noisy = sched.add_noise(latents, noise, t)
        kind = sched.config.prediction_type
        if kind == "epsilon":
            target = noise
        elif kind == "v_prediction":
            target = sched.get_velocity(latents, noise, t)
        else:
            raise ValueError(f"cannot fine-tune a model with prediction_type {kind!r} (epsilon or v_prediction)")
        pred = self.unet(noisy, t, encoder_hidden_states=batch["states"].to(dev)).sample.float()
        b = self.recipe.batch_size
        loss = F.mse_loss(pred[:b], target[:b].float())
        if self.prior:
            loss = loss + self.recipe.prior_weight * F.mse_loss(pred[b:], target[b:].float())
        return loss

    def train_step(self) -> float:
        """One optimisation step (AdamW, gradient norm clipped); returns the loss before it."""
        self.unet.train()
        loss = self.loss(self.batch(self.step))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), self.recipe.max_grad_norm)
        self.optimizer.step()
        self.step += 1
        self.losses.append(float(loss.detach()))
        return self.losses[-1]

    # -- checkpoints
    def state(self) -> dict:
        return {"step": self.step, "losses": list(self.losses), "unet": self.unet.state_dict(),
                "optimizer": self.optimizer.state_dict(), "recipe": self.recipe.identity()}

    def save_checkpoint(self, path) -> Path:
        return atomic_write(Path(path), lambda p: torch.save(self.state(), p))

    def load_checkpoint(self, path) -> None:
        """Continue from a checkpoint of the same recipe (an error otherwise)."""
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state["recipe"] != self.recipe.identity():
            raise ValueError(f"checkpoint {path} was made with another recipe: {state['recipe']}; "
                             f"delete it or use its recipe")
        self.unet.load_state_dict(state["unet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.losses = state["step"], list(state["losses"])

    def train(self, out_dir, progress: bool = True, stop_after: int | None = None,
              keep_checkpoint: bool = False) -> Path:
        """Train to ``recipe.steps``, resuming from ``out_dir/checkpoints/last.pt`` if present;
        write the fine-tuned UNet to ``out_dir/unet`` with ``loss.csv`` and ``finetune.json``,
        then delete the checkpoint (UNet + AdamW state: ~10 GB for SD 1.4) unless ``keep_checkpoint``.
        ``stop_after``: stop (checkpointed) after that many steps in total, for interrupted runs."""
        from .progress import task

        out = Path(out_dir)
        last = out / "checkpoints" / "last.pt"
        if last.exists():
            self.load_checkpoint(last)
        end = min(self.recipe.steps, stop_after or self.recipe.steps)
        # a live bar in a terminal; in an executed chapter one line when the run ends
        with task(end - self.step, "DreamBooth steps", stored=self.step, show=progress, unit="step",
                  mininterval=15, kept="resumed from the checkpoint") as update:
            while self.step < end:
                self.train_step()
                update(1, loss=f"{self.losses[-1]:.4f}")
                if self.step % self.recipe.checkpoint_every == 0 or self.step == end:
                    self.save_checkpoint(last)
        if self.step >= self.recipe.steps:
            self._export(out)
            if not keep_checkpoint:
                last.unlink(missing_ok=True)
        return out

    def _export(self, out: Path) -> None:
        from .models import quiet

        with quiet():
            atomic_dir(out / "unet", lambda tmp: self.unet.save_pretrained(tmp, safe_serialization=True))
        rows = "step,loss\n" + "".join(f"{i + 1},{v:.6g}\n" for i, v in enumerate(self.losses))
        atomic_write(out / "loss.csv", lambda p: p.write_text(rows))
        info = {"method": "DreamBooth (UNet only; text encoder and VAE frozen)", "recipe": asdict(self.recipe),
                "resolution": self.resolution, "instance_images": len(self.instance[0][0]),
                "final_loss": self.losses[-1] if self.losses else None}
        atomic_write(out / "finetune.json", lambda p: p.write_text(json.dumps(info, indent=1)))


def atomic_dir(path: Path, write) -> Path:
    """Like `dvdlib.store.atomic_write` for a folder: ``write(tmp)`` fills a temporary folder,
    which then replaces ``path``."""
    import shutil

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


# ---------------------------------------------------------------- in the run store

def finetune_dir(store_root, base_key: str, recipe: Recipe, images_hash: str) -> Path:
    """The folder of one fine-tune in the run store: ``<store>/finetune/<base>/<hash>``, keyed by
    the base model, the recipe (what changes the weights) and the training images."""
    return Path(store_root) / "finetune" / slug(base_key) / digest({"recipe": recipe.identity(), "images": images_hash})


def is_finished(folder) -> bool:
    """True once a fine-tune has written its UNet and its summary."""
    return (Path(folder) / "unet").is_dir() and (Path(folder) / "finetune.json").is_file()


def finetune(pipe, images, recipe: Recipe, out_dir, class_images=None, progress: bool = True) -> Path:
    """Fine-tune a float32 copy of ``pipe``'s UNet on ``images`` (PIL) into ``out_dir`` (the
    pipeline is left as it was), or do nothing if it is finished there; resumes an interrupted run."""
    if not is_finished(out_dir):
        unet = copy.deepcopy(pipe.unet)
        DreamBooth(pipe, images, recipe, class_images, unet=unet).train(out_dir, progress=progress)
        del unet
    return Path(out_dir)


def load_finetuned(base: str, folder, *, dtype="float32", device: str = "cpu", load=None):
    """The base pipeline (loaded by ``load``, the world's model loader; default
    `dvdlib.models.load`) with the fine-tuned UNet of ``folder``."""
    from diffusers import UNet2DConditionModel

    from .models import load as load_sd
    from .models import quiet, torch_dtype

    load = load or load_sd

    if not is_finished(folder):
        raise FileNotFoundError(f"{folder} holds no finished fine-tune (no unet/ and finetune.json); "
                                "run `dvdlib.finetune.finetune` first")
    pipe = load(base, dtype=dtype, device=device)
    with quiet():
        unet = UNet2DConditionModel.from_pretrained(Path(folder) / "unet", torch_dtype=torch_dtype(dtype))
    pipe.register_modules(unet=unet.to(device).eval())
    return pipe


def finetuned_key(base_key: str, folder) -> str:
    """The run-store model name of a fine-tune: the base's key plus the fine-tune's hash."""
    return f"{base_key}+dreambooth-{Path(folder).name}"


@dataclass(frozen=True)
class Tuned:
    """A fine-tune as a model to generate with: its ``base`` model (a profile's model name) and its
    ``folder`` in the run store (`finetune_dir`). Its run-store ``key`` is `finetuned_key`'s; it
    samples as its base does (`base_of`)."""

    base: str
    folder: str

    @cached_property
    def key(self) -> str:
        from .store import model_key

        return finetuned_key(model_key(self.base), self.folder)

    def __str__(self) -> str:
        return self.key


def base_of(model):
    """The model whose sampler and cost ``model`` shares: a `Tuned` fine-tune's base, else itself."""
    return model.base if isinstance(model, Tuned) else model


def class_images(pipe, recipe: Recipe, store, seeds=None, batch_size: int = 8) -> list[Image.Image]:
    """Prior-preservation images: ``recipe.class_prompt`` generated by the base model into its
    run ``store`` (`dvdlib.generate`; stored, so made once), seeds 1..n_class_images."""
    from .generate import generate

    seeds = list(seeds or range(1, recipe.n_class_images + 1))
    samples = generate(pipe, [recipe.class_prompt], seeds, store=store, batch_size=batch_size, progress=False)
    return [Image.open(s.image).convert("RGB") for s in samples]


