"""The server is an application: the core names it only in ``python -m anymal serve``'s handler, lazily."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


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
