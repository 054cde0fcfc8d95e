"""Stable Diffusion 3 (stabilityai/stable-diffusion-3-medium-diffusers): joint attention (MMDiT).

Each of the transformer's blocks runs one attention over [image tokens, text tokens]; the text
tokens are CLIP ViT-L and OpenCLIP bigG features concatenated position by position (77 positions,
the same for both tokenizers), then the T5 tokens (``max_sequence_length``, 256 by default). A
*layer* here is one joint block; a *head* is one head of that block's joint attention, read on
its image→text block (image queries over the 77 + 256 text keys; `dvdlib.adapters.joint`).
"""

from __future__ import annotations

import torch

from ..family import Adapter, relative_depth
from .joint import CHUNK, JointInputs, JointProcessor, explicit, split_heads

#: CLIP positions of the joint text sequence, and the pipeline's default T5 length.
CLIP_LENGTH, T5_LENGTH = 77, 256


def sd3_inputs(attn, hidden_states, encoder_hidden_states, *_, **__) -> JointInputs:
    """What one SD3 joint attention computes on (`JointInputs`): [image; CLIP ‖ T5 text] as the stock
    `JointAttnProcessor2_0` projects and normalises them."""
    if encoder_hidden_states is None:
        raise NotImplementedError("explicit attention of a block without text tokens (SD3.5's second attention)")
    heads, batch = attn.heads, hidden_states.shape[0]
    q, k, v = (split_heads(f(hidden_states), heads) for f in (attn.to_q, attn.to_k, attn.to_v))
    cq, ck, cv = (split_heads(f(encoder_hidden_states), heads) for f in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
    if attn.norm_q is not None:
        q, k = attn.norm_q(q), attn.norm_k(k)
    if attn.norm_added_q is not None:
        cq, ck = attn.norm_added_q(cq), attn.norm_added_k(ck)
    n, t = q.shape[2], cq.shape[2]

    def finish(out):
        out = out.transpose(1, 2).reshape(batch, -1, heads * q.shape[-1]).to(q.dtype)
        image, text = out[:, :n], out[:, n:]
        if not attn.context_pre_only:
            text = attn.to_add_out(text)
        return attn.to_out[1](attn.to_out[0](image)), text

    return JointInputs(torch.cat([q, cq], 2), torch.cat([k, ck], 2), torch.cat([v, cv], 2), slice(0, n),
                       slice(n, n + t), attn.scale, finish)


def sd3_attention(attn, hidden_states, encoder_hidden_states, head_factors=None, chunk: int = CHUNK, **_):
    """One SD3 joint attention computed explicitly: (image→text block of the joint softmax,
    (image output, text output) as the stock `JointAttnProcessor2_0` returns them)."""
    return explicit(sd3_inputs(attn, hidden_states, encoder_hidden_states), head_factors, chunk)


class SD3Adapter(Adapter):
    family = "sd3"
    pipelines = ("StableDiffusion3Pipeline",)
    denoiser_name = "transformer"
    layer_meaning = "joint-attention blocks (the transformer's blocks in forward order; SD3 medium: 24)"
    head_meaning = ("one head of a block's joint attention, read on its image→text block: image queries over "
                    "the text keys (77 CLIP positions, then the T5 tokens); token shares by default from a softmax "
                    "over the text keys only.")
    semantic_meaning = ("the blocks at the relative depth of SD 1.4's layers 8–10 of 16 (a DiT has no "
                        "resolution hierarchy: every block sees the same grid)")

    def layers(self, pipe, resolution: int | None = None) -> list:
        from ..layers import Layer

        model = pipe.transformer
        latent = (resolution // pipe.vae_scale_factor) if resolution else model.config.sample_size
        side = latent // model.config.patch_size
        return [Layer(i + 1, f"transformer_blocks.{i}.attn", "joint", i, side, block.attn.heads, block.attn)
                for i, block in enumerate(model.transformer_blocks)]

    def semantic_layers(self, layers: list) -> tuple[int, ...]:
        return relative_depth(len(layers))

    def processor(self, layer, stock, control):
        return JointProcessor(layer, stock, control, sd3_inputs)

    def tokenizers(self, pipe) -> dict:
        names = ("tokenizer", "tokenizer_2", "tokenizer_3")
        return {name: getattr(pipe, name) for name in names if getattr(pipe, name, None) is not None}

    def sequence_tokenizer(self, pipe):
        from ..tokens import JointSequence

        parts = [(pipe.tokenizer, CLIP_LENGTH)]
        if getattr(pipe, "tokenizer_3", None) is not None:
            parts.append((pipe.tokenizer_3, T5_LENGTH))
        return JointSequence(parts)

    def build_tiny(self, seed: int = 0):
        """A tiny SD3-layout pipeline: 4 joint blocks of 4 heads, two CLIP encoders, a T5 encoder
        with a small offline word-level tokenizer (`dvdlib.tokens.tiny_t5_tokenizer`)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return _build_tiny()


def _build_tiny():
    from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel,
                           StableDiffusion3Pipeline)
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from ..models import _config
    from ..tokens import clip_tokenizer, tiny_t5_tokenizer

    clip = {**_config("sd14_text_encoder"), "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
            "num_hidden_layers": 2, "projection_dim": 32, "hidden_act": "gelu"}
    t5_tokenizer = tiny_t5_tokenizer()
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                 num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.0)).eval()
    transformer = SD3Transformer2DModel(sample_size=16, patch_size=2, in_channels=4, num_layers=4, attention_head_dim=8,
                                        num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32,
                                        pooled_projection_dim=64, out_channels=4, pos_embed_max_size=16)
    vae = AutoencoderKL(**{**_config("sd_vae"), "block_out_channels": [8, 8, 16, 16], "norm_num_groups": 8,
                           "layers_per_block": 1, "sample_size": 128, "shift_factor": 0.0})
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
        text_encoder=CLIPTextModelWithProjection(CLIPTextConfig(**clip)), tokenizer=clip_tokenizer(pad="eos"),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**clip)), tokenizer_2=clip_tokenizer(pad="zero"),
        text_encoder_3=t5, tokenizer_3=t5_tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


ADAPTER = SD3Adapter()
