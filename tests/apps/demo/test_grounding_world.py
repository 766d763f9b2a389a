"""The shapes world's grounding scenes and REC files: boxes and masks agree with the pictures, and the files are
what anymal.train and anymal.eval read."""

import json

import numpy as np
import pytest

from anymal.data import read_dataset
from anymal.eval.items import read_eval_items
from anymal_box import Boxes, PixelFrame, boxes_from_masks, paired_iou, parse_rec_answer
from anymal_demo.world.grounding import make_scene, scenes
from anymal_demo.world.grounding_data import write_grounding_data


@pytest.mark.parametrize("shapes", [1, 2, 3])
def test_scene_objects_are_distinct_and_their_boxes_enclose_their_masks(shapes):
    scene = make_scene(seed=5, size=64, shapes=shapes)
    assert len(scene.objects) == shapes
    assert len({o.colour for o in scene.objects}) == shapes and len({o.shape for o in scene.objects}) == shapes
    masks = np.stack([o.mask for o in scene.objects])
    assert not (masks.sum(0) > 1).any()  # no two shapes overlap
    assert np.array_equal(boxes_from_masks(list(masks)).data, np.asarray([o.box for o in scene.objects], float))
    # the mask is where the picture differs from the grey background: the shape's colour is saturated
    pixels = np.asarray(scene.image).astype(int)
    saturation = pixels.max(-1) - pixels.min(-1)
    assert (saturation[masks.any(0)] > 60).mean() > 0.95 and (saturation[~masks.any(0)] < 60).mean() > 0.99


def test_scenes_are_reproducible_and_splits_differ():
    a, b = scenes(3, seed=1), scenes(3, seed=1)
    assert [o.box for _, o in a] == [o.box for _, o in b]
    assert [o.box for _, o in scenes(3, seed=2)] != [o.box for _, o in a]
    with pytest.raises(ValueError, match="shapes=5"):
        make_scene(0, shapes=5)


def test_rec_files_read_back_as_training_and_evaluation_rows(tmp_path):
    info = write_grounding_data(tmp_path, train=6, heldout=4, shapes=2, seed=3)
    examples = list(read_dataset("conversations", str(tmp_path / "rec_train.jsonl")))
    objects = [json.loads(line) for line in (tmp_path / "train_objects.jsonl").read_text().splitlines()]
    assert len(examples) == 6 and examples[0].media["image"][0].path.is_file()
    for example, row in zip(examples, objects):
        answer = example.turns[-1].text
        parsed = parse_rec_answer(answer, "pink").to(PixelFrame(64, 64))
        assert paired_iou(parsed, Boxes([row["box"]], PixelFrame(64, 64)))[0] > 0.95  # 3 decimals of 64 px
        assert row["expression"] in example.turns[0].text
    items = read_eval_items(str(tmp_path / "rec_heldout.jsonl"))
    assert len(items) == 4 and all(item.box is not None and item.question for item in items)
    assert 0 <= info["constant_box_rec_accuracy"] <= 1 and info["shapes"] == 2
