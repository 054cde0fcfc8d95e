"""`dvdlib.report.same_rows` / `rows_or_sentence`: a table whose rows all read the same is shown as
one sentence (a grid of identical rows informs no more than the sentence), any other as itself."""

import math

import pandas as pd
from IPython.display import Markdown

from dvdlib.report import rows_or_sentence, same_rows


def test_identical_rows_become_one_sentence():
    grid = pd.DataFrame({"benchmark": [100.0] * 30, "control": [100.0] * 30, "gap": [0.0] * 30})
    assert same_rows(grid, "configurations") == "All 30 configurations read: benchmark 100, control 100, gap 0."
    said = same_rows(grid, "configurations", say="Every one of the {n} {rows} flags {benchmark}% (gap {gap}).")
    assert said == "Every one of the 30 configurations flags 100% (gap 0)."
    # column groups are named by their labels joined; a missing value is said as such, never "nan"
    grouped = pd.concat({"DvD": pd.DataFrame({"rate": [0.125, 0.125], "n": [math.nan, math.nan]})}, axis=1)
    assert same_rows(grouped, "layers") == "All 2 layers read: DvD rate 0.125, DvD n no value."
    assert same_rows(grouped, "layers", say="{n}: {DvD rate}") == "2: 0.125"


def test_rows_that_differ_or_too_few_stay_a_table():
    table = pd.DataFrame({"a": [1, 2, 2]})
    assert same_rows(table, "rows") is None and rows_or_sentence(table, "rows") is table
    assert same_rows(table.iloc[:1], "rows") is None  # one row: nothing repeats
    styled = table.style
    assert rows_or_sentence(table, "rows", shown=styled) is styled
    same = rows_or_sentence(pd.DataFrame({"a": [3, 3], "b": ["x", "x"]}), "rows")
    assert isinstance(same, Markdown) and same.data == "All 2 rows read: a 3, b x."


def test_an_empty_table_says_why_where_told():
    empty = pd.DataFrame(columns=["prompt", "peak_token"])
    shown = rows_or_sentence(empty, "rows", empty="No row has its peak outside the concept.")
    assert isinstance(shown, Markdown) and shown.data == "No row has its peak outside the concept."
    assert rows_or_sentence(empty, "rows") is empty
