"""Reading one image from whatever a user has: a path, bytes, a PIL image, a numpy array or a tensor."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from anymal.errors import InputError

ImageInput = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray | torch.Tensor


def _from_array(array: np.ndarray, where: str) -> Image.Image:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise InputError(f"{where}: expected an image array [H, W, C] or [C, H, W], got shape {array.shape}")
    if array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.shape[-1] not in (1, 3, 4):
        raise InputError(f"{where}: expected 1, 3 or 4 channels, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{where}: image array contains NaN or inf values")
    if array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 1:
            raise InputError(
                f"{where}: float image values must lie in [0, 1] (got {array.min():.3g}..{array.max():.3g})"
            )
        array = np.round(array * 255).astype(np.uint8)
    if array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array).convert("RGB")


def load_image(raw: ImageInput, where: str = "image") -> Image.Image:
    """An RGB PIL image from ``raw``; anything unreadable raises ``InputError`` naming the input."""
    if isinstance(raw, Image.Image):
        return raw.convert("RGB")
    if isinstance(raw, (str, os.PathLike)):
        path = Path(raw)
        if not path.is_file():
            raise InputError(f"{where}: file not found: {path}")
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InputError(f"{where}: {path} is not a readable image (PIL: {exc})") from None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            with Image.open(io.BytesIO(bytes(raw))) as image:
                return image.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InputError(f"{where}: {len(raw)} bytes are not a readable image (PIL: {exc})") from None
    if isinstance(raw, torch.Tensor):
        return _from_array(raw.detach().cpu().numpy(), where)
    if isinstance(raw, np.ndarray):
        return _from_array(raw, where)
    raise InputError(f"{where}: expected a path, bytes, PIL image, numpy array or tensor, got {type(raw).__name__}")
