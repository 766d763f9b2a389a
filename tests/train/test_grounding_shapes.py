"""Grounding as text learns: boxes written in Pink's grammar by a tiny LM locate shapes in held-out scenes.

The shipped config (``configs/examples/grounding_shapes/rec_pink_stories260k.yaml``) instruction-tunes the real
pretrained stories260K LLaMA (frozen, LoRA) with a small frozen random ViT behind a linear projector, through
``python -m anymal.train``, on ``anymal_demo.world.grounding_data`` scenes: "Where is the red circle?" ->
``[x0,y0,x1,y1]``. The training loop scores the held-out scenes (another seed) with ``anymal.eval``'s ``rec`` task
at the end: Pink's answer parse and its Acc@0.5 convention (+1-pixel IoU > 0.5), through ``anymal_box``. The
baseline that ignores the picture is the mean training box under the same metric.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anymal.testing import STORIES260K_ASSET, require_asset
from anymal_demo.world.grounding_data import write_grounding_data

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "examples" / "grounding_shapes" / "rec_pink_stories260k.yaml"
pytestmark = pytest.mark.integration  # trains for a few minutes on one thread (make test-integration)


def test_text_grounding_locates_held_out_shapes(tmp_path):
    stories = require_asset(STORIES260K_ASSET)
    data = tmp_path / "data"
    world = write_grounding_data(data, train=400, heldout=50, shapes=1, radius=(0.16, 0.24), seed=0)
    env = {**os.environ, "TQDM_DISABLE": "1"}
    subprocess.run(
        [sys.executable, "-m", "anymal.train", "--config", str(CONFIG), f"model.llm.name_or_path={stories}",
         f"data.0.path={data / 'rec_train.jsonl'}", f"eval_tasks.0.data={data / 'rec_heldout.jsonl'}",
         f"output_dir={tmp_path / 'run'}", f"feature_cache={tmp_path / 'features'}"],
        check=True, env=env, cwd=REPO, timeout=900,
    )  # fmt: skip
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    step, scores = summary["eval_tasks"]["rec"][-1]
    print(f"held-out REC Acc@0.5 {scores['rec_accuracy@0.5']:.2f} (mean IoU {scores['mean_iou']:.2f}, "
          f"format errors {scores['format_errors']}) at step {step}; constant box "
          f"{world['constant_box_rec_accuracy']:.2f} (mean IoU {world['constant_box_mean_iou']:.2f})")  # fmt: skip
    assert world["constant_box_rec_accuracy"] < 0.3
    assert scores["rec_accuracy@0.5"] > 0.6
    assert scores["format_errors"] <= 5
