"""Applications sit on top of the library: the core names each one only inside its ``python -m anymal`` command
handler, imported lazily there (the demo in ``_demo``, the server in ``_serve``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _imports_of(tree: ast.AST, package: str) -> list[ast.stmt]:
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(name.partition(".")[0] == package for name in names):
            found.append(node)
    return found


@pytest.mark.parametrize("package, handler", [("anymal_demo", "_demo"), ("anymal_serve", "_serve")])
def test_core_imports_the_application_only_in_its_command_handler(package, handler):
    for path in sorted((REPO / "anymal").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        imports = _imports_of(tree, package)
        if path.relative_to(REPO).as_posix() != "anymal/__main__.py":
            assert not imports, f"{path} imports the application {package}"
            continue
        handlers = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == handler]
        assert len(handlers) == 1 and imports, f"anymal/__main__.py: expected the {package} import in {handler}()"
        assert all(node in set(ast.walk(handlers[0])) for node in imports), f"{package} must be imported lazily"
