"""``load_video``: one video input of any supported kind to sampled RGB frames with their timestamps.

Inputs: a file path or encoded bytes (decoded with decord or PyAV), a ``(frames, fps)`` pair or a
``{"frames": ..., "fps": ...}`` mapping of already-decoded ``[T, H, W, 3]`` uint8 frames, a bare frames array when
a default frame rate is given, or a :class:`VideoFrames`. Encoded inputs are first indexed with PyAV (demuxing
only) so that sampling sees every frame's exact timestamp, whichever decoder then decodes the chosen frames.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from anymal.errors import ConfigError, InputError
from anymal_video.decord_decoder import decode_decord, decord_available
from anymal_video.frames import VideoFrames, check_fps, frames_array
from anymal_video.probe import probe_video
from anymal_video.pyav_decoder import decode_pyav
from anymal_video.source import MediaSource

Sampler = Callable[[np.ndarray, float], np.ndarray]  # (timestamps in seconds, fps) -> frame positions
VideoInput = Any  # str | os.PathLike | bytes | (frames, fps) | {"frames", "fps"} | np.ndarray | Tensor | VideoFrames


def _all_frames(timestamps: np.ndarray, fps: float) -> np.ndarray:
    return np.arange(len(timestamps), dtype=np.int64)


def is_frames_pair(raw: Any) -> bool:
    """Whether ``raw`` is one ``(frames, fps)`` pair (as opposed to a list of videos)."""
    return (
        isinstance(raw, tuple)
        and len(raw) == 2
        and isinstance(raw[0], (np.ndarray, torch.Tensor))
        and not isinstance(raw[1], (np.ndarray, bytes, os.PathLike))
        and not (isinstance(raw[1], str) and not _is_numeric_text(raw[1]))  # "10" is a (bad) fps, not a path
        and not (isinstance(raw[1], torch.Tensor) and raw[1].numel() != 1)
    )


def _is_numeric_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_indices(indices: np.ndarray, n_total: int, where: str) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1 or len(indices) == 0 or indices.min() < 0 or indices.max() >= n_total:
        raise InputError(f"{where}: the sampler chose frames {indices.tolist()!r:.80}; expected 0..{n_total - 1}")
    return indices


def _from_frames(
    frames: np.ndarray, timestamps: np.ndarray, fps: float, sampler: Sampler, where: str, name: str = "<array>"
) -> VideoFrames:
    indices = _check_indices(sampler(timestamps, fps), len(frames), where)
    return VideoFrames(
        frames=np.ascontiguousarray(frames[indices]),
        timestamps=timestamps[indices],
        indices=indices,
        fps=fps,
        n_total=len(frames),
        source=name,
        stream_index=None,
        decoder="array",
    )


def _decoded_input(raw: Any, array_fps: float | None, sampler: Sampler, where: str) -> VideoFrames | None:
    """Handles already-decoded inputs; ``None`` when ``raw`` is encoded (a path or bytes)."""
    if isinstance(raw, VideoFrames):
        return _from_frames(raw.frames, raw.timestamps, raw.fps, sampler, where, raw.source)
    if isinstance(raw, Mapping):
        if "frames" not in raw or "fps" not in raw:
            raise InputError(f"{where}: a mapping input needs 'frames' [T, H, W, 3] and 'fps'; got {sorted(raw)}")
        raw = (raw["frames"], raw["fps"])
    if is_frames_pair(raw):
        frames = frames_array(raw[0], where)
        fps = check_fps(raw[1], where, len(frames))
    elif isinstance(raw, (np.ndarray, torch.Tensor)):
        if array_fps is None:
            raise InputError(f"{where}: a bare frames array has no frame rate; give (frames, fps) or set array_fps")
        frames = frames_array(raw, where)
        fps = check_fps(array_fps, where, len(frames))
    elif isinstance(raw, tuple):
        raise InputError(f"{where}: expected a (frames [T, H, W, 3], fps) pair, got a tuple of {len(raw)} items")
    else:
        return None
    return _from_frames(frames, np.arange(len(frames), dtype=np.float64) / fps, fps, sampler, where)


def load_video(
    raw: VideoInput,
    sampler: Sampler | None = None,
    *,
    decoder: str = "auto",
    stream_index: int | None = None,
    array_fps: float | None = None,
    threads: int = 0,
    where: str = "video",
) -> VideoFrames:
    """Sampled RGB frames of one video and their timestamps; bad input raises ``InputError`` naming it.

    Args:
        raw: the video (see the module docstring for the accepted kinds).
        sampler: ``(timestamps, fps) -> frame positions``; ``None`` returns every frame.
        decoder: ``"auto"`` (decord when installed and able, else PyAV), ``"pyav"`` or ``"decord"``.
        stream_index: the container stream to read; ``None`` picks the best video stream.
        array_fps: frame rate assumed for a bare frames array.
        threads: decoder threads (0: the decoder chooses).
        where: the input's name in error messages.
    """
    sampler = sampler or _all_frames
    decoded = _decoded_input(raw, array_fps, sampler, where)
    if decoded is not None:
        return decoded
    if decoder not in ("auto", "pyav", "decord"):
        raise ConfigError(f"decoder={decoder!r}: expected auto, pyav or decord")
    if decoder == "decord" and not decord_available():
        raise ConfigError("decoder='decord' but decord is not installed: pip install 'anymal[decord]'")
    source = MediaSource.from_raw(raw, where)
    index = probe_video(source, stream_index, where)
    indices = _check_indices(sampler(index.timestamps, index.fps), index.n_frames, where)
    used = "pyav"
    if decoder == "decord" or (decoder == "auto" and decord_available() and index.is_best):
        try:
            frames = decode_decord(source, index, indices, threads, where)
            used = "decord"
        except InputError:
            if decoder == "decord":
                raise
            frames = decode_pyav(source, index, indices, threads, where)  # auto: PyAV decides what is readable
    else:
        frames = decode_pyav(source, index, indices, threads, where)
    return VideoFrames(
        frames=frames,
        timestamps=index.timestamps[indices],
        indices=indices,
        fps=index.fps,
        n_total=index.n_frames,
        source=source.name,
        stream_index=index.stream_index,
        decoder=used,
    )
