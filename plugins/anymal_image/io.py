"""Reading one image from whatever a user has: a path, bytes, a PIL image, a numpy array or a tensor.

What is accepted, and how it becomes 8-bit RGB:

* files and bytes: anything PIL opens, up to ``MAX_IMAGE_PIXELS`` pixels (width x height, read from the header
  before anything is decoded, so a decompression bomb is refused without allocating it). Raise the module
  constant, or pass ``max_pixels=`` to ``load_image``, for larger images; ``None`` turns the check off. PIL's own
  bomb check (at twice ``PIL.Image.MAX_IMAGE_PIXELS``) still applies above that and is reported the same way.
* 16-bit images (PIL modes ``I;16*``, and ``I`` as older Pillow opens 16-bit PNGs) are scaled to 8 bits
  (``value / 257``: 65535 -> 255), not clipped; 32-bit float images (mode ``F``) must hold values in [0, 1].
* arrays and tensors, ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` with C in 1, 3, 4: ``uint8`` as is; ``uint16``
  scaled like a 16-bit file; other integer types (e.g. ``int64`` from a Python list) must hold values 0-255;
  ``bool`` is black/white; floating point (including ``float16`` and ``bfloat16`` tensors, converted exactly to
  float32) must be finite and lie in [0, 1]. Object, string, complex and empty arrays are refused.

Everything else raises ``InputError`` naming the input (a path, a byte count, or the array's shape and dtype) and
what was expected.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from anymal.errors import InputError

ImageInput = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray | torch.Tensor

# Largest image (width x height) read from a file or bytes; PIL's default (~89.5 megapixels, a 0.25 GiB RGBA
# buffer). A bigger header is refused before decoding, since a tiny compressed file can declare gigapixels.
MAX_IMAGE_PIXELS: int | None = 89_478_485

EXPECTED_VALUES = "uint8 values 0-255, uint16 values 0-65535 (scaled to 8 bits), or floats in [0, 1]"
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def describe_array(array: Any) -> str:
    """``array of shape (H, W, C) dtype uint8``: how error messages name an in-memory input."""
    return f"array of shape {tuple(array.shape)} dtype {array.dtype}"


def tensor_to_numpy(tensor: torch.Tensor, where: str) -> np.ndarray:
    """A numpy copy of ``tensor``; floating types numpy lacks (``bfloat16``) become float32 exactly."""
    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32, torch.float64):
        tensor = tensor.float()  # bfloat16 / float8: every value is exactly representable in float32
    try:
        return tensor.cpu().numpy()
    except (TypeError, RuntimeError) as exc:
        raise InputError(
            f"{where}: tensor of shape {tuple(tensor.shape)} dtype {tensor.dtype} cannot be read as pixels ({exc}); "
            f"expected {EXPECTED_VALUES}"
        ) from None


def to_uint8(array: np.ndarray, where: str, described: str | None = None) -> np.ndarray:
    """The pixel values of ``array`` (any shape) as uint8, by the dtype rules in the module docstring.

    ``described`` names the input in messages (default: ``array`` 's own shape and dtype).
    """
    what = f"{where}: {described or describe_array(array)}"
    kind = array.dtype.kind
    if kind not in "biuf":
        raise InputError(f"{what} is not numeric pixel data; expected {EXPECTED_VALUES}")
    if array.size == 0:
        raise InputError(f"{what} is empty; expected at least one pixel")
    if kind == "b":
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return _sixteen_to_eight(array)
    if kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise InputError(
                f"{what} has values {low}..{high}; integer pixels other than uint16 must lie in 0-255. Expected "
                f"{EXPECTED_VALUES}: convert with array.astype(np.uint8) if they are 8-bit, or scale them"
            )
        return array.astype(np.uint8)
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(finite.size - finite.sum())
        raise InputError(f"{what} contains {bad} NaN or inf value(s); expected finite pixels")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        hint = " (it looks 8-bit: divide by 255 or cast to uint8)" if high <= 255 and low >= 0 else ""
        raise InputError(f"{what} has values {low:.4g}..{high:.4g}; float pixels must lie in [0, 1]{hint}")
    return np.round(array.astype(np.float64) * 255).astype(np.uint8)


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """16-bit to 8-bit by rounding ``value / 257`` (0 -> 0, 65535 -> 255), the inverse of ``v8 * 257``."""
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _from_array(array: np.ndarray, where: str) -> Image.Image:
    described = describe_array(array)
    what = f"{where}: {described}"
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise InputError(f"{what}: expected an image array [H, W], [H, W, C] or [C, H, W]")
    if array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.shape[-1] not in (1, 3, 4):
        raise InputError(f"{what}: expected 1, 3 or 4 channels ([H, W, C] or [C, H, W])")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{what} is empty; expected an image at least 1 x 1 pixel")
    array = to_uint8(array, where, described)
    if array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")


def to_rgb(image: Image.Image, where: str) -> Image.Image:
    """8-bit RGB from any PIL image: 16-bit grey is scaled (not clipped to white), float grey must be in [0, 1]."""
    width, height = image.size
    if width == 0 or height == 0:
        raise InputError(f"{where}: the image is {width} x {height} pixels; expected at least 1 x 1")
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
            raise InputError(
                f"{where}: a PIL mode {image.mode!r} (32-bit integer) image with values "
                f"{int(values.min())}..{int(values.max())}; expected 8- or 16-bit pixel values"
            )
        return Image.fromarray(_sixteen_to_eight(values)).convert("RGB")
    if image.mode == "F":
        return _from_array(np.asarray(image), f"{where} (32-bit float image)")
    return image.convert("RGB")


def _open(source: str | io.BytesIO, where: str, max_pixels: int | None) -> Image.Image:
    """Opens, checks the declared size against ``max_pixels``, then decodes to RGB."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides below
            image = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"{where}: refused as a possible decompression bomb ({exc}); raise PIL.Image.MAX_IMAGE_PIXELS and "
            "anymal_image.io.MAX_IMAGE_PIXELS if the image is genuine"
        ) from None
    with image:
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise InputError(
                f"{where}: {width} x {height} = {width * height} pixels exceeds the limit of {max_pixels} pixels "
                "(anymal_image.io.MAX_IMAGE_PIXELS, a guard against decompression bombs); downscale the image or "
                "raise the limit"
            )
        return to_rgb(image, where)


def load_image(raw: ImageInput, where: str = "image", max_pixels: int | str | None = "default") -> Image.Image:
    """An RGB PIL image from ``raw``; anything unreadable raises ``InputError`` naming the input.

    ``max_pixels`` bounds width x height of files and bytes (default: ``MAX_IMAGE_PIXELS``; ``None``: no bound).
    """
    limit = MAX_IMAGE_PIXELS if max_pixels == "default" else max_pixels
    if isinstance(limit, str):
        raise InputError(f"max_pixels={max_pixels!r}: expected a number of pixels, None or 'default'")
    if isinstance(raw, Image.Image):
        return to_rgb(raw, where)
    if isinstance(raw, (str, os.PathLike)):
        path = Path(raw)
        if not path.is_file():
            raise InputError(f"{where}: file not found: {path}")
        try:
            return _open(str(path), f"{where} {path}", limit)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{where}: {path} is not a readable image (PIL: {exc})") from None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
        name = f"{where} ({len(data)} bytes)"
        try:
            return _open(io.BytesIO(data), name, limit)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{where}: {len(data)} bytes are not a readable image (PIL: {exc})") from None
    if isinstance(raw, torch.Tensor):
        return _from_array(tensor_to_numpy(raw, where), where)
    if isinstance(raw, np.ndarray):
        return _from_array(raw, where)
    raise InputError(f"{where}: expected a path, bytes, PIL image, numpy array or tensor, got {type(raw).__name__}")
