"""Which frames of a clip to decode: uniform over the clip, at a fixed frame rate, or one random per segment.

All samplers work on frame positions in presentation order (``0 .. n_total - 1``) and return int64 index arrays;
the caller decodes those frames and keeps their timestamps. Every sampler returns exactly ``n_frames`` indices
(repeating frames when the clip is shorter), because the number of LLM tokens a clip becomes must not depend on
its length.
"""

from __future__ import annotations

import numpy as np

from anymal.errors import InputError

# Timestamps are floats from integer pts; a target time this close to a frame's start counts as inside it.
TIME_EPSILON = 1e-6


def _check(n_total: int, n_frames: int) -> None:
    if n_total < 1:
        raise InputError(f"cannot sample frames from a clip with {n_total} frames; expected at least one frame")
    if n_frames < 1:
        raise InputError(f"n_frames={n_frames}: expected at least one frame to sample")


def segment_bounds(n_total: int, n_frames: int) -> np.ndarray:
    """``n_frames + 1`` boundaries splitting ``[0, n_total)`` into equal segments (segment i is ``[b[i], b[i+1])``)."""
    _check(n_total, n_frames)
    return np.floor(np.arange(n_frames + 1) * (n_total / n_frames)).astype(np.int64)


def uniform_indices(n_total: int, n_frames: int) -> np.ndarray:
    """The centre frame of each of ``n_frames`` equal segments: deterministic, covers the whole clip.

    This is TSN's test-time sampling. For a clip with fewer frames than ``n_frames``, frames repeat in order.
    """
    _check(n_total, n_frames)
    centres = (np.arange(n_frames) + 0.5) * (n_total / n_frames)
    return np.minimum(np.floor(centres).astype(np.int64), n_total - 1)


def segment_indices(n_total: int, n_frames: int, rng: np.random.Generator | int) -> np.ndarray:
    """One uniformly random frame inside each of ``n_frames`` equal segments (TSN's training sampling).

    Args:
        n_total: frames in the clip.
        n_frames: frames to sample (= segments).
        rng: a numpy ``Generator`` (advanced by the call) or an integer seed.
    """
    bounds = segment_bounds(n_total, n_frames)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    low = np.minimum(bounds[:-1], n_total - 1)
    high = np.maximum(bounds[1:], low + 1)  # an empty segment (short clip) falls back to its start frame
    return generator.integers(low, high).astype(np.int64)


def fps_indices(timestamps: np.ndarray, target_fps: float, max_frames: int | None = None) -> np.ndarray:
    """Frames shown at times ``t0, t0 + 1/fps, t0 + 2/fps, ...`` up to the last frame's timestamp.

    The frame shown at time ``t`` is the last one whose timestamp is ``<= t``; ``t0`` is the first frame's
    timestamp. At most ``max_frames`` indices are returned (the start of the clip); this is not padded.

    Args:
        timestamps: presentation times in seconds of every frame, ascending.
        target_fps: sampling rate in frames per second (e.g. 1.0).
        max_frames: stop after this many.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64)
    _check(len(timestamps), 1)
    if not target_fps > 0:
        raise InputError(f"target_fps={target_fps}: expected a positive frame rate")
    span = timestamps[-1] - timestamps[0]
    count = int(np.floor(span * target_fps + TIME_EPSILON)) + 1
    if max_frames is not None:
        count = min(count, max_frames)
    targets = timestamps[0] + np.arange(count) / target_fps
    indices = np.searchsorted(timestamps, targets + TIME_EPSILON, side="right") - 1
    return np.clip(indices, 0, len(timestamps) - 1).astype(np.int64)


def pad_to(indices: np.ndarray, n_frames: int) -> np.ndarray:
    """Exactly ``n_frames`` indices: the first ``n_frames``, or all of them with the last one repeated."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) >= n_frames:
        return indices[:n_frames]
    return np.concatenate([indices, np.full(n_frames - len(indices), indices[-1], dtype=np.int64)])


def sample_indices(
    method: str,
    timestamps: np.ndarray,
    n_frames: int,
    fps: float | None = None,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Dispatches to a sampler by name (``uniform``, ``fps``, ``segment``); always ``n_frames`` indices.

    Args:
        method: the sampler's name.
        timestamps: presentation times (seconds) of every frame of the clip, ascending.
        n_frames: how many frames to return.
        fps: the target rate for ``fps`` sampling.
        rng: the generator (or seed) for ``segment`` sampling.
    """
    n_total = len(timestamps)
    if method == "uniform":
        return uniform_indices(n_total, n_frames)
    if method == "segment":
        return segment_indices(n_total, n_frames, 0 if rng is None else rng)
    if method == "fps":
        if fps is None:
            raise InputError("fps sampling needs a target frame rate (sample_fps)")
        return pad_to(fps_indices(timestamps, fps, n_frames), n_frames)
    raise InputError(f"sampling={method!r}: expected uniform, fps or segment")
