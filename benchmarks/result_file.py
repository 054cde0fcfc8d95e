"""What every benchmark script writes: one JSON file the book's benchmarks page renders."""

from __future__ import annotations

import datetime
import json
import platform
import shlex
from pathlib import Path

import torch

from dvdlib.store import atomic_write


def device_name(device: str) -> str:
    """The GPU's name, or the CPU and its thread count."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def command(script: str, args) -> str:
    """The shell command that repeats a run: the script and its options (but ``out``), quoted so
    that a shell reads them back as given."""
    words = ["python", f"benchmarks/{script}"]
    for k, v in vars(args).items():
        if k == "out" or v is None or v is False:
            continue
        words.append(f"--{k.replace('_', '-')}")
        if v is not True:
            words += [str(x) for x in v] if isinstance(v, list) else [str(v)]
    return shlex.join(words)


def write_result(out: str, script: str, args, **fields) -> dict:
    """Write ``fields`` (title, device, model, rows, targets, ...) with the time and the command; return them."""
    result = {**fields, "when": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": command(script, args)}
    atomic_write(Path(out), lambda p: p.write_text(json.dumps(result, indent=1, ensure_ascii=False)))
    for row in fields["rows"]:
        print("  ".join(f"{key} {value}" for key, value in row.items() if value not in (None, "")))
    print(f"written to {out}")
    return result
