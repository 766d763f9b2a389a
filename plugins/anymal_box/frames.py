"""Coordinate frames: what the four numbers of a box are measured in.

A box is meaningless without its frame: ``(0.5, 0.5, 1, 1)`` is the lower-right quarter in normalised
coordinates, a tiny square in pixels, and nearly the top-left corner on Qwen-VL's [0, 1000) grid. Every
``Boxes``/``Points`` carries one of these frames so conversions are explicit and checked, never guessed.

All frames share one convention: coordinates are continuous, with the origin at the top-left corner of the
top-left pixel, x to the right and y down; a pixel box ``(0, 0, W, H)`` covers the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anymal.errors import InputError


@dataclass(frozen=True)
class PixelFrame:
    """Pixels of an image of ``width`` x ``height`` (the original photo, or the encoder's resized input)."""

    width: float
    height: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.width) and np.isfinite(self.height) and self.width > 0 and self.height > 0):
            raise InputError(f"PixelFrame: width and height must be finite and > 0, got {self.width}x{self.height}")

    @property
    def extent(self) -> tuple[float, float]:
        """The largest valid (x, y)."""
        return float(self.width), float(self.height)


@dataclass(frozen=True)
class NormalizedFrame:
    """Fractions of the image width and height in [0, 1]: Pink/Shikra text, u-LLaVA's ``[LOC]`` head."""

    @property
    def extent(self) -> tuple[float, float]:
        return 1.0, 1.0


@dataclass(frozen=True)
class GridFrame:
    """Qwen-VL's integer grid: ``value = fraction * scale``, written as an int in ``[0, size)``.

    The paper normalises to [0, 1000) (``scale=1000``); Qwen-VL's own grounding evaluator divides by 999 when it
    maps predictions back to pixels, which is ``scale=999``. ``size`` bounds the written integers (1000: 0..999).
    """

    scale: float = 1000.0
    size: int = 1000

    def __post_init__(self) -> None:
        if not (self.scale > 0 and self.size > 0):
            raise InputError(f"GridFrame: scale and size must be > 0, got scale={self.scale}, size={self.size}")

    @property
    def extent(self) -> tuple[float, float]:
        """The largest valid grid value on each axis (``size - 1``)."""
        return float(self.size - 1), float(self.size - 1)


Frame = PixelFrame | NormalizedFrame | GridFrame

NORMALIZED = NormalizedFrame()
QWEN_GRID = GridFrame(1000.0, 1000)
QWEN_EVAL_GRID = GridFrame(999.0, 1000)


def _axis_scales(frame: Frame) -> tuple[float, float]:
    """How many units of ``frame`` make the full image width and height."""
    if isinstance(frame, PixelFrame):
        return float(frame.width), float(frame.height)
    if isinstance(frame, GridFrame):
        return float(frame.scale), float(frame.scale)
    if isinstance(frame, NormalizedFrame):
        return 1.0, 1.0
    raise InputError(f"not a coordinate frame: {frame!r} (expected PixelFrame, NormalizedFrame or GridFrame)")


def convert_coords(coords: np.ndarray, src: Frame, dst: Frame) -> np.ndarray:
    """Convert ``[..., 2k]`` interleaved ``x, y, x, y, ...`` coordinates from ``src`` to ``dst`` (float64).

    Grid values are not rounded here: rounding is the text grammar's business (see ``anymal_box.qwen``).
    """
    coords = np.asarray(coords, dtype=np.float64)
    if src == dst:
        return coords.copy()
    sx, sy = _axis_scales(src)
    dx, dy = _axis_scales(dst)
    out = coords.copy()
    out[..., 0::2] *= dx / sx
    out[..., 1::2] *= dy / sy
    return out
