"""FLUX.1 (black-forest-labs/FLUX.1-schnell, FLUX.1-dev): joint attention over [text; image].

FLUX's transformer runs two kinds of blocks, in this order:

- 19 *double-stream* blocks: text and image tokens keep their own projections, then attend over
  one concatenated sequence [T5 tokens; image tokens], as SD3's joint blocks do (text first here);
- 38 *single-stream* blocks: one stream holding [T5 tokens; image tokens], one attention over it.

Both kinds contain the paper's question, image queries attending to text keys (paper §3.4), so
both count: the registry numbers all 57 blocks in forward order (double 1–19, then single
20–57). Queries and keys are rotated (rotary embeddings over the text and image positions) before
the softmax; the explicit recompute applies them as the stock `FluxAttnProcessor` does. The
image is latents packed 2×2 (16 channels → 64 per token): a 1024² image is 64² tokens.

The text sequence is T5's alone (``max_sequence_length``: 512 by default in diffusers' pipeline;
FLUX.1-schnell's card uses 256): CLIP gives only the pooled vector that modulates every block, so
a concept's span is read on the T5 tokenizer. A *head* is one head of a block's attention, read on
its image→text block; head scaling multiplies the image queries' logits over the T5 keys.
"""

from __future__ import annotations

import torch

from ..family import Adapter, relative_depth
from .joint import CHUNK, JointInputs, JointProcessor, explicit

#: The T5 length diffusers' FluxPipeline pads to by default (its ``max_sequence_length``).
T5_LENGTH = 512


def flux_inputs(attn, hidden_states, encoder_hidden_states=None, image_rotary_emb=None,
                text_length: int | None = None) -> JointInputs:
    """What one FLUX attention computes on (`JointInputs`): [text; image] projected, normalised and
    rotated as the stock `FluxAttnProcessor` does. A double-stream block gets the text as
    ``encoder_hidden_states``; a single-stream block gets [text; image] as ``hidden_states`` and
    needs ``text_length`` (how many of its tokens are text)."""
    if getattr(attn, "fused_projections", False):
        raise NotImplementedError("explicit FLUX attention with fused projections: call pipe.transformer."
                                  "unfuse_qkv_projections() before recording")
    q, k, v = (f(hidden_states).unflatten(-1, (-1, attn.head_dim)) for f in (attn.to_q, attn.to_k, attn.to_v))
    q, k = attn.norm_q(q), attn.norm_k(k)
    double = encoder_hidden_states is not None
    if double:
        cq, ck, cv = (f(encoder_hidden_states).unflatten(-1, (-1, attn.head_dim))
                      for f in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj))
        cq, ck = attn.norm_added_q(cq), attn.norm_added_k(ck)
        q, k, v = torch.cat([cq, q], 1), torch.cat([ck, k], 1), torch.cat([cv, v], 1)
        text_length = encoder_hidden_states.shape[1]
    elif text_length is None:
        raise ValueError("a single-stream FLUX block needs text_length: how many of its tokens are text")
    if image_rotary_emb is not None:
        from diffusers.models.embeddings import apply_rotary_emb

        q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
        k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)

    def finish(out):
        out = out.transpose(1, 2).flatten(2, 3).to(q.dtype)
        if not double:
            return out
        text, image = out[:, :text_length], out[:, text_length:]
        return attn.to_out[1](attn.to_out[0](image)), attn.to_add_out(text)

    return JointInputs(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), slice(text_length, q.shape[1]),
                       slice(0, text_length), attn.head_dim ** -0.5, finish)


def flux_attention(attn, hidden_states, encoder_hidden_states=None, head_factors=None, image_rotary_emb=None,
                   text_length: int | None = None, chunk: int = CHUNK):
    """One FLUX attention computed explicitly (`flux_inputs`): (image→text block of the softmax, the
    outputs the stock `FluxAttnProcessor` returns)."""
    return explicit(flux_inputs(attn, hidden_states, encoder_hidden_states, image_rotary_emb, text_length),
                    head_factors, chunk)


class FluxProcessor(JointProcessor):
    """`JointProcessor` for a FLUX block: hands the rotary embeddings (a positional argument of the
    stock call) and, in a single-stream block, the current call's text length to `flux_inputs`."""

    def __init__(self, layer, stock, control):
        super().__init__(layer, stock, control, self._inputs)

    def _inputs(self, attn, hidden_states, encoder_hidden_states, image_rotary_emb=None, **_):
        return flux_inputs(attn, hidden_states, encoder_hidden_states, image_rotary_emb, self.control.text_length)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None,
                 **kwargs):
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask,
                                image_rotary_emb=image_rotary_emb, **kwargs)


class FluxAdapter(Adapter):
    family = "flux"
    pipelines = ("FluxPipeline",)
    denoiser_name = "transformer"
    layer_meaning = ("attention blocks in forward order: the double-stream (joint) blocks, then the single-stream "
                     "blocks (FLUX.1: 19 + 38 = 57); both attend from image queries to text keys")
    head_meaning = ("one head of a block's attention, read on its image→text block: image queries over the T5 "
                    "keys (CLIP gives only a pooled vector, no tokens); token shares by default from a softmax over "
                    "the text keys only.")
    semantic_meaning = ("the blocks at the relative depth of SD 1.4's layers 8–10 of 16, over all double- and "
                        "single-stream blocks (FLUX.1: single-stream blocks 6–16; a DiT has no resolution "
                        "hierarchy: every block sees the same grid)")

    def layers(self, pipe, resolution: int | None = None) -> list:
        from ..layers import Layer

        model = pipe.transformer
        side = (resolution or pipe.default_sample_size * pipe.vae_scale_factor) // (pipe.vae_scale_factor * 2)
        double = [("double", f"transformer_blocks.{i}.attn", i, b.attn) for i, b in enumerate(model.transformer_blocks)]
        single = [("single", f"single_transformer_blocks.{i}.attn", i, b.attn)
                  for i, b in enumerate(model.single_transformer_blocks)]
        return [Layer(n, name, kind, i, side, attn.heads, attn)
                for n, (kind, name, i, attn) in enumerate(double + single, start=1)]

    def semantic_layers(self, layers: list) -> tuple[int, ...]:
        return relative_depth(len(layers))

    def processor(self, layer, stock, control):
        return FluxProcessor(layer, stock, control)

    def tokenizers(self, pipe) -> dict:
        return {"tokenizer": pipe.tokenizer, "tokenizer_2": pipe.tokenizer_2}

    def sequence_tokenizer(self, pipe):
        from ..tokens import JointSequence

        return JointSequence([(pipe.tokenizer_2, T5_LENGTH)])

    def timestep_scale(self, pipe) -> float:
        """FluxPipeline calls the transformer with the scheduler's timestep / 1000."""
        return 1000.0

    def latent_shape(self, pipe, resolution: int) -> tuple[int, ...]:
        """Packed latents: [1, (side/2)², 4 · channels] (2×2 patches of the VAE's latent grid)."""
        side = 2 * (resolution // (pipe.vae_scale_factor * 2))
        return (1, (side // 2) ** 2, pipe.transformer.config.in_channels)

    def build_tiny(self, seed: int = 0):
        """A tiny FLUX-layout pipeline: 2 double- and 4 single-stream blocks of 4 heads, rotary
        embeddings, packed latents, a CLIP encoder (pooled) and a T5 encoder with the small offline
        word-level tokenizer (`dvdlib.tokens.tiny_t5_tokenizer`)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return _build_tiny()


def _build_tiny():
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from ..models import _config
    from ..tokens import clip_tokenizer, tiny_t5_tokenizer

    clip = {**_config("sd14_text_encoder"), "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
            "num_hidden_layers": 2, "projection_dim": 16, "hidden_act": "gelu", "attention_dropout": 0.0,
            "dropout": 0.0}
    t5_tokenizer = tiny_t5_tokenizer(T5_LENGTH)
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                 num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.0))
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=2, num_single_layers=4,
                                         attention_head_dim=8, num_attention_heads=4, joint_attention_dim=32,
                                         pooled_projection_dim=16, guidance_embeds=False, axes_dims_rope=(2, 2, 4))
    vae = AutoencoderKL(**{**_config("sd_vae"), "block_out_channels": [8, 8, 16, 16], "norm_num_groups": 8,
                           "layers_per_block": 1, "sample_size": 128, "shift_factor": 0.0,
                           "use_quant_conv": False, "use_post_quant_conv": False})
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=vae,
                        text_encoder=CLIPTextModel(CLIPTextConfig(**clip)).eval(), tokenizer=clip_tokenizer(pad="eos"),
                        text_encoder_2=t5.eval(), tokenizer_2=t5_tokenizer, transformer=transformer.eval())
    pipe.vae.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


ADAPTER = FluxAdapter()
