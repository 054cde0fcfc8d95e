"""Prompt weighting of the dominated concept: the concept that vanishes is written up-weighted in
compel's syntax (``"a photo of a (ball)1.5 and a tower"``) and the prompt's conditioning is
weighted as the `compel` library weights it, so the UNet reads that concept's token embeddings pushed away from the
empty prompt's: row j of the conditioning becomes ``empty_j + weight · (z_j − empty_j)`` at the
concept's positions (`dvdlib.tokens.concept_span`) and stays ``z_j`` everywhere else.

Everything else is the plain generation's (`dvdlib.generate.pipeline_call`): the same initial
latents per seed, steps, guidance and eta, the unconditional side encoded from the empty prompt as
the pipeline does it.

Which pipelines it runs on (`applies`):

- SD 1.x / 2.x with a CLIP text encoder, and SDXL with its two: compel parses the weighted string
  and lays its fragments out as the tokenizer's tokens, each with its weight;
- the toy world's model (a `StableDiffusionPipeline` whose encoder is MiniLM, a BERT without CLIP's
  start and end tokens): compel's parser, with the fragments tokenized here, since compel cannot lay
  BERT's ``[CLS]``/``[SEP]`` out the way the pipeline does;
- SD3, FLUX and other families: not yet (`applies` says so).

Where it runs, the pipeline encodes the batch's prompts itself (`encode_prompt`, one call per batch as in
plain generation; SDXL's pooled embedding from the plain prompt, which compel would read as
words) and compel's rule pushes the concept's rows from the empty prompt's encoding; the
unconditional side is the pipeline's own (the empty prompt; zeros for SDXL base). A text
encoder's rows can differ in their last bits with the batch they are encoded in (some CPUs'
matrix kernels block a batch of one differently), so encoding the batch as the pipeline does is
what makes ``weight=1`` the plain image bit for bit.

Before anything is encoded, each weighted string is checked against the pipeline: the token ids
compel reads must be the pipeline's own, and the tokens it weights exactly the concept's span; a
prompt whose other words compel would read as syntax (a word ending in "-" or "+", parentheses) is
refused with the prompt named, never silently weighted elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from compel import Compel
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


def _pipeline_ids(tokenizer, prompt: str) -> list[int]:
    """The token ids the pipeline encodes ``prompt`` with (padded, truncated)."""
    return list(tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)["input_ids"])


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
    expected = _pipeline_ids(tokenizer, prompt)
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
    """One prompt's weighting: the weighted string and each token's weight."""

    prompt: str
    weighted: str
    per_token: list[float]


def compel_rule(z: torch.Tensor, empty: torch.Tensor, per_token: torch.Tensor) -> torch.Tensor:
    """compel's weighting (``EmbeddingsProvider.build_weighted_embedding_tensor``): each row pushed
    from the empty prompt's, ``empty + weight · (z − empty)``, and a weight-1 row left as ``z``."""
    weights = per_token[..., None].to(z.dtype).expand_as(z)
    return torch.where(weights == 1, z, empty + (z - empty) * weights)


class _Encoder:
    """Builds the conditioning of weighted prompts for one pipeline (see the module's list)."""

    def __init__(self, pipe):
        self.pipe, self.family = pipe, of(pipe).family
        encoders = [(pipe.tokenizer, pipe.text_encoder)]
        if self.family == "sdxl":
            encoders.append((pipe.tokenizer_2, pipe.text_encoder_2))
        self.bert = not _is_clip(pipe.tokenizer, pipe.text_encoder)
        # compel's token layout of the weighted string, one per CLIP encoder (none for BERT)
        self.providers = [] if self.bert else [EmbeddingsProvider(tokenizer=t, text_encoder=e, truncate=True)
                                               for t, e in encoders]

    def plan(self, prompt: str, concept: str, weight: float) -> _Plan:
        """The weighted string of ``prompt``, checked against the pipeline's tokens (no encoding)."""
        weighted = weighted_prompt(prompt, concept, weight)
        fragments, weights = _fragments(weighted)
        if self.bert:
            tokenizer = self.pipe.tokenizer
            ids, per_token = _bert_expand(tokenizer, fragments, weights)
            _check_layout(prompt, concept, weighted, tokenizer, ids, per_token, weight)
            return _Plan(prompt, weighted, per_token)
        layouts = []
        for provider in self.providers:
            ids, per_token, _ = provider.get_token_ids_and_expand_weights(fragments, weights, device="cpu")
            _check_layout(prompt, concept, weighted, provider.tokenizer, ids.tolist(), per_token.tolist(), weight)
            layouts.append(per_token.tolist())
        if any(layout != layouts[0] for layout in layouts):  # SDXL's two encoders' rows are concatenated
            raise ValueError(f"the pipeline's tokenizers place {concept!r} of {prompt!r} at different tokens, so one "
                             "weight per row cannot weight it in both encoders")
        return _Plan(prompt, weighted, layouts[0])

    @torch.no_grad()
    def conditioning(self, plans: list[_Plan]) -> dict:
        """The pipeline-call keywords that carry the prompts' conditioning."""
        prompts, device = [p.prompt for p in plans], self.pipe.text_encoder.device
        if self.family == "sdxl":
            z, _, pooled, _ = self.pipe.encode_prompt(prompts, device=device, do_classifier_free_guidance=False)
            empty = self.pipe.encode_prompt([""] * len(plans), device=device, do_classifier_free_guidance=False)[0]
            keywords = {"pooled_prompt_embeds": pooled}
        else:
            z, empty = self.pipe.encode_prompt(prompts, device, 1, True)
            keywords = {"negative_prompt_embeds": empty}
        per_token = torch.tensor([p.per_token for p in plans], dtype=torch.float32, device=z.device)
        return {"prompt_embeds": compel_rule(z, empty, per_token), **keywords}


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
