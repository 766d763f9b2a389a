"""Builds the bad-input suite's fixture files into a folder: ``python -m tests.bad_inputs.build_fixtures DIR``.

Each file is named after what is wrong with it. Suites add builders here (one small function each) and read the
files through the ``bad_files`` fixture.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

BUILDERS: dict[str, Callable[[Path], None]] = {}


def builder(name: str):
    """Registers a function that writes the fixture file ``name`` (given its full path)."""

    def register(function: Callable[[Path], None]) -> Callable[[Path], None]:
        BUILDERS[name] = function
        return function

    return register


@builder("config_not_utf8.json")
def _not_utf8(path: Path) -> None:
    path.write_bytes(b'{"format": "anymal", "name": "caf\xe9"}')


@builder("config_list.json")
def _list_json(path: Path) -> None:
    path.write_text(json.dumps([1, 2, 3]))


def build(folder: str | Path) -> Path:
    """Writes every registered fixture into ``folder`` (created if needed) and returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, function in BUILDERS.items():
        function(folder / name)
    return folder


if __name__ == "__main__":
    out = build(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs")
    print(f"{len(BUILDERS)} fixture files in {out}")
