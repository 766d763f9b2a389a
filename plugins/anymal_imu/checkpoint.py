"""IMU encoder checkpoints: one ``.safetensors`` file whose metadata records the config it belongs to.

The metadata holds the architecture and signal fields (``IMUPluginConfig.arch_dict``): an encoder pretrained at
200 Hz with z-scored 5-second windows is wrong at 50 Hz or with other statistics even if the tensor shapes happen to
match, so loading compares them and refuses a mismatch by name. Files are written atomically (temporary file in the
same folder, then ``os.replace``), so an interrupted run never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from anymal.atomic import atomic_write_file
from anymal.errors import CheckpointError
from anymal_imu.config import IMUPluginConfig
from anymal_imu.encoder import IMUEncoder, init_encoder

FORMAT = "anymal_imu.encoder/1"


def save_encoder(
    encoder: IMUEncoder, config: IMUPluginConfig, path: str | os.PathLike, extra: dict[str, Any] | None = None
) -> Path:
    """Writes the encoder weights and ``config.arch_dict()`` (plus JSON-able ``extra`` info) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "arch": json.dumps(config.arch_dict(), sort_keys=True)}
    if extra:
        metadata["info"] = json.dumps(extra, sort_keys=True)
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in encoder.state_dict().items()}
    return atomic_write_file(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's recorded ``arch`` fields and ``info``; ``CheckpointError`` if it is not an IMU encoder file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"IMU encoder checkpoint {path}: no such file (config field 'checkpoint')")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"IMU encoder checkpoint {path}: not a readable safetensors file ({exc})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"IMU encoder checkpoint {path}: metadata format {metadata.get('format')!r}, expected {FORMAT!r} "
            "(write it with anymal_imu.save_encoder or the imu_text_contrastive pretraining task)"
        )
    return {"arch": json.loads(metadata["arch"]), "info": json.loads(metadata.get("info", "{}"))}


def load_encoder(config: IMUPluginConfig) -> IMUEncoder:
    """Builds the encoder of ``config``: weights from ``config.checkpoint`` if set, else the seeded random init."""
    encoder = init_encoder(config)
    if config.checkpoint is None:
        return encoder
    recorded = read_metadata(config.checkpoint)["arch"]
    expected = config.arch_dict()
    diffs = [f"{k}: checkpoint {recorded.get(k)!r}, config {v!r}" for k, v in expected.items() if recorded.get(k) != v]
    if diffs:
        raise CheckpointError(
            f"IMU encoder checkpoint {config.checkpoint} was trained with a different config; " + "; ".join(diffs)
        )
    try:
        encoder.load_state_dict(load_file(config.checkpoint), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"IMU encoder checkpoint {config.checkpoint}: weights do not fit: {exc}") from None
    return encoder
