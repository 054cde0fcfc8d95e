"""dvdlib's import graph: no cycle, and no module imports from a layer above its own.

The graph is read from the source with `ast`, nothing is imported. Its nodes are dvdlib's modules;
a package's ``__init__`` is a node of its own, named as the package (``dvdlib.adapters``, and
``dvdlib`` for the root: the public façade, which sits on top). Its edges are every ``import`` and
``from … import`` at any depth (in functions too, and under ``if TYPE_CHECKING``), plus
``importlib.import_module`` of a constant name: ``from .x import name`` is an edge to ``x``,
``from . import x`` to the submodule ``x`` when there is one (else to the package's
``__init__``). Importing a submodule also runs its parents' ``__init__`` in Python; those implied
edges are left out (the root's ``__init__`` imports the public API, so every module would then
sit in one cycle with it). A module loaded by a name computed at run time (a world by its
profile's name, `dvdlib.worlds.get`) is no edge: what registers it is the code that names it.

The layering, lowest first (book/forking.md, "How the library is layered"); a module may import
from its own layer and those below. Modules no pattern names form the top layer — the chapters'
work and plans, the book runner and its pages, the command line, the profiles, worlds and toy
models, `run`, the package itself — so renaming or splitting one of those needs no edit here.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "dvdlib"

#: (layer, patterns of module names relative to ``dvdlib``), lowest first.
LAYERS = (
    ("base utilities", ("authors", "metrics", "paper", "plots", "progress", "report", "stats", "store", "vqa")),
    ("core: model, attention, generation, store keys", (
        "family", "tokens", "layers", "attention", "noise_norm", "models", "generate", "clip", "judge", "bench")),
    ("analyses (the paper's experiments; family-agnostic: they read a model through dvdlib.family)", (
        "ablation", "ablation.*", "causal", "detect", "diversity", "dvd", "factorial", "finetune", "focus", "memorization",
        "outcome", "replace", "temporal", "triplets", "unselected")),
    ("adapters (model families, registered with dvdlib.family)", ("adapters", "adapters.*")),
)
TOP = "top: chapters' work, plan, prefetch, book, cli, profiles, worlds, toy models, run, the package"


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package's __init__) of every .py under ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def _nearest(name: str, known) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


class Graph(dict):
    """module → {imported module: places}, shown short in a failure's traceback."""

    def __repr__(self) -> str:
        return f"<import graph of {len(self)} modules>"


def import_graph(root: Path) -> dict[str, dict[str, list[str]]]:
    """module → {imported module of the package: ["file:line", ...]} (every depth, see above)."""
    known = modules(root)
    top = root.name
    graph = Graph()
    for name, (path, package) in known.items():
        here = name if package else name.rpartition(".")[0]
        edges: dict[str, list[str]] = {}

        def add(target: str | None, node) -> None:
            where = f"{path.relative_to(root.parent)}:{node.lineno}"
            if target and target != name and where not in edges.get(target, ()):
                edges.setdefault(target, []).append(where)

        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        add(_nearest(alias.name, known), node)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")
                    if node.level - 1 >= len(base):
                        continue
                    base = base[:len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != top:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    add(sub if sub in known else _nearest(target, known), node)
            elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str) and node.args[0].value.split(".")[0] == top
                  and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
                add(_nearest(node.args[0].value, known), node)
        graph[name] = edges
    return graph


def cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), sorted."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def layer_of(name: str, layers=LAYERS, package: str = "dvdlib") -> int:
    """The position of ``name``'s layer in ``layers`` (len(layers): the top, for a module no
    pattern names); a module two layers name is an error."""
    short = name[len(package) + 1:] if name.startswith(package + ".") else ""
    hits = [i for i, (_, patterns) in enumerate(layers) if any(fnmatch.fnmatchcase(short, p) for p in patterns)]
    if len(hits) > 1:
        raise ValueError(f"{name} is named by layers {[layers[i][0] for i in hits]}")
    return hits[0] if hits else len(layers)


def upward(graph, layers=LAYERS, package: str = "dvdlib") -> list[str]:
    """Every import from a higher layer, as a readable line."""
    names = [label for label, _ in layers] + [TOP]
    lines = []
    for source, edges in sorted(graph.items()):
        for target, where in sorted(edges.items()):
            low, high = layer_of(source, layers, package), layer_of(target, layers, package)
            if high > low:
                lines.append(f"{source} [{names[low]}] imports {target} [{names[high]}] at {', '.join(where)}")
    return lines


def cycle_report(graph, components) -> str:
    lines = []
    for component in components:
        inside = set(component)
        lines.append("cycle among " + ", ".join(component) + ":")
        lines += [f"    {s} -> {t} at {', '.join(graph[s][t])}" for s in component for t in sorted(graph[s])
                  if t in inside]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT)


def test_no_import_cycle(graph):
    found = cycles(graph)
    assert not found, "dvdlib's modules import each other in a cycle:\n" + cycle_report(graph, found)


def test_no_module_imports_from_a_higher_layer(graph):
    found = upward(graph)
    assert not found, ("a module imports from a layer above its own (tests/test_import_graph.py, LAYERS):\n  "
                       + "\n  ".join(found))


def test_the_core_reaches_the_families_only_through_the_interface(graph):
    """Nothing below the adapters imports one, not even inside a function: the core and the
    analyses see a family only as the `dvdlib.family.Adapter` that `dvdlib.family.of` finds."""
    below = [name for name in graph if layer_of(name) < layer_of("dvdlib.adapters")]
    found = [f"{name} imports {target} at {', '.join(where)}" for name in below
             for target, where in graph[name].items()
             if target == "dvdlib.adapters" or target.startswith("dvdlib.adapters.")]
    assert not found, "\n".join(found)


def test_every_named_module_exists(graph):
    """A pattern that names no module is stale (a module renamed, which then falls to the top)."""
    stale = [(label, p) for label, patterns in LAYERS for p in patterns
             if not any(fnmatch.fnmatchcase(name[len("dvdlib."):], p) for name in graph if name != "dvdlib")]
    assert not stale, f"patterns naming no module of dvdlib: {stale}"
    for name in graph:
        layer_of(name)  # no module is named by two layers


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """The checks on a made-up package: an import inside a function that climbs a layer, a
    ``from . import`` cycle through a subpackage, each named with its file and line."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from . import low\n",
        "low.py": "import os\n\ndef late():\n    from .high import thing\n    return thing\n",
        "high.py": "from pkg.low import late\nthing = 1\n",
        "sub/__init__.py": "from .a import x\n",
        "sub/a.py": "from .. import sub as s\nx = 1\n",
        "sub/b.py": "from . import a\nfrom pkg.sub import x\nimport importlib\nimportlib.import_module('pkg.high')\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    g = import_graph(pkg)
    assert g["pkg"] == {"pkg.low": ["pkg/__init__.py:1"]}
    assert g["pkg.low"] == {"pkg.high": ["pkg/low.py:4"]} and g["pkg.high"] == {"pkg.low": ["pkg/high.py:1"]}
    assert set(g["pkg.sub.b"]) == {"pkg.sub.a", "pkg.sub", "pkg.high"}
    assert cycles(g) == [["pkg.high", "pkg.low"], ["pkg.sub", "pkg.sub.a"]]
    assert "pkg.low -> pkg.high at pkg/low.py:4" in cycle_report(g, cycles(g))
    layers = (("low", ("low", "sub", "sub.*")), ("high", ("high",)))
    assert upward(g, layers, "pkg") == [
        "pkg.low [low] imports pkg.high [high] at pkg/low.py:4",
        "pkg.sub.b [low] imports pkg.high [high] at pkg/sub/b.py:4"]
