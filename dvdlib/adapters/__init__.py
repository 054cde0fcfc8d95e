"""Model adapters: what the book's definitions mean in one architecture family (paper §3.4–§3.6).

The paper studies Stable Diffusion 1.4's 16 cross-attention layers. Another family keeps the
questions but changes what answers them: which modules are the "layers" (in forward order), how
a concept's words map into the sequence the attention sees, how attention is recorded and how a
head is scaled. One module per family holds those answers:

- `sd`: Stable Diffusion 1.x / 2.x (and the book's own SD-layout models): UNet cross-attention;
- `sdxl`: SDXL: the same UNet cross-attention (70 layers), two CLIP tokenizers at the same positions;
- `sd3`: Stable Diffusion 3: joint attention over [image tokens, CLIP tokens, T5 tokens];
- `flux`: FLUX.1: double-stream (joint) then single-stream blocks over [T5 tokens; image tokens].

Each module subclasses the core's interface, `dvdlib.family.Adapter`; importing this package
registers them (`dvdlib.family.register`; ``import dvdlib`` does it). The core never imports a
family: `dvdlib.family.of(pipe)` finds a pipeline's adapter among those registered, and
`dvdlib.record`, `dvdlib.intervene`, `dvdlib.registry` and `dvdlib.tokens.sequence_tokenizer`
dispatch to it. A family not covered: subclass `Adapter` in a new module, import it here and add
it to `MODULES` (the book's page "Forking a chapter for a new model").
"""

from __future__ import annotations

from ..family import (PAPER_LAYERS, PAPER_SEMANTIC, Adapter, adapters, by_family, describe, of, paper_layer_sets,
                      paper_layers, register, relative_depth)
from . import flux, sd, sd3, sdxl

#: The adapter modules, most specific first (the SD module also reads any other UNet pipeline).
MODULES = (sdxl, sd3, flux, sd)

for _module in MODULES:
    register(_module.ADAPTER, fallback=_module is sd)

__all__ = ["MODULES", "PAPER_LAYERS", "PAPER_SEMANTIC", "Adapter", "adapters", "by_family", "describe", "of",
           "paper_layer_sets", "paper_layers", "register", "relative_depth"]
