"""The import graph of daemon/ has no cycle, and the arrows that matter run one way.

Built from the source with ast (every import counts, inside functions too), so a cycle hidden
in a function-level import fails here as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daemon"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the daemon modules it imports (``from daemon.x import y`` counts y when y is
    a module, else daemon.x)."""
    files = {module_name(p): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                    for a in node.names
                ]
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def reachable(graph: Mapping[str, set[str]], start: str) -> Iterator[str]:
    seen, todo = {start}, [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
                yield w


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """The test above can fail: a reintroduced app -> scheduler -> pool -> app is found."""
    graph = {k: set(v) for k, v in import_graph().items()}
    assert cycles(graph) == []
    graph["daemon.pool"].add("daemon.app")
    (cycle,) = cycles(graph)
    assert {"daemon.app", "daemon.scheduler", "daemon.pool"} <= set(cycle)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("module", "never"),
    [
        # the CLI and the intake name errors and options, never the pipeline or model store
        ("daemon.cli", ("daemon.pipeline", "daemon.modelstore", "daemon.workers")),
        ("daemon.intake", ("daemon.pipeline", "daemon.modelstore", "daemon.workers")),
        ("daemon.retry", ("daemon.pipeline", "daemon.modelstore", "daemon.store")),
        ("daemon.planner", ("daemon.pipeline", "daemon.store", "daemon.workers")),
        # downstream never reaches back up: cli -> app -> scheduler -> pool -> workers
        ("daemon.workers", ("daemon.pool", "daemon.scheduler", "daemon.app", "daemon.cli")),
        ("daemon.pool", ("daemon.scheduler", "daemon.app", "daemon.cli")),
        ("daemon.scheduler", ("daemon.app", "daemon.cli")),
        ("daemon.store", ("daemon.workers", "daemon.pipeline", "daemon.scheduler")),
        ("daemon.pipeline.run", ("daemon.workers", "daemon.store", "daemon.warm")),
    ],
)
def test_arrows_run_one_way(module: str, never: tuple[str, ...]) -> None:
    graph = import_graph()
    direct = graph[module]
    assert not [m for m in direct if m.startswith(never)], direct
    if not module.endswith(("cli", "intake")):  # these two: direct imports only
        deep = set(reachable(graph, module))
        assert not [m for m in deep if m.startswith(never)], sorted(deep)
