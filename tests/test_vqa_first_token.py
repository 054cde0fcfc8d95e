"""The judge's answers read from the first token's logits in one forward pass (`QwenJudge(answer_from=
"first-token")`) against the authors' generate-and-parse (the default; paper §2's judge): every pair
read the same, Yes or No, by both answer rules, on the tiny random-weight Qwen2-VL."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dvdlib import authors
from dvdlib.judge import is_yes
from dvdlib.vqa import QwenJudge, build_tiny_qwen2_vl, first_token_decides

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from judge_batching import QUESTIONS  # noqa: E402  (ten questions per image, paper §2)


@pytest.mark.parametrize("text, decides", [
    ("Yes", True), ("yes.", True), (" Yes", True), ("No", True), ("no", True), (" The", True), ("x", True),
    ("", False), (" ", False), ("Y", False), ("ye", False), ("\n", False),
    ("'", False),  # the project's rule strips leading punctuation: "'yes" is Yes for it, No for the authors'
    (".", False), ("'N", True)])
def test_a_first_token_decides_when_no_continuation_changes_the_reading(text, decides):
    assert first_token_decides(text) is decides
    if decides:  # then the reading of any answer it starts is the first token's
        for rest in ("", "es", "s, it is", " no", "yes"):
            assert is_yes(text + rest) == is_yes(text) and authors.is_yes(text + rest) == authors.is_yes(text)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny"))


def test_first_token_answers_read_as_the_generated_ones(folder):
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (56 + 28 * (i % 2), 56, 3), dtype=np.uint8)) for i in range(12)]
    generated = QwenJudge(folder, local_files_only=True).ask(images, QUESTIONS)
    fast = QwenJudge(folder, local_files_only=True, answer_from="first-token")
    calls, generated_by = [], fast.generated
    fast.generated = lambda pairs, max_new_tokens=None: calls.append((len(pairs), max_new_tokens)) or generated_by(
        pairs, max_new_tokens)
    first = fast.ask(images, QUESTIONS)
    pairs = [(a, b) for rows in zip(generated, first) for a, b in zip(*rows)]
    assert len(pairs) == 120
    for rule in (is_yes, authors.is_yes):
        assert [rule(a) for a, _ in pairs] == [rule(b) for _, b in pairs]
    # each answer is the generated one, or its first token where that decides the reading
    assert all(b == a or (a.startswith(b) and first_token_decides(b)) for a, b in pairs)
    # both ways are taken: every pair's one forward pass (a first token), and generation where it does not decide
    assert sum(n for n, most in calls if most == 1) == 120
    regenerated = sum(n for n, most in calls if most is None)
    assert 0 < regenerated < 120 and sum(b != a for a, b in pairs) > 0
    with pytest.raises(ValueError, match="answer_from"):
        QwenJudge(folder, local_files_only=True, answer_from="logits")
