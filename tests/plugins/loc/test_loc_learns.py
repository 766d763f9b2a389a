"""Evidence that the ``[LOC]`` head learns: trained through ``python -m anymal.train`` on the demo's shapes world,
it localises held-out shapes (mean IoU > 0.7) where the mean training box (a model that ignores the picture) does
not (< 0.3).

The world: 64 px scenes of one coloured shape of random size anywhere (``anymal_demo.world.grounding``), asked for
by its referring expression, the answer ``[LOC]`` with the shape's tight pixel box as the target. The vision tower
is a frozen, randomly initialised tiny ViT with fixed 2-D sin-cos position embeddings (so its patch features say
where they are); the LLM is a frozen random 2-layer LLaMA with LoRA adapters on its attention. The Perceiver
resampler, the adapters, the ``[LOC]`` rows and the box head train. Boxes are read from ``generate``'s
``out.boxes`` in the original pixels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from loc_world import mean_iou, read_rows, write_split

from anymal import AnyMAL
from anymal.testing import tiny_llm_folder
from anymal_image import ImagePlugin

SIZE = 64
TRAIN, HELDOUT, STEPS = 2000, 100, 1200


def _config(folder: Path, train: Path) -> dict:
    image = ImagePlugin.tiny_config()
    assert image.model_config is not None
    vision = {**image.model_config["vision_cfg"], "image_size": SIZE, "pos_embed_type": "sin_cos_2d"}
    image_config = {
        "num_tokens": 8,
        "model_name": image.model_name,
        "pretrained": None,
        "model_config": {**image.model_config, "vision_cfg": vision},
        "resampler_depth": image.resampler_depth,
        "resampler_dim": image.resampler_dim,
        "resampler_heads": image.resampler_heads,
        "resampler_dim_head": image.resampler_dim_head,
        "resampler_ff_mult": image.resampler_ff_mult,
    }
    return {
        "stage": "instruct",
        "output_dir": str(folder / "run"),
        "model": {
            "llm": {"name_or_path": str(tiny_llm_folder())},
            "modalities": {"image": image_config},
            "outputs": {"loc": {"projection_dim": 64, "decoder_dims": [64, 32]}},
        },
        "data": [{"kind": "conversations", "path": str(train)}],
        "feature_cache": str(folder / "cache"),
        # QLoRA-style adapters on the attention (u-LLaVA's LoRA variant trains q and v): a frozen random LLM's
        # attention hardly routes the picture to the [LOC] position without them
        "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        "max_steps": STEPS,
        "batch_size": 32,
        "lr": 4e-3,
        "log_every": 100,
        "seed": 0,
    }


@pytest.mark.integration
def test_loc_head_localises_held_out_shapes(tmp_path):
    train = write_split(tmp_path, "train", TRAIN, seed=1, size=SIZE)
    heldout = write_split(tmp_path, "heldout", HELDOUT, seed=2, size=SIZE)
    config = tmp_path / "loc.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path, train)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "anymal.train", "--config", str(config)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"loc/l1", "loc/giou"} <= set(metrics[-1])

    model = AnyMAL.from_pretrained(tmp_path / "run" / "final")
    rows = read_rows(heldout)
    predicted, truth = [], []
    for start in range(0, len(rows), 25):
        chunk = rows[start : start + 25]
        out = model.generate(
            [row["conversations"][0]["content"] for row in chunk],
            image=[row["media"]["image"][0] for row in chunk],
            max_new_tokens=4,
        )
        for row, boxes in zip(chunk, out.boxes):
            truth.append(row["targets"]["loc"][0])
            predicted.append(list(boxes.data[0]) if len(boxes) else [0.0, 0.0, 0.0, 0.0])  # no [LOC]: a miss
    constant = np.mean([row["targets"]["loc"][0] for row in read_rows(train)], axis=0).tolist()
    model_iou = mean_iou(predicted, truth, SIZE)
    baseline_iou = mean_iou([constant] * len(truth), truth, SIZE)
    print(f"held-out mean IoU: [LOC] head {model_iou:.3f}, constant box {baseline_iou:.3f} ({len(truth)} scenes)")
    assert baseline_iou < 0.3
    assert model_iou > 0.7
