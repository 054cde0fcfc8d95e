"""The outcome of an intervened generation: mitigated, unchanged or corrupted (paper §3.6).

The paper sorts each prompt's ablated generation into *mitigated* (both concepts present / the
memorized image no longer reproduced), *unchanged* and *corrupted/other*, without publishing the
rules. This module fixes them, every threshold a named parameter with a documented default.

**DominanceBench prompts** (`DvDRule`, from the judge's Yes counts of paper §2: ``c`` of the five
concept questions, ``n`` of the five object questions; per prompt, the means over its seeds):

1. *unchanged* — still collapsed: mean DvD ≥ τ (this book's default 48; the paper uses a τ but gives no value);
2. *mitigated* — both concepts present: mean c ≥ ``concept_min`` and mean n ≥ ``object_min``
   (default 3 of 5 each, a majority of the questions);
3. *corrupted* — anything else (the dominant concept gone too, or nothing recognisable).

With the defaults 1 and 2 cannot both hold for one image (c ≥ 3 and n ≥ 3 give DvD ≤ 40 < 48);
where custom thresholds or means over seeds make them overlap, *unchanged* wins.

**Memorized prompts** (`MemorizedRule`): memorized = the prompt's images reproduce across seeds
(paper §3.6, open). Its images are embedded (`pixel_embedding`: downsampled, mean-centred,
unit-length pixels, so that their cosine is the Pearson correlation of the pixels; or CLIP image
embeddings, `clip_embedding`) and the mean pairwise cosine similarity over seeds is compared
before and after the intervention:

0. *not memorized* — the plain images already fall below the threshold: this model does not
   reproduce the prompt, so no intervention can mitigate it (kept out of the rates);
1. *corrupted* — the intervened images are blank (mean per-image pixel standard deviation below
   ``blank_std``);
2. *mitigated* — the similarity drops below ``threshold`` (default 0.5);
3. *unchanged* — otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

MITIGATED, UNCHANGED, CORRUPTED, NOT_MEMORIZED = "mitigated", "unchanged", "corrupted", "not memorized"
#: The three outcomes of paper §3.6, best first (the order `dvdlib.ablation` aggregates by).
OUTCOMES = (MITIGATED, UNCHANGED, CORRUPTED)


@dataclass(frozen=True)
class DvDRule:
    """Thresholds of the DominanceBench outcome (paper §2, §3.6; open, defaults documented above)."""

    tau: float = 48.0  # still collapsed: mean DvD ≥ τ (paper §2's DvD-image threshold)
    concept_min: float = 3.0  # concept present: mean Yes count of the 5 concept questions ≥ this
    object_min: float = 3.0  # object present: mean Yes count of the 5 object questions ≥ this

    def __post_init__(self):
        for name in ("concept_min", "object_min"):
            if not 0 <= getattr(self, name) <= 5:
                raise ValueError(f"{name} is a Yes count out of 5 questions; got {getattr(self, name)}")
        if not 0 <= self.tau <= 100:
            raise ValueError(f"tau is a DvD Score in [0, 100]; got {self.tau}")


def dvd_outcome(c: float, n: float, dvd: float, rule: DvDRule = DvDRule()) -> str:
    """Outcome from (mean) Yes counts ``c`` (concept), ``n`` (object) and (mean) DvD Score."""
    if dvd >= rule.tau:
        return UNCHANGED
    if c >= rule.concept_min and n >= rule.object_min:
        return MITIGATED
    return CORRUPTED


def dvd_outcomes(images: pd.DataFrame, rule: DvDRule = DvDRule(), by: Sequence[str] = ("case_num",)) -> pd.DataFrame:
    """Per prompt (rows grouped by ``by``): mean c, n and DvD over its images and the outcome.

    ``images`` is `dvdlib.dvd.judge_images`' table (columns ``c``, ``n``, ``dvd`` and ``by``).
    """
    missing = [col for col in (*by, "c", "n", "dvd") if col not in images.columns]
    if missing:
        raise ValueError(f"judged-images table lacks column(s) {missing}: pass dvdlib.dvd.judge_images' output")
    table = images.groupby(list(by), sort=False).agg(c=("c", "mean"), n=("n", "mean"), dvd=("dvd", "mean"),
                                                       images=("dvd", "size")).reset_index()
    table["outcome"] = [dvd_outcome(r.c, r.n, r.dvd, rule) for r in table.itertuples()]
    return table


# --- memorized prompts ---------------------------------------------------------------------------


def _pixels(image, size: int | None, grey: bool) -> np.ndarray:
    """An image (PIL or array [H, W(, 3)] in [0, 255] or [0, 1]) as float pixels in [0, 1],
    resized to ``size``² (None: as it is)."""
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = np.clip(np.round(array * 255 if array.max() <= 1 else array), 0, 255).astype(np.uint8)
        image = Image.fromarray(array)
    image = image.convert("L" if grey else "RGB")
    if size is not None:
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.float64) / 255


def pixel_embedding(images: Sequence, size: int = 32, grey: bool = False) -> np.ndarray:
    """Offline image embedding [images, d]: pixels downsampled to ``size``², mean-centred, unit length.

    The cosine of two such vectors is the Pearson correlation of the downsampled pixels: 1 for
    the same picture (also brighter or with more contrast), about 0 for unrelated ones. A flat
    image has no pattern to compare and embeds as the zero vector (cosine 0 with anything).
    """
    rows = []
    for image in images:
        v = _pixels(image, size, grey).ravel()
        v = v - v.mean()
        norm = np.linalg.norm(v)
        rows.append(v / norm if norm > 1e-8 else np.zeros_like(v))
    return np.stack(rows)


def clip_embedding(model: str, device: str = "cpu") -> Callable[[Sequence], np.ndarray]:
    """An embedding function with CLIP image features, unit length (``model``: what
    `dvdlib.clip.load_clip` takes — a Hub id or folder, e.g. ``openai/clip-vit-large-patch14``,
    or ``"tiny:clip"``)."""
    from .clip import embed as clip_features
    from .clip import load_clip

    encoder, processor = load_clip(model, device=device)

    def embed(images: Sequence) -> np.ndarray:
        pil = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im)) for im in images]
        features = clip_features(pil, encoder, processor).astype(np.float64)
        return features / np.linalg.norm(features, axis=1, keepdims=True)

    embed.__name__ = f"clip:{model}"
    return embed


def embedding(similarity: str | Callable = "pixels", device: str = "cpu") -> Callable[[Sequence], np.ndarray]:
    """The embedding a memorized-outcome ``similarity`` names: ``"pixels"`` (`pixel_embedding`,
    offline), ``"clip:<id or folder>"`` (`clip_embedding`), or a callable images → [n, d]."""
    if callable(similarity):
        return similarity
    if similarity == "pixels":
        return pixel_embedding
    if isinstance(similarity, str) and similarity.startswith("clip:"):
        return clip_embedding(similarity[len("clip:"):], device)
    raise ValueError(f"unknown similarity {similarity!r}: use 'pixels', 'clip:<model id or folder>' or a function")


def mean_pairwise_similarity(images: Sequence, embed: Callable[[Sequence], np.ndarray] = pixel_embedding) -> float:
    """Mean cosine similarity over all pairs of ``images`` (a prompt's images across seeds)."""
    if len(images) < 2:
        raise ValueError(f"similarity across seeds needs at least two images (seeds), got {len(images)}")
    vectors = np.asarray(embed(images), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 1e-12)
    return float(np.mean([unit[i] @ unit[j] for i, j in combinations(range(len(unit)), 2)]))


def pixel_spread(images: Sequence) -> float:
    """Mean over images of the standard deviation of their pixels in [0, 1] (≈ 0 for a blank image)."""
    return float(np.mean([_pixels(im, None, grey=False).std() for im in images]))


@dataclass(frozen=True)
class MemorizedRule:
    """Thresholds of the memorized-prompt outcome (paper §3.6, open; defaults documented above)."""

    threshold: float = 0.5  # reproduced: mean pairwise similarity across seeds ≥ this
    blank_std: float = 0.02  # corrupted: mean per-image pixel standard deviation below this

    def __post_init__(self):
        if not -1 <= self.threshold <= 1:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1]; got {self.threshold}")
        if self.blank_std < 0:
            raise ValueError(f"blank_std must be ≥ 0; got {self.blank_std}")


def memorized_outcome(before: float | None, after: float, spread: float, rule: MemorizedRule = MemorizedRule()) -> str:
    """Outcome from the similarity across seeds ``before`` / ``after`` the intervention and the
    intervened images' `pixel_spread`; ``before=None`` skips the check that the plain images reproduce."""
    if before is not None and before < rule.threshold:
        return NOT_MEMORIZED
    if spread < rule.blank_std:
        return CORRUPTED
    return MITIGATED if after < rule.threshold else UNCHANGED
