"""The judge interface of the book: images + yes/no questions → answers (paper §2; the authors' release).

A judge is anything with a ``name`` and ``ask(images, questions)``: every question is asked of
every image (how calls are batched is the judge's business) and the raw answers come back
verbatim, one list per image. `is_yes` reads an answer as the authors' release does. A `QuestionSet` (YAML,
`load_questions`) holds five question templates per concept category and five for objects, each
set with its instruction; `yes_counts` asks an image's ten questions and returns the Yes counts
``c`` and ``n`` that `dvdlib.metrics.dvd_score` turns into a DvD Score. A set with ``fill: english``
(the book's) writes each concept in good English (`noun_phrase`); the others put it in as given.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Callable, NamedTuple, Protocol, Sequence, runtime_checkable

import yaml

from .metrics import dvd_score, is_yes

#: Questions per set (paper §2: five about the concept, five about the object).
QUESTIONS_PER_SET = 5
#: Category names a question file may use: the paper's three ``content_type`` values and the toy
#: world's ``style`` (its artist-like role). `load_questions(..., categories=None)` accepts any.
KNOWN_CATEGORIES = ("artist", "landmark", "character", "style")
#: Kinds of ordinary concepts (the control sets' concepts, `dvdlib.dvd.concept_kind`), each with
#: its own question group where a question set has one; a kind without a group is asked the
#: object questions.
KINDS = ("object", "thing", "animal", "person", "building", "plant", "scene", "time", "style")
PLACEHOLDER = "{concept}"
#: The key of the object questions in a question file and in `QuestionSet.match`.
OBJECTS = "objects"
#: How ``{concept}`` is filled in: ``verbatim`` (the concept as given, as the authors' scorer does) or
#: ``english`` (its noun phrase, `noun_phrase`). A question file names it in ``fill``.
FILLS = ("verbatim", "english")
#: The kinds of noun of ``concept_nouns.csv``: count (takes "a"/"an"), mass (no article: paint, fog),
#: plural (no article, plural questions: books, the Alps), name (a proper name: Tokyo, the Kremlin).
NOUNS = ("count", "mass", "plural", "name")


@lru_cache(maxsize=1)
def concept_nouns() -> dict[tuple[str, str], tuple[str, str]]:
    """(concept in lower case, question group or "") → (noun, written form), labelled by hand
    (``dvdlib/data/concept_nouns.csv``); a concept not listed is a countable noun written as given."""
    path = Path(str(files("dvdlib") / "data" / "concept_nouns.csv"))
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    table = {}
    for row in csv.DictReader(lines):
        if row["noun"] not in NOUNS:
            raise ValueError(f"{path.name}: {row['concept']!r}: noun must be one of {NOUNS}, got {row['noun']!r}")
        table[row["concept"], row["kind"] or ""] = (row["noun"], row["written"] or row["concept"])
    return table


def noun_phrase(concept: str, group: str = "") -> tuple[str, bool]:
    """The words that stand for ``concept`` in an English question, article included, and whether it
    is plural: "a mug", "an apron", "paint", "Tokyo", "the Alps" (plural). ``group``: the question
    group asking, for a concept written differently there (`concept_nouns`)."""
    key = str(concept).strip().lower()
    table = concept_nouns()
    noun, written = table.get((key, group)) or table.get((key, "")) or ("count", str(concept).strip())
    if noun == "count" and not re.match(r"(a|an|the) ", written, re.I):
        written = f"{'an' if written[:1].lower() in 'aeiou' else 'a'} {written}"
    return written, noun == "plural"


def _strip_article(phrase: str) -> str:
    return re.sub(r"^(a|an) ", "", phrase, flags=re.I)


@lru_cache(maxsize=1)
def _concept_of_phrase() -> dict[str, str]:
    """Written form (lower case, without "a"/"an") → concept: `noun_phrase` read backwards."""
    return {_strip_article(written).lower(): concept for (concept, _), (_, written) in concept_nouns().items()}


@runtime_checkable
class Judge(Protocol):
    """A yes/no visual question answerer (the authors' release).

    ``ask(images, questions)`` asks every question of every image (PIL images; the questions are
    full texts, instruction included) and returns, per image, the raw answer to each question, in
    order. Answers are kept verbatim; `is_yes` decides what counts as Yes.
    """

    name: str

    def ask(self, images: Sequence, questions: Sequence[str]) -> list[list[str]]: ...


@dataclass(frozen=True)
class QuestionGroup:
    """Five question templates with ``{concept}`` and the instruction appended to each (paper §2).

    With ``english``, ``{concept}`` (and an "a"/"an" before it) becomes the concept's noun phrase
    (`noun_phrase`: "an apron", "paint", "Tokyo") and a plural concept is asked the ``plural``
    templates (the same five questions with plural verbs); else the concept is put in as given."""

    instruction: str
    templates: tuple[str, ...]
    name: str = ""
    plural: tuple[str, ...] = ()
    english: bool = False

    def texts(self, concept: str) -> list[str]:
        """The five full questions about ``concept``, instruction included."""
        if not self.english:
            return [f"{t.replace(PLACEHOLDER, concept)} {self.instruction}".strip() for t in self.templates]
        phrase, plural = noun_phrase(concept, self.name)
        if plural and not self.plural:
            raise ValueError(f"question group {self.name!r} has no plural questions for {concept!r}")
        return [f"{_fill(t, phrase)} {self.instruction}".strip() for t in (self.plural if plural else self.templates)]

    def match(self, question: str) -> tuple[int, str] | None:
        """(index of the template, concept) if ``question`` is one of this group's questions (where
        an english set's singular and plural forms both fit, the shorter noun phrase)."""
        found = []
        for templates in (self.templates, self.plural if self.english else ()):
            for i, t in enumerate(templates):
                head, tail = (re.escape(part) for part in t.split(PLACEHOLDER))
                if self.english:
                    head = re.sub(r"(^|\\ )an?\\ $", r"\1", head)  # the article is part of the noun phrase
                m = re.fullmatch(rf"{head}(.+?){tail}(?:\s+{re.escape(self.instruction)})?", question.strip(), re.I | re.S)
                if m and not self.english:
                    return i, m.group(1).strip()
                if m:
                    found.append((i, _strip_article(m.group(1).strip())))
        if not found:
            return None
        i, phrase = min(found, key=lambda f: len(f[1]))
        return i, _concept_of_phrase().get(phrase.lower(), phrase)


def _fill(template: str, phrase: str) -> str:
    """``template`` with its ``{concept}`` (with any "a"/"an" before it) replaced by ``phrase``; "the
    {concept}" keeps one "the" and drops "a"/"an"; capitalised at the start of the question."""
    head, tail = template.split(PLACEHOLDER)
    article = re.search(r"(^|\s)(a|an|the) $", head, re.I)
    if article:
        head = head[: article.start(2)]
        if article.group(2).lower() == "the" and not re.match(r"the ", phrase, re.I) and not phrase[:1].isupper():
            phrase = f"the {_strip_article(phrase)}"
    if not head:
        phrase = phrase[:1].upper() + phrase[1:]
    return head + phrase + tail


@dataclass(frozen=True)
class QuestionSet:
    """Question groups per concept category plus one for objects (paper §2). Load with
    `load_questions`; the texts come from `concept_questions` and `object_questions`."""

    name: str
    categories: dict[str, QuestionGroup]
    objects: QuestionGroup
    #: what counts as Yes (default `is_yes`; the authors' set brings their rule, `dvdlib.authors.is_yes`)
    yes_rule: Callable[[str], bool] = is_yes
    #: the judge's image-processor pixel limits (min, max) this set was written for, or None (the
    #: judge's own): the authors' set brings theirs (`dvdlib.authors.PIXEL_LIMITS`)
    pixel_limits: tuple[int, int] | None = None

    def group(self, category: str) -> QuestionGroup:
        """The group of a concept category, or the object group for ``"objects"``."""
        if category == OBJECTS:
            return self.objects
        if category not in self.categories:
            raise KeyError(f"question set {self.name!r} has no category {category!r}; it has {sorted(self.categories)}")
        return self.categories[category]

    def concept_questions(self, concept: str, category: str) -> list[str]:
        """The five questions about a dominant concept of ``category`` (instruction included)."""
        return self.group(category).texts(concept)

    def object_questions(self, obj: str) -> list[str]:
        """The five questions about the object (instruction included)."""
        return self.objects.texts(obj)

    def match(self, question: str) -> tuple[str, int, str] | None:
        """(category or "objects", template index, concept) of a question of this set, else None; a
        question two groups share (the thing group's object questions) is the object group's."""
        for category, group in [(OBJECTS, self.objects), *self.categories.items()]:
            found = group.match(question)
            if found:
                return (category, *found)
        return None


def _templates(where: str, questions) -> tuple[str, ...]:
    """Validate five question templates, each with one ``{concept}``."""
    if not isinstance(questions, list) or len(questions) != QUESTIONS_PER_SET:
        n = len(questions) if isinstance(questions, list) else type(questions).__name__
        raise ValueError(f"{where}: expected {QUESTIONS_PER_SET} questions, got {n}")
    for i, q in enumerate(questions, 1):
        if not isinstance(q, str) or q.count(PLACEHOLDER) != 1:
            raise ValueError(f"{where}, question {i}: must contain {PLACEHOLDER} exactly once: {q!r}")
        if "{" in q.replace(PLACEHOLDER, "") or "}" in q.replace(PLACEHOLDER, ""):
            raise ValueError(f"{where}, question {i}: the only placeholder allowed is {PLACEHOLDER}: {q!r}")
    if len(set(questions)) != len(questions):
        raise ValueError(f"{where}: duplicate questions")
    return tuple(q.strip() for q in questions)


def _group(where: str, data, name: str = "", english: bool = False) -> QuestionGroup:
    """Validate one group of a question file (five templates, each with one ``{concept}``; optionally
    ``plural``: the same five for a plural concept, used where the set's fill is english)."""
    if not isinstance(data, dict) or not {"instruction", "questions"} <= set(data) <= {"instruction", "questions", "plural"}:
        raise ValueError(f"{where}: expected the keys 'instruction' and 'questions' (and optionally 'plural'), got {data!r}")
    instruction = data["instruction"]
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"{where}: 'instruction' must be a non-empty string")
    templates = _templates(where, data["questions"])
    plural = _templates(f"{where}, plural", data["plural"]) if "plural" in data else ()
    return QuestionGroup(instruction.strip(), templates, name, plural, english)


def questions_from_dict(data: dict, name: str = "questions",
                        categories: Sequence[str] | None = KNOWN_CATEGORIES) -> QuestionSet:
    """Validate a parsed question file (see `load_questions`) and build the `QuestionSet`."""
    if not isinstance(data, dict):
        raise ValueError(f"{name}: a question file is a mapping, got {type(data).__name__}")
    unknown = set(data) - {"name", "description", "fill", "categories", OBJECTS}
    if unknown:
        raise ValueError(f"{name}: unknown keys {sorted(unknown)}; allowed: name, description, fill, categories, {OBJECTS}")
    if not isinstance(data.get("categories"), dict) or not data["categories"]:
        raise ValueError(f"{name}: 'categories' must map at least one category to its questions")
    if OBJECTS not in data:
        raise ValueError(f"{name}: missing '{OBJECTS}' (the five object questions)")
    bad = [c for c in data["categories"] if categories is not None and c not in categories]
    if bad:
        raise ValueError(f"{name}: unknown category {bad[0]!r}; known: {list(categories)}")
    fill = data.get("fill", "verbatim")
    if fill not in FILLS:
        raise ValueError(f"{name}: 'fill' must be one of {FILLS}, got {fill!r}")
    name, english = str(data.get("name", name)), fill == "english"
    groups = {str(c): _group(f"{name}: category {c!r}", g, str(c), english) for c, g in data["categories"].items()}
    return QuestionSet(name, groups, _group(f"{name}: {OBJECTS}", data[OBJECTS], OBJECTS, english))


#: ``-p questions authors:/path/to/DominanceBench``: the authors' own question set (`dvdlib.authors`).
AUTHORS_PREFIX = "authors:"


def load_questions(source: str | Path = "toy", categories: Sequence[str] | None = KNOWN_CATEGORIES + KINDS) -> QuestionSet:
    """Load a question set: a packaged one by name (``"toy"`` → ``dvdlib/data/questions_toy.yaml``),
    a user's YAML file by path, or ``"authors:/path/to/DominanceBench"``: the authors' own questions
    and instruction tails, read from their ``dvd_score/questions.py`` by parsing it (never running
    it), with their answer rule and their processor's pixel limits (`dvdlib.authors`). Schema (paper §2)::

        name: toy
        fill: verbatim      # or english: {concept} becomes its noun phrase (`noun_phrase`)
        categories:
          landmark: {instruction: "Answer only Yes or No.", questions: [five with {concept}]}
          ...
        objects: {instruction: "Answer only Yes or No.", questions: [five with {concept}]}

    A group may add ``plural: [five]``, its questions for a plural concept (english fill). Errors
    name the file, the group and the question: wrong number of questions, a missing or extra
    placeholder, a category outside ``categories`` (None: any name).
    """
    if str(source).startswith(AUTHORS_PREFIX):
        from . import authors

        data = authors.read_questions(str(source)[len(AUTHORS_PREFIX):])
        found = questions_from_dict(data, "authors", categories)
        return QuestionSet(found.name, found.categories, found.objects, yes_rule=authors.is_yes,
                           pixel_limits=authors.PIXEL_LIMITS)
    path = Path(source)
    if not path.suffix:  # a packaged set by name
        path = Path(str(files("dvdlib") / "data" / f"questions_{source}.yaml"))
    if not path.is_file():
        raise FileNotFoundError(f"no question file {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path.name}: not valid YAML: {e}") from None
    return questions_from_dict(data, path.name, categories)


class Counts(NamedTuple):
    """One image's Yes counts (paper §2): ``c`` over the five concept questions, ``n`` over the five
    object questions, and the ten answers verbatim (concept questions first)."""

    c: int
    n: int
    answers: list[str]

    @property
    def dvd(self) -> float:
        """The image's DvD Score, `dvdlib.metrics.dvd_score` (c, n)."""
        return dvd_score(self.c, self.n)


def yes_counts(judge: Judge, images: Sequence, concept: str, concept_category: str, obj: str,
               questions: QuestionSet, object_category: str = OBJECTS) -> list[Counts]:
    """Ask each image the five questions about ``concept`` (of ``concept_category``) and the five
    about ``obj`` (of ``object_category``: the object group unless the object is of another kind)
    in one `Judge.ask` call; per image the Yes counts (c, n) and the answers (paper §2)."""
    asked = questions.concept_questions(concept, concept_category) + questions.group(object_category).texts(obj)
    answers = judge.ask(images, asked)
    if len(answers) != len(images) or any(len(a) != len(asked) for a in answers):
        raise RuntimeError(f"judge {judge.name!r} returned {len(answers)} answer lists for {len(images)} images "
                           f"(expected {len(asked)} answers each)")
    k = QUESTIONS_PER_SET
    yes = questions.yes_rule
    return [Counts(sum(map(yes, a[:k])), sum(map(yes, a[k:])), list(a)) for a in answers]


#: The judge of the smoke profile: a tiny Qwen2-VL with random weights, built offline. It runs the
#: real judge's code path; its answers are arbitrary, and every page that uses it says so.
SMOKE_JUDGE = "tiny:qwen2-vl"


def load_judge(name: str, *, dtype=None, device: str = "cpu", cache: str | Path | None = None,
               pixel_limits: tuple[int, int] | None = None) -> Judge:
    """The judge a profile names: a Hub id or folder of Qwen2-VL / Qwen2.5-VL (`dvdlib.vqa`) or
    ``"tiny:qwen2-vl"`` (random weights, saved under ``cache``, default a temporary folder);
    ``pixel_limits`` (min, max) set its image processor's (`QuestionSet.pixel_limits`). A world
    may bring its own judges (`dvdlib.worlds.World.load_judge`)."""
    import os
    import shutil
    import tempfile
    import uuid

    from .vqa import QwenJudge, build_tiny_qwen2_vl

    if name == SMOKE_JUDGE:
        folder = Path(cache or tempfile.mkdtemp(prefix="dvd-judge-")) / "tiny-qwen2-vl"
        if not folder.is_dir():  # built aside and renamed: processes sharing a store never see half of it
            folder.parent.mkdir(parents=True, exist_ok=True)
            aside = folder.parent / f".tiny-qwen2-vl.{os.getpid()}.{uuid.uuid4().hex}"
            aside.mkdir()  # with the process's umask, as the store's other folders (mkdtemp's is 0700)
            build_tiny_qwen2_vl(aside)
            try:
                os.replace(aside, folder)
            except OSError:  # another process renamed its copy first
                shutil.rmtree(aside, ignore_errors=True)
        judge = QwenJudge(folder, dtype=dtype, device=device, pixel_limits=pixel_limits)
        judge.name = SMOKE_JUDGE
        return judge
    return QwenJudge(name, dtype=dtype, device=device, pixel_limits=pixel_limits)
