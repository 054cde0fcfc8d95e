"""What attention recording costs: generation time plain vs. recording, as ratios from one run.

    python benchmarks/recording_overhead.py                      # full-size SD 1.4 UNet, random weights
    python benchmarks/recording_overhead.py --model smoke        # the tiny smoke model (seconds)
    python benchmarks/recording_overhead.py --device cuda --dtype float16 --resolution 512 --steps 50

Speed does not depend on the weights, so ``random:sd1.4`` (the SD 1.4 architecture with random
weights, built offline) measures what SD 1.4 would cost. The three settings run interleaved,
``--repeats`` rounds after one warm-up; each setting keeps its fastest round (the least disturbed
by other work on the machine), and the ratio is taken to the fastest plain round. Results go to
``benchmarks/results/recording_overhead.json``, which the book's benchmarks page shows.
Targets: step-1 recording ≤ 1.05×, all-step token-share recording ≤ 1.3×.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch

import dvdlib
from dvdlib.generate import initial_latents
from result_file import device_name, write_result

SETTINGS = {
    "plain": None,
    "step-1 recording (16 layers, token shares)": {"layers": "all", "steps": [1]},
    "all-step recording (16 layers, token shares)": {"layers": "all", "steps": "all"},
}
TARGETS = {"step-1 recording (16 layers, token shares)": 1.05, "all-step recording (16 layers, token shares)": 1.3}
PROMPTS = ["Neuschwanstein Castle Coaster", "Van Gogh's Starry Night Notebook"]


def time_generation(pipe, attention, args) -> float:
    latents = initial_latents(pipe, range(len(PROMPTS)), args.resolution)
    context = dvdlib.record(pipe, **attention) if attention else nullcontext()
    if args.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode(), context:
        pipe(PROMPTS, latents=latents, height=args.resolution, width=args.resolution,
             num_inference_steps=args.steps, guidance_scale=7.5, output_type="latent")
    if args.device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random:sd1.4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--out", default="benchmarks/results/recording_overhead.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    pipe = dvdlib.load(args.model, dtype=args.dtype, device=args.device)
    times = {name: [] for name in SETTINGS}
    for name, attention in SETTINGS.items():  # warm-up
        time_generation(pipe, attention, args)
    for _ in range(args.repeats):
        for name, attention in SETTINGS.items():
            times[name].append(time_generation(pipe, attention, args))
    plain = min(times["plain"])
    rows = [{"setting": name, "seconds": round(min(t), 3), "ratio": round(min(t) / plain, 3),
             "target": f"≤ {TARGETS[name]}×" if name in TARGETS else "",
             "met": (min(t) / plain <= TARGETS[name]) if name in TARGETS else None}
            for name, t in times.items()]
    return write_result(args.out, "recording_overhead.py", args, title="Attention-recording overhead",
                        device=device_name(args.device),
                        model=f"{args.model}, {args.dtype}, {args.resolution}², {args.steps} DDIM steps, batch {len(PROMPTS)} (+CFG)",
                        rows=rows, targets={k: f"≤ {v}×" for k, v in TARGETS.items()}, repeats=args.repeats, all_seconds=times,
                        images=len(PROMPTS))


if __name__ == "__main__":
    main()
