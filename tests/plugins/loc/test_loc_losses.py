"""u-LLaVA's region loss (L1 + GIoU, weights 1.0 / 1.0) against hand-computed boxes and torchvision's GIoU."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import generalized_box_iou

from anymal_loc import box_losses, generalized_iou


def test_hand_computed_l1_and_giou():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 3.0, 3.0]])
    losses = box_losses(pred, target)
    # box 0: every coordinate off by 1 -> L1 1; IoU = 1 / 7, hull 3 x 3 = 9, GIoU = 1/7 - (9 - 7)/9
    giou0 = 1 / 7 - 2 / 9
    assert losses["l1"].item() == pytest.approx((1.0 + 0.0) / 2, abs=1e-6)
    assert losses["giou"].item() == pytest.approx(((1 - giou0) + 0.0) / 2, abs=1e-6)


def test_weights_scale_each_term():
    pred, target = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    plain, weighted = box_losses(pred, target), box_losses(pred, target, l1_weight=2.0, giou_weight=0.5)
    assert weighted["l1"].item() == pytest.approx(2 * plain["l1"].item())
    assert weighted["giou"].item() == pytest.approx(0.5 * plain["giou"].item())


def test_degenerate_prediction_adds_no_giou_but_counts_in_the_mean():
    pred = torch.tensor([[0.5, 0.5, 0.2, 0.9], [0.0, 0.0, 1.0, 1.0]])  # the first has x1 < x0
    target = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0]])
    losses = box_losses(pred, target)
    # only box 1 enters GIoU: IoU 0.5, hull = union -> GIoU 0.5; divided by both boxes (u-LLaVA's count)
    assert losses["giou"].item() == pytest.approx((1 - 0.5) / 2, abs=1e-6)
    assert torch.isfinite(losses["l1"]) and losses["l1"].item() > 0


def test_generalized_iou_matches_torchvision_and_has_gradients():
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(16, 2, generator=generator)
    pred = torch.cat([xy, xy + 0.05 + torch.rand(16, 2, generator=generator)], 1).requires_grad_(True)
    xy = torch.rand(16, 2, generator=generator)
    target = torch.cat([xy, xy + 0.05 + torch.rand(16, 2, generator=generator)], 1)
    ours = generalized_iou(pred, target)
    assert torch.allclose(ours, generalized_box_iou(pred.detach(), target).diagonal(), atol=1e-6)
    ours.sum().backward()
    assert pred.grad is not None and bool(torch.isfinite(pred.grad).all())


def test_losses_of_a_perfect_box_are_zero():
    box = torch.tensor([[0.1, 0.2, 0.6, 0.9]])
    losses = box_losses(box, box.clone())
    assert losses["l1"].item() == 0.0 and losses["giou"].item() == pytest.approx(0.0, abs=1e-6)
