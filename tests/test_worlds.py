"""Worlds are plug-ins: a profile names its world, a world module registers itself, the core
never imports a world's own code; `dvdlib.setup` gives a chapter everything it needs."""

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

from dvdlib import worlds
from dvdlib.profiles import load_profile
from dvdlib.run import Run, setup

REPO = Path(__file__).resolve().parents[1]
CORE = [p for p in (REPO / "dvdlib").glob("*.py")] + list((REPO / "dvdlib" / "profiles").glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports written out from the ``dvdlib`` package."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "dvdlib." if node.level else ""
            names.add(base + (node.module or "") if node.module else base.rstrip("."))
            names |= {f"{base}{node.module + '.' if node.module else ''}{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_no_core_module_imports_the_toy_world(path):
    shipped = {f"dvdlib.worlds.{name}" for name in worlds.available()}
    toy = [name for name in imported_modules(path) if name.startswith("dvdlib.toy") or name in shipped]
    assert not toy, f"{path.name} imports {toy}: only dvdlib/worlds/ meets a world's own code"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_no_core_module_asks_which_world_it_runs(path):
    text = path.read_text()
    for question in ('model == "smoke"', 'startswith("toy', "is_toy_folder", "uses_toy_world", "MANIFEST"):
        assert question not in text, f"{path.name} asks {question!r}"


def test_the_smoke_world_and_the_shared_scenes_import_no_toy_world():
    """The smoke world's stand-in images and what the toy worlds share (`dvdlib.scenes`) load no toy world."""
    import subprocess

    code = ("import sys, dvdlib.worlds.smoke, dvdlib.scenes.concepts, dvdlib.scenes.sprites, dvdlib.scenes.standins; "
            "print(sorted(m for m in sys.modules if m.startswith(('dvdlib.toy', 'dvdlib.worlds.toy'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("own, other", [("toy", "toy2"), ("toy2", "toy")])
def test_a_toy_world_takes_no_private_name_of_the_other(own, other):
    for path in (REPO / "dvdlib" / own).glob("*.py"):
        private = [name for name in imported_modules(path)
                   if name.startswith(f"dvdlib.{other}.") and name.rsplit(".", 1)[1].startswith("_")]
        assert not private, f"{own}/{path.name} imports {private}: share it through dvdlib.scenes"


def test_profiles_name_their_world_and_take_its_sets():
    assert [load_profile(n).world for n in ("paper", "smoke", "toy")] == ["sd", "smoke", "toy"]
    toy = load_profile("toy")
    assert toy.prompt_sets == {"benchmark": "toy-dominance", "control": "toy-balanced", "balanced": "toy-balanced",
                               "unselected": "toy-unselected"}  # world 1 has no three-concept sets
    assert toy.questions == "toy" and load_profile("smoke").questions == "paper"
    assert load_profile("smoke").prompt_sets["memorized"] == "memorized"


def test_unknown_world_says_what_is_known():
    assert {"sd", "smoke", "toy"} <= set(worlds.available())
    with pytest.raises(ValueError, match="unknown world 'nowhere'.*'sd'"):
        worlds.get("nowhere")


def test_a_new_world_is_one_module_that_registers_itself(tmp_path, monkeypatch):
    """A user's world: a module that changes two fields of Stable Diffusion's and registers; a
    profile names it by its dotted path. No module of dvdlib changes."""
    (tmp_path / "my_world.py").write_text(
        "import dataclasses\n"
        "import pandas as pd\n"
        "from dvdlib.worlds import register, sd\n"
        "def shapes():\n"
        "    return pd.DataFrame({'case_num': [1], 'content_type': ['landmark'], 'content': ['cube'],\n"
        "                         'nm_word': ['ball'], 'prompt': ['cube and ball']})\n"
        "WORLD = register(dataclasses.replace(sd.WORLD, name='my_world', description='shapes',\n"
        "    roles={'benchmark': 'shapes', 'control': 'balanced', 'balanced': 'balanced'},\n"
        "    prompt_sets={'shapes': shapes}, category_words=lambda: {'cube': 'shape'}))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    profile = tmp_path / "mine.yaml"
    profile.write_text((REPO / "dvdlib" / "profiles" / "smoke.yaml").read_text().replace("world: smoke", "world: my_world"))
    run = setup(str(profile), "04_focus_score", out_dir=tmp_path)
    assert run.world.name == "my_world" and run.profile.prompt_sets["benchmark"] == "shapes"
    rows = run.prompts("benchmark")  # through the smoke model's CLIP tokenizer
    assert list(rows.prompt) == ["cube and ball"] and rows.content_span[0] == [1]
    assert run.world.category_words() == {"cube": "shape"}
    sys.modules.pop("my_world", None)


def test_setup_gives_a_chapter_what_it_needs(tmp_path):
    run = setup("smoke", "04_focus_score", out_dir=tmp_path, seeds=[7], store=str(tmp_path / "store"))
    assert isinstance(run, Run) and run.profile.seeds == [7] and run.profile.name == "smoke"
    assert run.figures == f"{tmp_path}/figures/04_focus_score"
    assert run.report.path == tmp_path / "results" / "04_focus_score.json"
    assert run.store().model == "smoke" and run.store().settings == run.profile.sampler()
    assert "pipe" not in run.__dict__  # nothing is loaded before it is used
    assert len(run.layers) == 16 and run.load() is run.pipe
    assert run.questions.name == "paper" and "Caveat" in run.card().data
    assert run.load("smoke") is run.pipe


def test_tables_after_setup_show_every_cell_whole(tmp_path):
    import pandas as pd

    reason = "the 95% interval [-0.973, -0.491] lies below the null 0, over 9 fine-tunes; p = 0.0112"
    with pd.option_context("display.max_colwidth", 50):  # pandas' default, restored afterwards
        assert reason not in pd.DataFrame({"verdict": [reason]})._repr_html_()
        setup("smoke", "x", out_dir=tmp_path, store=str(tmp_path / "store"))
        assert reason in pd.DataFrame({"verdict": [reason]})._repr_html_()
        html = pd.DataFrame({"mean": [0.022012, 18319.0], "p": [2e-06, 0.1875]})._repr_html_()
        assert all(f"<td>{v}</td>" in html for v in ("0.022", "18,319", "2.00e-06", "0.188"))
    pd.reset_option("display.float_format")


def test_words_at_the_surface(tmp_path):
    import dvdlib

    run = setup("smoke", "x", out_dir=tmp_path, store=str(tmp_path / "store"), steps=2)
    (sample,) = dvdlib.generate(run.pipe, ["a carry-all pouch by the Colosseum"], [1], store=run.store(),
                                attention={"layers": [7, 8, 9], "steps": [1], "maps": True}, until_step=1)
    span = sample.tokens_of("pouch")
    assert len(span) == 1
    assert np.isclose(sample.word_share("pouch", layer=7, step=1), sample.share(7, 1)[span].sum())
    both = (sample.map(8)[..., span].sum(-1) + sample.map(9)[..., span].sum(-1)) / 2
    assert np.allclose(sample.word_map("pouch", layers=[8, 9]), both)
    assert sample.word_map("colosseum", layers=[8]).shape == sample.map(8).shape[:2]
    with pytest.raises(Exception, match="'teapot' not found"):
        sample.word_share("teapot", layer=7)


@pytest.mark.parametrize("x, text", [(0.022012, "0.022"), (25.4167, "25.4"), (2.0, "2"), (404.12, "404.1"), (100.0, "100"),
                                     (18319.0, "18,319"), (-0.0446612, "-0.0447"), (2e-06, "2.00e-06"),
                                     (0.0, "0"), (float("nan"), "nan")])
def test_numbers_as_a_reader_reads_them(x, text):
    from dvdlib.report import number

    assert number(x) == text
