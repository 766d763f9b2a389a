"""SAM through transformers: building it (a checkpoint folder, or a config for tests), its input pipeline and frame.

``load_sam`` returns a ``transformers.SamModel``: ``from_pretrained(path)`` for a real checkpoint folder (e.g. a
local copy of ``facebook/sam-vit-huge``; nothing is downloaded), or a model built from a ``SamConfig`` dict and a
seed (tiny configs in tests). ``sam_processor`` is transformers' own ``SamImageProcessor`` at the model's input
size: longest side resized to ``image_size``, normalised, padded at the bottom/right to a square. ``sam_geometry``
is that transform as an ``anymal_box.Geometry``, so masks predicted in SAM's input frame map back to the photo.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from anymal.errors import ConfigError
from anymal_box import Geometry


def load_sam(path: str | os.PathLike | None, config: dict[str, Any] | None, seed: int = 0):
    """A ``SamModel`` from a local folder (``path``) or from ``config`` (a ``SamConfig`` dict) with weights drawn
    from ``seed``; exactly one of the two. Raises ``ConfigError`` naming the folder when it holds no SAM."""
    from transformers import SamConfig, SamModel

    if (path is None) == (config is None):
        raise ConfigError("seg: give exactly one of sam (a SAM checkpoint folder) and sam_config (a SamConfig dict)")
    if path is not None:
        folder = Path(path).expanduser()
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise ConfigError(f"seg: sam={str(path)!r}: no SAM checkpoint folder (config.json missing)")
        try:
            model_type = json.loads(config_file.read_text()).get("model_type")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"seg: sam={str(path)!r}: unreadable config.json ({exc})") from None
        if model_type != "sam":
            raise ConfigError(f"seg: sam={str(path)!r}: config.json has model_type {model_type!r}, expected 'sam'")
        try:
            return SamModel.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"seg: sam={str(path)!r}: cannot load the SAM checkpoint ({exc})") from None
    try:
        sam_config = SamConfig(**config)
    except Exception as exc:  # transformers validates with its own error types (huggingface_hub's strict fields)
        raise ConfigError(f"seg: sam_config: not a SamConfig ({exc})") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SamModel(sam_config)


def input_size(sam) -> int:
    """The side of SAM's square input (1024 for the released models)."""
    return int(sam.config.vision_config.image_size)


def sam_processor(image_size: int):
    """transformers' ``SamImageProcessor`` for a square input of ``image_size`` pixels."""
    from transformers import SamImageProcessor

    return SamImageProcessor(size={"longest_edge": image_size}, pad_size={"height": image_size, "width": image_size})


def sam_geometry(original_size: tuple[float, float], image_size: int) -> Geometry:
    """Where a ``(width, height)`` photo's pixels land in SAM's input: the longest side resized to ``image_size``
    (each side ``int(side * scale + 0.5)``, as ``SamImageProcessor``), then padding at the right and bottom."""
    width, height = (float(v) for v in original_size)
    scale = image_size / max(width, height)
    resized = (int(width * scale + 0.5), int(height * scale + 0.5))
    first = Geometry.resize((width, height), resized)
    return first.then(Geometry.pad(resized, 0, 0, image_size - resized[0], image_size - resized[1]))
