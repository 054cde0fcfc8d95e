"""Token positions, as the authors' release reads them: dvdlib.tokens, offline with the real CLIP BPE."""
import numpy as np
import pytest

from dvdlib.tokens import (ConceptNotFound, clip_tokenizer, concept_span, content_mask,
                           content_positions, find_concept, token_strings)


@pytest.fixture(scope="module")
def sd1():
    return clip_tokenizer("eos")


@pytest.fixture(scope="module")
def sd2():
    return clip_tokenizer("zero")


def span_tokens(tok, prompt, concept):
    """The BPE token strings at the concept's span (CLIP marks word ends with </w>)."""
    ids = tok(prompt)["input_ids"]
    return tok.convert_ids_to_tokens([ids[i] for i in concept_span(tok, prompt, concept)])


def test_real_clip_ids(sd1):
    assert sd1("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert sd1.model_max_length == 77


def test_sd1_and_sd2_padding_differ_but_content_positions_agree(sd1, sd2):
    prompt = "Van Gogh's Starry Night Notebook"
    ids1 = sd1(prompt, padding="max_length")["input_ids"]
    ids2 = sd2(prompt, padding="max_length")["input_ids"]
    assert len(ids1) == len(ids2) == 77
    # start, van gogh 's starry night notebook, end; then padding
    assert ids1[:8] == ids2[:8] and ids1[7] == 49407
    assert set(ids1[8:]) == {49407} and set(ids2[8:]) == {0}  # SD 1.x vs SD 2.x padding
    assert content_positions(sd1, prompt) == content_positions(sd2, prompt) == list(range(1, 7))
    assert concept_span(sd1, prompt, "notebook") == concept_span(sd2, prompt, "notebook") == [6]


def test_content_mask_excludes_start_end_and_padding(sd1):
    mask = content_mask(sd1, "a photo of a cat")
    assert mask.dtype == np.bool_ and mask.shape == (77,)
    assert np.flatnonzero(mask).tolist() == [1, 2, 3, 4, 5]


def test_truncation(sd1):
    prompt = "cat " * 100 + "van gogh"
    assert content_positions(sd1, prompt) == list(range(1, 76))  # 75 content tokens at most
    assert content_mask(sd1, prompt).sum() == 75
    assert concept_span(sd1, prompt, "cat") == [1]
    with pytest.raises(ConceptNotFound, match="truncation") as err:
        concept_span(sd1, prompt, "van gogh")
    assert "van gogh" in str(err.value)


def test_token_strings(sd1):
    assert token_strings(sd1, "Van Gogh's Café") == ["Van", "Gogh", "'s", "Café"]


@pytest.mark.parametrize("prompt, concept, tokens", [
    ("Van Gogh's Starry Night Notebook", "van gogh", ["van</w>", "gogh</w>"]),  # possessive left out
    ("Van Gogh's Starry Night Notebook", "NOTEBOOK", ["notebook</w>"]),
    ("VAN GOGH NOTEBOOK", "notebook", ["notebook</w>"]),
    ("Tower Bridge at Night London England Magnets", "magnet", ["magnets</w>"]),  # plural
    ("Spider-Man High Above the City Long Apron", "spider-man", ["spider</w>", "-</w>", "man</w>"]),
    ("Spider Man High Above the City", "spider-man", ["spider</w>", "man</w>"]),
    ("Spiderman High Above the City", "spider-man", ["spiderman</w>"]),
    ("Woman with a Cat by Pierre-Auguste Renoir T-Shirt", "t-shirt", ["t</w>", "-</w>", "shirt</w>"]),
    ("Woman with a Cat by Pierre-Auguste Renoir T-Shirt", "pierre-auguste renoir",
     ["pierre</w>", "-</w>", "augu", "ste</w>", "reno", "ir</w>"]),
    ("Dancer In The Wing Carry-all Pouch by Edgar Degas", "carry-all pouch",
     ["carry</w>", "-</w>", "all</w>", "pouch</w>"]),
    ("The Great Wall of China in Beijing, China Mug", "great wall of china",
     ["great</w>", "wall</w>", "of</w>", "china</w>"]),
    ("Borzoi in Monet’s Lilies", "monet", ["monet</w>"]),  # curly possessive left out
    ("Van Gogh Café Terrace", "cafe", ["cafÃ©</w>"]),       # accents ignored
    ("Despicable Me 2, weiß", "weiss", ["wei", "Ã", "Ł</w>"]),  # ß casefolds to ss
])
def test_concept_span_hand_worked(sd1, prompt, concept, tokens):
    assert span_tokens(sd1, prompt, concept) == tokens


def test_concept_span_positions(sd1):
    assert concept_span(sd1, "Van Gogh's Starry Night Notebook", "van gogh") == [1, 2]
    assert concept_span(sd1, "The Colosseum, Rome Italy Carry-all Pouch", "carry-all pouch") == [7, 8, 9, 10]


def test_first_occurrence_and_word_boundaries():
    assert find_concept("China Mug in China", "china") == (0, 5)
    assert find_concept("Author of Thor", "thor") == (10, 14)   # not inside "Author"
    assert find_concept("lego-batman-figure", "batman") == (5, 11)
    assert find_concept("Van Gogh's", "van gogh") == (0, 8)


@pytest.mark.parametrize("prompt, concept", [("Author notebook", "thor"), ("a photo of a cat", "dog")])
def test_not_found_names_prompt_and_concept(sd1, prompt, concept):
    with pytest.raises(ConceptNotFound) as err:
        concept_span(sd1, prompt, concept)
    assert isinstance(err.value, ValueError)
    assert repr(prompt) in str(err.value) and repr(concept) in str(err.value)
    assert "not found" in str(err.value)


def test_clip_tokenizer_rejects_unknown_pad():
    with pytest.raises(ValueError, match="eos"):
        clip_tokenizer("left")


def test_wordpiece_tokenizer(tmp_path):
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "van", "go", "##gh", "'", "s",
             "spider", "-", "man", "magnet", "##s"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    tok = BertTokenizer(str(tmp_path / "vocab.txt"), model_max_length=16)
    prompt = "Van Gogh's Spider-Man magnets"
    # [CLS] van go ##gh ' s spider - man magnet ##s [SEP] [PAD]...
    assert content_positions(tok, prompt) == list(range(1, 11))
    assert content_mask(tok, prompt).shape == (16,)
    assert concept_span(tok, prompt, "van gogh") == [1, 2, 3]
    assert concept_span(tok, prompt, "spider-man") == [6, 7, 8]
    assert concept_span(tok, prompt, "magnet") == [9, 10]
    with pytest.raises(ConceptNotFound):
        concept_span(tok, prompt, "mug")


def test_unknown_words_are_found_and_refused_in_a_concept():
    from dvdlib.tokens import BlankText, UnknownWords, check_text, known_span, tiny_t5_tokenizer, unknown_tokens

    t5 = tiny_t5_tokenizer(16)
    assert unknown_tokens(t5, "a zebra mug by a yak") == {1: ("zebra", t5), 3: ("by", t5), 5: ("yak", t5)}
    assert known_span(t5, "a zebra mug", "mug") == [2]
    with pytest.raises(UnknownWords, match=r"concept 'zebra': 'zebra' is outside .* 'tiny-t5'.* '<unk>'"):
        known_span(t5, "a zebra mug", "zebra")
    assert unknown_tokens(clip_tokenizer(), "a zebra mug") == {}  # byte-level BPE knows every word
    check_text("a mug", ["mug"])
    for prompt, concepts in (("", ()), ("\t ", ()), ("a mug", ["?"])):
        with pytest.raises(BlankText):
            check_text(prompt, concepts)
