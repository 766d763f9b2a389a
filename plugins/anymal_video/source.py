"""Where an encoded video comes from (a file or bytes in memory), opened the same way by every decoder."""

from __future__ import annotations

import io
import os
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

    def open(self, where: str = "video") -> av.container.InputContainer:
        """Opens the container with PyAV; anything FFmpeg cannot demux raises ``InputError``."""
        try:
            target = str(self.path) if self.path is not None else io.BytesIO(self.data)
            return av.open(target, mode="r")
        except FFMPEG_ERRORS as exc:
            raise InputError(
                f"{where}: {self.name} is not a readable media container (PyAV/FFmpeg: {_reason(exc)}); "
                "expected a video file such as mp4, mkv, webm or avi"
            ) from None

    def for_decord(self) -> str | io.BytesIO:
        """What ``decord.VideoReader`` takes: the path, or a file-like object over the bytes."""
        return str(self.path) if self.path is not None else io.BytesIO(self.data)


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without PyAV's repetition of the file name."""
    message = getattr(exc, "strerror", None) or str(exc)
    return str(message).strip() or type(exc).__name__
