"""Where an encoded video comes from (a file or bytes in memory), opened the same way by every decoder."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from anymal.errors import InputError

FFMPEG_ERRORS = (av.FFmpegError, OSError, EOFError)


@dataclass(frozen=True)
class MediaSource:
    """An encoded media file: ``path`` on disk or ``data`` in memory; ``name`` is what messages call it."""

    path: Path | None
    data: bytes | None
    name: str

    @classmethod
    def from_raw(cls, raw: Any, where: str = "video") -> MediaSource:
        """A source from a path or bytes; a missing file raises ``InputError`` naming it."""
        if isinstance(raw, (str, os.PathLike)):
            path = Path(raw)
            if not path.is_file():
                raise InputError(f"{where}: video file not found: {path}")
            return cls(path=path, data=None, name=str(path))
        if isinstance(raw, (bytes, bytearray, memoryview)):
            data = bytes(raw)
            if not data:
                raise InputError(f"{where}: got 0 bytes; expected an encoded video file (mp4, mkv, webm, ...)")
            return cls(path=None, data=data, name=f"<{len(data)} bytes>")
        raise InputError(f"{where}: expected a path or bytes of an encoded video, got {type(raw).__name__}")

    @contextlib.contextmanager
    def open(self, where: str = "video") -> Iterator[av.container.InputContainer]:
        """The container opened with PyAV, closed on exit; anything FFmpeg cannot demux raises ``InputError``.

        PyAV's Python log callback is off while the container lives (see :func:`python_logging_off`).
        """
        with python_logging_off():
            try:
                target = str(self.path) if self.path is not None else io.BytesIO(self.data)
                container = av.open(target, mode="r")
            except FFMPEG_ERRORS as exc:
                raise InputError(
                    f"{where}: {self.name} is not a readable media container (PyAV/FFmpeg: {_reason(exc)}); "
                    "expected a video file such as mp4, mkv, webm or avi"
                ) from None
            with container:
                yield container

    def for_decord(self) -> str | io.BytesIO:
        """What ``decord.VideoReader`` takes: the path, or a file-like object over the bytes."""
        return str(self.path) if self.path is not None else io.BytesIO(self.data)


@contextlib.contextmanager
def python_logging_off() -> Iterator[None]:
    """Turns PyAV's Python log callback off for the block, then restores the previous level.

    With the callback on (``av.logging.set_level(...)``, which torchvision 0.24-0.25 call when they are imported,
    as open_clip does), freeing a threaded decoder deadlocks: the main thread holds the GIL while it waits for the
    decoder's worker threads, and a worker waits for the GIL inside the callback. Everything we decode is freed
    inside this block, so the callback comes back only once no decoder of ours is alive.
    """
    previous = av.logging.get_level()
    if previous is None:
        yield
        return
    av.logging.set_level(None)
    try:
        yield
    finally:
        av.logging.set_level(previous)


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without PyAV's repetition of the file name."""
    message = getattr(exc, "strerror", None) or str(exc)
    return str(message).strip() or type(exc).__name__
