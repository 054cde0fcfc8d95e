"""The Qwen-VL judge (dvdlib.vqa; the authors' release: the judge, §2): a tiny random-weight
Qwen2-VL built from a config, with a tokenizer made here, saved and loaded back through
`QwenJudge(folder)`. Batched answers must equal one-question-at-a-time answers."""

import numpy as np
import pytest
import torch
from PIL import Image

from dvdlib.vqa import DEFAULT_JUDGE, MAX_NEW_TOKENS, QwenJudge, build_tiny_qwen2_vl

QUESTIONS = [
    "Is the Eiffel Tower visible in this image? Answer only Yes or No.",
    "Is there a mug?",
    "Does the image show a tote bag as a product? Answer only Yes or No.",
]


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def judge(request, tmp_path_factory):
    """The authors' judge family (Qwen2-VL) and the paper's (Qwen2.5-VL), tiny and random."""
    folder = build_tiny_qwen2_vl(tmp_path_factory.mktemp(request.param), family=request.param)
    return QwenJudge(folder, local_files_only=True, batch_size=64)


@pytest.fixture(scope="module")
def images():
    """Two random images of different sizes (4 and 6 image tokens), so the batch is padded."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(56, 56), (84, 56)]]


def test_loaded_through_from_pretrained(judge):
    assert isinstance(judge, pytest.importorskip("dvdlib.judge").Judge)
    assert type(judge.model).__name__ in ("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration")
    assert judge.tokenizer.padding_side == "left"
    assert judge.max_new_tokens == MAX_NEW_TOKENS == 5


def test_prompt_is_one_user_message_with_the_image_then_the_question(judge):
    assert judge.prompt("Is there a mug?") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|>Is there a mug?<|im_end|>\n<|im_start|>assistant\n")


def test_inputs_are_left_padded_with_one_image_token_per_merged_patch(judge, images):
    first, second = judge.encode_images(images)
    inputs = judge.inputs([(first, QUESTIONS[1]), (second, QUESTIONS[0])])
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4], [1, 6, 4]]
    assert inputs["mm_token_type_ids"].sum(1).tolist() == [4, 6]
    mask = inputs["attention_mask"]
    assert mask[:, -1].all() and not mask[0, 0]  # left padding: the shorter row starts with padding


def test_batched_answers_equal_one_question_at_a_time(judge, images):
    batched = judge.ask(images, QUESTIONS)  # 6 pairs in one generate call
    judge.batch_size = 4  # a chunk that straddles the two images
    chunked = judge.ask(images, QUESTIONS)
    judge.batch_size = 1  # one call per question
    single = judge.ask(images, QUESTIONS)
    judge.batch_size = 64
    assert batched == chunked == single == reference_answers(judge, images, QUESTIONS)
    assert len(batched) == 2 and all(len(a) == len(QUESTIONS) for a in batched)
    assert all(isinstance(a, str) for row in batched for a in row)
    # the fixture is not degenerate: answers depend on the image and on the question
    assert batched[0] != batched[1] and len(set(batched[0])) > 1


def reference_answers(judge, images, questions):
    """One ``generate`` call per (image, question) on raw pixels, the inputs the Qwen2-VL processor
    makes for one chat message (no cached image features, no padding)."""
    answers = []
    for image in images:
        vision = judge.image_processor(images=[image.convert("RGB")], return_tensors="pt")
        n = int(vision["image_grid_thw"].prod()) // judge.image_processor.merge_size ** 2
        row = []
        for q in questions:
            text = judge.tokenizer([judge.prompt(q).replace("<|image_pad|>", "<|image_pad|>" * n)], return_tensors="pt")
            mm = (text["input_ids"] == judge.model.config.image_token_id).int()
            with torch.inference_mode():
                out = judge.model.generate(**text, **vision, mm_token_type_ids=mm, do_sample=False, max_new_tokens=5)
            row.append(judge.tokenizer.decode(out[0, text["input_ids"].shape[1]:], skip_special_tokens=True))
        answers.append(row)
    return answers


def test_same_image_twice_gives_the_same_answers(judge, images):
    assert judge.ask([images[0], images[0]], QUESTIONS[:2]) == [judge.ask([images[0]], QUESTIONS[:2])[0]] * 2


def test_missing_weights_error_names_the_model_and_the_way_out(tmp_path):
    with pytest.raises(OSError) as e:
        QwenJudge(DEFAULT_JUDGE, local_files_only=True)
    assert DEFAULT_JUDGE in str(e.value) and "QwenJudge('DIR')" in str(e.value)
    with pytest.raises(OSError, match=r"\(no folder .*nowhere\).*QwenJudge\('DIR'\)"):
        QwenJudge(tmp_path / "nowhere", local_files_only=True)
    with pytest.raises(OSError, match="no folder"):
        QwenJudge(str(tmp_path / "nowhere"), local_files_only=True)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        QwenJudge("unused", batch_size=0)
