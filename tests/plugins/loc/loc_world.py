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
from anymal_demo.world.grounding import scenes, write_trigger_rows

ANSWER = "[LOC]"


def prompt(expression: str) -> str:
    return f"<image>\nWhere is {expression}?"


def write_split(folder: Path, split: str, count: int, seed: int, size: int = 64, shapes: int = 1) -> Path:
    """``<split>.jsonl`` rows (conversation schema with ``targets``) and their PNGs under ``folder/media``."""
    pairs = scenes(count, seed, size, shapes)
    return write_trigger_rows(folder, split, pairs, prompt, ANSWER, lambda target: {"loc": [list(target.box)]})


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def mean_iou(pred: list[list[float]], truth: list[list[float]], size: int) -> float:
    frame = PixelFrame(size, size)
    return float(np.mean(paired_iou(Boxes(pred, frame), Boxes(truth, frame))))
