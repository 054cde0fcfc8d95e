"""The results a chapter wrote, compared with the ones recorded before a restructuring: a change
that is only structure leaves every number as it was.

    DVD_WRITE_REFERENCE=1 pytest tests/test_frozen_store.py tests/test_no_number_change.py

records them (``tests/fixtures/reference/<case>.json``); every other run compares."""

import json
import math
import os
from pathlib import Path

REFERENCE = Path(__file__).parent / "fixtures" / "reference"
#: profile fields that say where a run kept its work, not what it computed
WHERE = ("store", "store_mode")


def comparable(path: Path) -> dict:
    """A results JSON without the fields that name where it ran."""
    body = json.loads(Path(path).read_text())
    body["profile"] = {k: v for k, v in body["profile"].items() if k not in WHERE}
    return body


def differences(a, b, where: str = "") -> list[str]:
    """Where two JSON values differ (numbers within a relative 1e-9)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        return out + [d for k in a if k in b for d in differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} entries"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, (int, float)):
        same = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
        return [] if same else [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def check(case: str, results: Path) -> None:
    """Record (``DVD_WRITE_REFERENCE`` set) or compare a chapter's results with its reference."""
    target = REFERENCE / f"{case}.json"
    body = comparable(results)
    if os.environ.get("DVD_WRITE_REFERENCE"):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n")
        return
    found = differences(json.loads(target.read_text()), body)
    assert not found, f"{case}: {len(found)} results differ from the reference, e.g. " + "; ".join(found[:5])
