"""Boxes and Points: frames, conversions, area order and strict validation of user-given boxes."""

from __future__ import annotations

import numpy as np
import pytest

from anymal.errors import InputError
from anymal_box import NORMALIZED, QWEN_EVAL_GRID, QWEN_GRID, Boxes, PixelFrame, Points

PHOTO = PixelFrame(640, 480)


def test_frame_conversions_by_hand():
    b = Boxes([[64, 48, 320, 240]], PHOTO)
    # 64/640 = 0.1, 48/480 = 0.1, 320/640 = 0.5, 240/480 = 0.5
    np.testing.assert_allclose(b.normalized().data, [[0.1, 0.1, 0.5, 0.5]])
    # Qwen grid: fraction * 1000
    np.testing.assert_allclose(b.to(QWEN_GRID).data, [[100, 100, 500, 500]])
    # Qwen's evaluator grid: value 999 is the full width; 100 on it is 100/999 * 640 = 64.0641 px
    np.testing.assert_allclose(Boxes([[100, 0, 999, 999]], QWEN_EVAL_GRID).to(PHOTO).data[0, :3], [64000 / 999, 0, 640])
    # to another photo size scales each axis separately: 64 * 320/640 = 32, 48 * 120/480 = 12
    np.testing.assert_allclose(b.to_pixels(320, 120).data, [[32, 12, 160, 60]])
    assert b.normalized().to(PHOTO) == b


def test_xywh_area_centres():
    b = Boxes.from_xywh([[332.89, 79.57, 38.65, 106.31]], PHOTO)
    np.testing.assert_allclose(b.xyxy, [[332.89, 79.57, 371.54, 185.88]])
    np.testing.assert_allclose(b.xywh, [[332.89, 79.57, 38.65, 106.31]])
    np.testing.assert_allclose(b.areas, [38.65 * 106.31])
    np.testing.assert_allclose(b.centers.data, [[(332.89 + 371.54) / 2, (79.57 + 185.88) / 2]])
    assert isinstance(b.centers, Points)


def test_sorted_by_area_is_stable_and_frame_independent():
    b = Boxes([[0, 0, 10, 10], [0, 0, 2, 2], [5, 5, 15, 15], [0, 0, 1, 1]], PHOTO)
    sorted_boxes, order = b.sorted_by_area()
    assert order.tolist() == [3, 1, 0, 2]  # areas 1, 4, 100, 100: the two ties keep their order
    assert b.normalized().sorted_by_area()[1].tolist() == order.tolist()
    assert sorted_boxes.data[0].tolist() == [0, 0, 1, 1]


def test_values_are_immutable_and_compare_by_value():
    b = Boxes([0.1, 0.2, 0.3, 0.4])
    assert b.frame == NORMALIZED and len(b) == 1
    with pytest.raises(ValueError):
        b.data[0, 0] = 1.0
    assert b == Boxes([[0.1, 0.2, 0.3, 0.4]]) and b != Boxes([[0.1, 0.2, 0.3, 0.4]], PHOTO)
    assert len(Boxes.empty()) == 0 and len(Boxes([])) == 0
    assert b[0] == b and len(b.concat(Boxes([[64, 48, 128, 96]], PHOTO))) == 2


def test_clip_and_in_frame():
    b = Boxes([[-5, 10, 700, 500], [0, 0, 640, 480]], PHOTO)
    assert b.in_frame().tolist() == [False, True]
    assert b.clip().data[0].tolist() == [0, 10, 640, 480]
    assert Boxes([[0, 0, 1200, 5]], QWEN_GRID).clip().data[0, 2] == 999


@pytest.mark.parametrize(
    ("rows", "frame", "needle"),
    [
        ([[0.1, 0.2, 0.05, 0.4]], NORMALIZED, "query_boxes[0]"),  # x1 > x2
        ([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 1.5]], NORMALIZED, "query_boxes[1]"),  # outside [0, 1]
        ([[0, 0, 641, 10]], PHOTO, "[0, 640]"),
        ([[0, 0, np.nan, 10]], PHOTO, "query_boxes[0]"),
        ([[0, 0, 1000, 10]], QWEN_GRID, "[0, 999]"),
    ],
)
def test_validate_raises_input_error_naming_the_input(rows, frame, needle):
    with pytest.raises(InputError, match=r"query_boxes\[\d\]") as info:
        Boxes(rows, frame).validate("query_boxes")
    assert needle in str(info.value)


def test_bad_shapes_and_frames_are_input_errors():
    with pytest.raises(InputError, match=r"shape \[N, 4\]"):
        Boxes([[1, 2, 3]])
    with pytest.raises(InputError, match="cannot read as numbers"):
        Boxes([["a", 1, 2, 3]])
    with pytest.raises(InputError, match="PixelFrame"):
        PixelFrame(0, 480)
    with pytest.raises(InputError, match=r"points\[0\]"):
        Points([[1.5, 0.2]]).validate()
    assert Points([[0.5, 0.2]]).validate().to(PHOTO).data.tolist() == [[320, 96]]


def test_boxes_from_a_box_head_tensor_and_back():
    torch = pytest.importorskip("torch")
    head_out = torch.tensor([[0.1, 0.2, 0.5, 0.75]], requires_grad=True) * 1.0  # a non-leaf with grad
    boxes = Boxes(head_out, NORMALIZED)
    np.testing.assert_allclose(boxes.to(PHOTO).data, [[64, 96, 320, 360]], rtol=1e-6)
    assert boxes.as_tensor().dtype == torch.float32 and boxes.as_tensor().shape == (1, 4)
