"""Binary masks from COCO segmentations (polygons, RLE) and the boxes that enclose them.

RefCOCO/RefCOCO+/RefCOCOg and u-LLaVA's segmentation data store masks as COCO polygons or run-length encodings;
pycocotools decodes both. ``boxes_from_masks`` derives box labels for segmentation-only data (u-LLaVA §3.2).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from anymal.errors import DataError
from anymal_box.boxes import Boxes
from anymal_box.frames import PixelFrame


@contextmanager
def _pycocotools_numpy2() -> Iterator[None]:
    """pycocotools 2.0.11's Cython ``decode`` trips numpy 2's ``__array__(copy=...)`` deprecation inside its own
    code; the result is correct. Silenced here, at the call site only, so our tests can keep warnings as errors."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"__array__ implementation doesn't accept a copy keyword", category=DeprecationWarning
        )
        yield


def decode_segmentation(segmentation: Any, height: int, width: int, where: str = "segmentation") -> np.ndarray:
    """A COCO ``segmentation`` as a bool ``[height, width]`` mask.

    Accepts the three COCO forms: a list of polygons ``[[x1, y1, x2, y2, ...], ...]`` (merged), an uncompressed
    RLE ``{"size": [h, w], "counts": [int, ...]}`` and a compressed RLE ``{"size": [h, w], "counts": "..."}``.
    Raises ``DataError`` naming ``where`` when the value is none of these or does not fit the image.
    """
    from pycocotools import mask as mask_utils  # type: ignore[import-untyped]

    try:
        with _pycocotools_numpy2():
            if isinstance(segmentation, list):
                polygons = [list(map(float, p)) for p in segmentation]
                if not polygons or any(len(p) < 6 or len(p) % 2 for p in polygons):
                    raise ValueError("each polygon needs at least 3 (x, y) points")
                rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
            elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
                if [int(v) for v in segmentation["size"]] != [height, width]:
                    raise ValueError(f"RLE size {segmentation['size']} is not the image's [{height}, {width}]")
                counts = segmentation["counts"]
                if isinstance(counts, list):
                    if sum(int(c) for c in counts) != height * width or min(counts, default=0) < 0:
                        raise ValueError(f"uncompressed RLE counts do not sum to {height} * {width}")
                    rle = mask_utils.frPyObjects(segmentation, height, width)
                else:
                    rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
            else:
                raise ValueError(f"expected polygons or an RLE dict, got {type(segmentation).__name__}")
            return mask_utils.decode(rle).astype(bool)
    except (ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{where}: cannot decode COCO segmentation ({exc})") from None


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A bool ``[H, W]`` mask as a compressed COCO RLE with a ``str`` ``counts`` (JSON-serialisable)."""
    from pycocotools import mask as mask_utils

    with _pycocotools_numpy2():
        rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def boxes_from_masks(masks: Sequence[np.ndarray] | np.ndarray, where: str = "masks") -> Boxes:
    """The tightest pixel box around each mask, in the mask's ``PixelFrame``.

    A mask pixel at column ``x`` covers ``[x, x + 1)``, so the box is ``[x_min, y_min, x_max + 1, y_max + 1]``
    (torchvision's ``masks_to_boxes`` returns ``x_max`` itself: subtract 1 from x2/y2 to compare). An empty mask
    has no box and raises ``DataError`` naming its index.
    """
    arrays = [np.asarray(m).astype(bool) for m in masks]
    if not arrays:
        raise DataError(f"{where}: no masks")
    height, width = arrays[0].shape
    rows = []
    for i, mask in enumerate(arrays):
        if mask.shape != (height, width):
            raise DataError(f"{where}[{i}]: shape {mask.shape}, expected {(height, width)} like {where}[0]")
        ys, xs = np.nonzero(mask)
        if xs.size == 0:
            raise DataError(f"{where}[{i}]: empty mask has no box")
        rows.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return Boxes(np.asarray(rows, dtype=np.float64), PixelFrame(width, height))
