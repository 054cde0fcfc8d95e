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
  (`joint_recording.py --memory`; the CPU size leaves the memory out: it needs CUDA).
Each writes its own result file; ``gpu.json`` then gathers the per-image and per-question costs
that `dvd plan` multiplies by a chapter's counts.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import joint_recording
import judge_batching
import recording_overhead
import throughput
from result_file import device_name, write_result

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
    },
    "cpu": {
        "recording": ["--model", "smoke", "--resolution", "64", "--steps", "2", "--repeats", "1", "--threads", "1"],
        "judge": ["--model", "tiny", "--images", "2", "--resolution", "56", "--batch-sizes", "10", "20",
                  "--min-new-tokens", "2", "--repeats", "1"],
        "throughput": ["--model", "smoke:64", "--steps", "2", "--batches", "1", "2", "--threads", "1"],
        "joint": ["--models", "tiny:sd3", "--resolution", "64", "--repeats", "1", "--threads", "1"],
    },
}
SECTIONS = {"throughput": throughput, "recording": recording_overhead, "judge": judge_batching, "joint": joint_recording}
FILES = {"throughput": "throughput.json", "recording": "recording_overhead.json", "judge": "judge_batching.json",
         "joint": "joint_recording.json"}


def costs(throughput_result: dict, judge_result: dict | None) -> dict:
    """What `dvd plan` reads: seconds per image per model (throughput) and per question (judge)."""
    gathered = dict(throughput_result["costs"])
    if judge_result:
        largest = max(judge_result["rows"], key=lambda r: r["ratio"])
        gathered["judge"] = {"model": judge_result["judge"], "described": judge_result["model"],
                             "setting": largest["setting"],
                             "seconds_per_question": judge_result["seconds_per_question"]}
    return gathered


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="gpu")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args(argv)

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


def write_costs(results: dict, seconds: dict, args) -> dict:
    """``gpu.json``: the costs `dvd plan` reads, and a table of them for the benchmarks page."""
    gathered = costs(results["throughput"], results.get("judge"))
    rows = [{"setting": f"{name}, {c['resolution']}², {c['steps']} steps, batch {c['batch']}",
             "seconds per unit": c["seconds_per_image"], "unit": "image"}
            for name, c in gathered["generation"].items()]
    if "judge" in gathered:
        rows.append({"setting": gathered["judge"]["setting"], "seconds per unit":
                     gathered["judge"]["seconds_per_question"], "unit": "question"})
    device = "cuda" if args.size == "gpu" else "cpu"
    written = write_result(str(Path(args.out_dir) / "gpu.json"), "gpu.py", args,
                           title="What one image and one judge question cost (used by dvd plan)",
                           device=device_name(device), model=f"--size {args.size}; seconds per section: "
                           + ", ".join(f"{name} {s:g} s" for name, s in seconds.items()),
                           rows=rows, costs=gathered)
    print(json.dumps(gathered, indent=1))
    return written


if __name__ == "__main__":
    main()
