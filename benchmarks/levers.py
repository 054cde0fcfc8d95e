"""What each speed lever saves, measured side by side in one run on one device (ratios to eager).

    python benchmarks/levers.py --model smoke --resolution 64 --steps 2 --batch 2     # seconds, CPU
    python benchmarks/levers.py --model random:sd1.4 --device cuda --dtype float16 --resolution 512 \\
        --steps 20 --batch 16 --channels-last --compile --batches 32 48 64 --budget 240

Settings, interleaved over ``--repeats`` rounds after one warm-up each (the fastest round kept):
eager; with ``--channels-last`` the UNet in channels-last memory format; with ``--compile`` a second
copy of the pipeline whose UNet is compiled in place (`torch.compile`, default mode; the warm-up
holds the compilation, reported apart), plain and with step-1 and all-step recording of every
layer's token shares (the recording and ablation processors in place: tests/test_compile.py checks
that compiled and eager give the same numbers); eager step-1 and all-step recording beside them, so
the recording overhead is measured on both paths (targets: step-1 ≤ 1.05×, all-step ≤ 1.3× of the
same path's plain run). ``--batches``: eager seconds per image at larger batches (the largest that
fits: a batch that runs out of GPU memory is recorded as not fitting). Speed does not depend on the
weights (``random:sd1.4``: SD 1.4's architecture, random weights). Each call generates latents only
(no VAE decode: under ``--dtype float16`` the whole pipeline, VAE included, is already half
precision). ``--budget``: seconds after which settings not yet measured are skipped and named, so
the GPU script keeps its time. Results go to ``benchmarks/results/levers.json`` (the benchmarks page).
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch

import dvdlib
from dvdlib.generate import initial_latents
from result_file import device_name, write_result

PROMPT = "Neuschwanstein Castle Coaster"
RECORDINGS = {"plain": None, "step-1 recording": {"layers": "all", "steps": [1]},
              "all-step recording": {"layers": "all", "steps": "all"}}
TARGETS = {"step-1 recording": 1.05, "all-step recording": 1.3}


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(pipe, batch: int, attention, args) -> float:
    """Seconds for one call of ``batch`` images (CFG 7.5, latents), recording ``attention`` if given."""
    latents = initial_latents(pipe, range(batch), args.resolution)
    context = dvdlib.record(pipe, **attention) if attention else nullcontext()
    synchronize(args.device)
    start = time.perf_counter()
    with torch.inference_mode(), context:
        pipe([PROMPT] * batch, latents=latents, height=args.resolution, width=args.resolution,
             num_inference_steps=args.steps, guidance_scale=7.5, output_type="latent")
    synchronize(args.device)
    return time.perf_counter() - start


def settings(args) -> dict:
    """Setting name → (pipeline, recording, batch), in the order they are measured."""
    pipe = dvdlib.load(args.model, dtype=args.dtype, device=args.device)
    out = {f"eager, {name}": (pipe, attention, args.batch) for name, attention in RECORDINGS.items()}
    if args.channels_last:
        last = dvdlib.load(args.model, dtype=args.dtype, device=args.device)
        last.unet.to(memory_format=torch.channels_last)
        out["channels-last, plain"] = (last, None, args.batch)
    if args.compile:
        compiled = dvdlib.load(args.model, dtype=args.dtype, device=args.device)
        compiled.unet.compile()
        out |= {f"compiled, {name}": (compiled, attention, args.batch) for name, attention in RECORDINGS.items()}
    out |= {f"eager, plain, batch {b}": (pipe, None, b) for b in args.batches if b != args.batch}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smoke")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2, help="images per call of every setting")
    parser.add_argument("--batches", type=int, nargs="*", default=[], help="larger batches to try, eager")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget", type=float, default=None, help="seconds; settings left then are skipped")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--out", default="benchmarks/results/levers.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    chosen = settings(args)
    times, warm, skipped, failed = {}, {}, [], {}
    for name, (pipe, attention, batch) in chosen.items():  # warm-up (and, compiled, compilation)
        if args.budget and time.perf_counter() - start > args.budget:
            skipped.append(name)
            continue
        try:
            warm[name] = time_call(pipe, batch, attention, args)
            times[name] = []
        except torch.OutOfMemoryError:
            failed[name] = "does not fit in GPU memory"
            torch.cuda.empty_cache()
    for _ in range(args.repeats):
        for name in list(times):
            if args.budget and time.perf_counter() - start > args.budget and times[name]:
                continue
            pipe, attention, batch = chosen[name]
            times[name].append(time_call(pipe, batch, attention, args))
    times = {name: t for name, t in times.items() if t}
    base = {path: min(times[f"{path}, plain"]) / args.batch for path in ("eager", "compiled") if f"{path}, plain" in times}
    rows = []
    for name, (_, attention, batch) in chosen.items():
        if name not in times:
            rows.append({"setting": name, "note": failed.get(name, "skipped: over the time budget")})
            continue
        per_image = min(times[name]) / batch
        path, kind = name.split(", ")[:2]
        row = {"setting": name, "batch": batch, "s/image": round(per_image, 5),
               "ratio to eager plain": round(per_image / base["eager"], 3)}
        if kind in TARGETS and path in base:
            ratio = per_image / base[path]
            row |= {"ratio to same path plain": round(ratio, 3), "target": f"≤ {TARGETS[kind]}×",
                    "met": ratio <= TARGETS[kind]}
        if name.startswith("compiled"):
            row["first call (compiles), s"] = round(warm[name], 1)
        rows.append(row)
    return write_result(args.out, "levers.py", args, title="Speed levers side by side (ratios to eager)",
                        device=device_name(args.device),
                        model=f"{args.model}, {args.dtype}, {args.resolution}², {args.steps} DDIM steps, CFG 7.5, "
                              f"latents (no decode), batch {args.batch}",
                        rows=rows, targets={f"{k} (same path)": f"≤ {v}×" for k, v in TARGETS.items()},
                        repeats=args.repeats, all_seconds=times, skipped=skipped)


if __name__ == "__main__":
    main()
