"""RefCOCO-format loading (refs JSON + instances JSON), COCO polygon/RLE masks and boxes from masks.

The instances file is built from the six real COCO annotations of image 39769; the refs are written here in the
released refs layout (two cats, one remote).
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from box_assets import COCO_CATEGORIES, COCO_SIZE

from anymal.errors import DataError
from anymal_box import Boxes, PixelFrame
from anymal_box.masks import boxes_from_masks, decode_segmentation, encode_mask
from anymal_box.refcoco import load_refcoco

W, H = COCO_SIZE


@pytest.fixture
def refcoco_files(tmp_path, coco_annotations):
    instances = {
        "images": [{"id": 39769, "file_name": "COCO_val2014_000000039769.jpg", "width": W, "height": H}],
        "annotations": coco_annotations,
        "categories": [{"id": k, "name": v} for k, v in COCO_CATEGORIES.items()],
    }
    cats = [a for a in coco_annotations if a["category_id"] == 17]
    remote = next(a for a in coco_annotations if a["category_id"] == 75)
    refs = [
        {
            "ref_id": 1,
            "ann_id": cats[0]["id"],
            "image_id": 39769,
            "split": "val",
            "category_id": 17,
            "file_name": "COCO_val2014_000000039769_2190839.jpg",
            "sentences": [{"sent": "cat on the left", "raw": "Cat on the left."}, {"sent": "left kitty"}],
        },
        {
            "ref_id": 2,
            "ann_id": cats[1]["id"],
            "image_id": 39769,
            "split": "testA",
            "sentences": [{"raw": "right cat"}],
        },
        {"ref_id": 3, "ann_id": remote["id"], "image_id": 39769, "split": "testB", "sentences": ["remote"]},
    ]
    refs_path, instances_path = tmp_path / "refs(unc).json", tmp_path / "instances.json"
    refs_path.write_text(json.dumps(refs))
    instances_path.write_text(json.dumps(instances))
    return refs_path, instances_path, coco_annotations


def test_load_refs_boxes_and_masks(refcoco_files):
    refs_path, instances_path, annotations = refcoco_files
    refs = load_refcoco(refs_path, instances_path)
    assert [r.ref_id for r in refs] == [1, 2, 3]
    left = refs[0]
    assert left.category == "cat" and left.sentences == ("cat on the left", "left kitty")
    assert left.file_name == "COCO_val2014_000000039769.jpg" and left.image_size == (640, 480)
    # bbox [17.5, 54.38, 301.25, 415.0] (xywh) -> xyxy [17.5, 54.38, 318.75, 469.38] in the photo's pixels
    np.testing.assert_allclose(left.box.data, [[17.5, 54.38, 318.75, 469.38]])
    assert left.box.frame == PixelFrame(640, 480)
    assert refs[1].sentences == ("right cat",) and refs[2].category == "remote"

    mask = left.mask()
    assert mask.shape == (480, 640) and mask.dtype == bool
    # the polygon's area (COCO's "area" field) and its rasterisation agree to 2%
    assert abs(mask.sum() - annotations[4]["area"]) / annotations[4]["area"] < 0.02
    # the box of the rasterised polygon is the annotation's box within one pixel on each side
    np.testing.assert_allclose(boxes_from_masks([mask]).data, left.box.data, atol=1.0)

    assert [r.ref_id for r in load_refcoco(refs_path, instances_path, splits={"testA", "testB"})] == [2, 3]


def test_rle_forms_decode_to_the_same_mask(refcoco_files):
    refs_path, instances_path, _ = refcoco_files
    mask = load_refcoco(refs_path, instances_path)[2].mask()
    rle = encode_mask(mask)
    assert isinstance(rle["counts"], str)  # JSON-serialisable
    np.testing.assert_array_equal(decode_segmentation(json.loads(json.dumps(rle)), H, W), mask)
    # uncompressed RLE, column-major runs: a 3x3 image with 4 zeros, 1 one, 4 zeros -> only the centre is set
    centre = decode_segmentation({"size": [3, 3], "counts": [4, 1, 4]}, 3, 3)
    assert centre.tolist() == [[False] * 3, [False, True, False], [False] * 3]
    # the centre pixel (1, 1) covers [1, 2) on both axes
    assert boxes_from_masks([centre]) == Boxes([[1, 1, 2, 2]], PixelFrame(3, 3))


@pytest.mark.parametrize(
    ("segmentation", "needle"),
    [
        ([[1, 2, 3, 4]], "at least 3"),
        ({"size": [4, 4], "counts": [4, 1, 4]}, "not the image's"),
        ({"size": [3, 3], "counts": [4, 1, 3]}, "do not sum"),
        ("nonsense", "polygons or an RLE"),
    ],
)
def test_bad_segmentations_are_data_errors(segmentation, needle):
    with pytest.raises(DataError, match=needle) as info:
        decode_segmentation(segmentation, 3, 3, where="ann 7")
    assert "ann 7" in str(info.value)


def test_boxes_from_masks_errors():
    with pytest.raises(DataError, match=r"masks\[1\]: empty mask"):
        boxes_from_masks([np.ones((2, 2)), np.zeros((2, 2))])
    with pytest.raises(DataError, match="shape"):
        boxes_from_masks([np.ones((2, 2)), np.ones((3, 2))])


def test_loader_refuses_pickles_and_names_broken_refs(refcoco_files, tmp_path):
    refs_path, instances_path, _ = refcoco_files
    pickled = tmp_path / "refs(unc).p"
    pickled.write_bytes(pickle.dumps([{"ref_id": 1}]))
    with pytest.raises(DataError, match=r"never unpickles.*json\.dump\(pickle\.load"):
        load_refcoco(pickled, instances_path)
    broken = json.loads(refs_path.read_text())
    broken[1]["ann_id"] = 123
    refs_path.write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"refs\[1\]: ann_id 123 is not in"):
        load_refcoco(refs_path, instances_path)
    del broken[1]["split"]
    refs_path.write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"refs\[1\]: missing split"):
        load_refcoco(refs_path, instances_path)
    with pytest.raises(DataError, match="cannot read"):
        load_refcoco(tmp_path / "absent.json", instances_path)
