"""The cross-attention layer registry, numbered in forward order (the authors' release, "layer numbering").

The paper numbers SD's 16 cross-attention layers 1–16 in the order the UNet runs them:
down blocks, then the middle block, then the up blocks. ``unet.attn_processors`` lists them in
a different order (down, up, mid), so the registry is derived from the blocks themselves, for any
`UNet2DConditionModel` (SD 1.x, SD 2.x, fine-tunes, the book's own small models).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

from diffusers.models.attention_processor import Attention

from .family import of


@dataclass(frozen=True)
class Layer:
    """One cross-attention layer: its paper number (1-based), where it sits, and its shape."""

    index: int
    name: str  # dotted module name, e.g. "up_blocks.1.attentions.0.transformer_blocks.0.attn2"
    block: str  # "down", "mid" or "up" (UNets); "joint" (SD3); "double" or "single" (FLUX)
    block_index: int  # position of the block among the down (or up) blocks
    size: int  # side of the square spatial grid at the registry's resolution
    heads: int
    module: Attention

    @property
    def processor_name(self) -> str:
        """The key of this layer in ``unet.attn_processors``."""
        return f"{self.name}.processor"

    def __str__(self) -> str:
        return f"layer {self.index} ({self.block} {self.block_index}, {self.size}², {self.heads} heads)"


def _forward_blocks(unet):
    """(kind, index, name, block) in the order the UNet's forward pass runs them."""
    for i, block in enumerate(unet.down_blocks):
        yield "down", i, f"down_blocks.{i}", block
    if unet.mid_block is not None:
        yield "mid", 0, "mid_block", unet.mid_block
    for i, block in enumerate(unet.up_blocks):
        yield "up", i, f"up_blocks.{i}", block


def _latent_sizes(unet, latent: int):
    """Spatial side of each block's input grid, following its down/up-samplers."""
    sizes, size = [], latent
    for kind, _, _, block in _forward_blocks(unet):
        sizes.append(size)
        if kind == "down" and getattr(block, "downsamplers", None):
            size //= 2
        if kind == "up" and getattr(block, "upsamplers", None):
            size *= 2
    return sizes


def cross_attention_layers(unet, resolution: int | None = None, vae_scale_factor: int = 8) -> list[Layer]:
    """All cross-attention layers of ``unet`` in forward order, numbered from 1.

    ``resolution`` is the image side in pixels (default: the UNet's own ``sample_size`` in
    latents × ``vae_scale_factor``); it only sets each layer's ``size``.
    """
    latent = (resolution // vae_scale_factor) if resolution else unet.config.sample_size
    layers = []
    for (kind, i, prefix, block), size in zip(_forward_blocks(unet), _latent_sizes(unet, latent)):
        for name, module in block.named_modules():
            if isinstance(module, Attention) and name.endswith("attn2") and module.is_cross_attention:
                layers.append(Layer(len(layers) + 1, f"{prefix}.{name}", kind, i, size, module.heads, module))
    return layers


def registry(pipe, resolution: int | None = None) -> list[Layer]:
    """The layer registry of a pipeline, at ``resolution`` pixels (default: its native size), from
    its family's adapter (`dvdlib.family.of`: SD's cross-attention layers, SD3's joint blocks, ...).
    Built anew on each call: a caller that needs it more than once keeps it and passes it on."""
    return of(pipe).layers(pipe, resolution)


def select(layers: list[Layer], which="all") -> list[Layer]:
    """Layers by paper number: ``"all"``, one number, or an iterable of numbers (1-based)."""
    if which == "all":
        return list(layers)
    wanted = [int(which)] if isinstance(which, Integral) else [int(n) for n in which]
    known = {layer.index: layer for layer in layers}
    missing = [n for n in wanted if n not in known]
    if missing:
        raise ValueError(f"no cross-attention layer {missing}: this UNet has layers 1–{len(layers)}")
    return [known[n] for n in wanted]


def overview(layers: list[Layer]):
    """One column per layer (its number): block, grid at this resolution and heads."""
    import pandas as pd

    return pd.DataFrame([(layer.index, f"{layer.block} {layer.block_index}", f"{layer.size}²", layer.heads)
                         for layer in layers], columns=["layer", "block", "grid", "heads"]).set_index("layer").T
