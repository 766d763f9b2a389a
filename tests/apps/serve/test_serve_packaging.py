"""The server is an application: the core names it only in ``python -m anymal serve``'s handler, lazily."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _imports_of_serve(tree: ast.AST) -> list[ast.stmt]:
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(name.partition(".")[0] == "anymal_serve" for name in names):
            found.append(node)
    return found


def test_core_never_imports_the_server():
    for path in sorted((REPO / "anymal").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        imports = _imports_of_serve(tree)
        if path.relative_to(REPO).as_posix() != "anymal/__main__.py":
            assert not imports, f"{path} imports the server application"
            continue
        handlers = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "_serve"]
        assert len(handlers) == 1 and imports, "anymal/__main__.py: expected the server import in _serve()"
        assert all(node in set(ast.walk(handlers[0])) for node in imports), "the server must be imported lazily"


def test_missing_server_package_is_a_clear_error(monkeypatch, capsys):
    from anymal.__main__ import main

    monkeypatch.setitem(sys.modules, "anymal_serve", None)  # import anymal_serve now fails as if not installed
    monkeypatch.setitem(sys.modules, "anymal_serve.cli", None)
    assert main(["serve", "--model", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the server is not installed") and "anymal_serve" in err


def test_missing_model_folder_is_a_clear_error(tmp_path, capsys):
    from anymal_serve.cli import main

    assert main(["--model", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_missing_fastapi_names_the_extra(monkeypatch, capsys):
    from anymal_serve.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the serve extra were not installed
    assert main(["--model", "x"]) == 2
    assert "anymal[serve]" in capsys.readouterr().err
