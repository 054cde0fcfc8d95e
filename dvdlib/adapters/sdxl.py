"""SDXL (stabilityai/stable-diffusion-xl-base-1.0): the SD adapter with two text encoders.

The UNet's cross-attention reads the features of CLIP ViT-L and OpenCLIP ViT-bigG concatenated
position by position, so a concept's positions are the same for both tokenizers (both CLIP BPE,
77 positions; the second pads with "!" instead of the end token): the spans are read with the
first and checked against the second. 70 cross-attention layers (10 transformer layers per
attention in the lowest-resolution blocks); a head is one head of one of them, as in SD.
"""

from __future__ import annotations

import torch

from .sd import UNetAdapter


class SDXLAdapter(UNetAdapter):
    family = "sdxl"
    pipelines = ("StableDiffusionXLPipeline",)
    layer_meaning = ("cross-attention layers (every transformer layer's `attn2` in the UNet, forward order; "
                     "SDXL base: 70)")
    semantic_meaning = ("the cross-attention layers of the first up block (SDXL base: layers 35–64, the 32² "
                        "decoder block at 1024 px)")

    def tokenizers(self, pipe) -> dict:
        return {"tokenizer": pipe.tokenizer, "tokenizer_2": pipe.tokenizer_2}

    def build_tiny(self, seed: int = 0):
        """A tiny SDXL-layout pipeline (three levels, text-time conditioning, two CLIP encoders)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return _build_tiny()


def _build_tiny():
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from ..models import _config, ddim, unet_config
    from ..tokens import clip_tokenizer

    text = {**_config("sd14_text_encoder"), "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
            "num_hidden_layers": 2, "projection_dim": 32}
    unet = UNet2DConditionModel(**{
        **unet_config("sdxl"), "block_out_channels": [32, 32, 64], "attention_head_dim": [2, 2, 4],
        "transformer_layers_per_block": [1, 1, 2], "cross_attention_dim": 64, "norm_num_groups": 8,
        "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 8 * 6 + 32, "sample_size": 16})
    vae = AutoencoderKL(**{**_config("sd_vae"), "block_out_channels": [8, 8, 16, 16], "norm_num_groups": 8,
                           "layers_per_block": 1, "sample_size": 128})
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text)),
        tokenizer=clip_tokenizer(pad="eos"), tokenizer_2=clip_tokenizer(pad="zero"), unet=unet,
        scheduler=ddim(), force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


ADAPTER = SDXLAdapter()
