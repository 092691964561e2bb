"""The package's layers: no import runs back up them, and no modules import each other in a circle.

LAYERS is the order, written once, lowest first: a module may import its own part and any part below it.
A part is a top-level module or subpackage of cifarnets, or a module named on its own (store.fileio sits
low, since data/ writes its cache through it; the rest of store/ reads the models). Every import counts,
those inside functions too: a lazy import still ties the two parts together.

`python tests/test_layers.py [REPOSITORY]` lists the imports that run back up, and the circles.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

LAYERS = (
    "cifarnets",  # the package itself: CIFAR10_CLASSES, __version__
    "errors", "paths", "prose", "cliargs",
    "store.fileio",
    "device", "answering",
    "models",
    "data",
    "store",
    "training",
    "diagram",
    "unfamiliar",
    "predict",
    "analysis",
    "stress",
    "yours",
    "photos",
    "runs",
    "examples",
    "perf",
    "cli", "__main__",
    "ui",
)
RANK = {part: i for i, part in enumerate(LAYERS)}


def imports(root: Path) -> dict[str, set[str]]:
    """{module: the cifarnets modules it imports}, from the source alone (nothing is run)."""
    package = root / "cifarnets"
    found = {}
    for f in sorted(package.rglob("*.py")):
        name = ".".join(("cifarnets", *f.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        here = name if f.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = here.split(".")[:len(here.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                for a in node.names:  # `from . import x`: x may be a module or a name in the package
                    sub = f"{module}.{a.name}"
                    is_module = (root / Path(*sub.split("."))).with_suffix(".py").exists() or \
                        (root / Path(*sub.split("."))).is_dir()
                    targets.add(sub if is_module else module)
        found[name] = {t for t in targets if t == "cifarnets" or t.startswith("cifarnets.")} - {name}
    return found


def part(module: str) -> str:
    """The most specific entry of LAYERS that holds `module`."""
    names = module.split(".")[1:]
    for n in range(len(names), 0, -1):
        if ".".join(names[:n]) in RANK:
            return ".".join(names[:n])
    if names:
        raise AssertionError(f"{module} is in no layer: add its part to LAYERS in {__file__}")
    return "cifarnets"


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if RANK[part(b)] > RANK[part(a)])


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules that import each other round a circle (strongly connected, more than one), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _parts(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    joined = defaultdict(set)
    for a, targets in graph.items():
        joined[part(a)] |= {part(b) for b in targets} - {part(a)}
    return joined


ROOT = Path(__file__).resolve().parents[1]


def test_no_import_runs_back_up_the_layers():
    assert upward(imports(ROOT)) == []


def test_no_circles_between_parts_or_modules():
    graph = imports(ROOT)
    assert circles(_parts(graph)) == [] and circles(graph) == []


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path):
    for name, text in {"__init__.py": "", "paths.py": "from .cli import main\n", "cli.py": "from . import paths\n",
                       "store/__init__.py": "", "store/fileio.py": "from ..models import build\n",
                       "models/__init__.py": "from ..store import fileio\n"}.items():
        (tmp_path / "cifarnets" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cifarnets" / name).write_text(text)
    graph = imports(tmp_path)
    assert upward(graph) == ["cifarnets.paths -> cifarnets.cli", "cifarnets.store.fileio -> cifarnets.models"]
    assert sorted(circles(graph)) == [["cifarnets.cli", "cifarnets.paths"],
                                      ["cifarnets.models", "cifarnets.store.fileio"]]


if __name__ == "__main__":
    graph = imports(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
    up = upward(graph)
    print(f"{len(up)} imports run back up the layers", *up, sep="\n  ")
    between = circles(_parts(graph))
    inside = circles(graph)
    print(f"{len(between)} circles between parts", *[" ".join(c) for c in between], sep="\n  ")
    print(f"{len(inside)} circles between modules", *[" ".join(c) for c in inside], sep="\n  ")
