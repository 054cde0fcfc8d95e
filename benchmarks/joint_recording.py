"""What recording one block at one step costs on each adapter's tiny model, and the peak memory of
the explicit joint-attention recompute at SD3/FLUX size (dvdlib.adapters.joint).

    python benchmarks/joint_recording.py              # tiny:sd3, tiny:sdxl and tiny:flux on the CPU
    python benchmarks/joint_recording.py --memory     # also a 4,096 × 4,608 fp16 recompute (needs CUDA)

Per model, a plain one-step call and the same call recording one block (the middle one) at step 1
run interleaved, ``--repeats`` rounds after a warm-up; each keeps its fastest round (the least
disturbed by other work on the machine) and the ratio is recording / plain. Target: ≤ 1.1×. The
recording covers the whole context (installing the processors, the step, restoring them). Results:
benchmarks/results/joint_recording.json, which the book's benchmarks page shows.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch

import dvdlib
from dvdlib.generate import initial_latents
from dvdlib.layers import registry
from result_file import device_name, write_result

PROMPTS = ["Neuschwanstein Castle Coaster", "Van Gogh's Starry Night Notebook"]
TARGET = 1.1


def one_step(pipe, layer: int | None, args) -> float:
    """Seconds of one pipeline call of one step (latents out), recording ``layer`` at step 1 if given."""
    latents = initial_latents(pipe, range(len(PROMPTS)), args.resolution)
    if args.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode(), (dvdlib.record(pipe, layers=[layer], steps=[1]) if layer else nullcontext()):
        pipe(PROMPTS, latents=latents, height=args.resolution, width=args.resolution, num_inference_steps=1,
             guidance_scale=5.0, output_type="latent")
    if args.device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def ratio_rows(model: str, args) -> tuple[list[dict], dict]:
    """The plain and recording rows of one model, and every round's seconds."""
    pipe = dvdlib.load(model, dtype=args.dtype, device=args.device)
    n = len(registry(pipe))
    layer = (n + 1) // 2
    one_step(pipe, None, args), one_step(pipe, layer, args)  # warm-up
    times = {"plain": [], "recording": []}
    for _ in range(args.repeats):
        times["plain"].append(one_step(pipe, None, args))
        times["recording"].append(one_step(pipe, layer, args))
    plain, recorded = min(times["plain"]), min(times["recording"])
    rows = [{"setting": f"{model}: plain step", "seconds": round(plain, 4), "ratio": 1.0, "target": "", "met": None},
            {"setting": f"{model}: recording block {layer} of {n} at step 1", "seconds": round(recorded, 4),
             "ratio": round(recorded / plain, 3), "target": f"≤ {TARGET}×", "met": recorded / plain <= TARGET}]
    return rows, times


def peak_memory(queries: int = 4096, keys: int = 4608, heads: int = 24, dim: int = 128) -> dict:
    """Peak CUDA memory of `attend` over one image (batch 2, fp16) with the default chunk."""
    from dvdlib.adapters.joint import CHUNK, attend

    q, k, v = (torch.randn(2, heads, n, dim, device="cuda", dtype=torch.float16) for n in (queries, keys, keys))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    start = time.perf_counter()
    attend(q, k, v, dim ** -0.5, slice(keys - queries, keys), slice(0, keys - queries), chunk=CHUNK)
    torch.cuda.synchronize()
    return {"setting": f"explicit recompute {queries:,} × {keys:,}, {heads} heads, fp16, batch 2, chunk {CHUNK}",
            "seconds": round(time.perf_counter() - start, 4), "peak GiB": round((torch.cuda.max_memory_allocated() - base) / 2 ** 30, 3)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny:sd3", "tiny:sdxl", "tiny:flux"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--memory", action="store_true", help="also the peak memory of a full-size recompute (CUDA)")
    parser.add_argument("--out", default="benchmarks/results/joint_recording.json")
    args = parser.parse_args(argv)
    if args.memory and not torch.cuda.is_available():
        parser.error("--memory measures CUDA memory: run it on a GPU (benchmarks/gpu.sh), or leave it out")

    torch.set_num_threads(args.threads)
    rows, times = [], {}
    for model in args.models:
        found, times[model] = ratio_rows(model, args)
        rows += found
    if args.memory:
        rows.append(peak_memory())
    return write_result(args.out, "joint_recording.py", args, title="Recording one block of a tiny model",
                        device=device_name(args.device),
                        model=f"{', '.join(args.models)}, {args.dtype}, {args.resolution}², one step, batch "
                              f"{len(PROMPTS)} (+CFG where the model uses it)",
                        rows=rows, targets={"recording one block at one step": f"≤ {TARGET}× a plain step"},
                        repeats=args.repeats, all_seconds=times)


if __name__ == "__main__":
    main()
