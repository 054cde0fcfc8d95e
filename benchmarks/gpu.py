"""Every GPU measurement the book reports, in one run: ``benchmarks/gpu.sh`` (≤ 8 minutes on one
H100/H200, nothing downloaded: full-size architectures with random weights built from the configs
in ``dvdlib/configs``; speed does not depend on the weights).

    bash benchmarks/gpu.sh                                 # --size gpu: results in benchmarks/results/
    python benchmarks/gpu.py --size cpu --out-dir /tmp/b   # the same run, CPU-sized (the tests run it)

Sections (``--only`` picks some):
- ``recording``: what attention recording costs (`recording_overhead.py`): plain vs step-1 and
  all-step recording, SD 1.4, 512², fp16, 50 DDIM steps;
- ``judge``: the judge batched vs one ``generate`` call per question (`judge_batching.py`):
  Qwen2-VL-2B's architecture, bf16, 10 images of 512² × 10 questions, 5 new tokens forced;
- ``throughput``: images/s for batch 1…32 (`throughput.py`): SD 1.4 at 512², SD 2.1 at 768², fp16,
  50 steps, classifier-free guidance, VAE decode;
- ``joint``: recording one block at one step vs a plain step on the tiny SD3, SDXL and FLUX models,
  and the peak memory of the chunked joint-attention recompute at 4,096 × 4,608 in fp16
  (`joint_recording.py --memory`; the CPU size leaves the memory out: it needs CUDA);
- ``levers``: eager vs channels-last vs a compiled UNet (plain, step-1 and all-step recording on
  each path) and larger batches, side by side (`levers.py`; last, with a time budget: the GPU size
  keeps the whole script under 8 minutes; the CPU size compiles nothing).
Each writes its own result file; ``gpu.json`` then gathers the per-image and per-question costs
that `dvd plan` multiplies by a chapter's counts (per batch size and per judge call size), and,
beside seconds per image, the UNet's FLOPs per evaluation (counted, `unet_flops.py`) and the share of
the device's dense fp16/bf16 peak that the measured rates reach, plain and recording.
``--gather`` writes ``gpu.json`` again from the section files already there, measuring nothing.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import joint_recording
import judge_batching
import levers
import recording_overhead
import throughput
import unet_flops
from result_file import write_result

SIZES = {
    "gpu": {
        "recording": ["--model", "random:sd1.4", "--device", "cuda", "--dtype", "float16", "--resolution", "512",
                      "--steps", "50", "--repeats", "3"],
        "judge": ["--model", "random:qwen2-vl-2b", "--device", "cuda", "--dtype", "bfloat16", "--images", "10",
                  "--resolution", "512", "--batch-sizes", "10", "20", "40", "--min-new-tokens", "5",
                  "--repeats", "2"],
        "throughput": ["--model", "random:sd1.4:512", "random:sd2.1:768", "--device", "cuda", "--dtype", "float16",
                       "--steps", "50", "--batches", "1", "2", "4", "8", "16", "32"],
        "joint": ["--models", "tiny:sd3", "tiny:sdxl", "tiny:flux", "--device", "cuda", "--repeats", "10", "--memory"],
        "levers": ["--model", "random:sd1.4", "--device", "cuda", "--dtype", "float16", "--resolution", "512",
                   "--steps", "20", "--batch", "16", "--channels-last", "--compile", "--batches", "32", "48", "64",
                   "--repeats", "2", "--budget", "180"],
    },
    "cpu": {
        "recording": ["--model", "smoke", "--resolution", "64", "--steps", "2", "--repeats", "1", "--threads", "1"],
        "judge": ["--model", "tiny", "--images", "2", "--resolution", "56", "--batch-sizes", "10", "20",
                  "--min-new-tokens", "2", "--repeats", "1"],
        "throughput": ["--model", "smoke:64", "--steps", "2", "--batches", "1", "2", "--threads", "1"],
        "joint": ["--models", "tiny:sd3", "--resolution", "64", "--repeats", "1", "--threads", "1"],
        "levers": ["--model", "smoke", "--resolution", "64", "--steps", "2", "--batch", "2", "--batches", "4",
                   "--channels-last", "--repeats", "1", "--threads", "1"],
    },
}
SECTIONS = {"throughput": throughput, "recording": recording_overhead, "judge": judge_batching, "joint": joint_recording,
            "levers": levers}
FILES = {"throughput": "throughput.json", "recording": "recording_overhead.json", "judge": "judge_batching.json",
         "joint": "joint_recording.json", "levers": "levers.json"}


def costs(throughput_result: dict, judge_result: dict | None) -> dict:
    """What `dvd plan` reads: seconds per image per model and batch size (throughput), per question
    and (image, question) pairs per call (judge)."""
    gathered = dict(throughput_result["costs"])
    if judge_result:
        largest = max(judge_result["rows"], key=lambda r: r["ratio"])
        gathered["judge"] = {"model": judge_result["judge"], "described": judge_result["model"],
                             "setting": largest["setting"],
                             "seconds_per_question": judge_result["seconds_per_question"],
                             "seconds_per_question_by_batch": question_seconds_by_batch(judge_result)}
    return gathered


def question_seconds_by_batch(judge_result: dict) -> dict:
    """Seconds per question at each measured call size (pairs per call; "one call per question": 1).
    A result written before judge_batching.py kept them: from its rows' seconds and the pairs asked
    (the fastest row's seconds / its seconds per question)."""
    if "seconds_per_question_by_batch" in judge_result:
        return judge_result["seconds_per_question_by_batch"]
    rows = judge_result["rows"]
    pairs = round(min(r["seconds"] for r in rows) / judge_result["seconds_per_question"])
    size = {r["setting"]: 1 if r["setting"] == "one call per question" else int(r["setting"].split("(")[1].split()[0])
            for r in rows}
    return {str(size[r["setting"]]): round(r["seconds"] / pairs, 6) for r in rows}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="gpu")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument("--gather", action="store_true",
                        help="measure nothing: write gpu.json again from the section result files in --out-dir")
    args = parser.parse_args(argv)
    if args.gather:
        return {"gpu": gather(args)}

    out, results, seconds, failed = Path(args.out_dir), {}, {}, []
    for section in (s for s in SECTIONS if s in args.only):
        start = time.perf_counter()
        print(f"== {section}", flush=True)
        try:
            results[section] = SECTIONS[section].main(SIZES[args.size][section] + ["--out", str(out / FILES[section])])
        except Exception:  # one section failing must not cost the others' measurements
            traceback.print_exc()
            failed.append(section)
        seconds[section] = round(time.perf_counter() - start, 1)
        print(f"== {section}: {seconds[section]} s{' FAILED' if section in failed else ''}", flush=True)
    if "throughput" in results:
        results["gpu"] = write_costs(results, seconds, args)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (the other sections' results are written)")
    return results


def recording_rows(result: dict | None, device: str) -> list[dict]:
    """The recording section's settings (plain, step-1 and all-step recording) as seconds per image
    and the share of the device's peak their UNet evaluations reach (latents only: no VAE decode)."""
    if not result:
        return []
    words = result["command"].split()
    option = {k[2:]: v for k, v in zip(words, words[1:]) if k.startswith("--")}
    model, resolution, steps = option.get("model", "random:sd1.4"), int(option["resolution"]), int(option["steps"])
    images = result.get("images", len(recording_overhead.PROMPTS))
    flops = unet_flops.unet_flops(model, resolution)
    return [{"setting": f"{model}, {resolution}², {steps} steps, batch {images}: {r['setting']}",
             "seconds per unit": round(r["seconds"] / images, 5), "unit": "image (latent)",
             "UNet TFLOP per evaluation": round(flops / 1e12, 3),
             **unet_flops.utilisation(flops, 2 * steps * images, r["seconds"], device)} for r in result["rows"]]


def gather(args) -> dict:
    """``gpu.json`` written again from the section result files already in ``--out-dir`` (what a
    change to the costs' form needs; nothing is measured): the sections' own measurements, device
    and times."""
    out, results = Path(args.out_dir), {}
    for section in ("throughput", "judge", "recording"):
        if (out / FILES[section]).is_file():
            results[section] = json.loads((out / FILES[section]).read_text())
    if "throughput" not in results:
        raise SystemExit(f"no {out / FILES['throughput']} to gather from: run the throughput section")
    measured = "; ".join(f"{FILES[s]} measured {r.get('when', '?')}" for s, r in results.items())
    return write_costs(results, {}, args, model=f"--size {args.size}; gathered from the section files ({measured})")


def write_costs(results: dict, seconds: dict, args, model: str | None = None) -> dict:
    """``gpu.json``: the costs `dvd plan` reads, and a table of them for the benchmarks page; the
    device is the one the throughput section measured on."""
    gathered = costs(results["throughput"], results.get("judge"))
    device = results["throughput"]["device"]
    flops = {name: unet_flops.unet_flops(name, c["resolution"]) for name, c in gathered["generation"].items()}
    rows = []
    for name, c in gathered["generation"].items():
        c["unet_flops_per_evaluation"] = flops[name]
        rows.append({"setting": f"{name}, {c['resolution']}², {c['steps']} steps, batch {c['batch']}",
                     "seconds per unit": c["seconds_per_image"], "unit": "image",
                     "UNet TFLOP per evaluation": round(flops[name] / 1e12, 3),
                     **unet_flops.utilisation(flops[name], 2 * c["steps"], c["seconds_per_image"], device)})
    rows += recording_rows(results.get("recording"), device)
    if "judge" in gathered:
        rows.append({"setting": gathered["judge"]["setting"], "seconds per unit":
                     gathered["judge"]["seconds_per_question"], "unit": "question"})
    model = model or f"--size {args.size}; seconds per section: " + ", ".join(f"{name} {s:g} s"
                                                                         for name, s in seconds.items())
    written = write_result(str(Path(args.out_dir) / "gpu.json"), "gpu.py", args,
                           title="What one image and one judge question cost (used by dvd plan)",
                           device=device, model=model, rows=rows, costs=gathered,
                           notes=f"UNet TFLOP/s: the UNet's counted FLOPs (benchmarks/unet_flops.py) × evaluations "
                                 f"(2 per step per image under guidance) / the measured seconds, which also hold the "
                                 f"text encoder, the scheduler and (image rows) the VAE decode; share of peak: of the "
                                 f"{unet_flops.PEAK_SOURCE}")
    print(json.dumps(gathered, indent=1))
    return written


if __name__ == "__main__":
    main()
