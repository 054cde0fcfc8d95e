"""The Qwen-VL judge: a `dvdlib.judge.Judge` answered by Qwen2-VL / Qwen2.5-VL (the authors' release: the judge, §2).

``QwenJudge()`` loads the authors' released judge ``Qwen/Qwen2-VL-2B-Instruct`` (`DEFAULT_JUDGE`);
``QwenJudge(QWEN25_JUDGE)`` the Qwen2.5-VL the paper's text names; any Hub id or local folder of
either family works. Each (image, question) pair is its own chat message (the image, then the
question), answered by greedy decoding with at most 5 new tokens; only the new tokens are decoded
and the answer is kept verbatim (`dvdlib.judge.is_yes` reads it). Pairs are batched: all questions
of an image and several images go into one ``generate`` call, ``batch_size`` pairs at a time, with
left padding (the attention mask and Qwen's 3-D rotary positions skip the padding), so a batched
answer equals the one-question-at-a-time answer (tests/test_vqa.py). Each image goes through the
vision tower once per `ask`, however many questions it is asked: its features are handed to
``generate`` (``mm_encoder_outputs``) in place of its pixels, for every question.

The inputs are built from the checkpoint's tokenizer and image processor, not its ``AutoProcessor``:
in transformers 5 the Qwen2-VL processor also builds a video processor, which needs torchvision,
which this project does not install. What is built is what the processor builds for one image and
one question: the chat template's text with ``<|image_pad|>`` repeated once per merged image patch,
``image_grid_thw``, ``pixel_values`` and ``mm_token_type_ids`` (1 on image tokens); the test checks
the answers against ``generate`` on those pixel inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .progress import quiet

#: The judge of the authors' release.
DEFAULT_JUDGE = "Qwen/Qwen2-VL-2B-Instruct"
#: The judge the paper's text names, an option.
QWEN25_JUDGE = "Qwen/Qwen2.5-VL-3B-Instruct"
#: At most this many new tokens per answer, as in the authors' release.
MAX_NEW_TOKENS = 5
#: (Image, question) pairs per ``generate`` call (`QwenJudge`'s default; `dvdlib.plan` prices the
#: judge's calls at this size). 20 pairs are two images' ten questions (paper §2).
BATCH_SIZE = 20
#: How an answer is read: "generate", the authors' release (greedy decoding of up to
#: `MAX_NEW_TOKENS` tokens, the text kept verbatim; the default), or "first-token": one forward
#: pass, the answer's first token (the argmax of its logits, greedy decoding's first step), kept
#: where it alone decides the Yes/No reading (`first_token_decides`), the pair generated as the
#: authors do where it does not. Both give every pair the same Yes/No reading (tests/test_vqa_first_token.py);
#: "first-token" keeps only the first token of a decided answer's text.
ANSWER_FROM = ("generate", "first-token")

#: Qwen2-VL's chat template (the one Qwen2.5-VL also ships), reduced to text and images; used when a
#: checkpoint's tokenizer carries no template of its own.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class QwenJudge:
    """Yes/no answers from a Qwen2-VL or Qwen2.5-VL checkpoint (paper §2; the authors' release), a `Judge`.

    ``model``: Hub id or local folder (``config.json``, weights, tokenizer files,
    ``preprocessor_config.json``), or ``"random:qwen2-vl-2b"``: the released judge's architecture
    with random weights (`build_random_qwen2_vl`, for speed measurements). ``dtype``: torch dtype,
    its name or "auto" (the checkpoint's); None gives float32 on the CPU and bfloat16 elsewhere.
    ``batch_size``: (image, question) pairs per ``generate`` call (1: one call per question).
    ``pixel_limits``: (min, max) pixels of the image processor's resize (None: the checkpoint's; the
    authors' are `dvdlib.authors.PIXEL_LIMITS`).
    ``local_files_only``: never reach the Hub.
    ``answer_from``: "generate" (the authors' generate-and-parse, the default) or "first-token"
    (`ANSWER_FROM`: the first token's logits in one forward pass where they decide the answer).
    A checkpoint that cannot be loaded (offline, no such folder) raises one `OSError` naming it and
    saying how to pass a folder.
    """

    def __init__(self, model: str | Path = DEFAULT_JUDGE, *, dtype: str | torch.dtype | None = None,
                 device: str | torch.device = "cpu", batch_size: int = BATCH_SIZE, max_new_tokens: int = MAX_NEW_TOKENS,
                 local_files_only: bool = False, pixel_limits: tuple[int, int] | None = None,
                 answer_from: str = "generate"):
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if answer_from not in ANSWER_FROM:
            raise ValueError(f"answer_from must be one of {ANSWER_FROM}, got {answer_from!r}")
        self.answer_from = answer_from
        self.name, self.device = str(model), torch.device(device)
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        if dtype is None:
            dtype = torch.float32 if self.device.type == "cpu" else torch.bfloat16
        dtype = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
        limits = dict(zip(("min_pixels", "max_pixels"), pixel_limits)) if pixel_limits else {}
        try:
            if self.name.startswith("random:"):
                self.tokenizer, self.image_processor, self.model = build_random_qwen2_vl(
                    self.name.split(":", 1)[1], dtype=dtype, device=self.device, **limits)
            else:
                with quiet():  # no "Loading weights" bar in a chapter's output
                    self.tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=local_files_only)
                    self.image_processor = AutoImageProcessor.from_pretrained(
                        model, local_files_only=local_files_only, **limits)
                    self.model = AutoModelForImageTextToText.from_pretrained(
                        model, dtype=dtype, local_files_only=local_files_only).to(self.device).eval()
        except (OSError, ValueError) as e:
            local = _looks_local(model)
            why = (f"no folder {self.name}" if local and not Path(model).is_dir()
                   else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            raise OSError(
                f"cannot load the VQA judge {self.name!r} ({why}). Offline, download it where the Hub is "
                f"reachable (`hf download {DEFAULT_JUDGE if local else self.name} --local-dir DIR`) and pass "
                f"the folder: QwenJudge('DIR')") from e
        self.tokenizer.padding_side = "left"
        self.image_token = self.tokenizer.convert_ids_to_tokens(self.model.config.image_token_id)

    def prompt(self, question: str) -> str:
        """The chat text of one user message holding the image, then ``question`` (paper §2)."""
        message = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        template = None if self.tokenizer.chat_template else QWEN_CHAT_TEMPLATE
        return self.tokenizer.apply_chat_template(message, chat_template=template, tokenize=False,
                                                  add_generation_prompt=True)

    @torch.inference_mode()
    def encode_images(self, images: Sequence) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each image through the image processor and the vision tower once: (its image-token
        features, its ``image_grid_thw``). The tower sees each image on its own, so features are
        the same whether an image is encoded alone or with others."""
        vision = self.image_processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        grid = vision["image_grid_thw"].to(self.device)
        features = self.model.get_image_features(vision["pixel_values"].to(self.device), grid).pooler_output
        return list(zip(features, grid))

    def inputs(self, pairs: Sequence[tuple]) -> dict:
        """``generate`` inputs for (encoded image, question) pairs, left-padded: the token ids,
        attention mask, ``image_grid_thw`` and ``mm_token_type_ids`` the Qwen2-VL processor makes for
        (image, question) chat messages, and the image features in place of the pixels."""
        merge = self.image_processor.merge_size ** 2
        texts = [self.prompt(q).replace(self.image_token, self.image_token * int(thw.prod() // merge), 1)
                 for (_, thw), q in pairs]
        text = self.tokenizer(texts, padding=True, return_tensors="pt").to(self.device)
        return {**text, "image_grid_thw": torch.stack([thw for (_, thw), _ in pairs]),
                "mm_token_type_ids": (text["input_ids"] == self.model.config.image_token_id).int(),
                "mm_encoder_outputs": {"image": BaseModelOutputWithPooling(
                    pooler_output=tuple(features for (features, _), _ in pairs))}}

    @torch.inference_mode()
    def answer(self, pairs: Sequence[tuple]) -> list[str]:
        """The pairs' answers, read as ``answer_from`` says: `generated`, or (``"first-token"``) the
        `first_tokens` of one forward pass where they decide the Yes/No reading and `generated`
        answers for the others."""
        if self.answer_from == "generate":
            return self.generated(pairs)
        first = self.first_tokens(pairs)
        undecided = [i for i, text in enumerate(first) if not first_token_decides(text)]
        for i, text in zip(undecided, self.generated([pairs[i] for i in undecided]) if undecided else []):
            first[i] = text
        return first

    def generated(self, pairs: Sequence[tuple], max_new_tokens: int | None = None) -> list[str]:
        """One ``generate`` call for the pairs: greedy, ≤ ``max_new_tokens`` (default the judge's), new
        tokens decoded verbatim (the authors' release). Plain argmax: sampling settings and a repetition
        penalty in a checkpoint's ``generation_config.json`` are overridden."""
        inputs = self.inputs(pairs)
        out = self.model.generate(**inputs, do_sample=False, repetition_penalty=1.0,
                                  max_new_tokens=max_new_tokens or self.max_new_tokens,
                                  pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def first_tokens(self, pairs: Sequence[tuple]) -> list[str]:
        """Each answer's first token, decoded: the argmax of the first step's logits, one forward pass
        over the prompts (greedy decoding's first step, so the same token `generated` starts with)."""
        return self.generated(pairs, max_new_tokens=1)

    def ask(self, images: Sequence, questions: Sequence[str]) -> list[list[str]]:
        """Every question of every image (paper §2), ``batch_size`` pairs per call, image-major; each
        image is encoded once (`encode_images`), when its first pair comes up. Answers per image,
        in order."""
        pairs = [(i, q) for i in range(len(images)) for q in questions]
        encoded, flat = {}, []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            encoded = {i: encoded[i] for i, _ in chunk if i in encoded}  # drop images already answered
            todo = sorted({i for i, _ in chunk} - set(encoded))
            if todo:
                encoded.update(zip(todo, self.encode_images([images[i] for i in todo])))
            flat += self.answer([(encoded[i], q) for i, q in chunk])
        return [flat[i * len(questions):(i + 1) * len(questions)] for i in range(len(images))]


def first_token_decides(text: str) -> bool:
    """Whether an answer beginning with ``text`` is read the same, Yes or No, whatever follows it, by
    both answer rules (`dvdlib.metrics.is_yes`, `dvdlib.authors.is_yes`): "Yes" and "No" do; "", " ",
    "Y" and "Ye" do not (a "yes" may still follow), nor "'" (Yes for one rule if "yes" follows)."""
    from .authors import is_yes as authors_yes
    from .metrics import is_yes

    return all(len({rule(text + rest) for rest in ("yes", "es", "s", "", "x")}) == 1 for rule in (is_yes, authors_yes))


def build_tiny_qwen2_vl(folder: str | Path, seed: int = 0, hidden_size: int = 64, layers: int = 2,
                        family: str = "qwen2_vl") -> Path:
    """Save a tiny random-weight Qwen2-VL (``family="qwen2_5_vl"``: Qwen2.5-VL) to ``folder`` for
    tests and benchmarks, offline: 2 text layers of width 64 (4 heads), a vision tower of width 32
    (Qwen2-VL: 1 block; Qwen2.5-VL: 2 blocks, one windowed; 14-px patches, 2×2 merge), a byte-level
    BPE tokenizer of the 256 byte symbols plus Qwen's special tokens and chat template, and the
    Qwen2-VL image processor (both families use it). Weights are drawn with std 0.2 (not the usual
    0.02, under which every answer is the same few tokens) so that answers change with the image and
    the question. Answers are arbitrary tokens (deterministic under greedy decoding): the model has
    the real judge's architecture, files and loading path, not its knowledge."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration)
    from safetensors.torch import save_model
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    folder = Path(folder)
    tokenizer, ids, tokens = _byte_tokenizer()
    heads, std = 4, 0.2
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads // 2,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                 "mrope_section": _mrope_section(hidden_size // heads)},
                bos_token_id=tokenizer.pad_token_id, eos_token_id=ids["<|im_end|>"],
                pad_token_id=tokenizer.pad_token_id, initializer_range=std)
    if family == "qwen2_vl":
        vision = dict(depth=1, embed_dim=32, hidden_size=hidden_size, num_heads=2, mlp_ratio=2)
        config_class, model_class = Qwen2VLConfig, Qwen2VLForConditionalGeneration
    elif family == "qwen2_5_vl":
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden_size,
                      window_size=56, fullatt_block_indexes=[1])
        config_class, model_class = Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    else:
        raise ValueError(f"family must be 'qwen2_vl' or 'qwen2_5_vl', got {family!r}")
    config = config_class(text_config=text, vision_config={**vision, "initializer_range": std},
                          initializer_range=std, **tokens)
    torch.manual_seed(seed)
    model = model_class(config)
    # written by hand, not by `save_pretrained`, which writes no weights on a torch.distributed rank
    # other than 0 (the processes of `dvd prefetch` share a store and any of them may build this)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(folder)
    Qwen2VLImageProcessorPil().save_pretrained(folder)
    return folder


#: Released judges whose architecture ships with dvdlib (``dvdlib/configs``), for ``random:<name>``.
RANDOM_ARCHITECTURES = {"qwen2-vl-2b": "qwen2_vl_2b"}


def build_random_qwen2_vl(name: str = "qwen2-vl-2b", *, dtype=torch.bfloat16, device="cpu", seed: int = 0,
                          **pixel_limits):
    """(tokenizer, image processor, model): a released judge's architecture (``name`` in
    `RANDOM_ARCHITECTURES`, e.g. Qwen2-VL-2B-Instruct's 2.2 B parameters) with random weights,
    built on ``device``, for speed measurements offline (speed does not depend on the weights).
    The tokenizer is byte-level (`build_tiny_qwen2_vl`'s), so a question takes about 4× the tokens
    of Qwen's BPE: the text part of the prompt is longer than the real judge's, the image part
    (≈ 324 tokens for 512² under the default pixel limits) the same."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if name not in RANDOM_ARCHITECTURES:
        raise ValueError(f"no shipped architecture {name!r}; known: {', '.join(RANDOM_ARCHITECTURES)}")
    architecture = json.loads((Path(__file__).parent / "configs" / f"{RANDOM_ARCHITECTURES[name]}.json")
                              .read_text(encoding="utf-8"))
    tokenizer, ids, tokens = _byte_tokenizer()
    text = {**architecture["text_config"], "bos_token_id": tokenizer.pad_token_id,
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": tokenizer.pad_token_id}
    config = Qwen2VLConfig(text_config=text, vision_config=architecture["vision_config"],
                           tie_word_embeddings=architecture["tie_word_embeddings"], **tokens)
    dtype = torch.bfloat16 if dtype == "auto" else dtype
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = Qwen2VLForConditionalGeneration(config).to(dtype).eval()
    return tokenizer, Qwen2VLImageProcessorPil(**pixel_limits), model


def _byte_tokenizer():
    """A byte-level Qwen2 tokenizer (the 256 byte symbols, no merges) with Qwen's special tokens and
    chat template: (tokenizer, {special token: id}, the model config's image/video token ids)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    special = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = Qwen2Tokenizer(vocab={c: i for i, c in enumerate(bytes_to_unicode().values())}, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    ids = dict(zip(special, tokenizer.convert_tokens_to_ids(special)))
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    return tokenizer, ids, tokens


def _looks_local(model: str | Path) -> bool:
    """A path rather than a Hub id ("owner/name")."""
    text = str(model)
    return isinstance(model, Path) or text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def _mrope_section(head_dim: int) -> list[int]:
    """Qwen2-VL's split of the rotary half-dimension into (time, height, width), scaled from the
    released 16/24/24 of 64 to ``head_dim // 2``."""
    half = head_dim // 2
    t = half // 4
    return [t, (half - t) // 2, half - t - (half - t) // 2]
