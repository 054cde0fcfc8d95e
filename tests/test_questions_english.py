"""The paper question set in good English (paper §2): every concept of every prompt set, through the
question builder the judge uses, checked for articles, number, capitals and kind."""
import hashlib
import re
from collections import Counter
from functools import lru_cache

import pytest

from dvdlib import bench
from dvdlib.dvd import concept_kind, question_groups
from dvdlib.judge import OBJECTS, load_questions

PAPER = load_questions("paper")

# Independent of the noun table (dvdlib/data/concept_nouns.csv): what English says about these words.
#: uncountable words, and the time and weather words that take no article (night, fog)
MASS = {"paint", "produce", "paper", "armor", "treasure", "cotton candy", "marine life", "lava", "origami",
        "pixel art", "ukiyo-e", "dew", "fog", "rain", "moonlight", "morning light", "night", "dawn", "dusk",
        "evening", "morning", "spring", "winter", "sunset"}
#: time and weather words that are countable: "a storm" is good English, "a fog" is not
COUNTABLE_WEATHER = {"storm", "thunderstorm", "rainbow"}
#: plurals that do not end in -s (the prompts: "deer grazing", "schools of colorful fish", "with sheep")
PLURAL_WITHOUT_S = {"deer", "fish", "sheep"}
#: singular words and names that end in -s
SINGULAR_WITH_S = {"new orleans", "buenos aires", "netherlands", "aurora borealis"}
#: written with a capital in their prompts but common nouns, so they take "a"/"an" (flamenco is
#: lower case in English although a prompt capitalises it)
CAPITALISED_COMMON = {"ferris wheel", "viking ship", "zen garden", "lego bricks", "ukiyo-e", "halloween",
                      "flamenco dance"}
#: capitalised words that may follow "a"/"an": a common noun's capital, or a name used as a modifier
AFTER_ARTICLE = ("halloween decoration", "ferris wheel", "viking ship", "zen garden", "van gogh painting")
#: things that are not products: never asked whether they are shown as a product
NOT_PRODUCTS = {"fire", "campfire", "wings", "feathers", "spider web", "stalactites", "hieroglyphs", "crystals",
                "sunken ship"}
#: words that start with a vowel letter but a consonant sound, or with a silent h
CONSONANT_SOUND = re.compile(r"^(uni|use|usu|eu|one\b|ukulele)", re.I)
VOWEL_SOUND = re.compile(r"^(hour|honest|heir)", re.I)


@lru_cache(maxsize=1)
def asked() -> dict:
    """(question group, concept) → its five questions and the prompts that name the concept, for every
    row of the balanced set, DominanceBench, the unselected set, the causal test and both triplet sets."""
    out = {}

    def add(group, concept, prompt, source):
        out.setdefault((group, concept), {"prompts": []})["prompts"].append((source, prompt))

    dreambooth = bench.load_dreambooth_prompts()
    for source, table in [("bench", bench.load_dominancebench(resolve=False)), ("balanced", bench.load_balanced(resolve=False)),
                          ("unselected", bench.load_unselected()), ("dreambooth", dreambooth.assign(nm_kind=dreambooth["group"]))]:
        for row in table.itertuples():
            concept_group, object_group = question_groups(row, PAPER)
            add(concept_group, row.content, row.prompt, source)
            add(object_group, row.nm_word, row.prompt, source)
    for source, table in [("factorial", bench.load_factorial()), ("pilot", bench.load_pilot())]:
        for row in table.to_dict("records"):
            for k in (1, 2, 3):
                kind = row[f"target{k}_type"]
                add(kind if kind in PAPER.categories else OBJECTS, row[f"target{k}"], row["prompt"], source)
    for (group, concept), entry in out.items():
        entry["questions"] = [q[: -len(PAPER.group(group).instruction)].strip() for q in PAPER.group(group).texts(concept)]
    return out


def capitalised_in_prompts(concept: str, prompts) -> bool:
    """True if every sentence prompt (DominanceBench's are title case: left out) that names ``concept``
    after its first word writes it with a capital."""
    seen = [m.group(0)[0].isupper() for source, p in prompts if source != "bench"
            for m in re.finditer(re.escape(concept), p, re.I) if m.start() > 0]
    return bool(seen) and all(seen)


@lru_cache(maxsize=1)
def names() -> frozenset:
    """Proper names: DominanceBench's artists, landmarks and characters, and the concepts every sentence
    prompt writes with a capital (Tokyo, the Alps), less capitalised common nouns."""
    prompts = {}
    for (group, concept), entry in asked().items():
        prompts.setdefault(concept.lower(), []).extend(entry["prompts"])
    found = {concept.lower() for group, concept in asked() if group in ("artist", "landmark", "character")}
    found |= {concept for concept, seen in prompts.items() if capitalised_in_prompts(concept, seen)}
    return frozenset(found - CAPITALISED_COMMON)


def plural(concept: str) -> bool:
    c = concept.lower()
    return c in PLURAL_WITHOUT_S or (c.endswith("s") and not c.endswith(("ss", "us", "is")) and c not in SINGULAR_WITH_S)


def defects(group: str, concept: str, questions: list[str]) -> list[str]:
    """What is wrong with the five questions about ``concept`` (empty: good English)."""
    c, found = concept.lower(), []
    word = re.escape(c)
    for q in questions:
        low = q.lower()
        if c not in low:
            found.append(f"does not name {concept!r}")
        if "{" in q or "  " in q or not q[0].isupper() or not q.endswith("?"):
            found.append("malformed")
        for article, following in re.findall(r"\b(an?) ([\w'][\w'-]*)", q, re.I):
            vowel = bool(re.match(r"[aeiou]", following, re.I)) and not CONSONANT_SOUND.match(following)
            vowel = vowel or bool(VOWEL_SOUND.match(following))
            if (article.lower() == "an") != vowel:
                found.append(f"wrong article: '{article} {following}'")
        for m in re.finditer(r"\b[Aa]n? (?=[A-Z])", q):
            if not low[m.end():].startswith(AFTER_ARTICLE):
                found.append(f"a/an before the name '{q[m.end():].split()[0]}'")
        if re.search(r"\b(a|an|the) (a|an|the)\b", low):
            found.append("double article")
        if c in MASS or c in names() or plural(concept) or (concept_kind(c) == "time" and c not in COUNTABLE_WEATHER
                                                           and group == "time"):
            if re.search(rf"\ban? {word}\b(?! painting\b)", low):  # "a Van Gogh painting" is good English
                found.append(f"a/an before {concept!r}")
        if c in names() and re.search(rf"\b{word}\b", q):  # a name keeps its capitals
            found.append(f"{concept!r} in lower case")
        if plural(concept):
            if re.search(rf"\b(is|does|was) (the )?{word}\b", low) or re.search(rf"\b{word} (is|does)\b", low):
                found.append(f"singular verb with plural {concept!r}")
            if " its " in low:
                found.append(f"'its' for plural {concept!r}")
        elif re.search(rf"\b(are|do) (an? |the )?{word}\b", low):
            found.append(f"plural verb with singular {concept!r}")
        if "product" in low and (group != OBJECTS or c in NOT_PRODUCTS):
            found.append(f"{concept!r} asked as a product")
    return sorted(set(found))


def test_every_concept_of_every_prompt_set_is_asked_in_good_english():
    bad = {key: d for key, e in asked().items() if (d := defects(*key, e["questions"]))}
    assert len(asked()) > 500
    kinds = Counter(re.sub(r"'[^']*'", "…", d) for found in bad.values() for d in found)
    examples = {}
    for (group, concept), found in bad.items():
        for d in found:
            examples.setdefault(re.sub(r"'[^']*'", "…", d), f"{group}/{concept}: {asked()[group, concept]['questions']}")
    assert not bad, f"{len(bad)} of {len(asked())} concepts asked in bad English: {dict(kinds)}; e.g. " + " | ".join(
        f"{k}: {v}" for k, v in examples.items())


def test_the_checks_catch_the_defects_they_name():
    assert defects(OBJECTS, "paint", ["Is a paint visible in this image?"]) == ["a/an before 'paint'"]
    assert "a/an before 'tokyo'" in defects("scene", "tokyo", ["Is this image set in or at a tokyo?"])
    assert defects(OBJECTS, "apron", ["Is a apron visible in this image?"]) == ["wrong article: 'a apron'"]
    assert defects(OBJECTS, "headphones", ["Is headphones visible in this image?"]) == [
        "singular verb with plural 'headphones'"]
    assert defects(OBJECTS, "fire", ["Is this image a picture of a fire as a product?"]) == ["'fire' asked as a product"]
    assert defects("time", "night", ["Is this image a picture of night as a product?"]) == ["'night' asked as a product"]
    assert defects(OBJECTS, "mug", ["Is a mug visible in this image?"]) == []
    assert defects("scene", "Tokyo", ["Is this image set in or at a Tokyo?"]) == [
        "a/an before 'Tokyo'", "a/an before the name 'Tokyo?'"]


@pytest.mark.parametrize("group,concept,question", [
    ("scene", "tokyo", "Is this image set in or at Tokyo?"),
    ("scene", "alps", "Could a viewer tell from the surroundings that the place is among the Alps?"),
    ("landmark", "eiffel tower", "Is the Eiffel Tower present in this image?"),
    ("artist", "van gogh", "Does this image look like a work by Van Gogh?"),
    ("style", "Van Gogh", "Is this image made as a Van Gogh painting?"),
    ("style", "oil painting", "Is this image made as an oil painting?"),
    ("character", "minions", "Are the Minions present in this image?"),
    (OBJECTS, "apron", "Is an apron visible in this image?"),
    (OBJECTS, "headphones", "Are headphones visible in this image?"),
    (OBJECTS, "paint", "Is paint visible in this image?"),
    (OBJECTS, "halloween", "Is a Halloween decoration visible in this image?"),
    (OBJECTS, "sleeves", "Is this image a picture of sleeves as products?"),
    ("thing", "fire", "Is a fire one of the main subjects of this image?"),
    ("time", "stars", "Do stars set the mood of the whole image?"),
    ("time", "night", "Could a viewer tell from the light, sky or weather that this image shows night?"),
    ("plant", "tree", "Does a tree stand out as a main subject of this image?"),
    (OBJECTS, "notebook", "Is this image a picture of a notebook as a product?"),  # unchanged
])
def test_the_paper_set_writes_each_kind_of_noun_in_english(group, concept, question):
    assert question in [q[: -len(PAPER.group(group).instruction)].strip() for q in PAPER.group(group).texts(concept)]


def test_a_well_formed_concept_is_asked_as_before():
    """A countable noun that starts with a consonant keeps the paper set's earlier wording."""
    assert PAPER.object_questions("notebook") == [f"{q} Answer only Yes or No." for q in (
        "Is a notebook visible in this image?", "Is a notebook shown in this image, even partly?",
        "Is a notebook featured in this image?", "Does this image show the recognisable shape of a notebook?",
        "Is this image a picture of a notebook as a product?")]


def test_the_noun_table_is_well_formed():
    from dvdlib.judge import KINDS, NOUNS, concept_nouns

    table = concept_nouns()
    assert table and all(noun in NOUNS for noun, _ in table.values())
    assert all(kind in ("", *PAPER.categories, OBJECTS) for _, kind in table) and all(k == k.lower() for k, _ in table)
    assert set(KINDS) - {"object"} <= set(PAPER.categories)
    for (concept, _), (noun, written) in table.items():
        assert concept in written.lower(), concept
        if noun != "count":
            assert not written.lower().startswith(("a ", "an ")), concept


def test_a_question_file_names_its_fill_and_plural_questions():
    from dvdlib.judge import questions_from_dict

    five = [f"Is a {{concept}} here {i}?" for i in range(5)]
    data = {"name": "t", "fill": "english", "categories": {"scene": {"instruction": "Yes or No.", "questions": five}},
            "objects": {"instruction": "Yes or No.", "questions": five,
                        "plural": [f"Are {{concept}} here {i}?" for i in range(5)]}}
    qs = questions_from_dict(data, categories=None)
    assert qs.object_questions("umbrella")[0] == "Is an umbrella here 0? Yes or No."
    assert qs.object_questions("books")[0] == "Are books here 0? Yes or No."
    with pytest.raises(ValueError, match="no plural questions for 'mountains'"):
        qs.group("scene").texts("mountains")
    with pytest.raises(ValueError, match="'fill' must be one of"):
        questions_from_dict({**data, "fill": "fancy"}, categories=None)
    assert questions_from_dict({**data, "fill": "verbatim"}, categories=None).object_questions("books")[0] == \
        "Is a books here 0? Yes or No."


def test_match_finds_the_concept_in_an_english_question():
    for group, concept in [(OBJECTS, "apron"), (OBJECTS, "headphones"), ("scene", "tokyo"), ("scene", "alps"),
                           ("landmark", "eiffel tower"), (OBJECTS, "notebook"), ("time", "stars")]:
        for i, q in enumerate(PAPER.group(group).texts(concept)):
            assert PAPER.group(group).match(q) == (i, concept), q


def test_the_authors_set_is_filled_verbatim():
    """The authors' scorer fills ``{content}`` with the raw column value: their set is left as it is."""
    from pathlib import Path

    authors = load_questions(f"authors:{Path(__file__).parent / 'fixtures' / 'authors_release'}")
    assert authors.object_questions("headphones")[0].startswith("Is a headphones present?")
    assert authors.concept_questions("eiffel tower", "landmark")[0].startswith("Is the eiffel tower shown?")


def test_the_toy_questions_are_unchanged():
    """The toy worlds' questions (the toy snapshot depends on them) are filled verbatim: byte for byte
    the questions from before the english fill existed (digest taken then)."""
    from dvdlib.toy.world import World as Toy
    from dvdlib.toy2.world import World as Toy2

    digest = hashlib.sha256()
    for name, world in (("toy", Toy()), ("toy2", Toy2())):
        questions = load_questions(name)
        for group in [*questions.categories, OBJECTS]:
            for concept in world.names:
                for q in questions.group(group).texts(concept):
                    digest.update(q.encode() + b"\n")
    assert digest.hexdigest() == "da0c935f55398f091b310c375e1889752ed70e7e22059f7ad057241d45ea5b4e"
