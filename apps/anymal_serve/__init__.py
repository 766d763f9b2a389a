"""An OpenAI-compatible HTTP server for AnyMAL models (``python -m anymal serve`` / ``python -m anymal_serve``).

An application built on the library (the library never imports it): FastAPI + uvicorn, installed with the
``serve`` extra (``pip install 'anymal[serve]'``). The package imports FastAPI only when the app is asked for, so
that the command line can say which extra is missing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from anymal_serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'anymal_serve' has no attribute {name!r}")
