"""The run store: everything a generation computed, saved as it is made.

One folder per (model, settings): ``root/<model>/<settings hash>/settings.json``; inside, one
folder per prompt (``<prompt hash>/``) holding per seed the image (``<seed>.png``), its record
(``<seed>.json``) and the attention recorded for it under a given recording spec
(``<seed>.attn-<spec hash>.npz``). Every file is written to a temporary name and renamed, so an
interrupted run leaves no half-written file and a rerun recomputes only what is missing; a record
is updated under a lock (``.<seed>.lock``), so processes sharing a store (chapters run at once)
never drop each other's fields.

A store opened ``mode="frozen"`` computes nothing: a read that misses (a generation, a recording,
a judge answer, an ablated image) raises `StoreMiss` naming it, and nothing is written. It is
for building the book from a store `dvdlib.prefetch` filled beforehand: a build that would
quietly recompute hours of GPU work stops at the first thing the prefetch left out instead.
Setting ``DVD_STORE_READ_LOG`` to a file makes every store append the keys it reads there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def plain(value):
    """A value as plain JSON: numpy scalars and arrays, tuples, ranges and pandas Series become
    Python numbers and lists, dict keys strings, NaN None (what settings, recording specs,
    manifests and result files hold)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, range, np.ndarray, pd.Series)):
        return [plain(v) for v in list(value)]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    return value


def digest(value) -> str:
    """A short stable hash of a JSON-able value (settings, prompts, recording specs)."""
    return hashlib.sha1(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


def _read_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once, when the module is imported: setting the umask to read it, as `_read_umask` must,
#: would let a file another thread creates meanwhile get mode 0666.
_UMASK = _read_umask()


def atomic_write(path: Path, write) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600: give the mode any new file gets
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs, so a
    read-modify-write of a record by one process never drops another's fields (POSIX
    ``flock``; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: chapters run one at a time there
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: The files that make a model's weights (what `model_key` hashes).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt")


def folder_hash(folder, suffixes=WEIGHT_SUFFIXES) -> str:
    """SHA-256 over the files of ``folder`` (recursively) whose suffix is one of ``suffixes``: each
    file's path relative to the folder, then its whole contents, in sorted order. Two folders hash
    alike exactly when those files agree (a retrained model never passes for the old one)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes):
        h.update(p.relative_to(folder).as_posix().encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def model_key(name) -> str:
    """What names a model in the run store: the id itself, or for a local folder its name plus
    `folder_hash` of its weights, so retrained weights never reuse old results (a few seconds
    for Stable Diffusion's gigabytes, once per chapter); a fine-tune (`dvdlib.finetune.Tuned`)
    gives its own key."""
    if not isinstance(name, str):
        return name.key
    folder = Path(name)
    return f"{folder.resolve().name}@{folder_hash(folder)[:10]}" if folder.is_dir() else name


def slug(name: str) -> str:
    """``name`` as one folder name: runs of other characters than letters, digits, ``._-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


#: How a store meets a read that misses: "write" lets the caller compute and save it, "frozen" raises.
STORE_MODES = ("write", "frozen")

#: Environment variable: a file every store appends the keys it reads to, one a line.
READ_LOG = "DVD_STORE_READ_LOG"


def log_reads(keys) -> None:
    """Append store-relative ``keys`` to the `READ_LOG` file, when one is set."""
    log = os.environ.get(READ_LOG)
    if log and keys:
        with open(log, "a") as f:
            f.write("".join(f"{k}\n" for k in keys))


class StoreMiss(LookupError):
    """A frozen store lacks what a chapter reads (run `dvd prefetch` for that chapter first)."""


class Store:
    """Images, records and attention of one model under one set of generation settings.

    ``mode``: "write" (default) or "frozen", where a read that misses raises `StoreMiss`
    (`todo`, `answers`, `image`, `attention`) and `save` refuses: see the module's docstring."""

    def __init__(self, root: str | Path, model: str, settings: dict, mode: str = "write"):
        if mode not in STORE_MODES:
            raise ValueError(f"store mode must be one of {STORE_MODES}, got {mode!r}")
        self.root, self.model, self.settings, self.mode = Path(root), model, dict(settings), mode
        self.path = self.root / slug(model) / digest({"model": model, **self.settings})
        self.reads: set[str] = set()  # the keys this store has read (`key`)
        if mode == "frozen":
            return
        self.path.mkdir(parents=True, exist_ok=True)
        info = self.path / "settings.json"
        if not info.exists():
            atomic_write(info, lambda p: p.write_text(json.dumps({"model": model, **self.settings}, indent=1)))

    @property
    def frozen(self) -> bool:
        return self.mode == "frozen"

    def key(self, path: Path, field: str | None = None) -> str:
        """A file's key, relative to the root (``<model>/<settings hash>/<prompt hash>/<seed>.png``);
        with ``field``, a record's field (``....json#<field>``): the keys `dvdlib.plan` gives work."""
        key = Path(path).relative_to(self.root).as_posix()
        return f"{key}#{field}" if field else key

    def _log(self, keys) -> None:
        new = list(dict.fromkeys(k for k in keys if k not in self.reads))
        self.reads.update(new)
        log_reads(new)

    def _miss(self, what: str, missing: list) -> None:
        shown = "; ".join(f"{p!r} seed {s}" for p, s in missing[:3]) + (" …" if len(missing) > 3 else "")
        raise StoreMiss(f"frozen store {self.path}: {len(missing)} {what} missing ({shown}); "
                        f"model {self.model}, settings {json.dumps(self.settings, sort_keys=True)}. "
                        "Run `dvd prefetch` for this chapter with the same profile and parameters, "
                        "or build with store_mode 'write' to compute it here.")

    def _base(self, prompt: str, seed: int) -> Path:
        return self.path / digest(prompt) / str(seed)

    def image_path(self, prompt: str, seed: int) -> Path:
        return self._base(prompt, seed).with_suffix(".png")

    def attention_path(self, prompt: str, seed: int, spec: dict) -> Path:
        return self._base(prompt, seed).with_name(f"{seed}.attn-{digest(spec)}.npz")

    def _files(self, prompt: str, seed: int, image: bool, attention: dict | None) -> list[Path]:
        return ([self.image_path(prompt, seed)] if image else []) + (
            [self.attention_path(prompt, seed, attention)] if attention is not None else [])

    def has(self, prompt: str, seed: int, *, image: bool = True, attention: dict | None = None) -> bool:
        """Whether what a request needs (the image, the attention for ``attention``) is stored."""
        return all(f.exists() for f in self._files(prompt, seed, image, attention))

    def todo(self, jobs, *, image: bool = True, attention: dict | None = None, what: str = "images") -> list:
        """Of ``jobs`` [(prompt, seed), ...], those lacking their image (``image``) or their recording
        under the spec ``attention``: what the caller computes next. The stored ones are read (logged);
        a frozen store raises `StoreMiss` for the others (``what`` names them)."""
        todo, found = [], []
        for prompt, seed in dict.fromkeys(jobs):
            files = self._files(prompt, seed, image, attention)
            if all(f.exists() for f in files):
                found += files
            else:
                todo.append((prompt, seed))
        self._log(self.key(f) for f in found)
        if todo and self.frozen:
            self._miss(what if attention is None else f"{what} (recording {json.dumps(attention, sort_keys=True)})", todo)
        return todo

    def record(self, prompt: str, seed: int) -> dict:
        """The stored record of (prompt, seed): {} when there is none."""
        path = self._base(prompt, seed).with_suffix(".json")
        return json.loads(path.read_text()) if path.exists() else {}

    def answers(self, key: str, prompt: str, seeds) -> dict[int, dict]:
        """The judge answers stored in the records of ``prompt`` under the field ``key``, by seed (the
        seeds of ``seeds`` that have them), read (logged); a frozen store raises `StoreMiss` when a
        seed has none."""
        found = {int(s): a for s in seeds if isinstance(a := self.record(prompt, s).get(key), dict)}
        self._log(self.key(self._base(prompt, s).with_suffix(".json"), key) for s in found)
        missing = [(prompt, s) for s in seeds if int(s) not in found]
        if missing and self.frozen:
            self._miss(f"judge answers {key!r}", missing)
        return found

    def save(self, prompt: str, seed: int, *, image: Image.Image | None = None,
             recordings=(), **record) -> None:
        """Save what one generation produced: its ``recordings`` [(spec, arrays), ...], then its image,
        and last its record (JSON). The image comes after the recordings made with it: a run killed
        between the two leaves no image, so a rerun makes both again rather than trusting an image
        whose recordings were lost. A frozen store refuses (`StoreMiss`)."""
        if self.frozen:
            what = ["image"] * (image is not None) + [f"recording {json.dumps(s, sort_keys=True)}" for s, _ in recordings]
            self._miss(", ".join(what + [f"record fields {sorted(record)}"]), [(prompt, seed)])
        for spec, arrays in recordings:
            atomic_write(self.attention_path(prompt, seed, spec), lambda p, a=arrays: np.savez(p, **a))
        if image is not None:
            atomic_write(self.image_path(prompt, seed), lambda p: image.save(p, format="PNG"))
        base = self._base(prompt, seed).with_suffix(".json")
        with _locked(base.with_name(f".{seed}.lock")):  # two processes adding fields keep both
            old = json.loads(base.read_text()) if base.exists() else {}
            new = {**old, **record, "prompt": prompt, "seed": seed}
            atomic_write(base, lambda p: p.write_text(json.dumps(new, ensure_ascii=False, indent=1)))

    def _reading(self, path: Path, what: str, prompt: str, seed: int) -> Path:
        if path.exists():
            self._log([self.key(path)])
        elif self.frozen:
            self._miss(what, [(prompt, seed)])
        return path

    def image(self, prompt: str, seed: int) -> Image.Image:
        return Image.open(self._reading(self.image_path(prompt, seed), "image", prompt, seed))

    def attention(self, prompt: str, seed: int, spec: dict) -> dict[str, np.ndarray]:
        path = self._reading(self.attention_path(prompt, seed, spec), f"recording {json.dumps(spec, sort_keys=True)}",
                             prompt, seed)
        with np.load(path) as data:
            return dict(data)

    def records(self) -> pd.DataFrame:
        """Every stored per-image record as a table."""
        rows = [json.loads(p.read_text()) for p in sorted(self.path.glob("*/*.json"))]
        return pd.DataFrame(rows)
