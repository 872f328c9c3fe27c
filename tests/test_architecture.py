"""The layering the package promises: stage library and support modules at the bottom, the KFP layer
(odqa.pipeline) above them, the CLI on top, and no import circle anywhere, counting imports inside
functions too (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Higher layers may import lower ones only. Everything not named here is the stage library or a
# support module (layer 0).
LAYERS = {"odqa.pipeline": 1, "odqa.cli": 2}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """odqa module -> the odqa modules it imports (module level or inside functions)."""
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _area(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_between_modules():
    assert _cycles(import_graph()) == []


def test_no_import_circle_between_areas():
    """odqa.reader must not need odqa.retrieval while odqa.retrieval needs odqa.reader, and so on."""
    areas: dict[str, set[str]] = defaultdict(set)
    for a, targets in import_graph().items():
        areas[_area(a)].update(_area(b) for b in targets if _area(b) != _area(a))
    assert _cycles(areas) == []


def test_lower_layers_never_import_higher_ones():
    wrong = [
        f"{a} -> {b}"
        for a, targets in import_graph().items()
        for b in targets
        if LAYERS.get(_area(b), 0) > LAYERS.get(_area(a), 0)
    ]
    assert wrong == []


@pytest.mark.parametrize("edge", [("odqa.reader.train", "odqa.cli.reader"), ("odqa.io", "odqa.io_b")])
def test_the_checks_fail_on_a_bad_graph(edge):
    """The checks above can fail: an upward edge and a circle are both reported."""
    a, b = edge
    graph = {a: {b}, b: {a}}
    assert _cycles(graph) == [sorted([a, b])]
    assert LAYERS.get(_area("odqa.cli.reader"), 0) > LAYERS.get(_area("odqa.reader.train"), 0)


def test_no_sys_path_edits():
    offenders = [
        str(p.relative_to(SRC.parent))
        for p in [*SRC.rglob("*.py"), *(SRC.parent / "bench").glob("*.py")]
        if "sys.path.insert" in p.read_text(encoding="utf-8")
        or "sys.path.append" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
