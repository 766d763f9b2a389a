"""Box and mask agreement metrics as the grounding papers report them.

Two REC conventions exist and give different numbers on the same predictions, so both are explicit:

- **Pink** (``eval_vg.py``): IoU with the +1-pixel-inclusive convention (a box ``[x1, x2]`` spans
  ``x2 - x1 + 1`` pixels), correct iff IoU **>** 0.5.
- **Qwen-VL** (``evaluate_grounding.py``): plain continuous IoU (torchvision ``box_iou``), correct iff IoU
  **>=** 0.5.

u-LLaVA's Prec@0.5 is IoU > 0.5 with plain IoU (``convention="ullava"``). For masks, u-LLaVA (after LISA)
reports cIoU, the cumulative intersection over the cumulative union of the whole set, and gIoU, the mean of the
per-image IoUs, where an image whose prediction and target are both empty counts as IoU 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anymal.errors import InputError
from anymal_box.boxes import Boxes

REC_CONVENTIONS = {
    # name: (pixel_inclusive, strict)
    "pink": (True, True),
    "qwen": (False, False),
    "ullava": (False, True),
}


def _xyxy(boxes: Boxes | Any, what: str) -> np.ndarray:
    data = boxes.data if isinstance(boxes, Boxes) else Boxes(boxes).data
    if not np.isfinite(data).all():
        raise InputError(f"{what}: boxes must be finite")
    return data


def _frames_match(a: Boxes | Any, b: Boxes | Any) -> None:
    if isinstance(a, Boxes) and isinstance(b, Boxes) and a.frame != b.frame:
        raise InputError(f"IoU of boxes in different frames ({a.frame!r} vs {b.frame!r}): convert one with .to()")


def _inter_union(a: np.ndarray, b: np.ndarray, plus_one: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection, union and the enclosing box of broadcastable ``[..., 4]`` arrays."""
    wa = np.clip(a[..., 2] - a[..., 0] + plus_one, 0, None)
    ha = np.clip(a[..., 3] - a[..., 1] + plus_one, 0, None)
    wb = np.clip(b[..., 2] - b[..., 0] + plus_one, 0, None)
    hb = np.clip(b[..., 3] - b[..., 1] + plus_one, 0, None)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + plus_one, 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + plus_one, 0, None)
    inter = iw * ih
    union = wa * ha + wb * hb - inter
    ew = np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 0], b[..., 0]) + plus_one
    eh = np.maximum(a[..., 3], b[..., 3]) - np.minimum(a[..., 1], b[..., 1]) + plus_one
    return inter, union, ew * eh


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def box_iou(a: Boxes | Any, b: Boxes | Any, pixel_inclusive: bool = False) -> np.ndarray:
    """Pairwise IoU ``[N, M]`` of ``a`` (N boxes) and ``b`` (M boxes) in the same frame (0 where union is 0).

    ``pixel_inclusive=True`` is the +1 convention of Pink and the PASCAL devkit (only meaningful in pixels).
    """
    _frames_match(a, b)
    x, y = _xyxy(a, "box_iou a"), _xyxy(b, "box_iou b")
    inter, union, _ = _inter_union(x[:, None, :], y[None, :, :], 1.0 if pixel_inclusive else 0.0)
    return _safe_div(inter, union)


def paired_iou(a: Boxes | Any, b: Boxes | Any, pixel_inclusive: bool = False) -> np.ndarray:
    """Element-wise IoU ``[N]`` of the i-th box of ``a`` with the i-th box of ``b``."""
    _frames_match(a, b)
    x, y = _xyxy(a, "paired_iou a"), _xyxy(b, "paired_iou b")
    if x.shape != y.shape:
        raise InputError(f"paired_iou: {len(x)} boxes vs {len(y)} boxes; expected the same number")
    inter, union, _ = _inter_union(x, y, 1.0 if pixel_inclusive else 0.0)
    return _safe_div(inter, union)


def generalized_box_iou(a: Boxes | Any, b: Boxes | Any) -> np.ndarray:
    """Pairwise GIoU ``[N, M]`` (Rezatofighi et al. 2019): ``IoU - (enclosing - union) / enclosing``, in [-1, 1]."""
    _frames_match(a, b)
    x, y = _xyxy(a, "generalized_box_iou a"), _xyxy(b, "generalized_box_iou b")
    inter, union, enclosing = _inter_union(x[:, None, :], y[None, :, :], 0.0)
    return _safe_div(inter, union) - _safe_div(enclosing - union, enclosing)


@dataclass(frozen=True)
class RECResult:
    """REC Acc@threshold over a set: ``correct / total``; ``format_errors`` counts unparsable predictions."""

    accuracy: float
    correct: int
    total: int
    format_errors: int
    ious: tuple[float, ...]


def rec_accuracy(
    predictions: Sequence[Boxes | None],
    targets: Sequence[Boxes],
    convention: str = "qwen",
    threshold: float = 0.5,
) -> RECResult:
    """REC accuracy: one predicted box per referring expression against its one ground-truth box.

    Args:
        predictions: per sample a one-box ``Boxes`` (any frame convertible to the target's), or None for an
            answer that did not parse; None counts as wrong and as a format error, as in both papers.
        targets: per sample the one-box ground truth, in pixels of the original image for the Pink convention.
        convention: ``"pink"`` (+1-pixel IoU, IoU > t), ``"qwen"`` (plain IoU, IoU >= t) or ``"ullava"``
            (plain IoU, IoU > t).
    """
    if convention not in REC_CONVENTIONS:
        raise InputError(f"convention={convention!r}: expected one of {sorted(REC_CONVENTIONS)}")
    if len(predictions) != len(targets):
        raise InputError(f"rec_accuracy: {len(predictions)} predictions for {len(targets)} targets")
    inclusive, strict = REC_CONVENTIONS[convention]
    ious: list[float] = []
    errors = 0
    for i, (pred, target) in enumerate(zip(predictions, targets)):
        if len(target) != 1:
            raise InputError(f"rec_accuracy: targets[{i}] holds {len(target)} boxes; expected exactly 1")
        if pred is None or len(pred) != 1:
            errors += 1
            ious.append(0.0)
            continue
        ious.append(float(paired_iou(pred.to(target.frame), target, pixel_inclusive=inclusive)[0]))
    values = np.asarray(ious)
    hits = values > threshold if strict else values >= threshold
    correct = int(hits.sum())
    total = len(targets)
    return RECResult(correct / total if total else 0.0, correct, total, errors, tuple(ious))


@dataclass(frozen=True)
class MaskIoUResult:
    """cIoU (cumulative I / cumulative U), gIoU (mean per-image IoU) and the per-image IoUs."""

    ciou: float
    giou: float
    ious: tuple[float, ...]
    intersection: int
    union: int


def mask_iou(predictions: Sequence[Any], targets: Sequence[Any]) -> MaskIoUResult:
    """cIoU and gIoU of binary masks as u-LLaVA/LISA report them (an empty-vs-empty image has IoU 1)."""
    if len(predictions) != len(targets):
        raise InputError(f"mask_iou: {len(predictions)} predicted masks for {len(targets)} targets")
    total_i = total_u = 0
    ious = []
    for i, (pred, target) in enumerate(zip(predictions, targets)):
        p, t = np.asarray(pred).astype(bool), np.asarray(target).astype(bool)
        if p.shape != t.shape:
            raise InputError(f"mask_iou: predictions[{i}] has shape {p.shape}, targets[{i}] has {t.shape}")
        inter, union = int(np.logical_and(p, t).sum()), int(np.logical_or(p, t).sum())
        total_i += inter
        total_u += union
        ious.append(inter / union if union else 1.0)
    ciou = total_i / total_u if total_u else 1.0
    giou = float(np.mean(ious)) if ious else 0.0
    return MaskIoUResult(ciou, giou, tuple(ious), total_i, total_u)
