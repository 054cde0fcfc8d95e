"""Concept -> token positions, as the authors' release reads them.

Index 0 of an encoded prompt is the start token, then the prompt's own tokens, then one end
token, then padding (SD 1.x pads with the end-token id 49407, SD 2.x with id 0, "!"). A concept
("van gogh", "carry-all pouch", "spider-man") maps to the *span* of positions whose tokens spell
it. Matching is done on characters and mapped to tokens through the tokenizer's offsets, so any
Hugging Face tokenizer with offsets works (CLIP BPE, BERT WordPiece, ...). A concept that cannot
be found is an error naming the prompt and the concept, never a silent zero.
"""
from __future__ import annotations

import re
import unicodedata
from importlib.resources import files

import numpy as np

from .family import of

#: Characters allowed between two words of a concept in the prompt ("nothing" is allowed too):
#: whitespace, hyphens/dashes, underscore, period, apostrophes.
_SEP = r"[\s\-\u2010-\u2014_.'\u2019]*"
#: Allowed after the last word: a plural ("s"/"es"), then a possessive ("'s", "’s", "'").
_PLURAL = r"(?:e?s)?"
_POSSESSIVE = r"(?:['\u2019]s?)?"
_NOT_ALNUM_BEFORE = r"(?<![^\W_])"
_NOT_ALNUM_AFTER = r"(?![^\W_])"


class ConceptNotFound(ValueError):
    """A concept does not occur (within the truncation limit) in a tokenized prompt."""


class BlankText(ValueError):
    """A prompt or concept with too little to read: blank, no letters or digits, or (a prompt) too
    few tokens for the Focus Score."""


class UnknownWords(ConceptNotFound):
    """A concept's words are outside the tokenizer's vocabulary: the model sees its unknown token."""


def check_text(prompt: str, concepts=()) -> None:
    """Refuse a blank prompt or a concept with no letters or digits (`BlankText`), before any
    model is loaded."""
    if not prompt.strip():
        raise BlankText("the prompt is empty: give a prompt of at least two words, e.g. \"a red mug\"")
    for concept in concepts:
        _concept_pattern(concept)  # raises BlankText for a concept without letters or digits


def clip_tokenizer(pad: str = "eos"):
    """The packaged CLIP BPE tokenizer of SD 1.x/2.x (as in the authors' release), model_max_length 77.

    ``pad="eos"``: SD 1.x, pads with <|endoftext|> (49407); ``pad="zero"``: SD 2.x, pads with "!" (0).
    """
    from transformers import CLIPTokenizer

    pad_tokens = {"eos": "<|endoftext|>", "zero": "!"}
    if pad not in pad_tokens:
        raise ValueError(f"pad must be 'eos' (SD 1.x) or 'zero' (SD 2.x), got {pad!r}")
    folder = files("dvdlib") / "data" / "clip_tokenizer"
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                         model_max_length=77, pad_token=pad_tokens[pad])


def _content_tokens(tokenizer, prompt: str) -> list[tuple[int, int, int]]:
    """(position, char_start, char_end) of each content token, from an unpadded, truncated encoding."""
    enc = tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length,
                    return_offsets_mapping=True, return_special_tokens_mask=True)
    return [(i, s, e) for i, ((s, e), special) in
            enumerate(zip(enc["offset_mapping"], enc["special_tokens_mask"])) if not special]


def content_positions(tokenizer, prompt: str) -> list[int]:
    """Positions of the prompt's own tokens in the padded sequence: no start, end or padding.

    Truncation at ``model_max_length`` is respected (a 77-token CLIP sequence holds at most 75
    content tokens). Independent of the pad id (paper §3.4: the content positions J).
    """
    return [i for i, _, _ in _content_tokens(tokenizer, prompt)]


def content_mask(tokenizer, prompt: str) -> np.ndarray:
    """Boolean mask of length ``model_max_length``, True at :func:`content_positions`."""
    mask = np.zeros(tokenizer.model_max_length, dtype=bool)
    mask[content_positions(tokenizer, prompt)] = True
    return mask


def token_strings(tokenizer, prompt: str) -> list[str]:
    """The prompt text under each content position (aligned with :func:`content_positions`).

    Readable labels for plot axes; a character split over several byte-level tokens ("ß") is
    repeated for each of them.
    """
    return [prompt[s:e] for _, s, e in _content_tokens(tokenizer, prompt)]


def _fold(text: str) -> tuple[str, list[int]]:
    """Case- and accent-folded text (NFKD, combining marks dropped, casefold) and, for each of
    its characters, the index of the original character it came from."""
    out, origin = [], []
    for i, ch in enumerate(text):
        plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        for c in plain.casefold():
            out.append(c)
            origin.append(i)
    return "".join(out), origin


def _concept_pattern(concept: str) -> re.Pattern:
    """Regex for a concept: its words, separated by :data:`_SEP`, starting and ending at word
    boundaries, with an optional plural (kept in group ``core``) and possessive (outside it)."""
    words = re.findall(r"[^\W_]+", _fold(concept)[0])
    if not words:
        raise BlankText(f"concept {concept!r} has no letters or digits to match: give the concept's words "
                        "as they appear in the prompt, e.g. \"van gogh\"")
    core = _SEP.join(re.escape(w) for w in words) + _PLURAL
    return re.compile(f"{_NOT_ALNUM_BEFORE}(?P<core>{core}){_POSSESSIVE}{_NOT_ALNUM_AFTER}")


def find_concept(prompt: str, concept: str) -> tuple[int, int] | None:
    """Character range ``[start, end)`` in ``prompt`` of the first occurrence of ``concept``
    (possessive excluded), or None. Case- and accent-insensitive; concept words may be joined in
    the prompt by spaces, hyphens or nothing ("spider-man" ~ "Spider Man" ~ "Spiderman"); a
    plural "s"/"es" and a possessive "'s"/"’s"/"'" may follow the last word."""
    folded, origin = _fold(prompt)
    m = _concept_pattern(concept).search(folded)
    if m is None:
        return None
    return origin[m.start("core")], origin[m.end("core") - 1] + 1


def concept_span(tokenizer, prompt: str, concept: str) -> list[int]:
    """Positions (in the padded sequence) of the tokens that spell ``concept`` in ``prompt``.

    First occurrence, matched as in :func:`find_concept`; the span holds every token that
    overlaps the matched characters. A possessive that is a token of its own (CLIP: "'s") is
    *excluded*; a plural is included. Raises :class:`ConceptNotFound` when the concept does not
    occur or is (partly) cut off by truncation at ``model_max_length``.
    """
    where = find_concept(prompt, concept)
    if where is None:
        raise ConceptNotFound(
            f"concept {concept!r} not found in prompt {prompt!r}: no case-/accent-insensitive "
            "match at word boundaries. Fix the concept label (or the prompt) so that the "
            "concept's words appear in the prompt.")
    start, end = where
    tokens = _content_tokens(tokenizer, prompt)
    if not tokens or end > max(e for _, _, e in tokens):
        raise ConceptNotFound(
            f"concept {concept!r} in prompt {prompt!r} lies (partly) beyond the truncation limit "
            f"of {tokenizer.model_max_length} tokens, so the model never sees it. Shorten the "
            "prompt or move the concept forward.")
    return [i for i, s, e in tokens if s < end and e > start]


def _parts(tokenizer) -> list:
    """(tokenizer, length) of each part of ``tokenizer``'s sequence (one part unless `JointSequence`)."""
    return getattr(tokenizer, "parts", None) or [(tokenizer, tokenizer.model_max_length)]


def tokenizer_name(tokenizer) -> str:
    """A tokenizer as a message names it: its class, and its name or folder when it has one."""
    name = getattr(tokenizer, "name_or_path", "")
    return f"{type(tokenizer).__name__} {name!r}" if name else type(tokenizer).__name__


def unknown_tokens(tokenizer, prompt: str) -> dict[int, tuple[str, object]]:
    """Content positions whose token is the tokenizer's unknown token (a word outside its
    vocabulary: T5's ``<unk>``), each with the prompt text it stands for and the tokenizer (the
    part of a `JointSequence`) that read it so."""
    found, start = {}, 0
    for part, length in _parts(tokenizer):
        unk = getattr(part, "unk_token_id", None)
        enc = part(prompt, truncation=True, max_length=length, return_offsets_mapping=True,
                   return_special_tokens_mask=True)
        rows = enumerate(zip(enc["input_ids"][:length], enc["offset_mapping"], enc["special_tokens_mask"]))
        found.update({start + i: (prompt[s:e], part) for i, (token, (s, e), special) in rows
                      if unk is not None and token == unk and not special})
        start += length
    return found


def known_span(tokenizer, prompt: str, concept: str) -> list[int]:
    """`concept_span`, refusing (`UnknownWords`) a concept any of whose tokens is the tokenizer's
    unknown token: the model cannot tell such a word from any other unknown one."""
    span = concept_span(tokenizer, prompt, concept)
    everywhere = unknown_tokens(tokenizer, prompt)
    unknown = [everywhere[i] for i in span if i in everywhere]
    if unknown:
        words, part = list(dict.fromkeys(repr(word) for word, _ in unknown)), unknown[0][1]
        raise UnknownWords(
            f"concept {concept!r}: {', '.join(words)} {'is' if len(words) == 1 else 'are'} outside the vocabulary of "
            f"the model's tokenizer ({tokenizer_name(part)}), which reads {'it' if len(words) == 1 else 'them'} as its "
            f"unknown token {part.unk_token!r}; use words that tokenizer knows.")
    return span


class JointSequence:
    """The text sequence a joint-attention model's image tokens attend to, read as one tokenizer
    (SD3: 77 CLIP positions, then the T5 tokens): ``parts`` are (tokenizer, length) laid end to
    end, each padded to its length. `content_positions`, `concept_span` and `token_strings` work on
    it as on one tokenizer; a concept's span holds its tokens in every part."""

    def __init__(self, parts):
        self.parts = [(tokenizer, int(length)) for tokenizer, length in parts]
        self.model_max_length = sum(length for _, length in self.parts)

    def __call__(self, prompt: str, truncation=True, max_length=None, return_offsets_mapping=True,
                 return_special_tokens_mask=True, **_):
        offsets, special = [], []
        for tokenizer, length in self.parts:
            enc = tokenizer(prompt, truncation=True, max_length=length, return_offsets_mapping=True,
                            return_special_tokens_mask=True)
            found = [tuple(o) for o in enc["offset_mapping"]][:length]
            offsets += found + [(0, 0)] * (length - len(found))
            special += list(enc["special_tokens_mask"])[:length] + [1] * (length - len(found))
        return {"offset_mapping": offsets, "special_tokens_mask": special}

    def part_of(self, position: int) -> int:
        """Which part (0: the first tokenizer's) a position of the joint sequence belongs to."""
        start = 0
        for i, (_, length) in enumerate(self.parts):
            if position < start + length:
                return i
            start += length
        raise IndexError(f"position {position} beyond the sequence of {self.model_max_length}")


def concept_spans(tokenizer, prompt: str, concepts: dict) -> dict:
    """`concept_span` of each of ``concepts`` (key → words) in ``prompt``, by key."""
    return {k: concept_span(tokenizer, prompt, words) for k, words in concepts.items()}


def sequence_tokenizer(pipe):
    """The tokenizer whose positions are those of the text sequence ``pipe``'s attention sees
    (SD, SDXL: the CLIP tokenizer; SD3: CLIP then T5, `JointSequence`), from its adapter."""
    return of(pipe).sequence_tokenizer(pipe)


#: Words of the tiny T5 tokenizer's vocabulary (the tests' and the book's example prompts).
TINY_T5_WORDS = ("a photo of the and with in on an neuschwanstein castle coaster van gogh starry night notebook cat "
                 "dog mug tower ball robot pouch carry all spider man s").split()


def tiny_t5_tokenizer(max_length: int = 256):
    """A small word-level stand-in for T5's SentencePiece tokenizer, built offline: lower-cased
    words and punctuation, ``</s>`` appended, ``<pad>`` padding, unknown words ``<unk>`` (one token
    each, with offsets). The real T5 tokenizer splits words into pieces; its spans are not tested
    offline."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in [*TINY_T5_WORDS, *"!\"'(),-.:;?"]:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                   model_max_length=max_length, name_or_path="tiny-t5")
