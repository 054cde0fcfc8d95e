"""A benchmark result names the command that repeats it, quoted as a shell reads it back."""

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from result_file import command  # noqa: E402


def test_the_command_reads_back_as_given():
    args = argparse.Namespace(profiles=["smoke", "toy"], jobs=[2], quiet=True, dry=False, only=None,
                              note="this session's machine (2 cores)", out="x.json")
    written = command("book_time.py", args)
    assert shlex.split(written) == ["python", "benchmarks/book_time.py", "--profiles", "smoke", "toy", "--jobs", "2",
                                    "--quiet", "--note", "this session's machine (2 cores)"]
