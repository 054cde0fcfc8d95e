"""What recording one block at one step costs on each adapter's tiny model, and the peak memory of
the explicit joint-attention recompute at SD3/Flux size (dvdlib.adapters.joint).

    python benchmarks/joint_recording.py              # tiny:sd3 and tiny:sdxl, CPU, ratio per model
    python benchmarks/joint_recording.py --memory     # also a 4,096 × 4,608 fp16 recompute (needs CUDA)

A plain one-step call and the same call recording one block (the middle one) at step 1 run
interleaved, ``--repeats`` rounds after a warm-up; each keeps its fastest round and the ratio is
recording / plain. Target: ≤ 1.1×. Results: benchmarks/results/joint_recording.json.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path

import torch

import dvdlib
from dvdlib.generate import initial_latents
from dvdlib.layers import registry

PROMPTS = ["Neuschwanstein Castle Coaster", "Van Gogh's Starry Night Notebook"]


def one_step(pipe, layer: int | None) -> float:
    latents = initial_latents(pipe, range(len(PROMPTS)), 128)
    context = dvdlib.record(pipe, layers=[layer], steps=[1]) if layer else nullcontext()
    start = time.perf_counter()
    with torch.inference_mode(), context:
        pipe(PROMPTS, latents=latents, height=128, width=128, num_inference_steps=1, guidance_scale=5.0,
             output_type="latent")
    return time.perf_counter() - start


def ratio(model: str, repeats: int) -> dict:
    pipe = dvdlib.load(model)
    layer = (len(registry(pipe)) + 1) // 2
    one_step(pipe, None), one_step(pipe, layer)  # warm-up
    plain, recorded = [], []
    for _ in range(repeats):
        plain.append(one_step(pipe, None))
        recorded.append(one_step(pipe, layer))
    return {"model": model, "layer": layer, "plain_s": min(plain), "recorded_s": min(recorded),
            "ratio": min(recorded) / min(plain), "target": 1.1}


def peak_memory(queries: int = 4096, keys: int = 4608, heads: int = 24, dim: int = 128) -> dict:
    """Peak CUDA memory of `attend` over one image (batch 2, fp16) with the default chunk."""
    from dvdlib.adapters.joint import CHUNK, attend

    q, k, v = (torch.randn(2, heads, n, dim, device="cuda", dtype=torch.float16) for n in (queries, keys, keys))
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    attend(q, k, v, dim ** -0.5, slice(keys - queries, keys), slice(0, keys - queries), chunk=CHUNK)
    torch.cuda.synchronize()
    return {"queries": queries, "keys": keys, "heads": heads, "chunk": CHUNK,
            "peak_GiB": (torch.cuda.max_memory_allocated() - base) / 2 ** 30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["tiny:sd3", "tiny:sdxl"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"ratios": [ratio(m, args.repeats) for m in args.models]}
    if args.memory:
        result["memory"] = peak_memory()
    out = Path(__file__).parent / "results" / "joint_recording.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
