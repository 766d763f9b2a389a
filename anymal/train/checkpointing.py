"""Resumable training state: trainable weights, optimiser, scheduler, RNG and data position, written atomically."""

from __future__ import annotations

import json
import random
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from anymal.checkpoint import atomic_replace_dir
from anymal.errors import CheckpointError

STATE_DIR = "checkpoints"


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_training_state(output_dir: Path, step: int, model, optimizer, scheduler, keep_last: int) -> Path:
    """Writes ``checkpoints/step-N`` atomically and prunes all but the newest ``keep_last``."""
    root = output_dir / STATE_DIR
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.trainable_state_dict().items()}
        save_file(weights, str(tmp / "trainable.safetensors"))
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()},
            tmp / "optimizer.pt",
        )
        (tmp / "state.json").write_text(json.dumps({"step": step}) + "\n")
        atomic_replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in sorted(p for p in root.iterdir() if p.name.startswith("step-"))[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(output_dir: Path) -> Path | None:
    root = output_dir / STATE_DIR
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / "state.json").is_file())
    return done[-1] if done else None


def load_training_state(path: Path, model, optimizer, scheduler) -> int:
    """Restores everything saved by :func:`save_training_state`; returns the step to continue from."""
    try:
        weights = load_file(str(path / "trainable.safetensors"))
        extra = torch.load(path / "optimizer.pt", weights_only=False)
        step = json.loads((path / "state.json").read_text())["step"]
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot resume from this checkpoint ({exc})") from None
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for key, value in weights.items():
            target = params.get(key, buffers.get(key))
            if target is None:
                raise CheckpointError(f"{path}: {key} is not a parameter of the model being trained")
            target.copy_(value)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    set_rng_state(extra["rng"])
    return int(step)
