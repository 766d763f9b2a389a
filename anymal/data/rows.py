"""Raw rows out of data files, each with the file and the 1-based line it came from.

JSONL, a JSON list, CSV/TSV (with a header) and parquet files are read here; so are ``datasets.Dataset`` objects a
user loaded themselves. A row that cannot even be parsed (invalid JSON, a CSV record with the wrong number of
columns) is yielded as a :class:`Row` carrying a :class:`RowError`, so that the caller's ``on_error`` policy decides
whether it stops the run. Line numbers are those an editor shows: for a JSON list, the line where the element
starts; for CSV, the line where the record starts; for parquet and in-memory datasets, the 1-based row index.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anymal.data.report import RowError
from anymal.errors import DataError

FILE_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}

_CSV_FIELD_LIMIT = 1 << 30
Source = str | os.PathLike | Any  # a path, or a datasets.Dataset / IterableDataset / list of dicts


@dataclass(frozen=True)
class Row:
    """One raw row.

    Attributes:
        data: the parsed row (a dict for every supported format), or ``None`` when ``error`` is set.
        source: the file path or dataset name.
        line: the 1-based line or row number.
        base_dir: the folder relative media paths in this row resolve against by default (the file's folder),
            or ``None`` for in-memory datasets.
        error: set when the row could not be parsed at all.
    """

    data: Any
    source: str
    line: int
    base_dir: Path | None
    error: RowError | None = None


def detect_format(path: Path) -> str:
    """The file format from the suffix; a ``.json`` file that is not a JSON list is read as JSON lines."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown data file type {path.suffix!r}; expected one of {', '.join(_SUFFIXES)}")
    if fmt == "json":
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip()
        if head[:1] != b"[":
            fmt = "jsonl"
    return fmt


def iter_rows(
    source: Source,
    file_format: str | None = None,
    name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Iterator[Row]:
    """Yields the rows of a data file or an in-memory dataset, in order.

    Args:
        source: a path to a ``.jsonl``/``.json``/``.csv``/``.tsv``/``.parquet`` file, a ``datasets.Dataset`` or
            ``IterableDataset``, or a list of dicts.
        file_format: overrides the format detected from the suffix (one of ``FILE_FORMATS``).
        name: the source name used in messages for in-memory datasets.
        cache_dir: the ``datasets`` cache folder used for parquet files.

    Raises:
        DataError: the file is missing or unreadable, or its type is unknown.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{path}: data file not found")
        fmt = file_format or detect_format(path)
        if fmt not in FILE_FORMATS:
            raise DataError(f"{path}: file_format={fmt!r}; expected one of {', '.join(FILE_FORMATS)}")
        readers = {
            "jsonl": _jsonl_rows,
            "json": _json_list_rows,
            "csv": _csv_rows,
            "tsv": _csv_rows,
        }
        if fmt == "parquet":
            yield from _parquet_rows(path, cache_dir)
            return
        yield from readers[fmt](path, fmt)
        return
    yield from _object_rows(source, name)


def _jsonl_rows(path: Path, fmt: str) -> Iterator[Row]:
    src, base = str(path), path.parent
    with path.open("r", encoding="utf-8", errors="strict") as fh:
        lineno = 0
        while True:
            try:
                text = fh.readline()
            except UnicodeDecodeError as exc:
                yield Row(None, src, lineno + 1, base, RowError(src, lineno + 1, "<line>", "invalid_json", f"{exc}"))
                return
            if not text:
                return
            lineno += 1
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                err = RowError(src, lineno, "<json>", "invalid_json", f"invalid JSON ({exc.msg} at column {exc.colno})")
                yield Row(None, src, lineno, base, err)
                continue
            yield Row(data, src, lineno, base)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_list_rows(path: Path, fmt: str) -> Iterator[Row]:
    """Elements of a JSON list, each with the line it starts on; a syntax error ends the file (no resync)."""
    src, base = str(path), path.parent
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    line, counted_to = 1, 0

    def line_at(at: int) -> int:
        nonlocal line, counted_to
        line += text.count("\n", counted_to, at)
        counted_to = at
        return line

    if not text.startswith("[", pos):
        err = RowError(src, line_at(pos), "<json>", "invalid_json", "expected a JSON list of rows")
        yield Row(None, src, err.line, base, err)
        return
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        return
    while True:
        start = line_at(pos)
        try:
            data, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            err = RowError(src, exc.lineno, "<json>", "invalid_json", f"invalid JSON ({exc.msg} at column {exc.colno})")
            yield Row(None, src, exc.lineno, base, err)
            return
        yield Row(data, src, start, base)
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
            continue
        if text.startswith("]", pos):
            return
        at = line_at(min(pos, len(text)))
        err = RowError(src, at, "<json>", "invalid_json", "expected ',' or ']' between list elements")
        yield Row(None, src, at, base, err)
        return


def _csv_rows(path: Path, fmt: str) -> Iterator[Row]:
    src, base = str(path), path.parent
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))  # inline base64 media is large
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t" if fmt == "tsv" else ",")
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Row(None, src, start, base, RowError(src, start, "<csv>", "bad_row", f"unreadable CSV ({exc})"))
                continue
            if not record or all(not cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip() for cell in record]
                continue
            if len(record) != len(header):
                problem = f"has {len(record)} columns but the header has {len(header)} ({', '.join(header)})"
                yield Row(None, src, start, base, RowError(src, start, "<csv>", "bad_row", problem))
                continue
            yield Row(dict(zip(header, record)), src, start, base)


def _parquet_rows(path: Path, cache_dir: str | os.PathLike | None) -> Iterator[Row]:
    dataset = load_local_dataset(path, builder="parquet", cache_dir=cache_dir)
    src, base = str(path), path.parent
    for index, data in enumerate(dataset, start=1):
        yield Row(data, src, index, base)


def _object_rows(source: Any, name: str | None) -> Iterator[Row]:
    if isinstance(source, dict):
        raise DataError("expected a path, a datasets.Dataset or a list of rows, got a dict (a DatasetDict?)")
    src = name or _dataset_name(source)
    for index, data in enumerate(source, start=1):
        yield Row(data, src, index, None)


def _dataset_name(source: Any) -> str:
    files = getattr(source, "cache_files", None) or []
    if files:
        return f"<dataset {Path(files[0]['filename']).name}>"
    info = getattr(source, "info", None)
    if info is not None and getattr(info, "dataset_name", None):
        return f"<dataset {info.dataset_name}>"
    return "<dataset>"


def load_local_dataset(
    data_files: str | os.PathLike | list[str | os.PathLike],
    builder: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Any:
    """Loads local json/jsonl/csv/parquet files with ``datasets.load_dataset``, offline (nothing is downloaded).

    Args:
        data_files: one file or a list of files of the same type.
        builder: ``"json"``, ``"csv"`` or ``"parquet"``; by default from the first file's suffix.
        cache_dir: where ``datasets`` writes its Arrow cache (default: its own cache folder).

    Returns:
        The ``train`` split, a ``datasets.Dataset``.

    Raises:
        DataError: a file is missing or ``datasets`` cannot parse it.
    """
    import datasets

    files = [Path(f) for f in (data_files if isinstance(data_files, list | tuple) else [data_files])]
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: data file not found")
    if builder is None:
        fmt = _SUFFIXES.get(files[0].suffix.lower(), "")
        builder = {"jsonl": "json", "json": "json", "csv": "csv", "tsv": "csv", "parquet": "parquet"}.get(fmt)
        if builder is None:
            raise DataError(f"{files[0]}: cannot tell the datasets builder from suffix {files[0].suffix!r}")
    kwargs: dict[str, Any] = {"data_files": [str(f) for f in files], "split": "train"}
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    try:
        return datasets.load_dataset(builder, **kwargs)
    except Exception as exc:  # datasets raises many types (ArrowInvalid, DatasetGenerationError, ...)
        names = ", ".join(str(f) for f in files)
        raise DataError(f"{names}: datasets.load_dataset({builder!r}) failed: {type(exc).__name__}: {exc}") from exc
