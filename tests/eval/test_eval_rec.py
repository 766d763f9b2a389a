"""The ``rec`` task: REC Acc@0.5 through anymal_box, hand-worked, and one run on a tiny image model with a real
COCO photo and its real boxes."""

from __future__ import annotations

import json

import pytest

from anymal.errors import DataError
from anymal.eval import evaluate, get_task, read_eval_items
from anymal.testing import require_asset


def _items(tmp_path):
    rows = [
        {"id": "a", "question": "the left box", "box": [100, 100, 200, 200], "image_size": [400, 400]},
        {"id": "b", "expression": "the right box", "box": [100, 100, 200, 200], "image_size": [400, 400]},
        {"id": "c", "expression": "the right box", "box": [100, 100, 200, 200], "image_size": [400, 400]},
    ]
    return read_eval_items(rows)


def test_rec_scores_hand_worked(tmp_path):
    task = get_task("rec")
    items = _items(tmp_path)
    answers = ["[0.250,0.250,0.500,0.500]", "[0.250,0.250,0.750,0.750]", "there is no box here"]
    settings = {"box_format": "pink"}
    records = [{"prediction": a, **task.score_fn(item, a, settings)} for item, a in zip(items, answers)]  # type: ignore[misc]
    assert records[0]["correct"] and records[0]["iou"] == pytest.approx(1.0, abs=0.02)
    assert records[0]["box"] == pytest.approx([100, 100, 200, 200], abs=1)
    assert not records[1]["correct"] and records[1]["iou"] == pytest.approx(101**2 / 201**2, rel=1e-3)  # +1 pixel
    assert records[2]["box"] is None and records[2]["iou"] == 0.0
    metrics = task.aggregate(items, records, **settings)
    assert metrics["rec_accuracy@0.5"] == pytest.approx(1 / 3) and metrics["format_errors"] == 1
    assert "Where" in task.prompt(items[0], settings=settings) or "the left box" in task.prompt(
        items[0], settings=settings
    )
    qwen = task.prompt(items[0], settings={"box_format": "qwen"})
    assert qwen == "<ref>the left box</ref><box>"
    assert task.score_fn(items[0], "(250,250),(500,500)</box>", {"box_format": "qwen"})["correct"]  # type: ignore[misc]


def test_rec_needs_a_box():
    with pytest.raises(DataError, match="'rec' needs"):
        get_task("rec").check(read_eval_items([{"id": "a", "question": "the cat"}])[0])
    with pytest.raises(DataError, match="box"):
        read_eval_items([{"id": "a", "question": "the cat", "box": [5, 5, 1, 1]}])


def test_rec_runs_on_a_tiny_image_model_with_a_real_photo(tiny_image_model, tmp_path):
    photo = require_asset("images/coco_000000039769.png")
    annotations = json.loads(require_asset("eval/coco_000000039769_annotations.txt").read_text())
    names = {17: "cat", 75: "remote", 63: "couch", 65: "bed"}
    rows = []
    for ann in annotations[:3]:
        x, y, w, h = ann["bbox"]
        name = names.get(ann["category_id"], "object")
        rows.append({"id": str(ann["id"]), "media": {"image": str(photo)}, "expression": f"the {name}",
                     "box": [x, y, x + w, y + h]})  # fmt: skip
    result = evaluate(tiny_image_model, "rec", rows, max_new_tokens=3, batch_size=3, progress=False,
                      predictions=tmp_path / "rec.jsonl")  # fmt: skip
    assert result["n_items"] == 3 and 0.0 <= result["metrics"]["rec_accuracy@0.5"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / "rec.jsonl").read_text().splitlines()[1:]]
    assert [r["id"] for r in records] == [row["id"] for row in rows] and all("iou" in r for r in records)
