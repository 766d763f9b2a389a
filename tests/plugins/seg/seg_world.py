"""Mask-grounding data for the ``[SEG]`` decoder, written from the demo's shapes world (``anymal_demo.world``).

Each row is a scene of ``shapes`` coloured shapes at random places and sizes; the user asks for one of them by its
referring expression and the answer is ``[SEG]`` with that shape's mask (a COCO RLE) as the ``seg`` target.
Training and held-out scenes come from different seeds; held-out rows keep the mask for scoring.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anymal_box import encode_mask
from anymal_demo.world.grounding import scenes

ANSWER = "[SEG]"


def prompt(expression: str) -> str:
    return f"<image>\nSegment {expression}."


def write_split(folder: Path, split: str, count: int, seed: int, size: int = 64, shapes: int = 2) -> Path:
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
                "targets": {"seg": [encode_mask(target.mask)]},
                "expression": target.expression,
            }
            handle.write(json.dumps(row) + "\n")
    return path
