"""Early detection of generative collapse (SPEC §3.8): the Focus Score at the first denoising step,
in chosen layers, against a threshold — and the one-prompt check behind ``dvd check``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .focus import focus_table
from .generate import generate
from .layers import registry
from .store import Store
from .tokens import concept_span

#: The paper's best configuration (SPEC §3.8): layers 9 and 10, threshold 0.010.
LAYERS, THRESHOLD = (9, 10), 0.010


def flags(focus_by_layer: dict[int, float], layers=LAYERS, threshold: float = THRESHOLD,
          combine: str = "mean") -> bool:
    """Whether a prompt is flagged: its Focus Scores in ``layers`` combined by ``combine`` (open:
    "mean", the default, or "max" / "min") exceed ``threshold``."""
    reducers = {"mean": np.mean, "max": np.max, "min": np.min}
    if combine not in reducers:
        raise ValueError(f"combine must be one of {sorted(reducers)}, got {combine!r}")
    return bool(reducers[combine]([focus_by_layer[layer] for layer in layers]) > threshold)


@dataclass
class Check:
    """The first-step reading of one prompt: Focus Score and peak token per layer, the verdict."""

    prompt: str
    focus: dict[int, float]
    peak_token: dict[int, str]
    concepts: dict[str, list[int]]
    flagged: bool

    def report(self, layers=LAYERS, threshold: float = THRESHOLD) -> str:
        lines = [f"prompt: {self.prompt!r}"]
        lines += [f"  {name!r} → token positions {span}" for name, span in self.concepts.items()]
        lines.append("layer  Focus Score  peak token")
        lines += [f"{layer:5d}  {score:11.4f}  {self.peak_token[layer]}" + ("   ← detector" if layer in layers else "")
                  for layer, score in self.focus.items()]
        verdict = "FLAGGED: one concept may swallow the other" if self.flagged else "not flagged"
        lines.append(f"detector (layers {', '.join(map(str, layers))}, mean > {threshold}): {verdict}")
        return "\n".join(lines)


def check_prompt(pipe, prompt: str, concepts=(), *, store: Store, seeds=(1825,), layers=LAYERS,
                  threshold: float = THRESHOLD) -> Check:
    """One step-1 pass per seed (no full generation; sampler settings from ``store``): per-layer
    Focus Score (mean over seeds), the most frequent peak token, and the detector's verdict.
    ``concepts`` are located in the prompt (an error names a missing one)."""
    spans = {c: concept_span(pipe.tokenizer, prompt, c) for c in concepts}
    samples = generate(pipe, [prompt], seeds, store=store, attention={"layers": "all", "steps": [1]},
                       until_step=1, progress=False)
    table = focus_table(samples, pipe.tokenizer, [layer.index for layer in registry(pipe)])
    focus = table.groupby("layer")["focus"].mean().to_dict()
    peak = table.groupby("layer")["peak_token"].agg(lambda s: s.mode().iloc[0]).to_dict()
    return Check(prompt, focus, peak, spans, flags(focus, layers, threshold))
