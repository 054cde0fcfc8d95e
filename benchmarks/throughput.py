"""Generation throughput: images per second by batch size, and what one image costs.

    python benchmarks/throughput.py --model smoke:64 --steps 2 --batches 1 2        # seconds, CPU
    python benchmarks/throughput.py --model random:sd1.4:512 random:sd2.1:768 --device cuda \\
        --dtype float16 --steps 50 --batches 1 2 4 8 16 32

Each ``--model`` is ``NAME:RESOLUTION`` (a `dvdlib.load` name: a Hub id, a folder, ``smoke`` or
``random:sd1.4``; speed does not depend on the weights, so the random-weight architectures measure
what SD 1.4 and SD 2.1 cost). One batch of each size is generated the way the chapters generate:
DDIM with classifier-free guidance (two UNet evaluations per image per step), decoded by the VAE.
One warm-up call per model (the largest batch, 2 steps) comes first; each batch size then keeps the
fastest of ``--repeats`` rounds. Rows: seconds per call, images per second, seconds per image and
peak GPU memory. ``costs`` holds, per model, the seconds per image and per UNet evaluation at the
batch with the best throughput, and every batch's seconds per image: what `dvd plan` multiplies by
a chapter's counts. Results go to ``benchmarks/results/throughput.json`` (the book's benchmarks page).
"""

from __future__ import annotations

import argparse
import time

import torch

import dvdlib
from dvdlib.generate import initial_latents
from result_file import device_name, write_result

PROMPT = "Neuschwanstein Castle Coaster"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_batch(pipe, batch: int, resolution: int, steps: int, device: str) -> float:
    """Seconds for one call generating ``batch`` images (CFG 7.5, decoded to arrays)."""
    latents = initial_latents(pipe, range(batch), resolution)
    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        pipe([PROMPT] * batch, latents=latents, height=resolution, width=resolution,
             num_inference_steps=steps, guidance_scale=7.5, output_type="np")
    synchronize(device)
    return time.perf_counter() - start


def measure(name: str, resolution: int, args) -> tuple[list[dict], dict]:
    """Rows and costs of one model at one resolution."""
    pipe = dvdlib.load(name, dtype=args.dtype, device=args.device)
    time_batch(pipe, max(args.batches), resolution, 2, args.device)  # warm-up: kernels, allocator
    rows, per_image = [], {}
    for batch in args.batches:
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        seconds = min(time_batch(pipe, batch, resolution, args.steps, args.device) for _ in range(args.repeats))
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None
        per_image[batch] = seconds / batch
        rows.append({"setting": f"{name} {resolution}², batch {batch}", "seconds": round(seconds, 3),
                     "images/s": round(batch / seconds, 3), "s/image": round(seconds / batch, 4),
                     "peak GiB": round(peak, 2) if peak is not None else None})
    best = min(per_image, key=per_image.get)
    cost = {"resolution": resolution, "steps": args.steps, "dtype": args.dtype, "batch": best,
            "seconds_per_image": round(per_image[best], 5),
            "seconds_per_unet_evaluation": round(per_image[best] / (2 * args.steps), 6),
            "seconds_per_image_by_batch": {str(b): round(s, 5) for b, s in per_image.items()}}
    del pipe
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows, cost


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["random:sd1.4:512"], help="NAME:RESOLUTION, one or more")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    rows, costs = [], {}
    for spec in args.model:
        name, _, resolution = spec.rpartition(":")
        if not name or not resolution.isdigit():
            parser.error(f"--model takes NAME:RESOLUTION (e.g. random:sd1.4:512), got {spec!r}")
        model_rows, costs[name] = measure(name, int(resolution), args)
        rows += model_rows
    return write_result(args.out, "throughput.py", args,
                        title="Generation throughput by batch size (classifier-free guidance, VAE decode)",
                        device=device_name(args.device),
                        model=f"{', '.join(args.model)}; {args.dtype}, {args.steps} DDIM steps, CFG 7.5",
                        rows=rows, costs={"device": device_name(args.device), "generation": costs},
                        repeats=args.repeats)


if __name__ == "__main__":
    main()
