"""What every benchmark script writes: one JSON file the book's benchmarks page renders."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

import torch

from dvdlib.store import atomic_write


def device_name(device: str) -> str:
    """The GPU's name, or the CPU and its thread count."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_result(out: str, script: str, args, **fields) -> dict:
    """Write ``fields`` (title, device, model, rows, targets, ...) with the time and the command; return them."""
    options = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else
                                                     f" {' '.join(map(str, v)) if isinstance(v, list) else v}")
                       for k, v in vars(args).items() if k != "out" and v is not None and v is not False)
    result = {**fields, "when": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": f"python benchmarks/{script} {options}"}
    atomic_write(Path(out), lambda p: p.write_text(json.dumps(result, indent=1, ensure_ascii=False)))
    for row in fields["rows"]:
        print("  ".join(f"{key} {value}" for key, value in row.items() if value not in (None, "")))
    print(f"written to {out}")
    return result
