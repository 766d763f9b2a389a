"""Where a photo's pixels land after the image plugin's resize / pad / crop, and back.

Every transform an image encoder applies before the model sees the photo (squash resize, shortest-side resize +
centre crop, longest-side resize + centre pad, LLaVA's ``expand2square`` pad) moves each axis by a scale and an
offset. ``Geometry`` composes them into one per-axis affine map from the original photo's pixels to the encoder
input's pixels, so a box predicted on the encoder input maps back to the photo exactly (no rounding of its own;
the integer sizes and offsets are the ones torchvision/open_clip compute).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from anymal.errors import ConfigError, InputError
from anymal_box.boxes import Boxes, Points
from anymal_box.frames import PixelFrame

C = TypeVar("C", Boxes, Points)


def _size(size: tuple[float, float], what: str) -> tuple[float, float]:
    w, h = (float(v) for v in size)
    if not (w > 0 and h > 0 and np.isfinite(w) and np.isfinite(h)):
        raise InputError(f"{what}: expected a positive (width, height), got {size!r}")
    return w, h


@dataclass(frozen=True)
class Geometry:
    """``x_out = scale_x * x_in + offset_x`` (same for y) from a ``src`` image to a ``dst`` image.

    Build one with the constructors below and chain them with ``then``; ``forward`` maps source-pixel boxes or
    points to the destination, ``inverse`` maps destination boxes or points (in any frame: normalised, pixels of
    the destination) back to source pixels.
    """

    src: tuple[float, float]
    dst: tuple[float, float]
    scale: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)

    # --- constructors ------------------------------------------------------------------------------------------
    @classmethod
    def identity(cls, size: tuple[float, float]) -> Geometry:
        size = _size(size, "identity size")
        return cls(size, size)

    @classmethod
    def resize(cls, src: tuple[float, float], dst: tuple[float, float]) -> Geometry:
        """Resample ``src`` to exactly ``dst`` (``(width, height)``), aspect ratio not kept (squash)."""
        src, dst = _size(src, "resize source"), _size(dst, "resize target")
        return cls(src, dst, (dst[0] / src[0], dst[1] / src[1]))

    @classmethod
    def pad(cls, src: tuple[float, float], left: float, top: float, right: float, bottom: float) -> Geometry:
        """Add borders; content moves by ``(left, top)``."""
        w, h = _size(src, "pad source")
        if min(left, top, right, bottom) < 0:
            raise InputError(f"pad: borders must be >= 0, got {(left, top, right, bottom)}")
        return cls((w, h), (w + left + right, h + top + bottom), (1.0, 1.0), (float(left), float(top)))

    @classmethod
    def crop(cls, src: tuple[float, float], left: float, top: float, width: float, height: float) -> Geometry:
        """Keep the window at ``(left, top)`` of ``width`` x ``height``; content moves by ``(-left, -top)``."""
        src = _size(src, "crop source")
        _size((width, height), "crop window")
        return cls(src, (float(width), float(height)), (1.0, 1.0), (-float(left), -float(top)))

    @classmethod
    def resize_shortest(cls, src: tuple[float, float], size: int) -> Geometry:
        """torchvision ``Resize(size)``: shortest side to ``size``, the other ``int(size * long / short)``."""
        w, h = _size(src, "resize source")
        if w <= h:
            dst = (size, int(size * h / w))
        else:
            dst = (int(size * w / h), size)
        return cls.resize((w, h), dst)

    @classmethod
    def resize_longest(cls, src: tuple[float, float], size: int) -> Geometry:
        """open_clip ``ResizeKeepRatio(size, longest=1)``: longest side to ``size``, each side rounded."""
        w, h = _size(src, "resize source")
        ratio = max(w / size, h / size)
        return cls.resize((w, h), (round(w / ratio), round(h / ratio)))

    @classmethod
    def center_crop_or_pad(cls, src: tuple[float, float], size: tuple[int, int], rounding: str = "round") -> Geometry:
        """open_clip ``CenterCropOrPad`` / torchvision ``CenterCrop`` to ``size = (width, height)``.

        Pads (``(size - w) // 2`` on the left/top) where the image is smaller, then crops at
        ``round((w - size) / 2)``, which is what both libraries do; ``rounding="floor"`` crops at
        ``(w - size) // 2`` as transformers' image processors do (the two differ by a pixel when ``w - size`` is odd).
        """
        if rounding not in ("round", "floor"):
            raise ConfigError(f"rounding={rounding!r}: expected 'round' or 'floor'")
        w, h = _size(src, "crop source")
        cw, ch = size
        geo = cls.identity((w, h))
        if cw > w or ch > h:
            pl = (cw - w) // 2 if cw > w else 0
            pt = (ch - h) // 2 if ch > h else 0
            pr = (cw - w + 1) // 2 if cw > w else 0
            pb = (ch - h + 1) // 2 if ch > h else 0
            geo = cls.pad((w, h), pl, pt, pr, pb)
        w2, h2 = geo.dst
        if (w2, h2) == (cw, ch):
            return geo
        if rounding == "floor":
            left, top = (w2 - cw) // 2, (h2 - ch) // 2
        else:
            left, top = round((w2 - cw) / 2.0), round((h2 - ch) / 2.0)
        return geo.then(cls.crop((w2, h2), left, top, cw, ch))

    @classmethod
    def expand_to_square(cls, src: tuple[float, float]) -> Geometry:
        """LLaVA's ``expand2square`` (Pink, u-LLaVA): pad the short side, image centred at ``(max - side) // 2``."""
        w, h = _size(src, "pad source")
        side = max(w, h)
        left, top = (side - w) // 2, (side - h) // 2
        return cls.pad((w, h), left, top, side - w - left, side - h - top)

    @classmethod
    def for_open_clip(cls, src: tuple[float, float], image_size: int, resize_mode: str = "shortest") -> Geometry:
        """The geometry of open_clip's eval ``image_transform(image_size, resize_mode=...)`` (the image plugin's).

        ``shortest``: resize the short side, centre crop (CLIP's default and the plugin's); ``squash``: resize to
        a square; ``longest``: resize the long side, centre pad.
        """
        square = (image_size, image_size)
        if resize_mode == "shortest":
            first = cls.resize_shortest(src, image_size)
            return first.then(cls.center_crop_or_pad(first.dst, square))
        if resize_mode == "squash":
            return cls.resize(src, square)
        if resize_mode == "longest":
            first = cls.resize_longest(src, image_size)
            return first.then(cls.center_crop_or_pad(first.dst, square))
        raise ConfigError(f"resize_mode={resize_mode!r}: expected 'shortest', 'squash' or 'longest'")

    @classmethod
    def for_hf_processor(
        cls,
        src: tuple[float, float],
        shortest_edge: int | None = None,
        crop_size: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> Geometry:
        """The geometry of a transformers image processor: ``CLIPImageProcessor`` (``shortest_edge`` resize, then
        a centre crop of ``crop_size`` at the floored offset) or a fixed ``size=(width, height)`` squash resize
        (``SiglipImageProcessor``), the image plugin's ``backend="hf"`` transforms."""
        if size is not None:
            return cls.resize(src, size)
        if shortest_edge is None:
            raise ConfigError("for_hf_processor: give shortest_edge (CLIP-style) or size (squash)")
        first = cls.resize_shortest(src, shortest_edge)
        if crop_size is None:
            return first
        return first.then(cls.center_crop_or_pad(first.dst, (crop_size, crop_size), rounding="floor"))

    # --- composition and mapping -------------------------------------------------------------------------------
    def then(self, nxt: Geometry) -> Geometry:
        """``self`` followed by ``nxt`` (whose source must be this geometry's destination)."""
        if not np.allclose(self.dst, nxt.src):
            raise InputError(f"Geometry.then: output size {self.dst} does not match the next input size {nxt.src}")
        sx, sy = self.scale[0] * nxt.scale[0], self.scale[1] * nxt.scale[1]
        ox = nxt.scale[0] * self.offset[0] + nxt.offset[0]
        oy = nxt.scale[1] * self.offset[1] + nxt.offset[1]
        return Geometry(self.src, nxt.dst, (sx, sy), (ox, oy))

    @property
    def src_frame(self) -> PixelFrame:
        return PixelFrame(*self.src)

    @property
    def dst_frame(self) -> PixelFrame:
        return PixelFrame(*self.dst)

    def _apply(self, data: np.ndarray, inverse: bool) -> np.ndarray:
        out = data.copy()
        for axis in (0, 1):
            s, o = self.scale[axis], self.offset[axis]
            out[:, axis::2] = (out[:, axis::2] - o) / s if inverse else out[:, axis::2] * s + o
        return out

    def forward(self, coords: C) -> C:
        """Source-image boxes/points (any frame) -> pixels of the destination image (not clipped)."""
        src = coords.to(self.src_frame)
        return type(coords)(self._apply(src.data, inverse=False), self.dst_frame)

    def inverse(self, coords: C) -> C:
        """Destination-image boxes/points (any frame, e.g. a model's normalised box) -> source pixels.

        Not clipped: a box reaching into padding maps outside the photo; call ``.clip()`` to cut it to the photo.
        """
        dst = coords.to(self.dst_frame)
        return type(coords)(self._apply(dst.data, inverse=True), self.src_frame)
