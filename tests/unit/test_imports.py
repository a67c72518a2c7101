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


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
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


def within(module: str, places: tuple[str, ...]) -> bool:
    """Whether ``module`` is one of ``places`` or inside one of those packages."""
    return any(module == p or module.startswith(p + ".") for p in places)


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """The test above can fail: a reintroduced app -> scheduler -> pool -> app is found."""
    graph = {k: set(v) for k, v in import_graph().items()}
    assert cycles(graph) == []
    graph["daemon.pool"].add("daemon.app.running")
    (cycle,) = cycles(graph)
    assert {"daemon.app.running", "daemon.scheduler", "daemon.pool"} <= set(cycle)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


JOB_BODY = ("daemon.executor", "daemon.jobrun", "daemon.publish")
"""What a worker runs a job with: below the worker, above the pipeline."""
UP = ("daemon.pool", "daemon.scheduler", "daemon.app", "daemon.cli")
"""What starts the workers, and everything above it."""


@pytest.mark.parametrize(
    ("module", "never"),
    [
        # the CLI and the intake name errors and options, never the pipeline or model store
        ("daemon.cli", ("daemon.pipeline", "daemon.modelstore", "daemon.workers", *JOB_BODY)),
        ("daemon.intake", ("daemon.pipeline", "daemon.modelstore", "daemon.workers", *JOB_BODY)),
        ("daemon.retry", ("daemon.pipeline", "daemon.modelstore", "daemon.store")),
        ("daemon.planner", ("daemon.pipeline", "daemon.store", "daemon.workers", *JOB_BODY)),
        # downstream never reaches back up:
        # cli -> app -> scheduler -> pool -> workers -> executor -> jobrun, publish -> pipeline
        # the two faces call the same library, never each other; the library calls neither
        ("daemon.app", ("daemon.cli", "daemon.http")),
        ("daemon.http", ("daemon.cli",)),
        ("daemon.workers", ("daemon.pool", "daemon.scheduler", "daemon.app", "daemon.cli")),
        ("daemon.executor", ("daemon.workers", *UP)),
        ("daemon.jobrun", ("daemon.executor", "daemon.publish", "daemon.workers", *UP)),
        ("daemon.publish", ("daemon.executor", "daemon.jobrun", "daemon.workers", *UP)),
        ("daemon.pool", ("daemon.scheduler", "daemon.app", "daemon.cli")),
        ("daemon.scheduler", ("daemon.app", "daemon.cli")),
        ("daemon.nodes", ("daemon.store", "daemon.scheduler", "daemon.app", "daemon.cli")),
        # the store (and its base and rows) never reaches the workers or the pipeline
        ("daemon.store", ("daemon.workers", *JOB_BODY, "daemon.pipeline", "daemon.scheduler")),
        ("daemon.transitions", ("daemon.store", "daemon.workers", *JOB_BODY, "daemon.pipeline")),
        ("daemon.rows", ("daemon.store", "daemon.transitions", "daemon.pipeline")),
        ("daemon.pipeline.run", ("daemon.workers", *JOB_BODY, "daemon.store", "daemon.warm")),
    ],
)
def test_arrows_run_one_way(module: str, never: tuple[str, ...]) -> None:
    """``module`` (every module of it, for a package) never imports ``never``: directly, and
    for all but the CLI and the intake (whose calls go through the app) through others."""
    graph = import_graph()
    for name in [m for m in graph if within(m, (module,))]:
        direct = graph[name]
        assert not [m for m in direct if within(m, never)], (name, direct)
        if not within(name, ("daemon.cli", "daemon.intake")):
            deep = set(reachable(graph, name))
            assert not [m for m in deep if within(m, never)], (name, sorted(deep))


SAFE_DOOR = "daemon.pipeline.pyannote_env"
"""The one module that imports torchaudio, making it load beside a CPU-only torch."""


def _imported(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return []


def _opens_the_door(node: ast.stmt, loaders: set[str]) -> bool:
    """``pyannote_env.load()``, or an import of a module that calls it at its top."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return ast.unparse(node.value.func) == "pyannote_env.load"
    return any(name in loaders for name in _imported(node))


def _bodies(tree: ast.Module) -> Iterator[list[ast.stmt]]:
    yield tree.body
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.body


def pyannote_before_the_door(package: Path = PACKAGE) -> list[str]:
    """Places (module:line) that import pyannote.audio or torchaudio where nothing earlier in
    the same body went through :data:`SAFE_DOOR`."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in files.items()}
    loaders = {
        name
        for name, tree in trees.items()
        if any(_opens_the_door(node, set()) for node in tree.body)
    }
    bad = []
    for name, tree in trees.items():
        if name == SAFE_DOOR:
            continue
        for body in _bodies(tree):
            opened = False
            for node in body:
                opened = opened or _opens_the_door(node, loaders)
                heavy = [
                    m for m in _imported(node) if m.startswith(("pyannote.audio", "torchaudio"))
                ]
                if heavy and not opened:
                    bad.append(f"{name}:{node.lineno}")
    return bad


def test_torchaudio_is_imported_through_one_door() -> None:
    """Only pyannote_env imports torchaudio; pyannote.audio (which imports torchaudio itself)
    is imported only after ``pyannote_env.load()``, in the same module or function, so no
    order of imports can reach torchaudio's failing extension."""
    for name, path in ((module_name(p), p) for p in PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        direct = [m for n in ast.walk(tree) if isinstance(n, ast.stmt) for m in _imported(n)]
        if name != SAFE_DOOR:
            assert not [m for m in direct if m.startswith("torchaudio")], name
    assert pyannote_before_the_door() == []


def test_the_door_check_finds_an_import_before_it(tmp_path: Path) -> None:
    package = tmp_path / "daemon"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(
        "from daemon import pyannote_env\npyannote_env.load()\nimport pyannote.audio\n"
    )
    (package / "late.py").write_text("def f():\n    import pyannote.audio\n")
    assert pyannote_before_the_door(package) == ["daemon.late:2"]


PURE = (
    "daemon.jobs",
    "daemon.errors",
    "daemon.hooks",
    "daemon.retry",
    "daemon.planner",
    "daemon.threads",
    "daemon.profiles",
    "daemon.devices",
    "daemon.placement",
    "daemon.voices",
    "daemon.fsnames",
    "daemon.config",
    "daemon.pipeline",
)
"""Modules (and packages) of decisions and vocabulary: they never reach the ORM."""
ORM = (
    "daemon.models",
    "daemon.store",
    "daemon.transitions",
    "daemon.rows",
    "daemon.db",
    "daemon.results",
    "daemon.outbox",
)


def third_party(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the top-level names of what it imports outside the daemon."""
    out: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        names = {
            m.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.stmt) for m in _imported(n)
        }
        out[module_name(path, package)] = {n for n in names if n != "daemon"}
    return out


def test_pure_modules_never_reach_the_orm() -> None:
    graph, outside = import_graph(), third_party()
    pure = [m for m in graph if within(m, PURE)]
    assert "daemon.jobs" in pure and "daemon.pipeline.steps" in pure
    for module in pure:
        deep = {module, *reachable(graph, module)}
        assert not [m for m in deep if within(m, ORM)], (module, sorted(deep))
        assert not [m for m in deep if "sqlalchemy" in outside[m]], module
