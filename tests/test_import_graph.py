"""The ``anymal`` package's imports point one way, down the data flow: no import cycles between its modules.

The graph is built from the source with :mod:`ast`, not by importing anything, so an import that only runs in a
function (a common way to hide a cycle) or under ``if TYPE_CHECKING:`` counts like any other. Its nodes are
modules, a package's ``__init__`` counting as the module named like the package; its rules:

- ``import anymal.x.y`` and ``from anymal.x.y import name`` depend on ``anymal.x.y``, or on ``anymal.x.y.name``
  when that is a module. Relative imports are resolved against the importing module's package first.
- ``from anymal.pkg import Name`` where ``anymal.pkg`` is a package whose ``__init__`` re-exports ``Name`` from one
  of its modules (``from anymal.pkg.sub import Name``, followed through further re-exports) depends on that module,
  not on the package: a module inside a package can use its sibling's public names through the package without
  that counting as the trivial cycle ``pkg -> pkg.sub -> pkg``. A name the ``__init__`` does not re-export (one it
  defines itself, or loads lazily) is a dependency on the package's ``__init__``.
- Importing ``anymal.x.y`` also runs ``anymal/__init__`` and ``anymal/x/__init__``, but those implicit edges to
  parent packages are left out: every module would otherwise be in a cycle with its package's ``__init__``.
  The ``__init__`` edges to its own modules are kept, so a cycle through a package's re-exports is still seen.
- Imports by name at run time (``importlib.import_module("...")``, entry points) are not imports here.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "anymal"
PACKAGE = "anymal"


def _module_files(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root`` by dotted name (``anymal.data`` for ``anymal/data/__init__.py``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files(ROOT)


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _imports(module: str) -> list[tuple[str, str | None]]:
    """``(imported module, imported name or None)`` for every import statement of ``module``, at any depth."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    package = module if _is_package(module) else module.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.extend((source, alias.name) for alias in node.names)
    return [(source, name) for source, name in found if source == PACKAGE or source.startswith(PACKAGE + ".")]


def _reexport_source(package: str, name: str, seen: frozenset[str] = frozenset()) -> str | None:
    """The module that package ``package``'s ``__init__`` takes ``name`` from, following re-exports."""
    for source, imported in _imports(package):
        if imported != name or source in seen:
            continue
        if f"{source}.{name}" in MODULES:
            return f"{source}.{name}"
        if source in MODULES and _is_package(source):
            return _reexport_source(source, name, seen | {package}) or source
        if source in MODULES:
            return source
    return None


def _target(source: str, name: str | None) -> str | None:
    """The module an import depends on (see the module docstring), or None for a module outside the package."""
    if name is not None and f"{source}.{name}" in MODULES:
        return f"{source}.{name}"
    if source not in MODULES:
        return None
    if name is not None and _is_package(source):
        return _reexport_source(source, name) or source
    return source


def import_graph() -> dict[str, set[str]]:
    """For every module of the package, the package's modules it imports (no self-edges)."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {_target(source, name) for source, name in _imports(module)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module: each holds at least one cycle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component."""
    return [_cycle_in(graph, component) for component in strongly_connected(graph)]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest closed path through the component's first module (breadth-first within the component)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle found in strongly connected component {sorted(component)}")


def _format(cycle: list[str]) -> str:
    return " -> ".join(cycle)


def test_graph_sees_function_level_relative_and_reexported_imports():
    """The rules of the module docstring, on the package's own modules (a broken parser would pass vacuously)."""
    graph = import_graph()
    assert len(graph) == len(MODULES) > 20
    assert "anymal.errors" in graph["anymal.config"]
    # an import inside a function (python -m anymal.train imports the loop only when a run starts)
    assert "anymal.train.loop" in graph["anymal.train.__main__"]
    # ``from anymal.data import Example`` resolves to the module defining Example, not to anymal.data's __init__
    assert "anymal.data" not in graph["anymal.train.dataset"]
    assert "anymal.data.readers" in graph["anymal.train.dataset"]
    # ``from anymal.plan import activations as act``: the module itself
    assert "anymal.plan.activations" in graph["anymal.plan.estimate"]
    # a package's __init__ depends on the modules it re-exports from
    assert "anymal.data.readers" in graph["anymal.data"]


def test_cycle_finder_names_the_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert sorted(map(_format, find_cycles(graph))) == ["a -> b -> c -> a", "e -> e2 -> e"]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve(tmp_path, monkeypatch):
    package = tmp_path / "anymal"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .mod import thing\n")
    (package / "sub" / "mod.py").write_text("def f():\n    from ..base import x\n    from . import other\n")
    (package / "sub" / "other.py").write_text("from anymal.sub import thing\n")
    monkeypatch.setattr(sys.modules[__name__], "MODULES", _module_files(package))
    graph = import_graph()
    assert graph["anymal.sub.mod"] == {"anymal.base", "anymal.sub.other"}
    assert graph["anymal.sub.other"] == {"anymal.sub.mod"}
    assert graph["anymal.sub"] == {"anymal.sub.mod"}


def test_no_import_cycles():
    graph = import_graph()
    lines = []
    for component in strongly_connected(graph):
        # the cycle is one path through the component; every edge inside it has to go (or turn around)
        edges = "; ".join(sorted(f"{a} -> {b}" for a in component for b in graph[a] & component))
        lines.append(f"{_format(_cycle_in(graph, component))}\n    edges inside this cycle: {edges}")
    assert not lines, "import cycles in anymal (break each by moving the shared piece down or passing it in):\n" + (
        "\n".join(lines)
    )


@pytest.mark.parametrize("module", ["anymal.processing", "anymal.routing"])
def test_core_does_not_import_data(module):
    """Prompt processing and input routing sit below the dataset readers: ``anymal.data`` uses them, not the reverse."""
    graph = import_graph()
    reached, todo = set(), [module]
    while todo:
        for nxt in graph[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    data = sorted(m for m in reached if m == "anymal.data" or m.startswith("anymal.data."))
    assert not data, f"{module} imports (directly or through other modules) {', '.join(data)}"
