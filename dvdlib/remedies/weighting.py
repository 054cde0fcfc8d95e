"""Prompt weighting of the dominated concept: the concept that vanishes is written up-weighted in
compel's syntax (``"a photo of a (ball)1.5 and a tower"``) and the prompt's conditioning is built
with the `compel` library, so the UNet reads that concept's token embeddings pushed away from the
empty prompt's: row j of the conditioning becomes ``empty_j + weight · (z_j − empty_j)`` at the
concept's positions (`dvdlib.tokens.concept_span`) and stays ``z_j`` everywhere else.

Everything else is the plain generation's (`dvdlib.generate.pipeline_call`): the same initial
latents per seed, steps, guidance and eta, the unconditional side encoded from the empty prompt as
the pipeline does it. So ``weight=1`` gives the plain image, bit for bit.

Which pipelines it runs on (`applies`):

- SD 1.x / 2.x with a CLIP text encoder: compel parses the weighted string and encodes it with the
  pipeline's tokenizer and encoder (its last hidden states, as the pipeline reads them);
- the toy world's model (a `StableDiffusionPipeline` whose encoder is MiniLM, a BERT without CLIP's
  start and end tokens): compel's parser cannot lay BERT's ``[CLS]``/``[SEP]`` and attention mask
  out the way the pipeline does, so the weighted string's fragments are tokenized here and compel's
  lower-level `EmbeddingsProvider` encodes and weights them, with the pipeline's own token ids,
  attention mask and empty prompt;
- SDXL: compel for each of the two encoders (their penultimate hidden states, concatenated), the
  pooled embedding of the second from the plain prompt (compel would read the weighting syntax in
  it as words); the unconditional side is the pipeline's own (zeros for SDXL base);
- SD3, FLUX and other families: not yet (`applies` says so).

Before anything is encoded, each weighted string is checked against the pipeline: the token ids
compel reads must be the pipeline's own, and the tokens it weights exactly the concept's span; a
prompt whose other words compel would read as syntax (a word ending in "-" or "+", parentheses) is
refused with the prompt named, never silently weighted elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from compel import Compel, ReturnedEmbeddingsType
from compel.embeddings_provider import EmbeddingsProvider

from ..family import of
from ..generate import pipeline_call
from ..tokens import ConceptNotFound, concept_span, find_concept, sequence_tokenizer

NAME = "weighting"

#: The dominated concept's weight. compel's "ball+" is 1.1 and "ball++" 1.21; 1.5 is a clear push
#: that stays below where SD 1.5 images degrade (about 1.6, says compel's own docstring). A choice,
#: to be settled on the toy world's twin fine-tunes, never tuned on the prompts that are scored.
WEIGHT = 1.5

#: (prompt, seed) pairs per pipeline call (as `dvdlib.generate.generate`'s default batch)
BATCH = 8


def key(*, weight: float = WEIGHT) -> dict:
    """What keys this remedy's stored images: its name and weight."""
    return {"remedy": NAME, "weight": _check_weight(weight)}


def _check_weight(weight) -> float:
    weight = float(weight)
    if not math.isfinite(weight) or weight < 1:
        raise ValueError(f"weight must be a finite number ≥ 1 (1: the plain prompt), got {weight!r}; a weight "
                         "below 1 is compel's down-weighting of a concept, which changes every token, not this remedy")
    return weight


def _is_clip(tokenizer, encoder) -> bool:
    return (type(encoder).__name__ in ("CLIPTextModel", "CLIPTextModelWithProjection")
            and getattr(tokenizer, "bos_token_id", None) is not None and getattr(tokenizer, "eos_token_id", None) is not None)


def _is_bert(tokenizer, encoder) -> bool:
    return (getattr(encoder, "config", None) is not None and encoder.config.model_type == "bert"
            and getattr(tokenizer, "cls_token_id", None) is not None and getattr(tokenizer, "sep_token_id", None) is not None)


def applies(pipe) -> str | None:
    """None when the remedy runs on ``pipe``, else one sentence saying why not."""
    family = of(pipe).family
    if family == "sdxl":
        if _is_clip(pipe.tokenizer, pipe.text_encoder) and _is_clip(pipe.tokenizer_2, pipe.text_encoder_2):
            return None
        return "prompt weighting reads SDXL's two CLIP text encoders, and this pipeline has others."
    if family != "sd":
        return (f"prompt weighting is implemented for SD 1.x/2.x (a CLIP text encoder, or the toy world's BERT) "
                f"and SDXL, not yet for the {family} family.")
    tokenizer, encoder = pipe.tokenizer, getattr(pipe, "text_encoder", None)
    if encoder is None:
        return "the pipeline has no text encoder to weight the prompt with."
    if _is_clip(tokenizer, encoder) or _is_bert(tokenizer, encoder):
        return None
    return (f"prompt weighting reads a CLIP or BERT text encoder, and this pipeline's is "
            f"{type(encoder).__name__}.")


def weighted_prompt(prompt: str, concept: str, weight: float = WEIGHT) -> str:
    """``prompt`` with ``concept`` written up-weighted in compel's syntax: the concept's characters
    as the prompt spells them (`dvdlib.tokens.find_concept`: plural in, possessive out) in
    parentheses, then the weight ("a (ball)1.5 and a tower"). A concept not in the prompt is a
    `dvdlib.tokens.ConceptNotFound`."""
    weight = _check_weight(weight)
    where = find_concept(prompt, concept)
    if where is None:
        raise ConceptNotFound(
            f"concept {concept!r} not found in prompt {prompt!r}: no case-/accent-insensitive match at word "
            "boundaries, so there is nothing to weight. Fix the concept label (or the prompt).")
    start, end = where
    return f"{prompt[:start]}({prompt[start:end]}){weight!r}{prompt[end:]}"


def _fragments(weighted: str) -> tuple[list[str], list[float]]:
    """compel's reading of a weighted string: its text fragments and their weights."""
    conjunction = Compel.parse_prompt_string(weighted)
    if len(conjunction.prompts) != 1 or not hasattr(conjunction.prompts[0], "children"):
        raise ValueError(f"compel reads {weighted!r} as {conjunction}, not as one weighted prompt")
    children = conjunction.prompts[0].children
    return [c.text for c in children], [float(c.weight) for c in children]


def _pipeline_ids(tokenizer, prompt: str) -> tuple[list[int], list[int]]:
    """The token ids and attention mask the pipeline encodes ``prompt`` with (padded, truncated)."""
    enc = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)
    return list(enc["input_ids"]), list(enc["attention_mask"])


def _bert_expand(tokenizer, fragments, weights) -> tuple[list[int], list[float]]:
    """BERT's layout of compel's fragments: [CLS], each fragment's WordPiece tokens with its weight,
    [SEP], padding; truncated to the tokenizer's length as the pipeline truncates."""
    ids, per_token = [], []
    for text, weight in zip(fragments, weights):
        found = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += found
        per_token += [weight] * len(found)
    room = tokenizer.model_max_length - 2
    ids = [tokenizer.cls_token_id, *ids[:room], tokenizer.sep_token_id]
    per_token = [1.0, *per_token[:room], 1.0]
    pad = tokenizer.model_max_length - len(ids)
    return ids + [tokenizer.pad_token_id] * pad, per_token + [1.0] * pad


def _check_layout(prompt, concept, weighted, tokenizer, ids, per_token, weight) -> None:
    """Refuse a weighted string that compel does not read as the pipeline's tokens with exactly the
    concept's span weighted."""
    expected, _ = _pipeline_ids(tokenizer, prompt)
    span = set(concept_span(tokenizer, prompt, concept))
    if [int(i) for i in ids] != expected:
        raise ValueError(
            f"compel reads {weighted!r} as other tokens than the pipeline reads {prompt!r} (characters such as "
            "parentheses, quotes, or a word ending in '+' or '-' are compel's syntax), so its weighting would not "
            "be this prompt's; rephrase the prompt without them.")
    expected_weights = [weight if j in span else 1.0 for j in range(len(per_token))]
    if not all(math.isclose(w, e, rel_tol=1e-6) for w, e in zip(per_token, expected_weights)):
        raise ValueError(
            f"compel weights positions {[j for j, w in enumerate(per_token) if w != 1]} of {weighted!r}, not "
            f"exactly {concept!r}'s tokens {sorted(span)}: a word of the prompt reads as compel's syntax "
            "(e.g. ending in '+' or '-'); rephrase the prompt.")


@dataclass
class _Plan:
    """One prompt's weighting: the weighted string and, for BERT, the token ids, weights and mask."""

    prompt: str
    weighted: str
    ids: list[int] | None = None
    per_token: list[float] | None = None
    mask: list[int] | None = None


class _Encoder:
    """Builds the conditioning of weighted prompts for one pipeline (see the module's list)."""

    def __init__(self, pipe):
        self.pipe, self.family = pipe, of(pipe).family
        if self.family == "sdxl":
            penultimate = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
            self.compels = [Compel(tokenizer=t, text_encoder=e, truncate_long_prompts=True,
                                   returned_embeddings_type=penultimate)
                            for t, e in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2))]
            self.bert = False
        elif _is_clip(pipe.tokenizer, pipe.text_encoder):
            self.compels = [Compel(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, truncate_long_prompts=True)]
            self.bert = False
        else:
            self.compels, self.bert = [], True
            self.provider = _PipelineEmptyProvider(pipe)

    def plan(self, prompt: str, concept: str, weight: float) -> _Plan:
        """The weighted string of ``prompt``, checked against the pipeline's tokens (no encoding)."""
        weighted = weighted_prompt(prompt, concept, weight)
        fragments, weights = _fragments(weighted)
        if self.bert:
            tokenizer = self.pipe.tokenizer
            ids, per_token = _bert_expand(tokenizer, fragments, weights)
            _check_layout(prompt, concept, weighted, tokenizer, ids, per_token, weight)
            return _Plan(prompt, weighted, ids, per_token, _pipeline_ids(tokenizer, prompt)[1])
        for compel in self.compels:
            provider = compel.conditioning_provider
            ids, per_token, _ = provider.get_token_ids_and_expand_weights(fragments, weights, device="cpu")
            _check_layout(prompt, concept, weighted, provider.tokenizer, ids.tolist(), per_token.tolist(), weight)
        return _Plan(prompt, weighted)

    @torch.no_grad()
    def conditioning(self, plans: list[_Plan]) -> dict:
        """The pipeline-call keywords that carry the prompts' conditioning."""
        dtype = self.pipe.text_encoder.dtype
        if self.bert:
            device = self.pipe.text_encoder.device
            rows = [self.provider.build_weighted_embedding_tensor(
                torch.tensor(p.ids, device=device), torch.tensor(p.per_token, dtype=torch.float32, device=device),
                torch.tensor(p.mask, device=device), device=device) for p in plans]
            return {"prompt_embeds": torch.cat(rows).to(dtype),
                    "negative_prompt_embeds": self.provider.empty_z.expand(len(plans), -1, -1).to(dtype)}
        weighted = [p.weighted for p in plans]
        if self.family == "sdxl":
            embeds = torch.cat([compel(weighted) for compel in self.compels], dim=-1)
            pooled = self.compels[1].conditioning_provider.get_pooled_embeddings([p.prompt for p in plans])
            return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        compel = self.compels[0]
        return {"prompt_embeds": compel(weighted), "negative_prompt_embeds": compel([""] * len(plans))}


class _PipelineEmptyProvider(EmbeddingsProvider):
    """compel's embeddings provider for an encoder without CLIP's start and end tokens (BERT): the
    token ids and attention mask it encodes are the pipeline's own, and the empty prompt it weights
    against is the pipeline's encoding of "" ([CLS] [SEP], the padding masked out)."""

    def __init__(self, pipe):
        super().__init__(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder)
        self.pipe = pipe

    @property
    def empty_z(self):
        if self._empty_z is None:
            ids, mask = _pipeline_ids(self.pipe.tokenizer, "")
            device = self.pipe.text_encoder.device
            self._empty_z = self._encode_token_ids_to_embeddings(torch.tensor([ids], device=device),
                                                                 torch.tensor([mask], device=device))
        return self._empty_z


def _per_prompt(name: str, words, prompts: list[str]) -> list[str]:
    words = [words] if isinstance(words, str) else list(words)
    if len(words) != len(prompts):
        raise ValueError(f"{name}: give one concept per prompt ({len(prompts)}), got {len(words)}")
    return words


def prepare(pipe, prompts, *, dominant, dominated, weight: float = WEIGHT) -> tuple[_Encoder, list[_Plan]]:
    """The pipeline's encoder and each prompt's checked weighted string (`generate` up to the text
    encoder): raises, before any compute, for a remedy that does not apply, a concept not in its
    prompt, or a prompt compel would misread."""
    prompts = list(prompts)
    weight = _check_weight(weight)
    why_not = applies(pipe)
    if why_not:
        raise ValueError(f"prompt weighting does not apply to this pipeline: {why_not}")
    dominant, dominated = _per_prompt("dominant", dominant, prompts), _per_prompt("dominated", dominated, prompts)
    tokenizer = sequence_tokenizer(pipe)
    for prompt, concept in zip(prompts, dominant):
        concept_span(tokenizer, prompt, concept)  # the dominant concept must be in its prompt too
    encoder = _Encoder(pipe)
    return encoder, [encoder.plan(p, c, weight) for p, c in zip(prompts, dominated)]


def generate(pipe, prompts, seeds, sampler, *, dominant, dominated, weight: float = WEIGHT) -> list:
    """Every prompt × seed with its dominated concept up-weighted by ``weight`` (compel's syntax,
    "(ball)1.5"), images in the order ``[(p, s) for p in prompts for s in seeds]``, each from the
    seed's own initial latents under ``sampler`` (`dvdlib.generate.pipeline_call`); ``weight=1``
    gives the plain images."""
    prompts, seeds = list(prompts), [int(s) for s in seeds]
    encoder, checked = prepare(pipe, prompts, dominant=dominant, dominated=dominated, weight=weight)
    by_prompt = dict(zip(prompts, checked))
    jobs = [(p, s) for p in prompts for s in seeds]
    images = []
    for start in range(0, len(jobs), BATCH):
        batch = jobs[start:start + BATCH]
        call = pipeline_call(pipe, batch, sampler)
        del call["prompt"]
        call.update(encoder.conditioning([by_prompt[p] for p, _ in batch]))
        images += pipe(**call).images
    return images
