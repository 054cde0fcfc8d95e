"""Joint attention (SD3's MMDiT blocks): image and text tokens attend over one concatenated sequence.

The paper's cross-attention share (paper §3.4) becomes the *image→text block* of the joint
attention: image queries over text keys. Two definitions of a token's share, both named:

- ``"text"`` (the default): a softmax over the text keys only — the block renormalised per image
  query, so shares sum to 1 over the text tokens as in SD's cross-attention;
- ``"joint"``: the slice of the joint softmax, which also spends attention on image keys and so
  does not sum to 1 over the text.

The block is computed explicitly only for the (block, step) a recording or an intervention asks
for, chunked over queries (memory: one chunk of logits at a time); every other call goes to the
stock processor (the fused fast path). A recording alone leaves the block's output to the stock
processor and computes only the image queries' rows of the softmax (the text queries' rows and the
output are not needed); an intervention recomputes the whole attention. Head scaling multiplies the
image queries' logits over the text keys (the image→text block) by the head's factor; text queries
are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..attention import ControlledProcessor, per_sample

#: Definitions of a token's share under joint attention (the methods page explains the default).
SHARES = ("text", "joint")
#: Queries per chunk of the explicit computation (4,096 × 4,608 fp16 attention fits in one GPU).
CHUNK = 1024


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[batch, tokens, heads·dim] → [batch, heads, tokens, dim]."""
    return x.view(x.shape[0], -1, heads, x.shape[-1] // heads).transpose(1, 2)


def attend(query, key, value, scale: float, image: slice, text: slice, head_factors=None, chunk: int = CHUNK):
    """Softmax attention computed explicitly, ``chunk`` queries at a time.

    ``image``/``text``: where the image and text tokens sit in the joint sequence. Returns the
    output [batch, heads, queries, dim] and the image→text block of the joint softmax
    [batch, heads, image tokens, text tokens] in float32. ``head_factors`` ([heads] or
    [batch, heads]) multiply the image queries' logits over the text keys before the softmax.
    """
    batch, outputs, block = query.shape[0], [], []
    factors = None if head_factors is None else per_sample(head_factors, batch)
    keys = key.float().transpose(-1, -2)
    for start in range(0, query.shape[2], chunk):
        stop = min(start + chunk, query.shape[2])
        logits = (query[:, :, start:stop].float() @ keys) * scale
        rows = slice(max(image.start, start) - start, max(min(image.stop, stop) - start, 0))
        if factors is not None and rows.stop > rows.start:
            logits[:, :, rows, text] = logits[:, :, rows, text] * factors
        probs = logits.softmax(dim=-1)
        outputs.append(probs.to(value.dtype) @ value)
        if rows.stop > rows.start:
            block.append(probs[:, :, rows, text])
    return torch.cat(outputs, dim=2), torch.cat(block, dim=2)


def image_text_block(query, key, scale: float, image: slice, text: slice, chunk: int = CHUNK) -> torch.Tensor:
    """The image→text block of the joint softmax alone [batch, heads, image tokens, text tokens]
    (float32): only the image queries' rows, ``chunk`` at a time; no output."""
    keys, block = key.float().transpose(-1, -2), []
    for start in range(image.start, image.stop, chunk):
        stop = min(start + chunk, image.stop)
        block.append(((query[:, :, start:stop].float() @ keys) * scale).softmax(dim=-1)[:, :, :, text])
    return torch.cat(block, dim=2)


@dataclass
class JointInputs:
    """What one joint attention computes on: queries, keys and values [batch, heads, tokens, dim] of
    the concatenated sequence (projected, normalised, rotated as the stock processor does), where
    its image and text tokens sit, the softmax scale, and ``finish``: the attention's output
    [batch, heads, tokens, dim] → the outputs the stock processor returns."""

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    image: slice
    text: slice
    scale: float
    finish: Callable


def explicit(inputs: JointInputs, head_factors=None, chunk: int = CHUNK):
    """The whole attention computed explicitly: (image→text block of the joint softmax, the stock
    processor's outputs), with ``head_factors`` on the image queries' text logits."""
    out, block = attend(inputs.query, inputs.key, inputs.value, inputs.scale, inputs.image, inputs.text,
                        head_factors, chunk)
    return block, inputs.finish(out)


def text_shares(block: torch.Tensor, definition: str) -> torch.Tensor:
    """Token shares of the image→text block under a definition of `SHARES`."""
    if definition == "joint":
        return block
    if definition == "text":
        return block / block.sum(dim=-1, keepdim=True)
    raise ValueError(f"share must be one of {SHARES}, got {definition!r}")


class JointProcessor(ControlledProcessor):
    """The processor `record` / `intervene` put on a joint-attention block: the stock processor
    unless this (block, step) is asked for. Then ``inputs(attn, hidden, context, **kwargs)`` (a
    `JointInputs`) gives what the attention computes on: a recording alone takes the stock output
    and the image queries' rows of the softmax (`image_text_block`); head factors recompute the
    whole attention (`explicit`)."""

    def __init__(self, layer, stock, control, inputs):
        super().__init__(layer, stock, control)
        self.inputs = inputs

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        recordings, factors = self.asked(hidden_states)
        if not recordings and factors is None:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        if attention_mask is not None:
            raise NotImplementedError("explicit joint attention with an attention mask")
        inputs = self.inputs(attn, hidden_states, encoder_hidden_states, *args, **kwargs)
        if factors is None:
            out = self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
            block = image_text_block(inputs.query, inputs.key, inputs.scale, inputs.image, inputs.text)
        else:
            block, out = explicit(inputs, factors)
        for recording in recordings:
            recording.add(self.layer.index, self.control.step, text_shares(block, recording.softmax), self.control.guided)
        return out
