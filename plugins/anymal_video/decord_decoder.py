"""Decoding selected frames with decord (optional dependency): fast batched random access on CPU.

decord always reads the container's best video stream, so the reader only sends it that stream. Its frame count
and timestamps are checked against the PyAV stream index, so that both decoders are guaranteed to address the
same frames; a disagreement raises :class:`DecordMismatch` and ``decoder="auto"`` then uses PyAV.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np

from anymal.errors import InputError
from anymal_video.probe import StreamIndex
from anymal_video.source import MediaSource

# decord's timestamps come from the same pts; they may differ from PyAV's by float rounding only.
TIMESTAMP_TOLERANCE_S = 1e-4


_LOG_PREFIX = re.compile(r"\[[\d:]+\] \S+:\d+: ")


def _message(exc: BaseException) -> str:
    """decord's error without its log prefix (time and C++ source location), cut to one short line."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return _LOG_PREFIX.sub("", lines[0])[:200]


class DecordMismatch(InputError):
    """decord sees a different frame count or different timestamps than the PyAV index."""


def decord_available() -> bool:
    """Whether decord is installed (it is an optional dependency: ``pip install anymal[decord]``)."""
    return importlib.util.find_spec("decord") is not None


def decode_decord(
    source: MediaSource, index: StreamIndex, indices: np.ndarray, threads: int = 0, where: str = "video"
) -> np.ndarray:
    """RGB frames ``[len(indices), H, W, 3]`` uint8 at the given presentation-order positions (repeats allowed).

    Args:
        source: the encoded video.
        index: its stream index from :func:`anymal_video.probe.probe_video`; must be the best video stream.
        indices: frame positions in ``[0, index.n_frames)``.
        threads: decoder threads (0: decord chooses).
        where: the input's name in error messages.
    """
    import decord

    label = f"{source.name} stream #{index.stream_index} ({index.codec})"
    if not index.is_best:
        raise DecordMismatch(
            f"{where}: decord can only read the best video stream, not {label}; use decoder='pyav' "
            "(or decoder='auto') to read another stream"
        )
    indices = np.asarray(indices, dtype=np.int64)
    try:
        reader = decord.VideoReader(source.for_decord(), ctx=decord.cpu(0), num_threads=threads)
    except (decord.DECORDError, RuntimeError) as exc:
        raise InputError(
            f"{where}: decord cannot open {label}: {_message(exc)}; expected a playable video (corrupt file?)"
        ) from None
    if len(reader) != index.n_frames:
        raise DecordMismatch(f"{where}: decord counts {len(reader)} frames in {label}, PyAV {index.n_frames}")
    try:
        stamps = reader.get_frame_timestamp(indices.tolist())[:, 0]
        if np.abs(stamps - index.timestamps[indices]).max() > TIMESTAMP_TOLERANCE_S:
            raise DecordMismatch(f"{where}: decord's frame timestamps in {label} differ from the container's pts")
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError) as exc:
        raise InputError(
            f"{where}: decord cannot decode {label}: {_message(exc)}; the file is corrupt or truncated"
        ) from None
    finally:
        del reader
    return np.ascontiguousarray(frames, dtype=np.uint8)
