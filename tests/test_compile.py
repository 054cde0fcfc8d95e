"""`torch.compile` of the UNet with the project's attention processors in place (recording, paper
§3.4–3.5; head ablation, §3.6): the compiled run gives the eager run's latents and recordings, within
float tolerance, on the tiny smoke model. The GPU benchmark measures what compiling saves
(`benchmarks/levers.py`); this checks it changes no number."""

import shutil

import numpy as np
import pytest
import torch

import dvdlib
from dvdlib.generate import initial_latents

#: Compiled kernels sum in another order than eager ones: float32 results agree to about 1e-6
#: relative; this bound leaves room without hiding a wrong processor (which moves results by ≫ 1e-3).
TOLERANCE = dict(rtol=1e-4, atol=1e-5)
PROMPTS = ["Neuschwanstein Castle Coaster", "Van Gogh's Starry Night Notebook"]


def _run(pipe):
    """Two steps of two prompts under guidance, every layer recorded at every step, one head ablated
    at the first step: (latents, {(layer, step): token shares})."""
    with torch.no_grad(), dvdlib.record(pipe, layers="all", steps="all") as rec, \
            dvdlib.intervene(pipe, {(1, 0): 0.0}, steps=[1]):
        latents = pipe(PROMPTS, latents=initial_latents(pipe, [1825, 410], 64), height=64, width=64,
                       num_inference_steps=2, guidance_scale=7.5, output_type="latent").images
    return latents, {key: rec.share(*key) for key in rec.keys()}


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("clang++") is None,
                    reason="torch.compile's CPU backend (inductor) needs a C++ compiler (g++ or clang++); none found")
def test_compiled_unet_equals_eager_with_recording_and_ablation_in_place():
    torch.manual_seed(0)
    pipe = dvdlib.load("smoke")
    eager, eager_shares = _run(pipe)
    from torch._dynamo.utils import counters

    counters.clear()
    pipe.unet.compile()  # in place: the processors, hooks and layer registry stay the module's own
    compiled, compiled_shares = _run(pipe)
    assert counters["stats"]["unique_graphs"] > 0  # compiled, not run eagerly in full
    torch.testing.assert_close(compiled, eager, **TOLERANCE)
    assert set(compiled_shares) == set(eager_shares) and len(eager_shares) >= 2
    for key, share in eager_shares.items():
        np.testing.assert_allclose(compiled_shares[key], share, **TOLERANCE)
    # the ablation acts under compilation: without it the first step's recording differs
    with torch.no_grad(), dvdlib.record(pipe, layers="all", steps=[1]) as plain:
        pipe(PROMPTS, latents=initial_latents(pipe, [1825, 410], 64), height=64, width=64,
             num_inference_steps=2, guidance_scale=7.5, output_type="latent")
    layer = min(layer for layer, step in eager_shares)
    assert not np.allclose(plain.share(layer, 1), eager_shares[layer, 1], **TOLERANCE)
