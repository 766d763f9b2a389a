"""Readers: every supported training-data layout as an iterable of :class:`Example`, with a bad-row policy.

``read_pairs`` (stage-1 alignment pairs), ``read_llava``, ``read_m3it`` and ``read_conversations`` (stage-2
instruction data) each return an :class:`ExampleReader`: re-iterable (every pass re-reads the source, so nothing is
held in memory), with ``on_error="raise"`` (the default: the first bad row raises a ``DataError`` naming the file,
line and field) or ``on_error="skip"`` (bad rows are dropped and counted in ``reader.report``). Sources are local
files (``.jsonl``, ``.json`` list, ``.csv``/``.tsv``, ``.parquet``), lists of such files, a ``datasets.Dataset``
(for example from :func:`anymal.data.load_local_dataset`) or a list of dicts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeGuard

from anymal.data.formats import ConversationFormat, LlavaFormat, M3ITFormat, MediaOptions, PairFormat
from anymal.data.report import DataReport, RowError, check_on_error
from anymal.data.rows import Row, Source, iter_rows
from anymal.errors import DataError
from anymal.plugin import AlignmentTask
from anymal.records import Example, MediaRef

MediaValidator = Callable[[str, MediaRef], None]


class RowFormat(Protocol):
    def __call__(self, row: Row, epoch: int = 0) -> Example: ...


def _is_file_list(source: Any) -> TypeGuard[Sequence[str | os.PathLike]]:
    return isinstance(source, list | tuple) and bool(source) and all(isinstance(s, str | os.PathLike) for s in source)


class ExampleReader:
    """The examples of one dataset, read lazily, one pass per iteration.

    Args:
        source: a data file, a list of data files, a ``datasets.Dataset``/``IterableDataset`` or a list of dicts.
        row_format: turns a raw row into an Example (``PairFormat``, ``LlavaFormat``, ...).
        on_error: ``"raise"`` or ``"skip"``.
        file_format: overrides the format detected from file suffixes.
        name: the name used in messages for an in-memory dataset.
        validate_media: optional ``f(modality, media_ref)`` that raises on media it cannot use (e.g. a plugin's
            ``preprocess``); a failure becomes a ``media_invalid`` bad row. Off by default because it decodes
            every file.
        cache_dir: the ``datasets`` cache folder for parquet files.

    Attributes:
        report: counts of the current (or last finished) pass; reset when a new pass starts.
        epoch: passed to the row format (it changes the instructions sampled for pairs); see ``set_epoch``.
    """

    def __init__(
        self,
        source: Source | Sequence[str | os.PathLike],
        row_format: RowFormat,
        on_error: str = "raise",
        file_format: str | None = None,
        name: str | None = None,
        validate_media: MediaValidator | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        self.sources: list[Source] = list(source) if _is_file_list(source) else [source]
        self.row_format = row_format
        self.on_error = check_on_error(on_error)
        self.file_format = file_format
        self.name = name
        self.validate_media = validate_media
        self.cache_dir = cache_dir
        self.report = DataReport()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Sets the pass number used for per-example random choices (e.g. the captioning instruction)."""
        self.epoch = epoch

    def _convert(self, row: Row) -> Example:
        if row.error is not None:
            raise row.error
        if not isinstance(row.data, dict):
            raise RowError(row.source, row.line, "<row>", "wrong_type", f"expected an object, got {type(row.data)}")
        example = self.row_format(row, self.epoch)
        if self.validate_media is not None:
            for modality, refs in example.media.items():
                for i, ref in enumerate(refs):
                    try:
                        self.validate_media(modality, ref)
                    except Exception as exc:
                        problem = f"{ref!r} cannot be used: {type(exc).__name__}: {exc}"
                        raise RowError(row.source, row.line, f"{modality}[{i}]", "media_invalid", problem) from exc
        return example

    def __iter__(self) -> Iterator[Example]:
        self.report.reset()
        for source in self.sources:
            for row in iter_rows(source, self.file_format, self.name, self.cache_dir):
                try:
                    example = self._convert(row)
                except RowError as err:
                    if self.on_error == "raise":
                        raise
                    self.report.add(err)
                    continue
                self.report.ok += 1
                yield example

    def __repr__(self) -> str:
        names = ", ".join(str(s) if isinstance(s, str | os.PathLike) else type(s).__name__ for s in self.sources)
        return f"ExampleReader({names}, {type(self.row_format).__name__}, on_error={self.on_error!r})"


def _pool(instructions: Sequence[str] | AlignmentTask | None, modality: str) -> tuple[str, ...]:
    if instructions is None:
        return tuple(AlignmentTask(modality=modality).instruction_pool())
    if isinstance(instructions, AlignmentTask):
        return tuple(instructions.instruction_pool())
    pool = tuple(instructions)
    if not pool or not all(isinstance(text, str) and text.strip() for text in pool):
        raise DataError("instructions: expected a non-empty list of non-empty strings")
    return pool


def read_pairs(
    source: Source | Sequence[str | os.PathLike],
    modality: str,
    media_key: str | None = None,
    caption_key: str = "caption",
    instructions: Sequence[str] | AlignmentTask | None = None,
    seed: int = 0,
    media_root: str | os.PathLike | None = None,
    media_encoding: str = "auto",
    check_files: bool = True,
    on_error: str = "raise",
    **reader_kwargs: Any,
) -> ExampleReader:
    """Alignment (stage-1) pairs: one media item and its caption per row.

    Args:
        source: data file(s) (JSONL, JSON list, CSV/TSV, parquet) or an in-memory dataset.
        modality: the plugin name, e.g. ``"image"``; the user turn starts with its placeholder.
        media_key: the column holding the media path or base64 bytes (default: ``modality``).
        caption_key: the column holding the caption.
        instructions: the captioning instruction pool, or a plugin's ``AlignmentTask`` (default: the generic pool
            for ``modality``).
        seed: seeds the per-example instruction choice (see ``PairFormat``).
        media_root: folder relative media paths resolve against (default: the data file's folder).
        media_encoding: ``"auto"``, ``"path"`` or ``"base64"``.
        check_files: check at read time that media files exist and are non-empty.
        on_error: ``"raise"`` or ``"skip"``.
        **reader_kwargs: passed to :class:`ExampleReader` (``file_format``, ``name``, ``validate_media``, ...).
    """
    row_format = PairFormat(
        modality=modality,
        media_key=media_key or modality,
        caption_key=caption_key,
        instructions=_pool(instructions, modality),
        seed=seed,
        media=MediaOptions(media_root, media_encoding, check_files),
    )
    return ExampleReader(source, row_format, on_error=on_error, **reader_kwargs)


def read_llava(
    source: Source | Sequence[str | os.PathLike],
    modality: str = "image",
    media_key: str = "image",
    media_root: str | os.PathLike | None = None,
    media_encoding: str = "path",
    check_files: bool = True,
    on_error: str = "raise",
    **reader_kwargs: Any,
) -> ExampleReader:
    """LLaVA-style conversation data (``id``, ``image``, ``conversations`` with ``from``/``value`` turns).

    ``media_root`` is usually the image folder (e.g. COCO ``train2017``) since LLaVA files hold bare file names.
    """
    row_format = LlavaFormat(modality, media_key, media=MediaOptions(media_root, media_encoding, check_files))
    return ExampleReader(source, row_format, on_error=on_error, **reader_kwargs)


def read_m3it(
    source: Source | Sequence[str | os.PathLike],
    modality: str = "image",
    media_key: str = "image_base64_str",
    on_error: str = "raise",
    **reader_kwargs: Any,
) -> ExampleReader:
    """M3IT rows (``instruction``, ``inputs``, ``outputs``, ``image_base64_str``: a list of base64 images)."""
    row_format = M3ITFormat(modality, media_key, media=MediaOptions(encoding="base64"))
    return ExampleReader(source, row_format, on_error=on_error, **reader_kwargs)


def read_conversations(
    source: Source | Sequence[str | os.PathLike],
    modalities: Sequence[str] = (),
    media_root: str | os.PathLike | None = None,
    media_encoding: str = "auto",
    check_files: bool = True,
    on_error: str = "raise",
    **reader_kwargs: Any,
) -> ExampleReader:
    """anymal's multi-modality conversation rows (schema in ``anymal.data.formats``).

    ``modalities`` (e.g. ``anymal.list_plugins()``) are the names whose stray placeholders are errors even when a
    row has no media of that kind.
    """
    row_format = ConversationFormat(tuple(modalities), media=MediaOptions(media_root, media_encoding, check_files))
    return ExampleReader(source, row_format, on_error=on_error, **reader_kwargs)


READERS: dict[str, Callable[..., Any]] = {  # readers: ExampleReader, or the like (iterable, set_epoch, report)
    "pairs": read_pairs,
    "llava": read_llava,
    "m3it": read_m3it,
    "conversations": read_conversations,
}
# anymal.data (the package) adds "m3it_tasks": anymal.data.m3it's task collections, which build on this module


def read_dataset(kind: str, source: Source | Sequence[str | os.PathLike], **kwargs: Any) -> ExampleReader:
    """Dispatches to a reader by layout name (``pairs``, ``llava``, ``m3it``, ``m3it_tasks``, ``conversations``)."""
    if kind not in READERS:
        raise DataError(f"unknown dataset kind {kind!r}; expected one of {', '.join(READERS)}")
    return READERS[kind](source, **kwargs)
