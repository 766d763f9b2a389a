"""The ``[SEG]`` decoder learns: trained through ``python -m anymal.train`` on shapes-world scenes, it segments the
referred shape of scenes it never saw.

Data: ``seg_world`` scenes of two shapes (distinct colours and kinds, random places and sizes); "Segment the red
circle." -> ``[SEG]`` with that shape's mask. The shipped config (``configs/examples/grounding_shapes/
seg_stories260k.yaml``) puts the real pretrained stories260K LLaMA (frozen) under a tiny image plugin and a tiny
random SAM (frozen image encoder; projection and mask decoder trained with u-LLaVA's BCE + Dice). Held-out scenes
(another seed) are segmented through ``generate`` from the saved checkpoint; a ``[SEG]`` the model fails to emit
counts as an empty mask. The baseline that ignores the picture is the mean training box, filled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from seg_world import write_split

from anymal import AnyMAL
from anymal.testing import STORIES260K_ASSET, require_asset
from anymal_box import boxes_from_masks, decode_segmentation, mask_iou

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "configs" / "examples" / "grounding_shapes" / "seg_stories260k.yaml"
pytestmark = pytest.mark.integration  # trains for about a minute (make test-integration)


def test_seg_decoder_segments_held_out_shapes(tmp_path):
    stories = require_asset(STORIES260K_ASSET)
    train_rows = write_split(tmp_path / "data", "train", 300, seed=11)
    heldout = write_split(tmp_path / "data", "heldout", 40, seed=12)
    env = {**os.environ, "TQDM_DISABLE": "1"}
    subprocess.run(
        [sys.executable, "-m", "anymal.train", "--config", str(CONFIG), f"model.llm.name_or_path={stories}",
         f"data.0.path={train_rows}", f"output_dir={tmp_path / 'run'}", f"feature_cache={tmp_path / 'features'}"],
        check=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    model = AnyMAL.from_pretrained(tmp_path / "run" / "final")
    rows = [json.loads(line) for line in heldout.read_text().splitlines()]
    out = model.generate(
        [row["conversations"][0]["content"] for row in rows],
        image=[row["media"]["image"][0] for row in rows],
        max_new_tokens=2,
    )
    targets = [decode_segmentation(row["targets"]["seg"][0], 64, 64) for row in rows]
    predictions = [m.data[0] if m is not None and len(m) else np.zeros((64, 64), bool) for m in out.masks]
    emitted = sum(1 for m in out.masks if m is not None and len(m))
    learned = mask_iou(predictions, targets)

    train = [json.loads(line) for line in train_rows.read_text().splitlines()]
    boxes = boxes_from_masks([decode_segmentation(r["targets"]["seg"][0], 64, 64) for r in train]).data
    x0, y0, x1, y1 = (round(float(v)) for v in boxes.mean(axis=0))
    constant = np.zeros((64, 64), bool)
    constant[y0:y1, x0:x1] = True
    baseline = mask_iou([constant] * len(targets), targets)
    print(f"held-out mask gIoU {learned.giou:.3f} cIoU {learned.ciou:.3f} ([SEG] emitted {emitted}/{len(rows)}); "
          f"constant box {baseline.giou:.3f}")  # fmt: skip
    assert emitted == len(rows)
    assert baseline.giou < 0.3
    assert learned.giou > 0.6 and learned.ciou > 0.6
