"""u-LLaVA's region loss: ``l1_weight * L1 + giou_weight * (1 - GIoU)`` over the boxes that have labels.

Both terms are summed over labelled boxes and divided by their count (+1e-8), as u-LLaVA's ``models/loss.py`` does.
L1 is the mean absolute error of a box's four coordinates. GIoU is only taken for predicted boxes with
``x1 >= x0`` and ``y1 >= y0`` (a degenerate prediction adds nothing to it, as in u-LLaVA; its L1 still pulls it).
"""

from __future__ import annotations

import torch

EPS = 1e-8


def generalized_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Paired GIoU of ``[N, 4]`` xyxy boxes (``[N]``), differentiable; both must be well-formed."""
    area_p = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1])
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    lt = torch.maximum(pred[:, :2], target[:, :2])
    rb = torch.minimum(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = area_p + area_t - inter
    iou = inter / union.clamp(min=EPS)
    hull = (torch.maximum(pred[:, 2:], target[:, 2:]) - torch.minimum(pred[:, :2], target[:, :2])).prod(dim=1)
    return iou - (hull - union) / hull.clamp(min=EPS)


def box_losses(
    pred: torch.Tensor, target: torch.Tensor, l1_weight: float = 1.0, giou_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """``{"l1": ..., "giou": ...}`` (weighted) for paired ``[N, 4]`` predictions and labels."""
    count = target.shape[0] + EPS
    l1 = (pred - target.to(pred.dtype)).abs().mean(dim=1).sum() / count
    valid = (pred[:, 2] >= pred[:, 0]) & (pred[:, 3] >= pred[:, 1])
    giou = (1 - generalized_iou(pred[valid], target[valid].to(pred.dtype))).sum() / count
    return {"l1": l1 * l1_weight, "giou": giou * giou_weight}
