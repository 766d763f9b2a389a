"""Decoded video frames with their timestamps, and validation of frames a user already decoded.

``VideoFrames`` is what every decoding path returns: the sampled RGB frames together with where they came from
(positions in the clip, presentation times in seconds, the source's frame rate), so that a caption or a
grounding answer can be tied back to the moment in the clip the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from anymal.errors import InputError
from anymal_image.io import describe_array, tensor_to_numpy, to_uint8

# Accepted frame rates of decoded-frame inputs: from one frame per 1000 s (time-lapse) to a million per second
# (high-speed cameras); outside that, timestamps overflow or collapse to zero and the sampler picks nonsense.
MIN_FPS = 1e-3
MAX_FPS = 1e6


@dataclass(frozen=True)
class VideoFrames:
    """Sampled frames of one clip.

    Attributes:
        frames: uint8 ``[T, H, W, 3]`` RGB frames.
        timestamps: float64 ``[T]`` presentation times in seconds (pts times the stream's time base).
        indices: int64 ``[T]`` positions of the frames in the clip, in presentation order (may repeat).
        fps: the source's average frame rate.
        n_total: how many frames the clip (stream) has.
        source: a name for messages (the file path, ``"<N bytes>"`` or ``"<array>"``).
        stream_index: the container stream the frames were decoded from (``None`` for arrays).
        decoder: ``"pyav"``, ``"decord"`` or ``"array"``.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray
    fps: float
    n_total: int
    source: str
    stream_index: int | None = None
    decoder: str = "array"

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def duration_s(self) -> float:
        """Length of the clip in seconds (``n_total / fps``)."""
        return self.n_total / self.fps


def frames_array(raw: Any, where: str = "video") -> np.ndarray:
    """A uint8 ``[T, H, W, 3]`` array from a numpy array or tensor of already-decoded frames.

    ``[T, 3, H, W]`` (channels first) is accepted; pixel values follow the image plugin's rules
    (``anymal_image.io``): uint8 as is, uint16 scaled to 8 bits, other integers 0-255, floats (bfloat16 tensors
    included) in ``[0, 1]``. Object, string, complex and empty arrays raise ``InputError`` naming shape and dtype.
    """
    array = tensor_to_numpy(raw, where) if isinstance(raw, torch.Tensor) else np.asarray(raw)
    described = f"frames {describe_array(array)}"
    what = f"{where}: {described}"
    if array.ndim != 4:
        raise InputError(f"{what}: expected decoded frames [T, H, W, 3] (uint8 RGB)")
    if array.shape[-1] != 3 and array.shape[1] == 3:
        array = np.moveaxis(array, 1, -1)
    if array.shape[-1] != 3:
        raise InputError(f"{what}: expected 3 RGB channels in decoded frames [T, H, W, 3] or [T, 3, H, W]")
    if array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        raise InputError(f"{what} is empty; expected at least one H x W frame")
    return to_uint8(array, where, described)


def check_fps(fps: Any, where: str = "video", num_frames: int | None = None) -> float:
    """A frame rate within ``[MIN_FPS, MAX_FPS]``, or ``InputError`` naming the input (and its frame count)."""
    clip = f" (clip of {num_frames} frames)" if num_frames is not None else ""
    expected = f"expected a positive, finite number of frames per second from {MIN_FPS:g} to {MAX_FPS:g}"
    if (isinstance(fps, torch.Tensor) and fps.numel() == 1) or (isinstance(fps, np.ndarray) and fps.size == 1):
        fps = fps.item()
    if isinstance(fps, str):
        raise InputError(f"{where}{clip}: frame rate {fps!r} is a string; {expected}, as a number")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)):
        raise InputError(
            f"{where}{clip}: expected a frame rate (frames per second) as a number, got {type(fps).__name__}"
        )
    if not np.isfinite(fps) or fps <= 0:
        raise InputError(f"{where}{clip}: frame rate {fps} is not a positive number of frames per second; {expected}")
    if not MIN_FPS <= fps <= MAX_FPS:
        raise InputError(f"{where}{clip}: frame rate {fps:g} is outside the accepted range; {expected}")
    return float(fps)
