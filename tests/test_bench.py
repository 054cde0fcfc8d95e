"""Prompt sets (paper §3.2): dvdlib.bench, offline."""
import pandas as pd
import pytest

from dvdlib.bench import load_dominancebench, load_memorized, load_prompt_set, unresolved_rows
from dvdlib.tokens import clip_tokenizer

# case_num -> reason for every DominanceBench row whose content or nm_word cannot be located in
# its prompt by dvdlib.tokens.concept_span. Pinned: this test fails if the list changes.
# With the released CSV every concept and object is found (each one occurs exactly once in its
# prompt as a whole word), so the list is empty.
PINNED_UNRESOLVED: dict[int, str] = {}

# Rows sharing one prompt string (the release has 294 distinct strings). Only (8, 9) and (168, 192) differ
# in nm_word; the other four pairs are identical rows.
DUPLICATE_GROUPS = [(8, 9), (113, 197), (138, 193), (168, 192), (179, 181), (272, 278)]


@pytest.fixture(scope="module")
def bench():
    return load_dominancebench()


def test_dominancebench_shape(bench):
    assert len(bench) == 300 and bench["case_num"].tolist() == list(range(1, 301))
    ranges = bench.groupby("content_type")["case_num"].agg(["min", "max", "count"])
    assert ranges.loc["artist"].tolist() == [1, 100, 100]
    assert ranges.loc["landmark"].tolist() == [101, 200, 100]
    assert ranges.loc["character"].tolist() == [201, 300, 100]


def test_unresolved_rows_are_pinned(bench):
    bad = unresolved_rows(bench)
    assert dict(zip(bad["case_num"], bad["unresolved"])) == PINNED_UNRESOLVED


def test_every_resolved_row_has_disjoint_nonempty_spans(bench):
    ok = bench[bench["unresolved"].isna()]
    for row in ok.itertuples():
        assert row.content_span and row.nm_span, row.case_num
        assert not set(row.content_span) & set(row.nm_span), row.case_num
        assert min(row.content_span + row.nm_span) >= 1 and max(row.content_span + row.nm_span) <= 75


def test_spans_of_known_rows(bench):
    row = bench.set_index("case_num").loc
    assert row[4, "content_span"] == [1, 2] and row[4, "nm_span"] == [6]       # Van Gogh's ... Notebook
    assert row[13, "nm_span"] == [5, 6, 7, 8]                                   # Carry-all Pouch
    assert row[204, "content_span"] == [1, 2, 3]                                # Spider-Man


def test_sd2_tokenizer_gives_the_same_spans(bench):
    sd2 = load_dominancebench(clip_tokenizer("zero"))
    assert sd2["content_span"].tolist() == bench["content_span"].tolist()
    assert sd2["nm_span"].tolist() == bench["nm_span"].tolist()


def test_duplicated_prompts_are_reported_not_dropped(bench):
    assert bench.attrs["distinct_prompts"] == 294
    dup = bench[bench["duplicate_prompt"]]
    groups = sorted(dup.groupby("prompt")["case_num"].apply(tuple).tolist())
    assert groups == DUPLICATE_GROUPS


def test_prompts_kept_verbatim(bench):
    prompt = bench.set_index("case_num")["prompt"]
    assert prompt[19] == '"Armored Wallet: Monet\'s ""Lady with Parasol"""'  # quoting as released
    assert prompt[87].startswith("雪中虎図") and "weiß" in prompt[267]


def test_resolve_false_skips_spans():
    df = load_dominancebench(resolve=False)
    assert "content_span" not in df.columns
    with pytest.raises(ValueError, match="resolve=True"):
        unresolved_rows(df)


def write_csv(tmp_path, rows, columns=("case_num", "content_type", "content", "nm_word", "prompt")):
    path = tmp_path / "bench.csv"
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


GOOD = [1, "artist", "van gogh", "mug", "Van Gogh's Irises Mug"]


def test_missing_column(tmp_path):
    path = write_csv(tmp_path, [GOOD[:4]], columns=("case_num", "content_type", "content", "nm_word"))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['prompt'\]"):
        load_dominancebench(path=path)


def test_bad_content_type(tmp_path):
    path = write_csv(tmp_path, [GOOD, [2, "painter", "monet", "mug", "Monet Mug"]])
    with pytest.raises(ValueError, match=r"content_type must be one of .*\(2, 'painter'\)"):
        load_dominancebench(path=path)


def test_duplicate_case_num_and_empty_field(tmp_path):
    with pytest.raises(ValueError, match=r"unique; repeated: \[1\]"):
        load_dominancebench(path=write_csv(tmp_path, [GOOD, GOOD]))
    with pytest.raises(ValueError, match=r"empty fields .*'nm_word'"):
        load_dominancebench(path=write_csv(tmp_path, [GOOD, [2, "artist", "monet", " ", "Monet"]]))


def test_strict_lists_every_unresolved_row(tmp_path):
    path = write_csv(tmp_path, [GOOD, [2, "artist", "monet", "mug", "Irises Mug"],
                                [3, "landmark", "big ben", "tie", "Big Ben Magnet"]])
    df = load_dominancebench(path=path)
    bad = unresolved_rows(df)
    assert bad["case_num"].tolist() == [2, 3]
    assert bad["unresolved"].str.startswith(("content:", "nm_word:")).all()
    with pytest.raises(ValueError) as err:
        load_dominancebench(path=path, strict=True)
    assert "2 DominanceBench row(s)" in str(err.value)
    assert "case 2: content:" in str(err.value) and "case 3: nm_word:" in str(err.value)


def test_memorized():
    m = load_memorized()
    assert len(m) == 500 and "prompt" in m.columns
    assert m["prompt"].iloc[0] == "The No Limits Business Woman Podcast"


def test_memorized_is_a_prompt_set_of_the_sd_profiles_only():
    from dvdlib.profiles import load_profile

    rows = load_prompt_set("memorized", n=3)
    assert list(rows.prompt) == list(load_memorized().prompt[:3]) and list(rows.case_num) == list(load_memorized()['index'][:3])
    assert load_profile("smoke").prompt_sets["memorized"] == "memorized"
    assert "memorized" not in load_profile("toy").prompt_sets  # the toy world memorizes nothing


# prompt sets by name (profiles choose them) ----------------------------------------------------

def test_prompt_sets_by_name():
    from dvdlib.bench import load_prompt_set
    from dvdlib.toy.world import World
    from dvdlib.worlds import get

    tok, toy_sets = clip_tokenizer(), get("toy").prompt_sets  # the toy world adds its own sets
    dominance = load_prompt_set("toy-dominance", tok, sets=toy_sets)
    world = World()
    assert len(dominance) == len(world.rigid) * len(world.objects) * 2 == 24
    assert set(dominance.content) == set(world.rigid) and set(dominance.nm_word) == set(world.objects)
    assert dominance.unresolved.isna().all()
    row = dominance.set_index("prompt").loc["ring and tower"]
    assert row.content_span == [3] and row.nm_span == [1] and row.held_out
    balanced = load_prompt_set("toy-balanced", tok, sets=toy_sets)
    assert len(balanced) == 12 and set(balanced.content_type) == {"object"}
    assert balanced.set_index("prompt").loc["ball and bar"].held_out
    assert len(load_prompt_set("dominancebench", tok, 6)) == 6
    with pytest.raises(ValueError, match="unknown prompt set 'toy-dominance'"):
        load_prompt_set("toy-dominance")  # not without its world
    with pytest.raises(ValueError, match="unknown prompt set 'laion'"):
        load_prompt_set("laion")
