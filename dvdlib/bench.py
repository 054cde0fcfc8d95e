"""The prompt sets (the authors' data, §3.2): DominanceBench, the control set, memorized prompts."""
from __future__ import annotations

import json
from importlib.resources import files

import pandas as pd

from .tokens import ConceptNotFound, clip_tokenizer, concept_span, find_concept

CONTENT_TYPES = ("artist", "landmark", "character")
BENCH_COLUMNS = ("case_num", "content_type", "content", "nm_word", "prompt")
CONTROL_SOURCE = "group_nomem500.txt (Ren et al., ECCV 2024)"


def _data(name: str):
    return files("dvdlib") / "data" / name


def validate_table(df: pd.DataFrame, name: str, columns, integer=("case_num",), unique=("case_num",)) -> pd.DataFrame:
    """Check a prompt-set table: the ``columns`` present, no empty field, ``integer`` columns of
    integers, ``unique`` columns without repeats. Returns ``df`` with the integer columns as ints;
    raises ValueError saying what is wrong and where (rows named by ``case_num``)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; expected {list(columns)}, found {list(df.columns)}")
    text = df[list(columns)].astype(str).apply(lambda col: col.str.strip())
    blank = df[list(columns)].isna() | text.eq("")
    empty = [(df["case_num"][i], col) for i, col in blank.stack().loc[lambda b: b].index]
    if empty:
        raise ValueError(f"{name} has empty fields (case_num, column): {empty}")
    df = df.copy()
    for col in integer:
        num = pd.to_numeric(df[col], errors="coerce")
        if num.isna().any() or (num % 1 != 0).any():
            raise ValueError(f"{col} must be integers; bad values: {df[col][num.isna() | (num % 1 != 0)].tolist()}")
        df[col] = num.astype(int)
    for col in unique:
        repeated = df[col][df[col].duplicated()]
        if len(repeated):
            raise ValueError(f"{name}: {col} must be unique; repeated: {sorted(set(repeated))}")
    return df


def validate_dominancebench(df: pd.DataFrame) -> pd.DataFrame:
    """Check the released table (`validate_table`) and that ``content_type`` is artist, landmark
    or character."""
    df = validate_table(df, "DominanceBench", BENCH_COLUMNS)
    bad = ~df["content_type"].astype(str).str.strip().isin(CONTENT_TYPES)
    if bad.any():
        raise ValueError(f"content_type must be one of {CONTENT_TYPES}; bad rows (case_num, value): "
                         f"{list(zip(df['case_num'][bad], df['content_type'][bad]))}")
    return df


def _resolve(tokenizer, prompt: str, concept: str) -> tuple[list[int] | None, str | None]:
    """(span, None) or (None, reason) for one concept in one prompt."""
    try:
        return concept_span(tokenizer, prompt, concept), None
    except ConceptNotFound as err:
        return None, str(err)


#: Where a prompt-set row names each concept as the prompt writes it, first column present first:
#: the dominated object as the prompt spells it where a set says so (the unselected set's
#: ``object_prompt_phrase``: "mouse pad" for nm_word "mousepad"; the judge still asks nm_word).
CONCEPT_WORDS = {"content": ("content",), "nm_word": ("object_prompt_phrase", "nm_word")}


def _resolve_all(df: pd.DataFrame, tokenizer) -> pd.DataFrame:
    """Add ``content_span``, ``nm_span`` and ``unresolved`` (reasons, or None) to ``df``."""
    out = df.copy()
    reasons = [[] for _ in range(len(df))]
    for field, col in (("content", "content_span"), ("nm_word", "nm_span")):
        spans, located = [], next(c for c in CONCEPT_WORDS[field] if c in df.columns or c == field)
        for k, (prompt, concept) in enumerate(zip(df["prompt"], df[located])):
            span, why = _resolve(tokenizer, prompt, concept)
            spans.append(span)
            if why:
                reasons[k].append(f"{field}: {why}")
        out[col] = spans
    out["unresolved"] = ["; ".join(r) if r else None for r in reasons]
    return out


def load_dominancebench(tokenizer=None, strict: bool = False, *, resolve: bool = True,
                        path=None) -> pd.DataFrame:
    """The 300 DominanceBench prompts (Jeong & Lee 2025, paper §3.2; the authors' release), validated.

    With ``resolve`` (default), each row's ``content`` and ``nm_word`` are located in its prompt
    with :func:`dvdlib.tokens.concept_span` using ``tokenizer`` (default: the packaged SD 1.x
    CLIP tokenizer), adding ``content_span``/``nm_span`` (positions, or None) and ``unresolved``
    (the reason, or None). ``strict=True`` raises one ValueError listing every unresolved row.
    Prompt strings that occur in several rows are kept; column ``duplicate_prompt`` marks them
    and ``df.attrs["distinct_prompts"]`` counts the distinct strings. ``path`` replaces the
    packaged CSV (same columns).
    """
    raw = pd.read_csv(str(path or _data("dominancebench_300.csv")), dtype=str, keep_default_na=False)
    df = validate_dominancebench(raw)
    df["duplicate_prompt"] = df["prompt"].duplicated(keep=False)
    df.attrs["distinct_prompts"] = df["prompt"].nunique()
    if not resolve:
        return df
    return resolve_spans(df, tokenizer if tokenizer is not None else clip_tokenizer(), strict, "DominanceBench")


def resolve_spans(df: pd.DataFrame, tokenizer, strict: bool = False, name: str = "prompt-set") -> pd.DataFrame:
    """Add ``content_span``, ``nm_span`` and ``unresolved`` to a table with ``content``, ``nm_word``
    and ``prompt``; ``strict=True`` raises one ValueError listing every unresolved row."""
    df = _resolve_all(df, tokenizer)
    bad = unresolved_rows(df)
    if strict and len(bad):
        lines = "\n".join(f"  case {r.case_num}: {r.unresolved}" for r in bad.itertuples())
        raise ValueError(f"{len(bad)} {name} row(s) cannot be resolved:\n{lines}")
    return df


def unresolved_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of a resolved DominanceBench table whose concept or object was not found, and why."""
    if "unresolved" not in df.columns:
        raise ValueError("table has no 'unresolved' column: load it with resolve=True")
    return df.loc[df["unresolved"].notna(),
                  ["case_num", "content_type", "content", "nm_word", "prompt", "unresolved"]]


BALANCED_COLUMNS = BENCH_COLUMNS + ("line", "rule")


def load_balanced(tokenizer=None, strict: bool = False, *, resolve: bool = True,
                  path=None) -> pd.DataFrame:
    """The balanced control set (paper §3.2): 300 prompts of ``group_nomem500.txt`` (Ren et al.,
    ECCV 2024) that name two concepts of comparable visual diversity, labelled by hand for this
    project as ``content`` (first-named) / ``nm_word`` (second); ``content_type`` "balanced".

    Columns as DominanceBench plus ``line`` (1-based line in the pool file), ``rule``
    ("strict"/"loose") and ``loose_reason``; the selection rule is written in the CSV's ``#``
    header. Validates the columns, non-empty fields, unique integer ``case_num``, unique prompts
    and lines, and ``content`` ≠ ``nm_word``. With ``resolve`` (default) both concepts' token
    spans are added as in :func:`load_dominancebench`; ``strict=True`` raises one ValueError
    listing every unresolved row.
    """
    raw = pd.read_csv(str(path or _data("balanced_300.csv")), dtype=str, keep_default_na=False,
                      comment="#")
    df = validate_table(raw, "balanced", BALANCED_COLUMNS, integer=("case_num", "line"),
                        unique=("case_num", "prompt", "line"))
    same = df["content"].str.lower() == df["nm_word"].str.lower()
    if same.any():
        raise ValueError(f"balanced set: content equals nm_word in case(s) {df['case_num'][same].tolist()}")
    bad_rule = ~df["rule"].isin(("strict", "loose"))
    if bad_rule.any():
        raise ValueError(f"balanced set: rule must be 'strict' or 'loose'; bad case(s) "
                         f"{df['case_num'][bad_rule].tolist()}")
    df.attrs["source"] = CONTROL_SOURCE
    if not resolve:
        return df
    return resolve_spans(df, tokenizer if tokenizer is not None else clip_tokenizer(), strict, "balanced")


def load_memorized() -> pd.DataFrame:
    """The 500 memorized SD 1.x prompts (Webster 2023 via Wen et al., ICLR 2024; the authors' release; paper §3.6–§3.7):
    column ``prompt`` (the jsonl ``caption``) plus the released ``index`` and ``url``."""
    text = _data("memorized_sd1_500.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return pd.DataFrame(rows).rename(columns={"caption": "prompt"})


def stratified(df: pd.DataFrame, n: int, by: str = "content_type") -> pd.DataFrame:
    """``n`` rows taken in turn from each ``by`` group (artist, landmark, character), in file order.

    ``n`` ≥ len(df) returns every row, so small profiles still see every category.
    """
    rank = df.groupby(by, sort=False).cumcount()  # position of each row within its group
    return df.loc[rank.sort_values(kind="stable").index[:n]].sort_index()


def load_prompt_set(name: str, tokenizer=None, n: int | None = None, sets=None, exclude=()) -> pd.DataFrame:
    """A prompt set by the name a profile gives it, at most ``n`` rows (taken across categories),
    without the rows that pair a concept in ``exclude`` (the profile's ``exclude_concepts``).

    "dominancebench" (paper §2), "balanced" (`load_balanced`), "memorized" (`load_memorized`,
    ``case_num`` = its released ``index``), or one of ``sets`` (name → loader: the sets a world
    adds, `dvdlib.worlds.World.prompt_sets`). Sets that label concepts get their token spans
    resolved with ``tokenizer`` (every row must resolve).
    """
    loaders = {"dominancebench": lambda: load_dominancebench(resolve=False),
               "balanced": lambda: load_balanced(resolve=False),
               "memorized": lambda: load_memorized().rename(columns={"index": "case_num"}),
               "unselected": load_unselected, "factorial": load_factorial, "pilot": load_pilot, **(sets or {})}
    if name not in loaders:
        raise ValueError(f"unknown prompt set {name!r}; known: {sorted(loaders)}")
    table = loaders[name]()
    named = [column for column in ("content", "nm_word") if column in table]
    if exclude and named:
        table = table[~table[named].isin(list(exclude)).any(axis=1)].reset_index(drop=True)
    if tokenizer is not None and "content" in table:
        table = resolve_spans(table, tokenizer, strict=True, name=name)
    if not n:
        return table
    return stratified(table, n) if "content_type" in table else table.head(n)


def case(table: pd.DataFrame, case_num: int) -> pd.Series:
    """The row of ``case_num`` (named by it), or the first row when the set has no such case (a
    world's own sets number their own cases)."""
    cases = table.set_index("case_num")
    return cases.loc[case_num] if case_num in cases.index else cases.iloc[0]


DREAMBOOTH_GROUPS = ("object", "scene", "style")


def load_dreambooth_prompts(tokenizer=None, n: int | None = None, token: str = "dvddog",
                            subject: str = "dog", path=None) -> pd.DataFrame:
    """The 50 prompts of the DreamBooth causal test (paper §3.3; ``dreambooth_prompts.csv``, the
    project's own words): 18 object co-occurrence, 16 scene context, 16 style modifier prompts,
    each pairing the fine-tuned ``token`` ("dvddog dog") with one other concept.

    DominanceBench's columns so `dvdlib.dvd.judge_images` scores them unchanged: ``content`` is
    the judge-facing word of the new concept (``subject``, "dog": a judge cannot know "dvddog"),
    ``content_type`` is ``subject`` too (no category of the question set, so the dog is asked the
    object questions), ``nm_word`` the other concept; plus ``group``. Validates that every prompt
    holds ``token`` and its other concept; ``tokenizer`` adds the token spans (strict). ``n`` takes
    rows in turn from each group.
    """
    raw = pd.read_csv(str(path or _data("dreambooth_prompts.csv")), dtype=str, keep_default_na=False, comment="#")
    if list(raw.columns) != ["group", "prompt", "other"]:
        raise ValueError(f"dreambooth prompt file: expected columns group, prompt, other; got {list(raw.columns)}")
    bad = raw[~raw["group"].isin(DREAMBOOTH_GROUPS)]
    if len(bad):
        raise ValueError(f"dreambooth prompts: group must be one of {DREAMBOOTH_GROUPS}; bad: {bad.prompt.tolist()}")
    if raw["prompt"].duplicated().any():
        raise ValueError(f"dreambooth prompts repeat: {raw.prompt[raw.prompt.duplicated()].tolist()}")
    missing = [p for p, o in zip(raw["prompt"], raw["other"]) if token not in p.split() or o.lower() not in p.lower()]
    if missing:
        raise ValueError(f"dreambooth prompts lacking the token {token!r} or their other concept: {missing}")
    df = pd.DataFrame({"case_num": range(1, len(raw) + 1), "content_type": subject, "content": subject,
                       "nm_word": raw["other"], "prompt": raw["prompt"], "group": raw["group"]})
    if tokenizer is not None:
        df = resolve_spans(df, tokenizer, strict=True, name="dreambooth")
    return stratified(df, n, by="group") if n else df


# ------------------------------------------------- the ACCV version's sets (paper §3.9, §3.10)

UNSELECTED_COLUMNS = BENCH_COLUMNS + ("object_prompt_phrase", "template_id", "source")
#: Slot columns of the three-concept sets: ``target<k>_type``, ``target<k>`` (and, in the
#: factorial, ``target<k>_homogeneity``: 1 a low-diversity named concept, 0 an ordinary object).
TRIPLET_SLOTS = (1, 2, 3)
FACTORIAL_COLUMNS = ("case_num", "condition", "condition_case_num", "prompt",
                     *(f"target{k}{part}" for k in TRIPLET_SLOTS for part in ("_type", "", "_homogeneity")),
                     "template_id")
PILOT_COLUMNS = ("case_num", "prompt", *(f"target{k}{part}" for k in TRIPLET_SLOTS for part in ("_type", "")),
                 "carrier", "template_id")
#: The named concept each factorial slot holds when its bit is 1 (slot 1 artist, 2 landmark, 3 character).
SLOT_TYPES = dict(zip(TRIPLET_SLOTS, CONTENT_TYPES))


class PromptSetError(ValueError):
    """Bad input in a prompt-set file; the message names the file, the row and the column.
    Raised while loading, so nothing is generated for a bad file."""


def _row(df: pd.DataFrame, i: int) -> str:
    """How an error names row ``i`` of a table read from a CSV: its line and its case number."""
    return f"row {i + 2} (case_num {df['case_num'].iloc[i]})"


def _read_set(path, name: str, columns, integer=("case_num",), unique=("case_num",)) -> pd.DataFrame:
    """A prompt-set CSV read as text and checked with `validate_table`: every error names the file;
    a missing column names the header row and the column."""
    raw = pd.read_csv(str(path), dtype=str, keep_default_na=False, comment="#")
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise PromptSetError(f"{path}: row 1 (the header), column {missing[0]!r}: missing "
                             f"(all missing: {missing}; the {name} set needs {list(columns)})")
    try:
        return validate_table(raw, name, columns, integer=integer, unique=unique)
    except ValueError as error:
        raise PromptSetError(f"{path}: {error}") from None


def _check(df: pd.DataFrame, path, bad: list[str], what: str) -> None:
    """One `PromptSetError` for every bad (row, column) of ``df`` found, or nothing."""
    if bad:
        raise PromptSetError(f"{path}: {len(bad)} {what}:\n" + "\n".join(f"  {b}" for b in bad))


def check_targets(df: pd.DataFrame, path, columns) -> None:
    """Every ``columns`` value of every row must occur in the row's prompt (`dvdlib.tokens.find_concept`:
    case-, accent- and hyphen-insensitive); else one `PromptSetError` naming the file, each bad row
    and its column. ``columns``: column names, or (column, column that locates it) pairs."""
    pairs = [(c, c) if isinstance(c, str) else tuple(c) for c in columns]
    bad = [f"{_row(df, i)}, column {located!r}: {df[located].iloc[i]!r} not found in the prompt {prompt!r}"
           for i, prompt in enumerate(df["prompt"]) for _, located in pairs
           if find_concept(prompt, df[located].iloc[i]) is None]
    _check(df, path, bad, "target(s) not found in their prompts")


def _check_types(df: pd.DataFrame, path, columns, allowed) -> None:
    bad = [f"{_row(df, i)}, column {c!r}: {df[c].iloc[i]!r} is not one of {list(allowed)}"
           for c in columns for i in range(len(df)) if df[c].iloc[i] not in allowed]
    _check(df, path, bad, "value(s) out of range")


def load_unselected(path=None) -> pd.DataFrame:
    """The unselected set (the paper's ACCV version; the authors' ``independent_prompts_300.csv``):
    300 prompts from 15 templates (5 per category) over DominanceBench's concepts and objects,
    never filtered by SD 1.4's output. DominanceBench's columns plus ``object_prompt_phrase``
    (how the prompt writes the object: the object is located by it, the judge asks the raw
    ``nm_word``, as the authors' scorer does), ``template_id``, ``source``, and ``cluster`` (the
    concept: the unit of inference). Bad input raises one `PromptSetError` naming the file, the row
    and the column."""
    path = path or _data("independent_prompts_300.csv")
    df = _read_set(path, "unselected", UNSELECTED_COLUMNS)
    _check_types(df, path, ["content_type"], CONTENT_TYPES)
    check_targets(df, path, ["content", "object_prompt_phrase"])
    return df.assign(cluster=df["content"])


def load_factorial(path=None) -> pd.DataFrame:
    """The three-concept 2×2×2 factorial (the paper's ACCV version; the authors'
    ``triplet_factorial_prompts_240.csv``): 8 conditions × 30 matched cases. Checks that each slot's
    type agrees with its homogeneity bit (1: slot 1 artist, 2 landmark, 3 character; 0: object),
    that ``condition`` spells the three bits, that every target occurs in its prompt and that each
    case has each condition once. Adds ``case`` (= ``condition_case_num``, the matched case) and
    ``cluster`` (the case). One `PromptSetError` names the file, the row and the column."""
    path = path or _data("triplet_factorial_prompts_240.csv")
    bits = [f"target{k}_homogeneity" for k in TRIPLET_SLOTS]
    df = _read_set(path, "factorial", FACTORIAL_COLUMNS, integer=("case_num", "condition_case_num", *bits))
    _check_types(df, path, bits, (0, 1))
    bad = [f"{_row(df, i)}, column 'target{k}_type': {df[f'target{k}_type'].iloc[i]!r} does not match "
           f"target{k}_homogeneity = {df[f'target{k}_homogeneity'].iloc[i]} (expected "
           f"{SLOT_TYPES[k] if df[f'target{k}_homogeneity'].iloc[i] else 'object'!r})"
           for i in range(len(df)) for k in TRIPLET_SLOTS
           if df[f"target{k}_type"].iloc[i] != (SLOT_TYPES[k] if df[f"target{k}_homogeneity"].iloc[i] else "object")]
    bad += [f"{_row(df, i)}, column 'condition': {c!r} does not spell the homogeneity bits "
            f"{''.join(str(df[b].iloc[i]) for b in bits)!r}"
            for i, c in enumerate(df["condition"]) if c != "".join(str(df[b].iloc[i]) for b in bits)]
    _check(df, path, bad, "inconsistent slot(s)")
    check_targets(df, path, [f"target{k}" for k in TRIPLET_SLOTS])
    repeated = df[df.duplicated(["condition_case_num", "condition"], keep="first")]
    _check(df, path, [f"{_row(df, df.index.get_loc(i))}, column 'condition': case "
                      f"{r.condition_case_num} already has condition {r.condition}" for i, r in repeated.iterrows()],
           "repeated condition(s)")
    return df.assign(case=df["condition_case_num"], cluster=df["condition_case_num"])


def load_pilot(path=None) -> pd.DataFrame:
    """The three-concept pilot (the authors' ``triplet_pilot_prompts_30.csv``): an artist, a
    landmark and a character in each prompt, in varying order, on a carrier ("poster", "mural").
    Checks the slot types and that every target occurs in its prompt; one `PromptSetError` names
    the file, the row and the column."""
    path = path or _data("triplet_pilot_prompts_30.csv")
    df = _read_set(path, "pilot", PILOT_COLUMNS)
    _check_types(df, path, [f"target{k}_type" for k in TRIPLET_SLOTS], CONTENT_TYPES)
    check_targets(df, path, [f"target{k}" for k in TRIPLET_SLOTS])
    return df.assign(cluster=df["case_num"])


def as_triplet_design(table: pd.DataFrame, types=CONTENT_TYPES) -> pd.DataFrame:
    """A world's own three-slot design in the authors' factorial columns (`load_factorial`), so
    chapter 11 runs on it unchanged: from ``target_<k>``, ``named_<k>`` (1: slot k holds a named
    concept of ``types[k-1]``, 0: an object), ``condition``, ``case`` and ``prompt`` (the columns of
    `dvdlib.toy2.prompts.factorial`) to ``target<k>``, ``target<k>_type``, ``target<k>_homogeneity``,
    ``condition_case_num``, ``case_num``, ``template_id``. Checks the result as `load_factorial` does
    (every target in its prompt)."""
    out = pd.DataFrame({"case_num": range(1, len(table) + 1), "condition": table["condition"].astype(str),
                        "condition_case_num": table["case"].astype(int), "prompt": table["prompt"]})
    for k, kind in zip(TRIPLET_SLOTS, types):
        named = table[f"named_{k}"].astype(int)
        out[f"target{k}"] = table[f"target_{k}"]
        out[f"target{k}_type"] = [kind if n else "object" for n in named]
        out[f"target{k}_homogeneity"] = named.to_numpy()
    out["template_id"] = table["template"] if "template" in table else "world"
    check_targets(out, "the world's factorial", [f"target{k}" for k in TRIPLET_SLOTS])
    return out.assign(case=out["condition_case_num"], cluster=out["condition_case_num"])
