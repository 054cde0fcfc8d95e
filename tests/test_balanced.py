"""The balanced control set (paper §3.2): dvdlib/data/balanced_300.csv via dvdlib.bench.load_balanced."""
from importlib.resources import files

import pandas as pd
import pytest

from dvdlib.bench import load_balanced, load_dominancebench, load_prompt_set
from dvdlib.tokens import clip_tokenizer


@pytest.fixture(scope="module")
def tok():
    return clip_tokenizer()


@pytest.fixture(scope="module")
def balanced(tok):
    return load_balanced(tok, strict=True)


def test_shape_and_header(balanced):
    assert len(balanced) == 300
    assert balanced["case_num"].tolist() == list(range(1, 301))
    assert set(balanced["content_type"]) == {"balanced"}
    assert set(balanced["rule"]) == {"strict", "loose"}
    assert (balanced["loose_reason"].eq("") == balanced["rule"].eq("strict")).all()
    head = (files("dvdlib") / "data" / "balanced_300.csv").read_text(encoding="utf-8")
    comments = [s for s in head.splitlines() if s.startswith("#")]
    text = " ".join(comments)
    assert "Ren et al., ECCV 2024" in text and "MIT" in text
    n_strict = int(balanced["rule"].eq("strict").sum())
    assert f"{n_strict} strict + {300 - n_strict} loose" in text


def test_prompts_distinct_and_verbatim_from_pool(balanced):
    pool = (files("dvdlib") / "data" / "group_nomem500.txt").read_text(encoding="utf-8").splitlines()
    assert balanced["prompt"].is_unique and balanced["line"].is_unique
    for row in balanced.itertuples():
        assert pool[row.line - 1] == row.prompt, row.case_num


def test_concepts_differ_and_resolve_disjointly(balanced):
    assert (balanced["content"].str.lower() != balanced["nm_word"].str.lower()).all()
    assert balanced["unresolved"].isna().all()
    for row in balanced.itertuples():
        assert row.content_span and row.nm_span, row.case_num
        assert not set(row.content_span) & set(row.nm_span), row.case_num


def test_no_dominancebench_concept():
    bench = load_dominancebench(resolve=False)
    low = set(bench["content"].str.lower())
    bal = load_balanced(resolve=False)
    used = set(bal["content"].str.lower()) | set(bal["nm_word"].str.lower())
    assert not used & low


def test_prompt_set_registry(tok):
    df = load_prompt_set("balanced", tok, 30)
    assert len(df) == 30 and df["unresolved"].isna().all()
    assert df["prompt"].is_unique


def _write(tmp_path, frame, name="b.csv"):
    path = tmp_path / name
    path.write_text("# test header\n" + frame.to_csv(index=False), encoding="utf-8")
    return path


def test_validation_reports_problems(tmp_path):
    good = load_balanced(resolve=False).head(3)
    good = pd.DataFrame(good)
    dup = pd.concat([good, good.iloc[[0]].assign(case_num=99, line=999)])
    with pytest.raises(ValueError, match="prompt must be unique"):
        load_balanced(resolve=False, path=_write(tmp_path, dup))
    same = good.assign(nm_word=good["content"])
    with pytest.raises(ValueError, match="content equals nm_word"):
        load_balanced(resolve=False, path=_write(tmp_path, same))
    with pytest.raises(ValueError, match="lacks column"):
        load_balanced(resolve=False, path=_write(tmp_path, good.drop(columns=["line"])))
    wrong = good.assign(nm_word=["zebra", "zebra", "zebra"])
    with pytest.raises(ValueError, match="cannot be resolved"):
        load_balanced(clip_tokenizer(), strict=True, path=_write(tmp_path, wrong))


def test_near_duplicates_are_the_pinned_pool_repeats(balanced):
    """The pool repeats five prompts with/without a final period; both copies are kept (header says so)."""
    key = balanced["prompt"].str.lower().str.replace(r"[^a-z ]", "", regex=True).str.strip()
    pairs = sorted(tuple(sorted(g)) for g in balanced.groupby(key)["line"].apply(list) if len(g) > 1)
    assert pairs == [(20, 336), (24, 310), (33, 317), (62, 345), (93, 346)]
