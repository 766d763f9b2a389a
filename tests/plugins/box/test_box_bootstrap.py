"""Pink's self-consistent bootstrapping on the six real COCO boxes, with a scripted stand-in for the model."""

from __future__ import annotations

import pytest
from box_assets import COCO_CATEGORIES, COCO_SIZE

from anymal.errors import DataError
from anymal_box import Boxes, PixelFrame, pink
from anymal_box.bootstrap import DetectionImage, SelfConsistencyFilter

PHOTO = PixelFrame(*COCO_SIZE)


class ScriptedModel:
    """Describes a box by its COCO class and index; grounds each description as scripted below."""

    def __init__(self, boxes: Boxes, categories: list[str]) -> None:
        self.boxes, self.categories = boxes, categories
        self.prompts: list[str] = []

    def __call__(self, image, instruction: str) -> str:
        self.prompts.append(instruction)
        asked = pink.parse(instruction).boxes
        if len(asked):  # describe: find the box the instruction names (to 3 decimals)
            i = int(abs(self.boxes.normalized().data - asked.data).max(axis=1).argmin())
            return "" if self.categories[i] == "bed" else f"{self.categories[i]} number {i}"
        name, _, index = instruction.split("Where is ")[1].rstrip("?").partition(" number ")
        i = int(index)
        if name == "remote" and i == 0:  # grounds the wrong remote: IoU 0 with the true one
            return pink.format_boxes(self.boxes[1])
        if name == "remote":
            return "on the sofa, I think"  # no box: unparsable
        return f"It is at {pink.format_boxes(self.boxes[i])}."


def test_filter_keeps_only_self_consistent_descriptions(coco_annotations):
    boxes = Boxes.from_xywh([a["bbox"] for a in coco_annotations], PHOTO)
    categories = [COCO_CATEGORIES[a["category_id"]] for a in coco_annotations]
    model = ScriptedModel(boxes, categories)
    small = DetectionImage("tiny", Boxes([[0, 0, 40, 40], [0, 0, 100, 100]], PHOTO), ignore=[False, True])
    crowded = DetectionImage("crowded", Boxes([[0, 0, 100, 100]] * 16, PHOTO))
    report = SelfConsistencyFilter().run([DetectionImage("coco", boxes), small, crowded], model)

    # couch (2) and both cats (4, 5) ground back onto themselves: kept, with the ground-truth box stored
    assert [k.description for k in report.kept] == ["couch number 2", "cat number 4", "cat number 5"]
    assert [k.box for k in report.kept] == [boxes[2], boxes[4], boxes[5]]
    assert all(k.iou > 0.98 for k in report.kept)  # only the 3-decimal rounding separates them
    # remote 0 grounds onto remote 1 (disjoint boxes); remote 1 answers without a box; the bed gets no description
    assert report.grounding_disagrees == 1 and report.grounding_unparsable == 2
    # the 40x40 box is under 2000 px² (1600); the other is ignored; so "tiny" keeps nothing; 16 boxes > 15
    assert (report.boxes_small, report.boxes_ignored, report.images_without_kept) == (1, 1, 1)
    assert (report.images_seen, report.images_crowded) == (3, 1)
    # the instructions are Pink's region-caption and grounding templates with the box and the description filled
    assert model.prompts[0] == "Provide a unique description of the area [0.520,0.166,0.581,0.387]."
    assert model.prompts[1] == "Where is remote number 0?"


def test_threshold_and_detection_image_checks():
    boxes = Boxes([[0, 0, 100, 100]], PixelFrame(200, 200))
    # grounded box [0, 0, 0.35, 0.5] of 200 px = [0, 0, 70, 100]: +1 IoU = 71*101 / (101*101) = 0.703
    model = lambda image, text: "[0.000,0.000,0.350,0.500]" if "Where" in text else "a square"  # noqa: E731
    assert len(SelfConsistencyFilter().run([DetectionImage("a", boxes)], model).kept) == 1
    assert len(SelfConsistencyFilter(iou_threshold=0.71).run([DetectionImage("a", boxes)], model).kept) == 0
    with pytest.raises(DataError, match="PixelFrame"):
        DetectionImage("b", boxes.normalized())
    with pytest.raises(DataError, match="2 ignore flags for 1 boxes"):
        DetectionImage("c", boxes, ignore=[True, False])
