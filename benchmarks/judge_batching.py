"""Judge throughput: batched vs. one ``generate`` call per question, same judge, same images, one run.

    python benchmarks/judge_batching.py                                   # tiny random Qwen2-VL, offline
    python benchmarks/judge_batching.py --model Qwen/Qwen2-VL-2B-Instruct --device cuda --dtype bfloat16
    python benchmarks/judge_batching.py --model /path/to/Qwen2-VL-2B-Instruct --resolution 512

Default model ``tiny``: `dvdlib.vqa.build_tiny_qwen2_vl`, the test's random-weight Qwen2-VL (2 text
layers of width 64, a 1-block vision tower, a byte-level tokenizer), built in a temporary folder and
loaded through `QwenJudge` like a real checkpoint. It has Qwen2-VL's code path, not its cost: its
ratio mixes what batching saves per call (``generate`` set-up, five decoding steps) with the tiny
model's compute, and does not predict the 2B judge, which should gain less on a CPU (compute-bound)
and more on a GPU (a decoding step costs about the same for 20 pairs as for one); pass ``--model``
for that, or ``random:qwen2-vl-2b`` (the 2B judge's architecture with random weights, with
``--min-new-tokens 5`` so it decodes what the real judge does). Each image is asked the ten questions of paper §2 (five about a concept, five
about an object); the settings run interleaved, ``--repeats`` rounds after one warm-up, each keeps
its fastest round (the least disturbed by other work on the machine), and the ratio is the
one-call-per-question time over the setting's time (a speedup; target: ≥ 4×, checked on the
largest batch). In float32 the answers must agree between settings, else the script fails; in
bf16/fp16 the share that agrees is recorded (a random judge's near-tied logits can flip). Both
settings encode each image once (`QwenJudge.ask`); only the number of ``generate`` calls differs. Results go to
``benchmarks/results/judge_batching.json``, shown on the book's benchmarks page.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dvdlib.vqa import QwenJudge, build_tiny_qwen2_vl
from result_file import device_name, write_result

TARGET = 4.0
QUESTIONS = [q + " Answer only Yes or No." for q in (
    "Is the Eiffel Tower present in this image?", "Can the Eiffel Tower be identified in this image?",
    "Is the Eiffel Tower at least partly visible?", "Does the image show details characteristic of the Eiffel Tower?",
    "Is the Eiffel Tower the main subject or the background of this image?",
    "Is a mug visible in this image?", "Is a mug at least partly shown?", "Is a mug featured in this image?",
    "Does the image show the recognisable shape of a mug?", "Is a mug depicted as a product?")]


def time_ask(judge: QwenJudge, images, batch_size: int, device: str) -> tuple[float, list[list[str]]]:
    judge.batch_size = batch_size
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    answers = judge.ask(images, QUESTIONS)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, answers


def answer_agreement(answers: dict) -> float:
    """The share of (image, question) answers on which every setting agrees. In float32 it must be 1;
    in bf16/fp16 a random-weight judge's near-tied logits can flip under another padding."""
    flat = [sum(a, []) for a in answers.values()]
    return sum(len(set(column)) == 1 for column in zip(*flat)) / len(flat[0])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="'tiny' (offline, random weights), a Hub id or a folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="float32 / bfloat16 / float16 (default: float32 on CPU)")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=224, help="square image side in pixels")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 20, 40],
                        help="(image, question) pairs per batched call, one setting each; the target is "
                             "checked on the largest (10: one image's questions per call)")
    parser.add_argument("--min-new-tokens", type=int, default=0,
                        help="decode at least this many tokens per answer (a random-weight judge rarely "
                             "stops on its own; forcing the real judge's answer length makes it cost the same)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--out", default="benchmarks/results/judge_batching.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_qwen2_vl(Path(tmp) / "tiny") if args.model == "tiny" else args.model
        judge = QwenJudge(model, dtype=args.dtype, device=args.device)
    judge.model.generation_config.min_new_tokens = args.min_new_tokens or None
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (args.resolution, args.resolution, 3), dtype=np.uint8))
              for _ in range(args.images)]
    settings = {"one call per question": 1,
                **{f"batched ({size} pairs per call)": size for size in sorted(set(args.batch_sizes))}}
    largest = max(settings.values())
    times, answers = {name: [] for name in settings}, {}
    for _ in range(args.repeats + 1):  # the first round warms up and is dropped
        for name, size in settings.items():
            seconds, answers[name] = time_ask(judge, images, size, args.device)
            times[name].append(seconds)
    times = {name: t[1:] for name, t in times.items()}
    agreement = answer_agreement(answers)
    if agreement < 1 and judge.model.dtype == torch.float32:
        raise SystemExit(f"batched and one-call-per-question answers differ: {answers}")
    single = min(times["one call per question"])
    best = min(min(t) for t in times.values())
    rows = [{"setting": name, "seconds": round(min(t), 3), "ratio": round(single / min(t), 2),
             "target": f"≥ {TARGET:g}×" if size == largest > 1 else "",
             "met": single / min(t) >= TARGET if size == largest > 1 else None}
            for (name, size), t in zip(settings.items(), times.values())]
    what = ("tiny random-weight Qwen2-VL (dvdlib.vqa.build_tiny_qwen2_vl: the judge's code path, not its "
            "cost; does not predict the 2B judge)" if args.model == "tiny" else args.model)
    return write_result(args.out, "judge_batching.py", args,
                        title="Judge throughput: batched vs one call per question (ratio = speedup)",
                        device=device_name(args.device),
                        model=f"{what}, {judge.model.dtype}, {args.images} images of {args.resolution}² "
                              f"× {len(QUESTIONS)} questions, ≤ {judge.max_new_tokens} new tokens",
                        rows=rows, targets={"batched vs one call per question": f"≥ {TARGET:g}×"},
                        judge=args.model, answers_agree=round(agreement, 3),
                        seconds_per_question=round(best / (len(images) * len(QUESTIONS)), 5),
                        seconds_per_question_by_batch={str(size): round(min(t) / (len(images) * len(QUESTIONS)), 6)
                                                       for size, t in zip(settings.values(), times.values())},
                        repeats=args.repeats, all_seconds=times)


if __name__ == "__main__":
    main()
