"""The bad-input suite: every case feeds one malformed input to a public entry point and asserts the typed error.

A case passes only if the call raises the expected ``AnyMALError`` subclass (never a raw TypeError, IndexError,
ZeroDivisionError or a library's own exception) and the message names the input (file, field or argument) and what
was expected. Fixture files that are tedious to write by hand (decompression bombs, 16-bit PNGs, non-UTF-8 JSON,
planted pickles) are built by ``build_fixtures.py`` into a temporary folder per session, so nothing binary is
committed. Count the cases with ``pytest --collect-only -q tests/bad_inputs | grep -c ::``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from anymal.errors import AnyMALError


def expect_error(call: Callable[[], Any], error: type[AnyMALError], *fragments: str) -> AnyMALError:
    """Runs ``call``; it must raise ``error`` whose message contains every regex in ``fragments``."""
    with pytest.raises(AnyMALError) as info:
        call()
    raised = info.value
    assert isinstance(raised, error), f"raised {type(raised).__name__}, expected {error.__name__}: {raised}"
    message = str(raised)
    for fragment in fragments:
        assert re.search(fragment, message), f"message lacks {fragment!r}: {message}"
    return raised


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory):
    """The folder of generated bad fixture files (see build_fixtures.py), built once per session."""
    from bad_inputs.build_fixtures import build  # tests/ is on sys.path (pytest prepend mode; no tests/__init__)

    return build(tmp_path_factory.mktemp("bad_inputs"))
