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
    positions = np.asarray(positions)
    if positions.dtype == bool:  # a content mask (dvdlib.tokens.content_mask)
        positions = np.flatnonzero(positions)
    if positions.size < 2:
        raise ValueError("the Focus Score needs a prompt of at least two content tokens")
    return a[positions]


def peak_token(a: np.ndarray, positions) -> int:
    """The content position p = argmax_{j∈J} a_j that receives the most attention (SPEC §3.4)."""
    positions = np.asarray(positions)
    if positions.dtype == bool:
        positions = np.flatnonzero(positions)
    return int(positions[np.argmax(_content(a, positions))])


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


def dvd_score(concept_yes: int, object_yes: int, questions: int = 5) -> float:
    """DvD Score of one image (SPEC §2): c · (5 − n) / 25 · 100, in [0, 100].

    ``concept_yes`` (c) and ``object_yes`` (n) are the judge's Yes counts over the five questions
    about the dominant concept and the five about the object: 100 when the concept is fully there
    and the object fully gone, 0 when the concept is absent or the object fully present.
    """
    for name, count in (("concept_yes", concept_yes), ("object_yes", object_yes)):
        if not 0 <= count <= questions:
            raise ValueError(f"{name} must be a Yes count between 0 and {questions}, got {count}")
    return concept_yes * (questions - object_yes) / questions**2 * 100


def is_dvd_image(score: float, tau: float = 48.0) -> bool:
    """An image shows generative collapse when its DvD Score reaches τ (SPEC §2; open, default 48)."""
    return score >= tau


def meets_inclusion(scores, tau: float = 48.0, min_images: int = 7) -> bool:
    """A candidate prompt enters DominanceBench when ≥ ``min_images`` of its images are DvD images
    (SPEC §2: 7 of 10, with SD 1.4)."""
    return sum(is_dvd_image(s, tau) for s in scores) >= min_images
