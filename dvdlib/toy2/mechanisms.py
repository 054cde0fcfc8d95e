"""What makes world 2 a testbed for the paper's attention claims, measured on a model.

- the first denoising step's timestep (SD 1.x: 981 at 50 steps);
- the start token's share of cross-attention per layer at step 1 (in SD it takes most of the
  mass, a prompt-independent sink: the reason the Focus Score keeps only content positions,
  paper §3.4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..attention import record
from ..generate import initial_latents, stop_after


def first_timestep(pipe, steps: int) -> int:
    """The timestep of the first denoising step with ``steps`` steps."""
    pipe.scheduler.set_timesteps(steps)
    return int(pipe.scheduler.timesteps[0])


@torch.no_grad()
def start_token_share(pipe, prompts, seeds, steps: int, guidance: float, resolution: int = 32) -> pd.DataFrame:
    """Per cross-attention layer: the start token's share of attention at step 1 (mean over
    prompts × seeds, conditional branch), with its spread (standard deviation) across them."""
    jobs = [(p, s) for p in prompts for s in seeds]
    with record(pipe, layers="all", steps=[1]) as recording:
        pipe(prompt=[p for p, _ in jobs], latents=initial_latents(pipe, [s for _, s in jobs], resolution),
             height=resolution, width=resolution, num_inference_steps=steps, guidance_scale=guidance,
             output_type="latent", callback_on_step_end=stop_after(1))
    rows = []
    for layer in sorted(recording.layers):
        start = recording.share(layer, 1)[:, 0]
        rows.append({"layer": layer, "start_share": float(np.mean(start)), "sd": float(np.std(start))})
    return pd.DataFrame(rows)
