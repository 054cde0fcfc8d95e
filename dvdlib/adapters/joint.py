"""Joint attention (SD3's MMDiT blocks): image and text tokens attend over one concatenated sequence.

The paper's cross-attention share (paper §3.4) becomes the *image→text block* of the joint
attention: image queries over text keys. Two definitions of a token's share, both named:

- ``"text"`` (the default): a softmax over the text keys only — the block renormalised per image
  query, so shares sum to 1 over the text tokens as in SD's cross-attention;
- ``"joint"``: the slice of the joint softmax, which also spends attention on image keys and so
  does not sum to 1 over the text.

The block is computed explicitly only for the (block, step) a recording or an intervention asks
for, chunked over queries (memory: one chunk of logits at a time); every other call goes to the
stock processor (the fused fast path). Head scaling multiplies the image queries' logits over the
text keys (the image→text block) by the head's factor; text queries are left alone.
"""

from __future__ import annotations

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
    for start in range(0, query.shape[2], chunk):
        stop = min(start + chunk, query.shape[2])
        logits = (query[:, :, start:stop].float() @ key.float().transpose(-1, -2)) * scale
        rows = slice(max(image.start, start) - start, max(min(image.stop, stop) - start, 0))
        if factors is not None and rows.stop > rows.start:
            logits[:, :, rows, text] = logits[:, :, rows, text] * factors
        probs = logits.softmax(dim=-1)
        outputs.append(probs.to(value.dtype) @ value)
        if rows.stop > rows.start:
            block.append(probs[:, :, rows, text])
    return torch.cat(outputs, dim=2), torch.cat(block, dim=2)


def text_shares(block: torch.Tensor, definition: str) -> torch.Tensor:
    """Token shares of the image→text block under a definition of `SHARES`."""
    if definition == "joint":
        return block
    if definition == "text":
        return block / block.sum(dim=-1, keepdim=True)
    raise ValueError(f"share must be one of {SHARES}, got {definition!r}")


class JointProcessor(ControlledProcessor):
    """The processor `record` / `intervene` put on a joint-attention block: the stock processor
    unless this (block, step) is asked for, then ``explicit(attn, hidden, context, factors)``
    (a function returning the image→text block and the stock processor's outputs)."""

    def __init__(self, layer, stock, control, explicit):
        super().__init__(layer, stock, control)
        self.explicit = explicit

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        recordings, factors = self.asked(hidden_states)
        if not recordings and factors is None:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        if attention_mask is not None:
            raise NotImplementedError("explicit joint attention with an attention mask")
        block, out = self.explicit(attn, hidden_states, encoder_hidden_states, factors, **kwargs)
        for recording in recordings:
            recording.add(self.layer.index, self.control.step, text_shares(block, recording.softmax), self.control.guided)
        return out
