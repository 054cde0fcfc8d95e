"""DreamBooth fine-tuning and the causal test of visual diversity (paper §3.3).

The paper teaches Stable Diffusion a new token, **"dvddog"**, by fine-tuning the UNet on 120 dog
images whose diversity is varied — 1 breed × 120 images (low) … 10 breeds × 12 (high) — and
shows that the less diverse the training images, the more the new concept dominates the prompts
that pair it with another concept (higher DvD Score).

- `Recipe`: the fine-tuning choices (the paper leaves them **open**; defaults are the DreamBooth recipe:
  lr 5e-6, batch 1, 400 steps, text encoder frozen, instance prompt "a photo of dvddog dog",
  prior preservation off — the recipe's own default, ``--with_prior_preservation`` is opt-in).
- Training images (`training_images`): a folder with one sub-folder per breed (ImageNet
  synsets); a world may bring its own (`dvdlib.worlds.World.training_images`).
- `DreamBooth`: the training loop on diffusers / torch (no example script): the frozen text
  encoder's states of the instance prompt are computed once, the VAE's latent distribution of
  every image once; each step's image choice, noise and timestep are a pure function of
  (seed, step), so a run resumed from its checkpoint is bitwise the run that never stopped (same
  device and threads). Only the UNet is trained. `train` writes ``checkpoints/last.pt``
  atomically every ``checkpoint_every`` steps and, at the end, the fine-tuned UNet (``unet/``,
  diffusers format), ``loss.csv`` and ``finetune.json``.
- `finetune_dir` / `load_finetuned` / `finetuned_key`: where a fine-tune lives in the run store
  and how the rest of dvdlib uses it (a `StableDiffusionPipeline`, a run-store model name).
- `trend`: the causal test's statistics (Spearman over breeds, a paired one-sided Wilcoxon test
  between the least and the most diverse variant, the share of prompts that cross τ).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from .store import atomic_write, digest, slug

TOKEN = "dvddog"
#: Image files a breed folder may hold.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


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


#: paper §3.3's full experiment: 120 images per variant, 1 / 2 / 3 / 5 / 10 breeds, every prompt
#: (``prompts`` None), the DreamBooth recipe (``recipe``: `Recipe` fields that differ from it).
FULL = {"n_images": 120, "breeds": [1, 2, 3, 5, 10], "prompts": None, "recipe": {}}


def scale(profile) -> dict:
    """The causal experiment a profile runs: `FULL`, narrowed by the profile's ``scales.causal``
    (`dvdlib.profiles.Profile.scale`); ``recipe`` becomes a `Recipe`."""
    out = profile.scale("causal", FULL)
    out["recipe"] = Recipe(**out["recipe"])
    return out


# ---------------------------------------------------------------- training images

def breed_folders(folder) -> dict[str, list[Path]]:
    """The images of a dog folder with one sub-folder per breed (e.g. ImageNet synsets), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no image folder {folder}: give a folder with one sub-folder of images per breed "
            f"(e.g. ImageNet dog synsets n02085620/, n02085782/, ...; chapter parameter `images`)")
    breeds = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
              for d in sorted(folder.iterdir()) if d.is_dir()}
    breeds = {b: files for b, files in breeds.items() if files}
    if not breeds:
        raise ValueError(f"{folder} has no sub-folder with images ({', '.join(IMAGE_SUFFIXES)}); "
                         "put each breed's images in its own sub-folder")
    return breeds


def per_breed(n_images: int, n_breeds: int) -> int:
    """Images per breed of a variant (paper §3.3: 120 images = 1 × 120 … 10 × 12)."""
    if n_breeds < 1 or n_images % n_breeds:
        raise ValueError(f"{n_images} images cannot be split evenly over {n_breeds} breeds; "
                         f"pick breed counts that divide {n_images}")
    return n_images // n_breeds


def pick_breeds(breeds: dict[str, list[Path]], n_breeds: int, n_images: int, seed: int = 0) -> list[tuple[str, Path]]:
    """(breed, image path) of one variant: the first ``n_breeds`` breeds of a seeded order (so a
    variant's breeds contain every less diverse variant's), the first ``n_images / n_breeds``
    images of each breed's seeded order."""
    k = per_breed(n_images, n_breeds)
    rng = np.random.default_rng(seed)
    order = [list(breeds)[i] for i in rng.permutation(len(breeds))]
    if n_breeds > len(order):
        raise ValueError(f"a variant of {n_breeds} breeds needs {n_breeds} breed folders; found {len(order)}")
    chosen = []
    for breed in order[:n_breeds]:
        files = breeds[breed]
        if len(files) < k:
            raise ValueError(f"breed {breed!r} has {len(files)} images; a {n_breeds}-breed variant of "
                             f"{n_images} images needs {k} per breed")
        order_in_breed = np.random.default_rng([seed, zlib.crc32(breed.encode())]).permutation(len(files))
        chosen += [(breed, files[i]) for i in order_in_breed[:k]]
    return chosen


def training_images(folder, n_breeds: int, n_images: int, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """The (breed, RGB image) pairs of one variant from a folder with a sub-folder per breed
    (`pick_breeds`)."""
    return [(b, Image.open(p).convert("RGB")) for b, p in pick_breeds(breed_folders(folder), n_breeds, n_images, seed)]


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
    """A short hash of training images (their pixels, in order), so other images never reuse a fine-tune."""
    h = hashlib.sha1()
    for image in images:
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
        from tqdm import tqdm

        out = Path(out_dir)
        last = out / "checkpoints" / "last.pt"
        if last.exists():
            self.load_checkpoint(last)
        end = min(self.recipe.steps, stop_after or self.recipe.steps)
        # a few updates, not one per step: an executed chapter keeps every update in its output
        bar = tqdm(total=end, initial=self.step, disable=not progress, desc="DreamBooth", unit="step", mininterval=15)
        while self.step < end:
            self.train_step()
            bar.update(1)
            bar.set_postfix(loss=f"{self.losses[-1]:.4f}", refresh=False)
            if self.step % self.recipe.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint(last)
        bar.close()
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


def class_images(pipe, recipe: Recipe, store, seeds=None, batch_size: int = 8) -> list[Image.Image]:
    """Prior-preservation images: ``recipe.class_prompt`` generated by the base model into its
    run ``store`` (`dvdlib.generate`; stored, so made once), seeds 1..n_class_images."""
    from .generate import generate

    seeds = list(seeds or range(1, recipe.n_class_images + 1))
    samples = generate(pipe, [recipe.class_prompt], seeds, store=store, batch_size=batch_size, progress=False)
    return [Image.open(s.image).convert("RGB") for s in samples]


# ---------------------------------------------------------------- the causal test

def recipe_for(scale: dict, **chosen) -> Recipe:
    """The scale's recipe with the chapter's non-None choices (``steps``, ``lr``, …) applied."""
    import dataclasses

    return dataclasses.replace(scale["recipe"], **{k: v for k, v in chosen.items() if v is not None})


def variant_images(run, images, breeds, n_images: int, seed: int = 0) -> dict[int, list]:
    """Per variant (breed count), its (breed, image) pairs: from the folder ``images`` (one
    sub-folder per breed), else the world's own (`dvdlib.worlds.World.training_images`, at the
    model's resolution). ``run`` is a `dvdlib.run.Run`."""
    P = run.profile
    if images:
        return {k: training_images(images, k, n_images, seed) for k in breeds}
    if run.world.training_images is None:
        raise ValueError(
            f"model {P.model!r} needs real dog photos to fine-tune on (paper §3.3: ImageNet dog images): pass "
            "a folder with one sub-folder of images per breed, e.g. `papermill ... -p images /data/imagenet_dogs` "
            "(at least 120 images in the breed used alone, 12 in each of 10 breeds)")
    return {k: run.world.training_images(k, n_images, seed, P.resolution_of(P.model)) for k in breeds}


def images_note(run, images) -> str:
    """Where the training images come from, in words."""
    return f"dog photos from `{images}`, one sub-folder per breed" if images else run.world.training_images_note


def variants_text(breeds, n_images: int) -> str:
    """"1 × 120, 2 × 60": breeds × images per breed of each variant."""
    return ", ".join(f"{k} × {n_images // k}" for k in breeds)


def variant_name(breeds: int) -> str:
    """"base" (0 breeds: the model before fine-tuning), "1 breed", "3 breeds"."""
    return "base" if breeds == 0 else f"{breeds} breed{'s' if breeds > 1 else ''}"


def training_grid(training: dict[int, list], n_images: int, per_variant: int) -> list:
    """Rows of `dvdlib.plots.image_grid`: ``per_variant`` images of each variant, evenly spread."""
    return [(f"{variant_name(k)} × {n_images // k} images",
             [(im, b) for b, im in shown[::max(1, len(shown) // per_variant)][:per_variant]])
            for k, shown in training.items()]


def finetune_variants(run, training: dict[int, list], recipe: Recipe, prompts: pd.DataFrame) -> dict:
    """Fine-tune the run's model on each variant's images (stored, resumable), generate every
    prompt with every seed from each fine-tune and from the base model; per variant (0: the base)
    the run store of its images."""
    from .generate import generate
    from .store import Store, model_key

    P, base = run.profile, run.pipe
    base_key = model_key(P.model)
    runs = {0: run.store()}  # 0 breeds: the base model, never fine-tuned
    klass = class_images(base, recipe, runs[0], batch_size=P.batch_size) if recipe.prior_preservation else None
    for k, shown in training.items():
        pictures = [im for _, im in shown]
        folder = finetune_dir(P.store, base_key, recipe, images_digest(pictures))
        finetune(base, pictures, recipe, folder, class_images=klass)
        runs[k] = Store(P.store, finetuned_key(base_key, folder), P.sampler())
        tuned = load_finetuned(P.model, folder, dtype=P.dtype, device=P.device, load=run.world.load_model)
        generate(tuned, prompts.prompt, P.seeds, store=runs[k], batch_size=P.batch_size)
        del tuned
    generate(base, prompts.prompt, P.seeds, store=runs[0], batch_size=P.batch_size)
    return runs


def causal_prompts(run, n: int | None = None) -> pd.DataFrame:
    """The prompts of the causal test: the world's (`dvdlib.worlds.World.causal_prompts`; for
    Stable Diffusion the 50 of `dvdlib.bench.load_dreambooth_prompts`), ``n`` rows taken in turn
    from each group."""
    from .bench import stratified

    table = run.world.causal_prompts()
    return stratified(table, n, by="group") if n else table


def crossing_table(scores: pd.DataFrame, taus) -> pd.DataFrame:
    """Per variant (rows, 0 = base) and τ (columns): the share of prompts whose mean DvD reaches τ."""
    table = pd.DataFrame({f"τ = {t}": scores.groupby("breeds").dvd.apply(lambda s, t=t: (s >= t).mean()) for t in taus})
    table.index.name = "breeds (0 = base)"
    return table


def trend(scores: pd.DataFrame, tau: float = 48.0) -> dict:
    """The causal test's statistics on per-prompt DvD Scores of the fine-tuned variants.

    ``scores``: columns ``breeds`` (≥ 1), ``prompt``, ``dvd`` (mean over seeds). Returns
    Spearman's ρ between breeds and DvD over all (variant, prompt) pairs with its one-sided p
    (H1: ρ < 0, DvD falls as diversity rises), the paired one-sided Wilcoxon signed-rank test of
    the least against the most diverse variant over prompts (H1: least > most; ``differences``:
    per prompt, least − most), and per variant
    the mean DvD and the share of prompts whose mean DvD reaches τ. When every score is equal
    (or every pair tied), ρ is NaN and the p-values are 1: no evidence of a trend.
    """
    from scipy import stats

    tuned = scores[scores["breeds"] >= 1]
    if tuned["breeds"].nunique() < 2:
        raise ValueError("the trend needs at least two fine-tuned variants (breed counts)")
    if tuned["dvd"].nunique() > 1:
        rho, p_rho = stats.spearmanr(tuned["breeds"], tuned["dvd"], alternative="less")
    else:  # every score equal: ρ is undefined, and there is no evidence of a trend
        rho, p_rho = float("nan"), 1.0
    lo, hi = tuned["breeds"].min(), tuned["breeds"].max()
    wide = tuned.pivot_table(index="prompt", columns="breeds", values="dvd").dropna()
    diff = wide[lo] - wide[hi]
    if (diff != 0).any():
        w = stats.wilcoxon(wide[lo], wide[hi], alternative="greater")
        statistic, p_w = float(w.statistic), float(w.pvalue)
    else:  # every prompt tied: no evidence either way
        statistic, p_w = float("nan"), 1.0
    per_variant = scores.groupby("breeds").dvd.agg(mean="mean", crossing=lambda s: float((s >= tau).mean()))
    return {"spearman_rho": float(rho), "spearman_p": float(p_rho),
            "least_breeds": int(lo), "most_breeds": int(hi), "paired_prompts": int(len(wide)),
            "mean_difference": float(diff.mean()), "differences": diff, "wilcoxon_statistic": statistic, "wilcoxon_p": p_w,
            "per_variant": per_variant}


def plot_by_variant(scores: pd.DataFrame, tau: float = 48.0, n_images: int | None = None):
    """Per-prompt DvD per variant (base model = 0 breeds), mean ± s.e. and the points, with τ."""
    import matplotlib.pyplot as plt

    from . import plots

    plots.use_style()
    order = sorted(scores["breeds"].unique())
    labels = ["base" if b == 0 else f"{b} breed{'s' if b > 1 else ''}" for b in order]
    fig, ax = plt.subplots(figsize=(1.3 * len(order) + 2.5, 3.6))
    for i, b in enumerate(order):
        v = scores.loc[scores["breeds"] == b, "dvd"].to_numpy()
        jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(v))
        ax.plot(i + jitter, v, ".", color=plots.CONTROL_COLOR if b == 0 else plots.BENCH_COLOR, alpha=0.4, ms=4)
        se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
        ax.errorbar(i, v.mean(), yerr=se, fmt="o", color="black", capsize=4, zorder=3)
    ax.axhline(tau, color="0.4", ls="--", lw=1)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.text(-0.55, tau + 1, f"τ = {tau:g}", va="bottom", ha="left", fontsize=8, color="0.3")
    ax.set_xticks(range(len(order)), labels)
    ax.set_ylim(-3, 103)
    each = f"{n_images} training images in every variant" if n_images else "the same training images in number"
    ax.set_xlabel(f"breeds the new concept was fine-tuned on ({each})")
    ax.set_ylabel("DvD Score per prompt\n(mean over seeds; black: mean ± s.e.)")
    fig.tight_layout()
    return fig
