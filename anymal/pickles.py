"""Refusing pickle files: anymal never unpickles anything it loads, and says so naming the file.

A pickle (``torch.save`` output, ``*.bin`` PyTorch weights, ``*.pkl``) runs code when loaded. anymal writes
safetensors and JSON only, so a pickle inside a checkpoint or run folder is either left over from another tool or
planted; loading refuses it instead of handing it to torch or PEFT.
"""

from __future__ import annotations

import os
from pathlib import Path

from anymal.errors import CheckpointError

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


def refuse_pickles(folder: str | os.PathLike) -> None:
    """Raises CheckpointError naming the first pickle-format file anywhere under ``folder``."""
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name.lower().endswith(PICKLE_SUFFIXES):
            raise CheckpointError(
                f"{path}: a pickle-format file; anymal never unpickles (loading it could run code). "
                "Convert it to safetensors, or remove it if it does not belong here"
            )
