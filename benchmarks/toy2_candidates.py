"""Toy world 2's candidate UNet sizes: seconds per training step (batch 32, one CPU thread).

What chose world 2's size (`toy/run2/candidates.csv` holds the measurements that did):
``OMP_NUM_THREADS=1 python benchmarks/toy2_candidates.py``. Ratios within one run are what
count; a busy second core slows every row alike.
"""

import time

import torch

from dvdlib.toy2 import model as toy2_model

CANDIDATES = {
    "A (chosen) 32-64-64-64": {},
    "F 16-64-64-64": {"block_out_channels": [16, 64, 64, 64]},
    "H 16-32-64-64": {"block_out_channels": [16, 32, 64, 64]},
    "L 32-32-64-64": {"block_out_channels": [32, 32, 64, 64]},
}


def seconds_per_step(overrides: dict, batch: int = 32, repeats: int = 3) -> float:
    unet = toy2_model.unet(0, **overrides).train()
    opt = torch.optim.AdamW(unet.parameters(), 1e-3)
    x, c = torch.randn(batch, 3, 32, 32), torch.randn(batch, toy2_model.MAX_TOKENS, 384)
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


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name, overrides in CANDIDATES.items():
        print(f"{name}: {seconds_per_step(overrides):.2f} s/step")
