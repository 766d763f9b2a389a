"""The mask losses of u-LLaVA (after LISA): sigmoid BCE and Dice, each averaged over the masks that have labels.

``L_pixel = bce_weight * L_bce + dice_weight * L_dice`` with u-LLaVA's weights 2.0 and 0.5 by default
(../shared/reference/seeds_ullava_m3it.md, A1.4). Per mask, BCE is the mean over its pixels of
``BCEWithLogits``; Dice is ``1 - (2 * sum(p * t) / s + eps) / (sum(p) / s + sum(t) / s + eps)`` with
``p = sigmoid(logits)``, the scale ``s = 1000`` and ``eps = 1e-6`` of the released code. Both are summed over masks
and divided by their count (``+ 1e-8``), so a batch with no mask label contributes nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ULLAVA_BCE_WEIGHT = 2.0
ULLAVA_DICE_WEIGHT = 0.5
DICE_SCALE = 1000.0
DICE_EPS = 1e-6


def _flat(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.shape != targets.shape:
        raise ValueError(f"mask loss: logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    return logits.flatten(1).float(), targets.flatten(1).float()


def sigmoid_bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-mask mean sigmoid BCE, summed over the ``[N, ...]`` masks and divided by ``N`` (0 when ``N == 0``)."""
    x, t = _flat(logits, targets)
    per_mask = F.binary_cross_entropy_with_logits(x, t, reduction="none").mean(1)
    return per_mask.sum() / (x.shape[0] + 1e-8)


def dice_loss(
    logits: torch.Tensor, targets: torch.Tensor, scale: float = DICE_SCALE, eps: float = DICE_EPS
) -> torch.Tensor:
    """Per-mask Dice loss of ``sigmoid(logits)``, summed over the ``[N, ...]`` masks and divided by ``N``."""
    x, t = _flat(logits, targets)
    p = x.sigmoid()
    numerator = 2 * (p / scale * t).sum(-1)
    denominator = (p / scale).sum(-1) + (t / scale).sum(-1)
    per_mask = 1 - (numerator + eps) / (denominator + eps)
    return per_mask.sum() / (x.shape[0] + 1e-8)


def mask_losses(
    logits: torch.Tensor,
    targets: torch.Tensor,
    bce_weight: float = ULLAVA_BCE_WEIGHT,
    dice_weight: float = ULLAVA_DICE_WEIGHT,
    dice_scale: float = DICE_SCALE,
) -> dict[str, torch.Tensor]:
    """The weighted terms ``{"mask_bce": ..., "mask_dice": ...}`` for labelled masks ``[N, H, W]``."""
    return {
        "mask_bce": bce_weight * sigmoid_bce_loss(logits, targets),
        "mask_dice": dice_weight * dice_loss(logits, targets, scale=dice_scale),
    }
