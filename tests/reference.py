"""The results a chapter wrote, compared with the ones recorded before a restructuring: a change
that is only structure leaves every number as it was, up to how another CPU rounds.

    DVD_WRITE_REFERENCE=1 pytest tests/test_frozen_store.py tests/test_no_number_change.py

records them (``tests/fixtures/reference/<case>.json``); every other run compares.

float32 kernels differ between CPUs (AVX2, AVX-512, AMX block a matrix product differently), and a
fine-tune or a difference of near-equal numbers carries that into the results: between two
machines the references moved by at most 0.13% of the largest number of the same result, and a
printed number by one unit of its last digit. So a number may move `CPU_NOISE` of its result's
largest, a printed one a unit of its last digit; words, counts and parameters stay exact."""

import json
import math
import os
import re
from pathlib import Path

REFERENCE = Path(__file__).parent / "fixtures" / "reference"
#: profile fields that say where a run kept its work, not what it computed
WHERE = ("store", "store_mode")
#: how far a number may move, as a share of the largest number in its result (measured: 0.13%)
CPU_NOISE = 0.01
#: a number as the chapters print it: its mantissa's decimals and its exponent
PRINTED = re.compile(r"[+-]?\d+(?:\.(\d+))?(?:e([+-]?\d+))?")


def comparable(path: Path) -> dict:
    """A results JSON without the fields that name where it ran."""
    body = json.loads(Path(path).read_text())
    body["profile"] = {k: v for k, v in body["profile"].items() if k not in WHERE}
    return body


def largest(value) -> float:
    """The largest magnitude of any number in a JSON value (0 when it holds none)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return max((largest(v) for v in value), default=0.0)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return abs(float(value))
    return 0.0


def same_printed(a: str, b: str) -> bool:
    """Two strings equal but for printed numbers one unit of their last decimal apart (a value on a
    rounding boundary, which another CPU can push either way); integers and words exactly equal."""
    pieces_a, pieces_b = PRINTED.split(a), PRINTED.split(b)
    numbers_a, numbers_b = list(PRINTED.finditer(a)), list(PRINTED.finditer(b))
    if len(numbers_a) != len(numbers_b) or pieces_a[::3] != pieces_b[::3]:
        return False
    for x, y in zip(numbers_a, numbers_b):
        if x.group(0) == y.group(0):
            continue
        decimals, exponent = x.group(1), x.group(2)
        if decimals is None or (len(decimals), exponent) != (len(y.group(1) or ""), y.group(2)):
            return False  # an integer, or another format
        unit = 10.0 ** (int(exponent or 0) - len(decimals))
        if abs(float(x.group(0)) - float(y.group(0))) > unit * 1.000001:
            return False
    return True


def differences(a, b, where: str = "", noise: float = 0.0) -> list[str]:
    """Where two JSON values differ: numbers by more than ``noise`` (absolute) or a relative 1e-9,
    strings other than `same_printed`."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        return out + [d for k in a if k in b for d in differences(a[k], b[k], f"{where}/{k}", noise)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} entries"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]", noise)]
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, (int, float)):
        same = math.isclose(a, b, rel_tol=1e-9, abs_tol=max(noise, 1e-12)) or (math.isnan(a) and math.isnan(b))
        return [] if same else [f"{where}: {a!r} vs {b!r}"]
    if isinstance(a, str) and isinstance(b, str) and same_printed(a, b):
        return []
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def compare(reference: dict, body: dict) -> list[str]:
    """Where a chapter's results differ from its reference: the profile and the rest exactly, each
    result's numbers up to `CPU_NOISE` of that result's largest."""
    out = differences({k: v for k, v in reference.items() if k != "results"},
                      {k: v for k, v in body.items() if k != "results"})
    ours, theirs = reference.get("results", []), body.get("results", [])
    if len(ours) != len(theirs):
        return out + [f"/results: {len(ours)} vs {len(theirs)} entries"]
    for i, (x, y) in enumerate(zip(ours, theirs)):
        out += differences(x, y, f"/results[{i}]", CPU_NOISE * largest(x))
    return out


def check(case: str, results: Path) -> None:
    """Record (``DVD_WRITE_REFERENCE`` set) or compare a chapter's results with its reference."""
    target = REFERENCE / f"{case}.json"
    body = comparable(results)
    if os.environ.get("DVD_WRITE_REFERENCE"):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n")
        return
    found = compare(json.loads(target.read_text()), body)
    assert not found, f"{case}: {len(found)} results differ from the reference, e.g. " + "; ".join(found[:5])
