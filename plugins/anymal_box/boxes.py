"""Typed boxes and points: float coordinates plus the frame they are measured in.

``Boxes`` holds N boxes as ``xyxy`` (top-left, bottom-right) float64 in one ``Frame``; ``Points`` holds N
``xy`` points. Both are immutable values: every operation returns a new object. They are what the text codecs
parse into, what the metrics take, and what an output plugin hands back to the user (in the original photo's
pixels, via ``anymal_box.geometry``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anymal.errors import InputError
from anymal_box.frames import NORMALIZED, Frame, PixelFrame, convert_coords


def _as_array(values: Any, width: int, what: str) -> np.ndarray:
    """``values`` as a float64 ``[N, width]`` array (an empty input gives ``[0, width]``).

    Torch tensors (a box head's output, on any device, with or without grad) are detached and copied to the CPU.
    """
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().float().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: cannot read as numbers ({exc})") from None
    if array.size == 0:
        return np.zeros((0, width), dtype=np.float64)
    if array.ndim == 1 and array.shape[0] == width:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != width:
        raise InputError(f"{what}: expected shape [N, {width}], got {list(array.shape)}")
    return array


@dataclass(frozen=True, eq=False)
class _Coords:
    """Shared storage and frame handling of ``Boxes`` (width 4) and ``Points`` (width 2)."""

    data: Any  # anything array-like on input; a read-only float64 ``np.ndarray`` once built
    frame: Frame = field(default=NORMALIZED)

    _width = 0
    _kind = ""

    def __post_init__(self) -> None:
        array = _as_array(self.data, self._width, self._kind).copy()
        array.setflags(write=False)
        object.__setattr__(self, "data", array)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.frame == other.frame and np.array_equal(self.data, other.data)

    def __hash__(self) -> int:
        return hash((type(self), self.frame, self.data.tobytes()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.data.tolist()}, frame={self.frame!r})"

    def __iter__(self) -> Iterator[tuple[float, ...]]:
        for row in self.data:
            yield tuple(float(v) for v in row)

    def __getitem__(self, index: Any):
        rows = self.data[index]
        return type(self)(rows.reshape(-1, self._width), self.frame)

    def to(self, frame: Frame):
        """The same geometry expressed in ``frame`` (e.g. normalised -> pixels of a 640x480 photo)."""
        return type(self)(convert_coords(self.data, self.frame, frame), frame)

    def to_pixels(self, width: float, height: float):
        """Shorthand for ``to(PixelFrame(width, height))``."""
        return self.to(PixelFrame(width, height))

    def normalized(self):
        """Shorthand for ``to(NORMALIZED)``."""
        return self.to(NORMALIZED)

    def clip(self):
        """Coordinates clamped into the frame's extent (``[0, W]``, ``[0, 1]`` or ``[0, size - 1]``)."""
        ex, ey = self.frame.extent
        out = self.data.copy()
        out[:, 0::2] = np.clip(out[:, 0::2], 0.0, ex)
        out[:, 1::2] = np.clip(out[:, 1::2], 0.0, ey)
        return type(self)(out, self.frame)

    def in_frame(self) -> np.ndarray:
        """Per row: all coordinates finite and inside the frame's extent."""
        ex, ey = self.frame.extent
        xs, ys = self.data[:, 0::2], self.data[:, 1::2]
        ok = np.isfinite(self.data).all(axis=1)
        with np.errstate(invalid="ignore"):
            ok &= ((xs >= 0) & (xs <= ex)).all(axis=1) & ((ys >= 0) & (ys <= ey)).all(axis=1)
        return ok

    def concat(self, other):
        """Rows of ``self`` then ``other`` (converted to ``self.frame``)."""
        return type(self)(np.concatenate([self.data, other.to(self.frame).data]), self.frame)


class Boxes(_Coords):
    """N boxes as float ``xyxy`` in ``frame``.

    Args:
        data: ``[N, 4]`` (or one box of 4 numbers) as ``x1, y1, x2, y2``.
        frame: what the numbers are measured in; normalised [0, 1] by default.
    """

    _width = 4
    _kind = "boxes"

    @classmethod
    def from_xywh(cls, xywh: Any, frame: Frame) -> Boxes:
        """From COCO-style ``[x, y, w, h]`` rows."""
        array = _as_array(xywh, 4, "xywh boxes").copy()
        array[:, 2:] += array[:, :2]
        return cls(array, frame)

    @classmethod
    def empty(cls, frame: Frame = NORMALIZED) -> Boxes:
        return cls(np.zeros((0, 4)), frame)

    @property
    def xyxy(self) -> np.ndarray:
        return self.data

    @property
    def xywh(self) -> np.ndarray:
        out = self.data.copy()
        out[:, 2:] -= out[:, :2]
        return out

    @property
    def widths(self) -> np.ndarray:
        return self.data[:, 2] - self.data[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.data[:, 3] - self.data[:, 1]

    @property
    def areas(self) -> np.ndarray:
        """``w * h`` in the frame's units (0 for degenerate or inverted boxes)."""
        return np.clip(self.widths, 0, None) * np.clip(self.heights, 0, None)

    @property
    def centers(self) -> Points:
        return Points((self.data[:, :2] + self.data[:, 2:]) / 2.0, self.frame)

    def well_formed(self) -> np.ndarray:
        """Per row: finite, inside the frame and ``x1 <= x2``, ``y1 <= y2``."""
        with np.errstate(invalid="ignore"):
            ordered = (self.data[:, 0] <= self.data[:, 2]) & (self.data[:, 1] <= self.data[:, 3])
        return self.in_frame() & ordered

    def sorted_by_area(self) -> tuple[Boxes, np.ndarray]:
        """Boxes sorted by area ascending (stable: ties keep their order), and the permutation used.

        Pink/Shikra list several boxes smallest first; the order must not depend on the frame, and it does not,
        since every frame scales areas by the same positive factor.
        """
        order = np.argsort(self.areas, kind="stable")
        return Boxes(self.data[order], self.frame), order

    def validate(self, name: str = "boxes") -> Boxes:
        """Strict check of user-given boxes: raises ``InputError`` naming ``name`` and the first bad row."""
        bad = np.flatnonzero(~self.well_formed())
        if bad.size:
            i = int(bad[0])
            ex, ey = self.frame.extent
            raise InputError(
                f"{name}[{i}] = {self.data[i].tolist()}: expected finite x1 <= x2 in [0, {ex:g}] and y1 <= y2 in "
                f"[0, {ey:g}] for {self.frame!r} ({bad.size} bad box(es) of {len(self)})"
            )
        return self

    def as_tensor(self, dtype: Any = None):
        """The coordinates as a ``torch.Tensor`` ``[N, 4]`` (float32 unless ``dtype`` says otherwise)."""
        import torch

        return torch.from_numpy(self.data.copy()).to(dtype or torch.float32)  # a copy: ours is read-only


class Points(_Coords):
    """N points as float ``xy`` in ``frame`` (Pink's ``[x,y]`` referents, box centres)."""

    _width = 2
    _kind = "points"

    @classmethod
    def empty(cls, frame: Frame = NORMALIZED) -> Points:
        return cls(np.zeros((0, 2)), frame)

    @property
    def xy(self) -> np.ndarray:
        return self.data

    def validate(self, name: str = "points") -> Points:
        """Strict check of user-given points: raises ``InputError`` naming ``name`` and the first bad row."""
        bad = np.flatnonzero(~self.in_frame())
        if bad.size:
            i = int(bad[0])
            ex, ey = self.frame.extent
            raise InputError(
                f"{name}[{i}] = {self.data[i].tolist()}: expected finite x in [0, {ex:g}], y in [0, {ey:g}] "
                f"for {self.frame!r}"
            )
        return self
