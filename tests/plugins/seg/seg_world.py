"""Mask-grounding data for the ``[SEG]`` decoder, written from the demo's shapes world (``anymal_demo.world``).

Each row is a scene of ``shapes`` coloured shapes at random places and sizes; the user asks for one of them by its
referring expression and the answer is ``[SEG]`` with that shape's mask (a COCO RLE) as the ``seg`` target.
Training and held-out scenes come from different seeds; held-out rows keep the mask for scoring.
"""

from __future__ import annotations

from pathlib import Path

from anymal_box import encode_mask
from anymal_demo.world.grounding import scenes, write_trigger_rows

ANSWER = "[SEG]"


def prompt(expression: str) -> str:
    return f"<image>\nSegment {expression}."


def write_split(folder: Path, split: str, count: int, seed: int, size: int = 64, shapes: int = 2) -> Path:
    """``<split>.jsonl`` rows (conversation schema with ``targets``) and their PNGs under ``folder/media``."""
    return write_trigger_rows(
        folder,
        split,
        scenes(count, seed, size, shapes),
        prompt,
        ANSWER,
        targets=lambda target: {"seg": [encode_mask(target.mask)]},
        extra=lambda target: {"expression": target.expression},
    )
