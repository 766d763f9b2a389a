"""Geometry: boxes through the image plugin's resize / pad / crop and back to the photo's pixels.

The photo is the real COCO image 39769 (640x480) with its six ground-truth boxes.
"""

from __future__ import annotations

import numpy as np
import pytest
from box_assets import COCO_SIZE

from anymal.errors import ConfigError, InputError
from anymal_box import QWEN_EVAL_GRID, QWEN_GRID, Boxes, Geometry, PixelFrame, Points, pink, qwen

PHOTO = PixelFrame(*COCO_SIZE)


@pytest.fixture(scope="module")
def coco_boxes(coco_annotations) -> Boxes:
    return Boxes.from_xywh([a["bbox"] for a in coco_annotations], PHOTO)


def test_open_clip_shortest_by_hand():
    g = Geometry.for_open_clip((640, 480), 224, "shortest")
    # torchvision Resize(224): short side 480 -> 224, long side int(224 * 640 / 480) = int(298.67) = 298;
    # CenterCrop(224) then cuts round((298 - 224) / 2) = 37 columns on the left
    assert g.dst == (224, 224)
    np.testing.assert_allclose(g.scale, (298 / 640, 224 / 480))
    np.testing.assert_allclose(g.offset, (-37, 0))
    # the photo's centre (320, 240) -> (320 * 298/640 - 37, 240 * 224/480) = (112, 112)
    np.testing.assert_allclose(g.forward(Points([[320, 240]], PHOTO)).data, [[112, 112]])


def test_open_clip_longest_and_squash_by_hand():
    g = Geometry.for_open_clip((640, 480), 224, "longest")
    # ratio max(640, 480) / 224; new size (round(224), round(168)) = (224, 168); pad (224 - 168) // 2 = 28 on top
    np.testing.assert_allclose(g.scale, (224 / 640, 168 / 480))
    np.testing.assert_allclose(g.offset, (0, 28))
    s = Geometry.for_open_clip((640, 480), 224, "squash")
    np.testing.assert_allclose(s.scale, (224 / 640, 224 / 480))
    assert s.offset == (0.0, 0.0)
    with pytest.raises(ConfigError, match="resize_mode"):
        Geometry.for_open_clip((640, 480), 224, "fit")


def test_expand_to_square_is_llava_padding():
    g = Geometry.expand_to_square((640, 480))
    # LLaVA's expand2square pastes the photo at ((640 - 640) // 2, (640 - 480) // 2) = (0, 80) of a 640 square
    assert g.dst == (640, 640) and g.offset == (0.0, 80.0)
    box = g.forward(Boxes([[0, 0, 640, 480]], PHOTO))
    np.testing.assert_allclose(box.normalized().data, [[0, 80 / 640, 1, 560 / 640]])
    then = g.then(Geometry.resize(g.dst, (224, 224)))  # pad, then u-LLaVA/CLIP resize of the square
    np.testing.assert_allclose(then.forward(Boxes([[0, 0, 640, 480]], PHOTO)).data, [[0, 28, 224, 196]])


def test_then_checks_sizes():
    with pytest.raises(InputError, match="does not match"):
        Geometry.resize((640, 480), (224, 224)).then(Geometry.resize((300, 300), (10, 10)))


@pytest.mark.parametrize("build", ["shortest", "longest", "squash", "square_then_resize"])
def test_forward_then_inverse_is_exact(coco_boxes, build):
    if build == "square_then_resize":
        g = Geometry.expand_to_square(COCO_SIZE).then(Geometry.resize((640, 640), (336, 336)))
    else:
        g = Geometry.for_open_clip(COCO_SIZE, 224, build)
    back = g.inverse(g.forward(coco_boxes))
    assert back.frame == PHOTO
    np.testing.assert_allclose(back.data, coco_boxes.data, atol=1e-9)
    # and the same from the encoder input's normalised frame, as a box head predicts it
    np.testing.assert_allclose(g.inverse(g.forward(coco_boxes).normalized()).data, coco_boxes.data, atol=1e-9)


def _whole_photo_geometries():
    return {
        "squash": Geometry.for_open_clip(COCO_SIZE, 224, "squash"),
        "longest": Geometry.for_open_clip(COCO_SIZE, 224, "longest"),
        "square": Geometry.expand_to_square(COCO_SIZE).then(Geometry.resize((640, 640), (224, 224))),
    }


@pytest.mark.parametrize("mode", ["squash", "longest", "square"])
def test_text_round_trip_lands_within_half_a_pixel(coco_boxes, mode):
    """Photo box -> encoder input -> normalised text -> parsed -> back to the photo: within 0.5 px.

    Pink's 3 decimals on a 224 input are 0.0005 * 224 = 0.112 px there, at most 0.112 / (224/640) = 0.32 px on the
    photo; Qwen-VL's grid rounds to 0.5/1000 of the side, 0.32 px of 640.
    """
    g = _whole_photo_geometries()[mode]
    model_side = g.forward(coco_boxes).normalized()

    pink_text = pink.format_boxes(model_side, sort=False)
    parsed = pink.parse(pink_text)
    assert parsed.ok and len(parsed.boxes) == 6
    assert np.abs(g.inverse(parsed.boxes).data - coco_boxes.data).max() < 0.5

    # Qwen-VL with the evaluator's /999 grid never clamps: every box within 0.5 px
    parsed = qwen.parse(qwen.format_boxes(model_side, QWEN_EVAL_GRID), QWEN_EVAL_GRID)
    assert parsed.ok
    assert np.abs(g.inverse(parsed.boxes).data - coco_boxes.data).max() < 0.5

    # with the paper's /1000 grid a coordinate at the far edge (the bed's x2 = 640.0) is clamped to 999:
    # an error of one grid step, 640 / 1000 = 0.64 px; everything else stays within 0.5 px
    parsed = qwen.parse(qwen.format_boxes(model_side, QWEN_GRID), QWEN_GRID)
    err = np.abs(g.inverse(parsed.boxes).data - coco_boxes.data)
    edge = model_side.data >= 0.9995
    assert err[~edge].max() < 0.5 and err.max() <= 0.641


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
def test_geometry_matches_the_real_open_clip_transform(mode):
    """A white rectangle on the photo lands where ``forward`` says after open_clip's own transform (bicubic: 1 px)."""
    open_clip = pytest.importorskip("open_clip")
    from PIL import Image

    image = np.zeros((480, 640, 3), dtype=np.uint8)
    x1, y1, x2, y2 = 250, 60, 420, 300
    image[y1:y2, x1:x2] = 255
    transform = open_clip.image_transform(224, is_train=False, mean=(0, 0, 0), std=(1, 1, 1), resize_mode=mode)
    out = transform(Image.fromarray(image))[0].numpy()
    ys, xs = np.nonzero(out > 0.5)
    seen = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]  # pixel edges of the thresholded rectangle
    g = Geometry.for_open_clip(COCO_SIZE, 224, mode)
    expected = g.forward(Boxes([[x1, y1, x2, y2]], PHOTO)).data[0]
    np.testing.assert_allclose(seen, expected, atol=1.0)
    # and the seen rectangle maps back onto the drawn one within one encoder pixel of the photo
    back = g.inverse(Boxes([seen], g.dst_frame)).data[0]
    np.testing.assert_allclose(back, [x1, y1, x2, y2], atol=1.0 / min(g.scale))


def _seen_rectangle(transform, size, rect):
    """Draw ``rect`` white on a black image of ``size``, transform it, threshold, and return the pixel-edge box."""
    from PIL import Image

    image = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    x1, y1, x2, y2 = rect
    image[y1:y2, x1:x2] = 255
    out = transform(Image.fromarray(image))[0].numpy()
    ys, xs = np.nonzero(out > 0.5)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("size", [(640, 480), (641, 480), (480, 643)])
def test_geometry_matches_the_real_hf_clip_processor(size):
    """transformers crops at the floored offset: for 641x480 the resize gives 299 columns and the crop starts at
    (299 - 224) // 2 = 37, where torchvision/open_clip start at round(37.5) = 38; the test tells them apart."""
    transformers = pytest.importorskip("transformers")
    processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, image_mean=[0] * 3, image_std=[1] * 3
    )
    rect = (150, 150, 300, 400)  # inside the centre crop of every size here
    seen = _seen_rectangle(lambda im: processor(images=im, return_tensors="pt")["pixel_values"][0], size, rect)
    g = Geometry.for_hf_processor(size, shortest_edge=224, crop_size=224)
    np.testing.assert_allclose(seen, g.forward(Boxes([rect], PixelFrame(*size))).data[0], atol=0.75)
    if size == (641, 480):
        assert g.offset[0] == -37 and Geometry.for_open_clip(size, 224).offset[0] == -38


def test_geometry_matches_the_real_hf_siglip_processor():
    transformers = pytest.importorskip("transformers")
    processor = transformers.SiglipImageProcessor(
        size={"height": 224, "width": 224}, image_mean=[0] * 3, image_std=[1] * 3
    )
    rect = (250, 60, 420, 300)
    seen = _seen_rectangle(lambda im: processor(images=im, return_tensors="pt")["pixel_values"][0], COCO_SIZE, rect)
    g = Geometry.for_hf_processor(COCO_SIZE, size=(224, 224))
    np.testing.assert_allclose(seen, g.forward(Boxes([rect], PHOTO)).data[0], atol=0.75)


def test_inverse_of_a_box_in_padding_leaves_the_photo_until_clipped():
    g = Geometry.for_open_clip(COCO_SIZE, 224, "longest")  # 28 rows of padding above and below
    box = g.inverse(Boxes([[0, 0, 224, 224]], g.dst_frame))
    np.testing.assert_allclose(box.data, [[0, -80, 640, 560]])  # 28 px * 480/168 = 80 photo px each side
    assert box.clip().data.tolist() == [[0, 0, 640, 480]]
