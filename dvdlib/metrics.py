"""The paper's measures as pure functions on arrays (SPEC §2, §3.4).

Attention vectors ``a`` hold one value per token position (all 77 for SD); ``positions`` are the
prompt's content positions J (no start, end or padding token), see `dvdlib.tokens`.
"""

from __future__ import annotations

import numpy as np


def entropy(p: np.ndarray) -> float:
    """Shannon entropy (nats) of a distribution; ``p`` is renormalised, zeros contribute 0."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("entropy needs a non-empty 1-D vector of non-negative weights with a positive sum")
    q = p / p.sum()
    q = q[q > 0]
    return float(-(q * np.log(q)).sum())


def normalized_entropy(p: np.ndarray) -> float:
    """Entropy divided by its maximum log(n): 1 for a uniform vector, 0 for a one-hot one."""
    if len(p) < 2:
        raise ValueError("normalised entropy needs at least two tokens")
    return entropy(p) / np.log(len(p))


def _content(a: np.ndarray, positions) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"expected one attention value per token position, got shape {a.shape}")
    positions = np.asarray(positions, dtype=int)
    if positions.size < 2:
        raise ValueError("the Focus Score needs a prompt of at least two content tokens")
    return a[positions]


def peak_token(a: np.ndarray, positions) -> int:
    """The content position p = argmax_{j∈J} a_j that receives the most attention (SPEC §3.4)."""
    return int(np.asarray(positions)[np.argmax(_content(a, positions))])


def focus_score(a: np.ndarray, positions, *, others: str = "mean", normalise: bool = True) -> float:
    """Focus Score at one layer (SPEC §3.4; the formula is open, this is the documented default).

    FS = (a_p − mean_{j∈J, j≠p} a_j) / (H(q) / log|J|), with p the peak token and q the attention
    restricted to J and renormalised. ``others="median"`` contrasts the peak with the median of the
    other tokens instead; ``normalise=False`` drops the entropy normalisation.
    """
    a_j = _content(a, positions)
    peak = int(np.argmax(a_j))
    rest = np.delete(a_j, peak)
    if others not in ("mean", "median"):
        raise ValueError(f"others must be 'mean' or 'median', got {others!r}")
    contrast = a_j[peak] - (rest.mean() if others == "mean" else np.median(rest))
    if not normalise:
        return float(contrast)
    spread = normalized_entropy(a_j)
    return float(contrast / spread) if spread > 0 else float("inf")
