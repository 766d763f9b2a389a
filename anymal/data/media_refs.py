"""Turning a row's media value (a path, base64 text, bytes) into a checked :class:`MediaRef`.

Relative paths resolve against ``media_root`` when given, else against the data file's folder. URLs are refused:
anymal never downloads during training, so a dataset that points at the web has to be fetched first. A missing or
empty file is reported at read time, with the row's file and line, instead of failing deep inside a training step.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from typing import Any

from anymal.config import check_choice
from anymal.data.report import RowError
from anymal.data.rows import Row
from anymal.records import MediaRef

MEDIA_ENCODINGS = ("auto", "path", "base64")
_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
_B64_RE = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")
_B64_MIN_LEN = 64  # shorter strings are file names; no real media file encodes to fewer than 64 characters


def looks_like_base64(text: str) -> bool:
    """The ``media_encoding="auto"`` rule: a ``data:`` URI, or 64+ characters of the base64 alphabet only.

    File names almost always contain a ``.`` (an extension), which base64 never does, so the two do not collide in
    practice; pass ``media_encoding="path"`` or ``"base64"`` to a reader to be explicit.
    """
    if text.startswith("data:"):
        return True
    return len(text) >= _B64_MIN_LEN and bool(_B64_RE.match(text))


def decode_base64(text: str) -> bytes:
    """Decodes base64 text or a ``data:<mime>;base64,<payload>`` URI; raises ``ValueError`` if invalid."""
    if text.startswith("data:"):
        head, sep, payload = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise ValueError("a data: URI must look like data:<mime>;base64,<payload>")
        text = payload
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 ({exc})") from None


def media_ref(
    value: Any,
    row: Row,
    field: str,
    media_root: str | os.PathLike | None = None,
    encoding: str = "auto",
    check_files: bool = True,
) -> MediaRef:
    """One media value of a row as a :class:`MediaRef`.

    Args:
        value: a path string, base64 text (or a ``data:`` URI), raw bytes, or a ``{"bytes": ..., "path": ...}``
            dict (the ``datasets`` ``Image``/``Audio`` feature layout).
        row: the row, for its location and folder.
        field: the field name for messages, e.g. ``image`` or ``media.imu[1]``.
        media_root: folder that relative paths resolve against (default: the data file's folder).
        encoding: ``"auto"`` (see :func:`looks_like_base64`), ``"path"`` or ``"base64"``.
        check_files: check that a path is an existing, readable, non-empty file.

    Raises:
        RowError: a URL, invalid base64, an empty value, a missing/empty/unreadable file, or a wrong type.
    """

    def fail(reason: str, problem: str) -> RowError:
        return RowError(row.source, row.line, field, reason, problem)

    check_choice(encoding, MEDIA_ENCODINGS, "media_encoding")

    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if not data:
            raise fail("media_unreadable", "empty inline media (0 bytes)")
        return MediaRef(data=data)
    if not isinstance(value, str):
        raise fail("wrong_type", f"expected a media path or base64 string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise fail("empty_field", "empty media value; expected a file path or base64 data")
    if _URL_RE.match(text):
        raise fail(
            "media_url",
            f"{text[:80]!r} is a URL; anymal never downloads media: fetch the file and give its local path",
        )
    if encoding == "base64" or (encoding == "auto" and looks_like_base64(text)):
        try:
            data = decode_base64(text)
        except ValueError as exc:
            raise fail("bad_base64", f"{exc}; expected base64-encoded media") from None
        if not data:
            raise fail("media_unreadable", "empty inline media (0 bytes)")
        return MediaRef(data=data)
    path = Path(text).expanduser()
    if not path.is_absolute():
        root = Path(media_root) if media_root is not None else row.base_dir
        if root is None:
            raise fail("media_missing", f"relative path {text!r} but this dataset has no folder; pass media_root")
        path = root / path
    if check_files:
        if not path.exists():
            raise fail("media_missing", f"media file {str(path)!r} does not exist")
        if not path.is_file():
            raise fail("media_unreadable", f"media path {str(path)!r} is not a regular file")
        if not os.access(path, os.R_OK):
            raise fail("media_unreadable", f"media file {str(path)!r} is not readable (permissions)")
        if path.stat().st_size == 0:
            raise fail("media_unreadable", f"media file {str(path)!r} is empty (0 bytes)")
    return MediaRef(path=path)
