"""The CLIP image encoder, loaded in one place: the paper's ViT-L/14 (paper §3.1), any Hub id or
local folder, or a tiny random one built offline; and image embeddings with it. Used by the
training-data diversity (`dvdlib.diversity`) and the memorized-image similarity (`dvdlib.outcome`).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

#: The paper's image encoder (paper §3.1).
PAPER_CLIP = "openai/clip-vit-large-patch14"
#: A tiny CLIP vision tower with random weights, built offline from a config (smoke runs, tests).
TINY_CLIP = "tiny:clip"


class ClipUnavailable(RuntimeError):
    """The CLIP weights could not be found offline or on the Hub."""


def build_tiny_clip(seed: int = 0):
    """(model, processor): a 2-layer CLIP vision tower with projection, random weights, 32² input.

    Its embeddings are random features (patches of 4 pixels; weights drawn 10× wider than CLIP's
    default so that the patches, not the class token, decide the embedding): they tell images
    apart, they know nothing about concepts."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2,
                              image_size=32, patch_size=4, projection_dim=16, initializer_factor=10.0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CLIPVisionModelWithProjection(config)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model.eval(), processor


def load_clip(name: str = PAPER_CLIP, *, device: str = "cpu", dtype: str = "float32"):
    """(model, processor) of a CLIP image encoder: a Hub id, a local folder, or ``"tiny:clip"``.

    Raises `ClipUnavailable` with what to do when the weights are not available offline.
    """
    from transformers import AutoImageProcessor, CLIPVisionModelWithProjection

    from .models import quiet, torch_dtype

    if name == TINY_CLIP:
        model, processor = build_tiny_clip()
    else:
        try:
            with quiet():  # no "Loading weights" bar in a chapter's output
                model = CLIPVisionModelWithProjection.from_pretrained(name, dtype=torch_dtype(dtype))
                processor = AutoImageProcessor.from_pretrained(name)
        except (OSError, ValueError) as error:
            raise ClipUnavailable(
                f"Cannot load the CLIP image encoder {name!r}: {error}\n"
                f"Download it where there is network (`huggingface-cli download {PAPER_CLIP}`) and set "
                f"HF_HOME to that cache, or pass its local folder (papermill: `-p clip_model /path/to/clip`). "
                f"Without weights, `-p clip_model {TINY_CLIP}` runs the procedure with a random tiny CLIP "
                f"(numbers without meaning).") from error
    return model.to(device).eval(), processor


@torch.no_grad()
def embed(images, model, processor, batch_size: int = 32) -> np.ndarray:
    """CLIP image embeddings [n, d] (the projected ``image_embeds``) of PIL images or image paths."""
    out = []
    images = list(images)
    for start in range(0, len(images), batch_size):
        batch = [_open(i) for i in images[start:start + batch_size]]
        inputs = processor(images=batch, return_tensors="pt")
        pixels = inputs["pixel_values"].to(device=model.device, dtype=model.dtype)
        out.append(model(pixel_values=pixels).image_embeds.float().cpu().numpy())
    if not out:
        raise ValueError("no images to embed")
    return np.concatenate(out)


def _open(image) -> Image.Image:
    return image.convert("RGB") if isinstance(image, Image.Image) else Image.open(image).convert("RGB")
