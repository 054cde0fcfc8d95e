"""The paper's measures as pure functions on arrays (paper §2, §3.4, §3.5, §3.7).

Attention vectors ``a`` hold one value per token position (all 77 for SD); ``positions`` are the
prompt's content positions J (no start, end or padding token), see `dvdlib.tokens`.
"""

from __future__ import annotations

import re

import numpy as np

_LEADING = re.compile(r"^[\W_]+")


def is_yes(answer: str) -> bool:
    """The judge's answer read as Yes or No (paper §2; `dvdlib.judge` counts it): Yes iff the answer
    starts with "yes" (case-insensitive) once leading whitespace and punctuation are stripped (the
    authors' release). "Yeah", "No", "" and anything else are No."""
    return _LEADING.sub("", answer or "").lower().startswith("yes")


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
    """The content position p = argmax_{j∈J} a_j that receives the most attention (paper §3.4)."""
    positions = np.asarray(positions)
    if positions.dtype == bool:
        positions = np.flatnonzero(positions)
    return int(positions[np.argmax(_content(a, positions))])


def focus_score(a: np.ndarray, positions, *, others: str = "mean", normalise: bool = True) -> float:
    """Focus Score at one layer (paper §3.4; the formula is open, this is the documented default).

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
    """DvD Score of one image (paper §2): c · (5 − n) / 25 · 100, in [0, 100].

    ``concept_yes`` (c) and ``object_yes`` (n) are the judge's Yes counts over the five questions
    about the dominant concept and the five about the object: 100 when the concept is fully there
    and the object fully gone, 0 when the concept is absent or the object fully present.
    """
    for name, count in (("concept_yes", concept_yes), ("object_yes", object_yes)):
        if not 0 <= count <= questions:
            raise ValueError(f"{name} must be a Yes count between 0 and {questions}, got {count}")
    return concept_yes * (questions - object_yes) / questions**2 * 100


def is_dvd_image(score: float, tau: float = 48.0) -> bool:
    """An image shows generative collapse when its DvD Score reaches τ (paper §2; open, default 48)."""
    return score >= tau


def meets_inclusion(scores, tau: float = 48.0, min_images: int = 7) -> bool:
    """A candidate prompt enters DominanceBench when ≥ ``min_images`` of its images are DvD images
    (paper §2: 7 of 10, with SD 1.4)."""
    return sum(is_dvd_image(s, tau) for s in scores) >= min_images


def attention_deviation(a: np.ndarray, positions) -> np.ndarray:
    """Attention deviation of every content token (paper §3.5; open, this is the default).

    deviation_j = a_j − mean_{k∈J} a_k for j ∈ J, returned in the order of ``positions``. Not
    entropy-normalised on purpose: the paper tracks one token's attention over the steps, and a
    normalisation by the entropy would let the other tokens move the number. ``a`` may be
    [..., tokens] (e.g. [steps, tokens]); the deviation is taken along the last axis.
    """
    a = np.asarray(a, dtype=np.float64)
    positions = np.asarray(positions)
    if positions.dtype == bool:
        positions = np.flatnonzero(positions)
    if a.ndim < 1 or positions.size < 1:
        raise ValueError("attention deviation needs attention per token position and at least one content position")
    if positions.max() >= a.shape[-1] or positions.min() < 0:
        raise ValueError(f"content positions {positions.tolist()} fall outside the {a.shape[-1]} token positions")
    content = a[..., positions]
    return content - content.mean(axis=-1, keepdims=True)


def noise_prediction_norm(eps_cond: np.ndarray, eps_uncond: np.ndarray) -> np.ndarray:
    """Text-conditional noise-prediction magnitude (Wen et al. 2024; paper §3.7), per image.

    ‖ε(x_t, prompt) − ε(x_t, "")‖₂ over the whole latent of each image: inputs [images, ...]
    (e.g. [images, 4, 64, 64]) → [images]. Large values mean the prompt pulls the prediction far
    from the unconditional one, the signature of memorized prompts.
    """
    cond, uncond = np.asarray(eps_cond, dtype=np.float64), np.asarray(eps_uncond, dtype=np.float64)
    if cond.shape != uncond.shape or cond.ndim < 2:
        raise ValueError(f"expected two noise predictions of the same shape [images, ...], got "
                         f"{cond.shape} and {uncond.shape}")
    return np.sqrt(((cond - uncond) ** 2).reshape(len(cond), -1).sum(axis=1))


def adjusted_p(p, correction: str = "bh") -> np.ndarray:
    """p-values corrected over a family of tests (the per-layer and per-pair tests of paper §3.4,
    §3.7): Benjamini–Hochberg (``"bh"``, scipy's) or Bonferroni (``"bonferroni"``)."""
    from scipy import stats

    p = np.asarray(p, dtype=float)
    if correction == "bh":
        return stats.false_discovery_control(p, method="bh")
    if correction == "bonferroni":
        return np.minimum(p * len(p), 1.0)
    raise ValueError(f"correction must be 'bh' or 'bonferroni', got {correction!r}")
