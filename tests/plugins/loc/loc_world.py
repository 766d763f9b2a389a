"""Box-grounding data for the ``[LOC]`` head, written from the demo's shapes world (``anymal_demo.world.grounding``).

Each row is a scene of ``shapes`` coloured shapes at random places and sizes; the user asks for one of them by its
referring expression and the answer is ``Location: [LOC].`` with the shape's tight pixel box as the ``loc`` target.
Training and held-out scenes come from different seeds. The constant-box baseline is the mean training box.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from anymal_box import Boxes, PixelFrame, paired_iou
from anymal_demo.world.grounding import scenes

ANSWER = "[LOC]"


def prompt(expression: str) -> str:
    return f"<image>\nWhere is {expression}?"


def write_split(folder: Path, split: str, count: int, seed: int, size: int = 64, shapes: int = 1) -> Path:
    """``<split>.jsonl`` rows (conversation schema with ``targets``) and their PNGs under ``folder/media``."""
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}.jsonl"
    with path.open("w") as handle:
        for n, (scene, target) in enumerate(scenes(count, seed, size, shapes)):
            image = media / f"{split}-{n:04d}.png"
            scene.image.save(image)
            row: dict[str, Any] = {
                "id": f"{split}-{n}",
                "media": {"image": [str(image)]},
                "conversations": [
                    {"role": "user", "content": prompt(target.expression)},
                    {"role": "assistant", "content": ANSWER},
                ],
                "targets": {"loc": [list(target.box)]},
            }
            handle.write(json.dumps(row) + "\n")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def mean_iou(pred: list[list[float]], truth: list[list[float]], size: int) -> float:
    frame = PixelFrame(size, size)
    return float(np.mean(paired_iou(Boxes(pred, frame), Boxes(truth, frame))))
