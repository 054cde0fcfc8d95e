"""The CLIP image encoder, loaded in one place: the paper's ViT-L/14 (paper §3.1), any Hub id or
local folder, or a tiny random one built offline; and image embeddings with it. Used by the
training-data diversity (`dvdlib.diversity`) and the memorized-image similarity (`dvdlib.outcome`).

A world whose judge is a network trained on that world's images (the toy worlds) has a better
encoder than a CLIP that never saw them: the judge's own penultimate features (`JudgeFeatures`,
named `JUDGE_FEATURES`), which `embed` takes in place of a CLIP model.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

#: The paper's image encoder (paper §3.1).
PAPER_CLIP = "openai/clip-vit-large-patch14"
#: A tiny CLIP vision tower with random weights, built offline from a config (smoke runs, tests).
TINY_CLIP = "tiny:clip"
#: The penultimate features of the profile's judge, where it is a network trained on the world's
#: images (`JudgeFeatures`; the toy worlds' encoder of §3.1).
JUDGE_FEATURES = "judge:features"


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


class JudgeFeatures:
    """An image encoder made of a judge network trained on a world's images (the toy judge,
    `dvdlib.toy.judge.ToyJudge`): an image's embedding is the input of the network's last layer
    (``judge.net.head``, a linear read-out), the features the judge tells the world's concepts
    apart by. ``judge``: anything with ``net.head`` (a `torch.nn.Linear`) and
    ``probabilities(images)`` (one forward pass of the network over PIL images)."""

    def __init__(self, judge):
        head = getattr(getattr(judge, "net", None), "head", None)
        if not isinstance(head, torch.nn.Linear) or not hasattr(judge, "probabilities"):
            raise ClipUnavailable(f"the judge {type(judge).__name__} is not a network with a linear read-out "
                                  f"(net.head), so {JUDGE_FEATURES!r} has no features to take: name a CLIP "
                                  f"(papermill: `-p clip_model {PAPER_CLIP}`)")
        self.judge, self.dim = judge, head.in_features

    @torch.no_grad()
    def __call__(self, images) -> np.ndarray:
        """Features [n, dim] of PIL images (one forward pass of the judge's network)."""
        taken = []
        hook = self.judge.net.head.register_forward_pre_hook(lambda module, args: taken.append(args[0].detach()))
        try:
            self.judge.probabilities(images)
        finally:
            hook.remove()
        return torch.cat(taken).float().cpu().numpy()


@torch.no_grad()
def embed(images, model, processor, batch_size: int = 32) -> np.ndarray:
    """Image embeddings [n, d] of PIL images or image paths: CLIP's projected ``image_embeds``, or
    with ``model`` a `JudgeFeatures` (``processor`` None) the judge's penultimate features."""
    out = []
    images = list(images)
    for start in range(0, len(images), batch_size):
        batch = [_open(i) for i in images[start:start + batch_size]]
        if isinstance(model, JudgeFeatures):
            out.append(model(batch))
            continue
        inputs = processor(images=batch, return_tensors="pt")
        pixels = inputs["pixel_values"].to(device=model.device, dtype=model.dtype)
        out.append(model(pixel_values=pixels).image_embeds.float().cpu().numpy())
    if not out:
        raise ValueError("no images to embed")
    return np.concatenate(out)


def _open(image) -> Image.Image:
    return image.convert("RGB") if isinstance(image, Image.Image) else Image.open(image).convert("RGB")
