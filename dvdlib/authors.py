"""The authors' own DvD instrument, read from their release when a user has it on disk.

``-p questions authors:/path/to/DominanceBench`` swaps the project's question wording for the
authors' (paper §2): their five questions per concept type and five per object, and the
instruction tails they append, read from ``dvd_score/questions.py`` by parsing it (`ast`), never by
importing or running it. Their answer rule and the image-size limits of their Qwen2-VL processor
are here too, so the whole instrument can be theirs.
"""

from __future__ import annotations

import ast
from pathlib import Path

#: Their Qwen2-VL processor's pixel limits (min_pixels, max_pixels).
PIXEL_LIMITS = (256 * 28 * 28, 1280 * 28 * 28)
#: Where their question file lies in their repository.
QUESTIONS_FILE = Path("dvd_score") / "questions.py"
#: The module-level names read from it: concept type → list name, and the object list.
TYPE_LISTS = {"artist": "ARTIST_QUESTIONS", "landmark": "LANDMARK_QUESTIONS", "character": "CHARACTER_QUESTIONS"}
OBJECT_LIST, LENIENT_TAIL, STRICT_TAIL = "OBJECT_QUESTIONS", "LENIENT_ARTIST_TAIL", "STRICT_TAIL"
#: Their placeholder, and ours.
THEIRS, OURS = "{content}", "{concept}"


def is_yes(answer: str) -> bool:
    """Their answer rule: Yes iff the stripped, lower-cased answer starts with "yes"."""
    return (answer or "").strip().lower().startswith("yes")


def _literals(tree: ast.Module) -> dict:
    """Module-level ``NAME = literal`` and ``NAME: type = literal`` assignments."""
    found = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        if target:
            try:
                found[target] = ast.literal_eval(value)
            except ValueError:
                continue  # not a literal (a dict of names, a call): not needed
    return found


def question_file(folder) -> Path:
    """Their ``dvd_score/questions.py`` under ``folder`` (their repository), or the file itself."""
    path = Path(folder).expanduser()
    path = path if path.is_file() else path / QUESTIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {QUESTIONS_FILE} under {folder}: pass the folder of the authors' "
                                "DominanceBench repository (github.com/HayeonJeong/DominanceBench), e.g. "
                                "-p questions authors:/path/to/DominanceBench")
    return path


def read_questions(folder) -> dict:
    """Their question sets as a question-file mapping (the schema of `dvdlib.judge.load_questions`):
    concept types and objects, each with its five templates (``{content}`` → ``{concept}``) and
    its instruction (their tail without its leading space: the join adds it back)."""
    path = question_file(folder)
    values = _literals(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    missing = [n for n in [*TYPE_LISTS.values(), OBJECT_LIST, LENIENT_TAIL, STRICT_TAIL] if n not in values]
    if missing:
        raise ValueError(f"{path}: expected the module-level lists and strings {missing}; "
                         "the authors' file may have changed — compare it with this reader")

    def group(name: str, tail: str) -> dict:
        questions = values[name]
        if not (isinstance(questions, list) and all(isinstance(q, str) and THEIRS in q for q in questions)):
            raise ValueError(f"{path}: {name} must be a list of strings with {THEIRS}")
        return {"instruction": values[tail].strip(), "questions": [q.replace(THEIRS, OURS) for q in questions]}

    return {"name": "authors", "description": f"the authors' questions, read from {path}",
            "categories": {t: group(n, LENIENT_TAIL if t == "artist" else STRICT_TAIL) for t, n in TYPE_LISTS.items()},
            "objects": group(OBJECT_LIST, STRICT_TAIL)}
