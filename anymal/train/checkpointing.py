"""Resumable training state: trainable weights, optimiser, scheduler, RNG and data position, written atomically.

Nothing is pickled: weights in safetensors, the rest through :mod:`anymal.tree_io` (JSON + safetensors), so
resuming from a run folder someone else wrote cannot run code.

Weights and optimiser state are stored whole (gathered from every rank under FSDP2, see
:mod:`anymal.train.sharded`), so every rank calls the save and load functions and only the main process writes.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from anymal.atomic import atomic_dir
from anymal.errors import CheckpointError
from anymal.pickles import refuse_pickles
from anymal.train.sharded import (
    full_optimizer_state,
    full_trainable_state,
    load_full_optimizer_state,
    load_full_trainable_state,
)
from anymal.tree_io import load_tree, save_tree

STATE_DIR = "checkpoints"
TRAINING_STATE = "training_state"  # training_state.json + .safetensors: optimiser, scheduler, RNG (no pickle)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_training_state(
    output_dir: Path, step: int, model, optimizer, scheduler, keep_last: int, is_main: bool = True
) -> Path:
    """Writes ``checkpoints/step-N`` atomically and prunes all but the newest ``keep_last``.

    A collective under DDP/FSDP: every rank calls it (to gather shards); only ``is_main`` writes.
    """
    weights = full_trainable_state(model)
    optimizer_state = full_optimizer_state(model, optimizer)
    root = output_dir / STATE_DIR
    target = root / f"step-{step:08d}"
    if not is_main:
        return target
    with atomic_dir(target) as tmp:
        save_file(weights, str(tmp / "trainable.safetensors"))
        save_tree(
            {"optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "rng": rng_state()}, tmp, TRAINING_STATE
        )
        (tmp / "state.json").write_text(json.dumps({"step": step}) + "\n")
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
    """Restores everything saved by :func:`save_training_state` (every rank calls it); returns the step to resume."""
    refuse_pickles(path)
    try:
        weights = load_file(str(path / "trainable.safetensors"))
        step = json.loads((path / "state.json").read_text())["step"]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot resume from this checkpoint ({exc})") from None
    extra = load_tree(path, TRAINING_STATE)
    if not isinstance(extra, dict) or not {"optimizer", "scheduler", "rng"} <= set(extra):
        raise CheckpointError(f"{path / TRAINING_STATE}.json: expected optimizer, scheduler and rng states")
    try:
        load_full_trainable_state(model, weights, str(path))
    except KeyError as exc:
        raise CheckpointError(exc.args[0]) from None
    load_full_optimizer_state(model, optimizer, extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    set_rng_state(extra["rng"])
    return int(step)
