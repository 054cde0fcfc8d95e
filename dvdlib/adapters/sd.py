"""Stable Diffusion 1.x / 2.x (the paper's models) and any SD-layout UNet: the reference adapter.

Layers are the UNet's cross-attention modules (``attn2``) in forward order (`dvdlib.layers`); the
text sequence is the CLIP tokenizer's 77 positions; a head is one of a layer's attention heads
over the 77 text tokens; recording and head scaling are `dvdlib.attention.ControlledProcessor`.
"""

from __future__ import annotations

from ..family import Adapter
from ..layers import cross_attention_layers


class UNetAdapter(Adapter):
    """A `UNet2DConditionModel` pipeline whose cross-attention reads the text encoder's sequence."""

    family = "sd"
    pipelines = ("StableDiffusionPipeline",)
    denoiser_name = "unet"
    layer_meaning = "cross-attention layers (the UNet's `attn2` modules, in forward order)"
    head_meaning = "one attention head of a cross-attention layer: image queries over the text tokens."
    semantic_meaning = "the cross-attention layers of the first up block that has them (SD 1.4: 8–10)"

    def layers(self, pipe, resolution: int | None = None) -> list:
        return cross_attention_layers(pipe.unet, resolution, pipe.vae_scale_factor)

    def semantic_layers(self, layers: list) -> tuple[int, ...]:
        """The first up block with cross-attention: the lowest-resolution decoder layers (paper §3.4)."""
        ups = [layer for layer in layers if layer.block == "up"]
        if not ups:
            return tuple(layer.index for layer in layers)
        first = ups[0].block_index
        return tuple(layer.index for layer in ups if layer.block_index == first)

    def processor(self, layer, stock, control):
        from ..attention import ControlledProcessor

        return ControlledProcessor(layer, stock, control)


ADAPTER = UNetAdapter()
