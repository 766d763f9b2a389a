"""Box labels in training rows: ``targets`` read by the conversation format, counted against the [LOC] tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from anymal.data import read_dataset
from anymal.errors import DataError
from anymal.testing import tiny_anymal
from anymal.train.dataset import Collator, TrainingDataset


@pytest.fixture(scope="module")
def loc_model():
    model = tiny_anymal(("image",))
    model.add_output("loc", {"projection_dim": 16, "decoder_dims": [8]})
    return model


def _rows(tmp_path, *rows):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((48, 64, 3), dtype=np.uint8)).save(image)
    path = tmp_path / "data.jsonl"
    lines = []
    for answer, targets in rows:
        row = {
            "media": {"image": [str(image)]},
            "conversations": [{"role": "user", "content": "<image> where?"}, {"role": "assistant", "content": answer}],
        }
        if targets is not None:
            row["targets"] = targets
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return list(read_dataset("conversations", path, modalities=["image"]))


def test_labels_reach_the_plugin_and_the_batch(loc_model, tmp_path):
    examples = _rows(
        tmp_path,
        ("[LOC] and [LOC]", {"loc": [[0, 0, 32, 24], None]}),
        ("no box here", None),
    )
    assert examples[0].targets == {"loc": [[0, 0, 32, 24], None]} and examples[1].targets == {}
    dataset = TrainingDataset(examples, loc_model, chat=False, on_error="raise")
    batch = Collator(loc_model)([dataset[0], dataset[1]])
    loc = batch["output_batches"]["loc"]
    assert loc["has"].tolist() == [True, False] and loc["boxes"].shape == (2, 4)
    assert loc["geometry"][1] is None  # a row without [LOC] is prepared without its image


@pytest.mark.parametrize(
    ("answer", "targets", "message"),
    [
        ("[LOC]", {"loc": [[0, 0, 1, 1], [0, 0, 2, 2]]}, "2 label\\(s\\) for 1 \\[LOC\\] token"),
        ("no token", {"loc": [[0, 0, 1, 1]]}, "1 label\\(s\\) for 0"),
        ("[LOC]", {"seg": [None]}, "output plugins \\['seg'\\] are not in the model"),
        ("[LOC]", {"loc": [[5, 5, 1, 1]]}, "targets.loc\\[0\\].*x0 < x1"),
    ],
)
def test_bad_targets_name_the_row_and_field(loc_model, tmp_path, answer, targets, message):
    (example,) = _rows(tmp_path, (answer, targets))
    with pytest.raises(DataError, match=message) as info:
        TrainingDataset([example], loc_model, chat=False, on_error="raise")[0]
    assert "data.jsonl:1" in str(info.value)


def test_targets_that_are_not_a_mapping_of_lists_are_bad_rows(tmp_path):
    from anymal.data import RowError

    for targets, field in (([[0, 0, 1, 1]], "targets"), ({"loc": [0, 0, 1, 1][0]}, "targets.loc")):
        with pytest.raises(RowError, match=field):
            _rows(tmp_path, ("[LOC]", targets))
