"""Toy world 2's candidate UNet sizes: seconds per training step (batch 32) and per sampled image
(25 steps with classifier-free guidance, batch 8), one CPU thread.

What chose world 2's size (`toy/run2/candidates.csv` holds the measurements that did):
``OMP_NUM_THREADS=1 python benchmarks/toy2_candidates.py``. Ratios within one run are what
count; a busy second core slows every row alike.
"""

import time

import torch

from dvdlib.toy2 import model as toy2_model

ON_THE_IMAGE = {"sample_size": 32, "in_channels": 3, "out_channels": 3, "block_out_channels": [32, 64, 64, 64],
                "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3}
#: name → (UNet overrides of `dvdlib.toy2.model.UNET_CONFIG`, self-attention at the top grid)
CANDIDATES = {
    "first attempt: on the 32×32 image, SD's four block pairs (layers 8-10 at 8²)": (ON_THE_IMAGE, False),
    "chosen: 16² space-to-depth, 32-64-64 (layers 5-10 at 4²)": ({}, False),
    "16², 64-64-64": ({"block_out_channels": [64, 64, 64]}, False),
    "16², 32-64-64, self-attention at 16² too": ({}, True),
}


def build(overrides: dict, top_self_attention: bool):
    if top_self_attention:
        from diffusers import UNet2DConditionModel
        return UNet2DConditionModel(**{**toy2_model.UNET_CONFIG, **overrides})
    return toy2_model.unet(0, **overrides)


def seconds_per_step(unet, batch: int = 32, repeats: int = 3) -> float:
    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), 1e-3)
    size, channels = unet.config.sample_size, unet.config.in_channels
    x, c = torch.randn(batch, channels, size, size), torch.randn(batch, toy2_model.MAX_TOKENS, 384)
    t = torch.randint(0, 1000, (batch,))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss = (unet(x, t, encoder_hidden_states=c).sample - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def seconds_per_image(unet, batch: int = 8, steps: int = 25) -> float:
    """One UNet call per step on the guided batch (conditional and unconditional halves)."""
    unet.eval()
    size, channels = unet.config.sample_size, unet.config.in_channels
    x, c = torch.randn(2 * batch, channels, size, size), torch.randn(2 * batch, toy2_model.MAX_TOKENS, 384)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            unet(x, 500, encoder_hidden_states=c)
    return (time.perf_counter() - start) / batch


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("candidate,unet_parameters,s_per_step,s_per_image")
    for name, (overrides, top_self_attention) in CANDIDATES.items():
        unet = build(overrides, top_self_attention)
        parameters = sum(p.numel() for p in unet.parameters())
        print(f'"{name}",{parameters},{seconds_per_step(unet):.2f},{seconds_per_image(unet):.3f}', flush=True)
