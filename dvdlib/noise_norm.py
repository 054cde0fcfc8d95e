"""The text-conditional noise-prediction norm recorded during a generation (Wen et al. 2024;
paper §3.7): ‖ε(x_t, prompt) − ε(x_t, "")‖₂ per image and step, read from the two halves of the
classifier-free-guidance batch the pipeline already runs (no extra UNet call). One more thing a
generation can record: ``dvdlib.generate(..., noise_norms=True)``.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from .attention import unet_call
from .metrics import noise_prediction_norm


def epsilon_scale(prediction_type: str, alpha_bar: float) -> float:
    """Factor that turns a difference of two UNet outputs at one step into a difference of noise
    predictions ε. ``"epsilon"`` (SD 1.x): 1. ``"v_prediction"`` (SD 2.1 at 768²): with
    v = √ᾱ ε − √(1−ᾱ) x₀ and the same x_t on both branches, Δv = Δε / √ᾱ, so Δε = √ᾱ · Δv."""
    if prediction_type == "epsilon":
        return 1.0
    if prediction_type == "v_prediction":
        if not 0 < alpha_bar <= 1:
            raise ValueError(f"ᾱ_t must lie in (0, 1], got {alpha_bar}")
        return float(np.sqrt(alpha_bar))
    raise ValueError(f"noise-prediction norm: unsupported prediction type {prediction_type!r} "
                     "(use a model predicting 'epsilon' or 'v_prediction')")


class NoiseNormRecording:
    """Per-step text-conditional noise-prediction norms captured by `record_noise_norms`.

    ``norms[step]``: one array [images] per UNet call of that step (1 = first denoising step),
    in the order the pipeline was called; `per_image` stacks them to [images, steps].
    """

    def __init__(self, pipe):
        self.pipe = pipe
        self.norms: dict[int, list[np.ndarray]] = {}

    def on_unet_output(self, module, args, kwargs, output):
        step, guided, t = unet_call(self.pipe, args, kwargs)
        if not guided:
            raise ValueError("the noise-prediction norm needs classifier-free guidance (guidance > 1): the "
                             "UNet was called without the unconditional half")
        if step is None:
            raise RuntimeError(f"UNet called at timestep {float(torch.as_tensor(t).flatten()[0])}, which is not "
                               "in the scheduler's schedule")
        eps = output[0] if isinstance(output, tuple) else output.sample
        scheduler = self.pipe.scheduler
        alpha_bar = float(scheduler.alphas_cumprod[int(torch.as_tensor(t).flatten()[0])])
        scale = epsilon_scale(scheduler.config.prediction_type, alpha_bar)
        eps = eps.detach().float().cpu().numpy()
        half = len(eps) // 2
        self.norms.setdefault(step, []).append(scale * noise_prediction_norm(eps[half:], eps[:half]))

    def per_image(self) -> np.ndarray:
        """Norms as [images, steps] (steps 1..n in order); raises if a step saw another batch size."""
        if not self.norms:
            raise ValueError("no noise-prediction norm recorded: run the pipeline inside record_noise_norms")
        steps = sorted(self.norms)
        if steps != list(range(1, len(steps) + 1)):
            raise ValueError(f"recorded steps {steps} are not the first {len(steps)} steps")
        return np.stack([np.concatenate(self.norms[s]) for s in steps], axis=1)


def check_recordable(pipe) -> None:
    """Raise before any compute where the norms cannot be recorded: the hook reads a UNet's
    classifier-free-guidance batch (SD, SDXL); a transformer family (SD3, Flux) has none here."""
    if not hasattr(pipe, "unet"):
        raise NotImplementedError(f"the noise-prediction norm (paper §3.7) is recorded from a UNet's guidance batch "
                                  f"(SD 1.x/2.x, SDXL); {type(pipe).__name__} has no UNet")


@contextmanager
def record_noise_norms(pipe):
    """``with record_noise_norms(pipe) as rec: pipe(...)`` — ‖ε(x_t, prompt) − ε(x_t, "")‖₂ per image
    and step from the CFG batch the pipeline already runs (paper §3.7); the hook is removed on exit."""
    check_recordable(pipe)
    recording = NoiseNormRecording(pipe)
    hook = pipe.unet.register_forward_hook(recording.on_unet_output, with_kwargs=True)
    try:
        yield recording
    finally:
        hook.remove()
