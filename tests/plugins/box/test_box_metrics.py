"""Box IoU/GIoU, REC Acc@0.5 in both papers' conventions and mask cIoU/gIoU, against hand arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from anymal.errors import InputError
from anymal_box import (
    NORMALIZED,
    Boxes,
    PixelFrame,
    box_iou,
    generalized_box_iou,
    mask_iou,
    paired_iou,
    pink,
    qwen,
    rec_accuracy,
)

PHOTO = PixelFrame(100, 100)


def test_iou_by_hand():
    a = Boxes([[0, 0, 10, 10]], PHOTO)
    b = Boxes([[5, 0, 15, 10], [20, 20, 30, 30]], PHOTO)
    # plain: intersection 5*10 = 50, union 100 + 100 - 50 = 150 -> 1/3; disjoint -> 0
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 0]])
    # +1 pixel: widths 11, intersection x in [5, 10] -> 6 * 11 = 66, union 121 + 121 - 66 = 176 -> 0.375
    np.testing.assert_allclose(box_iou(a, b, pixel_inclusive=True), [[66 / 176, 0]])
    np.testing.assert_allclose(paired_iou(a, b[0]), [1 / 3])
    with pytest.raises(InputError, match="different frames"):
        box_iou(a, a.normalized())
    with pytest.raises(InputError, match="same number"):
        paired_iou(a, b)


def test_giou_by_hand():
    a = Boxes([[0, 0, 10, 10]], PHOTO)
    # overlapping: IoU 1/3, enclosing [0,0,15,10] = 150 = union -> GIoU = 1/3
    # disjoint: IoU 0, enclosing [0,0,30,30] = 900, union 200 -> GIoU = 0 - 700/900 = -7/9
    b = Boxes([[5, 0, 15, 10], [20, 20, 30, 30]], PHOTO)
    np.testing.assert_allclose(generalized_box_iou(a, b), [[1 / 3, -7 / 9]])
    np.testing.assert_allclose(generalized_box_iou(a, a), [[1.0]])


def test_rec_conventions_disagree_exactly_at_the_boundary():
    target = Boxes([[0, 0, 10, 10]], PHOTO)
    # exactly 0.5 plain IoU: [0,0,10,5] inside the target: 50 / 100
    half = Boxes([[0, 0, 10, 5]], PHOTO)
    # +1 convention for it: 11*6 = 66 over 121 + 66 - 66 = 121 -> 0.545 > 0.5
    just_below = Boxes([[0, 0, 10, 4.9]], PHOTO)  # plain 49/100; +1: 11*5.9 = 64.9 / 121 = 0.536
    preds = [half, just_below, None]
    targets = [target, target, target]
    qwen_res = rec_accuracy(preds, targets, convention="qwen")
    # Qwen-VL: IoU >= 0.5 -> the exact half counts, 0.49 does not, None is a miss: 1 of 3
    assert (qwen_res.correct, qwen_res.total, qwen_res.format_errors) == (1, 3, 1)
    np.testing.assert_allclose(qwen_res.ious, [0.5, 0.49, 0.0])
    # u-LLaVA: IoU > 0.5 with plain IoU -> the exact half is a miss: 0 of 3
    assert rec_accuracy(preds, targets, convention="ullava").correct == 0
    # Pink: +1-pixel IoU > 0.5 -> both are hits (66/121 and 64.9/121): 2 of 3
    pink_res = rec_accuracy(preds, targets, convention="pink")
    assert pink_res.correct == 2
    np.testing.assert_allclose(pink_res.ious[:2], [66 / 121, 64.9 / 121])
    with pytest.raises(InputError, match="convention"):
        rec_accuracy(preds, targets, convention="coco")


def test_rec_from_model_text_to_photo_pixels():
    """Parse both grammars' answers, map them to the photo and score against the pixel ground truth."""
    photo = PixelFrame(640, 480)
    target = Boxes([[64, 120, 320, 360]], photo)  # normalised [0.1, 0.25, 0.5, 0.75]
    pink_answer = pink.pink_eval_box("It is at [0.100,0.250,0.500,0.750].")
    qwen_answer = qwen.qwen_eval_box("(100,250),(500,750)</box>")
    result = rec_accuracy([pink_answer, qwen_answer, pink.pink_eval_box("on the left")], [target] * 3, "qwen")
    assert result.correct == 2 and result.format_errors == 1
    np.testing.assert_allclose(result.ious[:2], [1.0, 1.0])
    with pytest.raises(InputError, match="exactly 1"):
        rec_accuracy([pink_answer], [Boxes.empty(NORMALIZED)])


def test_mask_ciou_and_giou_by_hand():
    # image 1: pred 4 pixels, target 2 of them -> I = 2, U = 4, IoU 0.5
    p1 = np.zeros((4, 4), bool)
    p1[0, :4] = True
    t1 = np.zeros((4, 4), bool)
    t1[0, :2] = True
    # image 2: pred 1 pixel, target 9 pixels containing it -> I = 1, U = 9, IoU 1/9
    p2 = np.zeros((3, 3), bool)
    p2[1, 1] = True
    t2 = np.ones((3, 3), bool)
    # image 3: both empty -> counts as IoU 1 in gIoU, adds nothing to the sums
    p3 = t3 = np.zeros((2, 2), bool)
    result = mask_iou([p1, p2, p3], [t1, t2, t3])
    # cIoU = (2 + 1) / (4 + 9) = 3/13; gIoU = (0.5 + 1/9 + 1) / 3
    assert (result.intersection, result.union) == (3, 13)
    np.testing.assert_allclose(result.ciou, 3 / 13)
    np.testing.assert_allclose(result.giou, (0.5 + 1 / 9 + 1) / 3)
    with pytest.raises(InputError, match="shape"):
        mask_iou([p1], [t2])
