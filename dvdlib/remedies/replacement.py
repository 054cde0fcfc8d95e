"""Replacement (paper §3.8): the dominant concept's words replaced by its category word ("Van
Gogh" → "artist", the toy world's "tower" → "landmark") and the prompt generated plainly with the
same seeds. The paper's only remedy; the others (`dvdlib.remedies`) are compared against it.

Follows the remedies' contract: ``generate`` takes the category word of each prompt's dominant
concept as ``words`` (one per prompt, or a dict concept → word; `words_for` reads them from the
world's category words with `dvdlib.replace.category_word`). The images are stored under the
*original* prompt in the remedy's store, so that every remedy of one prompt shares its key; the
judge is then asked about the category word the prompt now holds, as chapter 08 asks
(`dvdlib.replace.replaced`, ``judge_concept="word"``).
"""

from __future__ import annotations

from ..generate import pipeline_call
from ..replace import category_word, replace_concept

#: The remedy's name in its stored images' key.
NAME = "replacement"

#: images per pipeline call
BATCH = 8


def key(**params) -> dict:
    """The key of its stored images: its name and its rule (the category word, paper §3.8); the
    words are the world's, fixed for a model, so they do not key the images."""
    unknown = sorted(set(params) - {"words"})
    if unknown:
        raise TypeError(f"replacement takes only words, got {unknown}")
    return {"remedy": NAME, "word": "category"}


def applies(pipe) -> str | None:
    """Always None: replacement rewrites the prompt, which every model reads."""
    return None


def words_for(rows, world_words: dict) -> list[str]:
    """The category word of each row's dominant concept (``content``, ``content_type``), from the
    world's category words (`dvdlib.worlds.World.category_words`)."""
    return [category_word(c, t, world_words) for c, t in zip(rows["content"], rows["content_type"])]


def _per_prompt(words, dominant: list[str]) -> list[str]:
    if isinstance(words, dict):
        missing = [d for d in dominant if d not in words]
        if missing:
            raise ValueError(f"no category word for {missing}; words known: {sorted(words)}")
        return [words[d] for d in dominant]
    words = [words] * len(dominant) if isinstance(words, str) else list(words)
    if len(words) != len(dominant):
        raise ValueError(f"give one category word per prompt ({len(dominant)}), got {len(words)}")
    return words


def rewritten(prompts, dominant, words) -> list[str]:
    """Each prompt with its dominant concept replaced by its word (`dvdlib.replace.replace_concept`)."""
    prompts = list(prompts)
    dominant = [dominant] * len(prompts) if isinstance(dominant, str) else list(dominant)
    return [replace_concept(p, d, w) for p, d, w in zip(prompts, dominant, _per_prompt(words, dominant))]


def generate(pipe, prompts, seeds, sampler: dict, *, dominant, dominated=None, words=None) -> list:
    """Every prompt × seed with its dominant concept replaced by its category word (``words``),
    generated plainly from the seed's own latents; images in the order ``[(p, s) for p in prompts
    for s in seeds]``. A prompt without its concept, or a concept without a word, fails before any
    compute."""
    if words is None:
        raise ValueError("replacement needs the category word of each dominant concept (words=...)")
    after = rewritten(prompts, dominant, words)
    jobs = [(p, int(s)) for p in after for s in seeds]
    images = []
    for start in range(0, len(jobs), BATCH):
        images += pipe(**pipeline_call(pipe, jobs[start:start + BATCH], sampler)).images
    return images
