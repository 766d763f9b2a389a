"""u-LLaVA's mask losses against hand-computed values."""

import math

import pytest
import torch

from anymal_seg.losses import dice_loss, mask_losses, sigmoid_bce_loss


def test_bce_matches_a_hand_computed_mask():
    # one 1x2 mask: logits (0, ln 3) -> p = (0.5, 0.75); targets (1, 0)
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    targets = torch.tensor([[[1.0, 0.0]]])
    expected = (-math.log(0.5) - math.log(0.25)) / 2  # mean over the mask's two pixels
    assert sigmoid_bce_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_dice_matches_a_hand_computed_mask():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # p = (0.5, 0.75)
    targets = torch.tensor([[[1.0, 0.0]]])
    s, eps = 1000.0, 1e-6
    numerator = 2 * (0.5 / s * 1.0)
    denominator = (0.5 + 0.75) / s + 1.0 / s
    assert dice_loss(logits, targets).item() == pytest.approx(1 - (numerator + eps) / (denominator + eps), rel=1e-6)


def test_losses_average_over_masks_and_vanish_without_labels():
    one = torch.tensor([[[4.0, -4.0]]])
    two = torch.tensor([[[-4.0, 4.0]]])
    target = torch.tensor([[[1.0, 0.0]]])
    both = sigmoid_bce_loss(torch.cat([one, two]), torch.cat([target, target]))
    assert both.item() == pytest.approx((sigmoid_bce_loss(one, target) + sigmoid_bce_loss(two, target)).item() / 2)
    empty = mask_losses(torch.zeros(0, 4, 4), torch.zeros(0, 4, 4))
    assert all(v.item() == 0 for v in empty.values())


def test_ullava_weights_by_default():
    logits, targets = torch.randn(3, 5, 5), (torch.rand(3, 5, 5) > 0.5).float()
    terms = mask_losses(logits, targets)
    assert terms["mask_bce"].item() == pytest.approx(2.0 * sigmoid_bce_loss(logits, targets).item(), rel=1e-6)
    assert terms["mask_dice"].item() == pytest.approx(0.5 * dice_loss(logits, targets).item(), rel=1e-6)
    perfect = mask_losses(targets * 40 - 20, targets)
    assert perfect["mask_bce"].item() < 1e-6 and perfect["mask_dice"].item() < 1e-3


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ"):
        sigmoid_bce_loss(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))
