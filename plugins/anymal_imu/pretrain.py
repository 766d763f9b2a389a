"""The ``imu_text_contrastive`` pretraining task: align the IMU encoder with a frozen CLIP text tower, save it.

This is how the IMU encoder that AnyMAL keeps frozen gets its weights (IMU2CLIP's were never released). Data is a
set of (IMU recording, caption) pairs in one of two forms:

* ``.npz`` with ``X`` (``[N, 6, T]`` for ``layout="CT"``, ``[N, T, 6]`` for ``"TC"``) and either ``captions``
  (strings) or ``y`` (labels, turned into captions by ``label_captions`` or ``caption_template``); the rate is
  ``sample_rate`` or else the file's ``sample_rate_hz`` entry;
* ``.jsonl`` with one ``{"imu": "<.npy/.csv path, relative to the file>", "caption": "...", "sample_rate": 50,
  "layout": "TC"}`` object per line (``sample_rate``/``layout`` optional, defaulting to the task config).

Every recording goes through the plugin's own ``preprocess`` (resample, window, normalise), so the encoder is
trained on exactly the input it gets at inference. The result is a safetensors file that the plugin config's
``checkpoint`` field points at.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymal.config import config_from_dict, config_to_dict
from anymal.errors import ConfigError, DataError, InputError
from anymal.plugin import ModalityPlugin, PretrainingTask
from anymal_imu.checkpoint import save_encoder
from anymal_imu.contrastive import ContrastiveResult, train_contrastive
from anymal_imu.recording import IMURecording
from anymal_imu.text_tower import FrozenTextTower, build_text_tower

TASK_NAME = "imu_text_contrastive"


@dataclass
class IMUContrastiveConfig:
    """Settings of the ``imu_text_contrastive`` task (a partial dict is merged over these defaults).

    Attributes:
        data: ``.npz`` or ``.jsonl`` file of (recording, caption) pairs (see the module docstring).
        output: Where to write the encoder checkpoint (``.safetensors``).
        text_model: open_clip model whose text tower is the target space (``"ViT-L-14"``), or ``"tiny"``.
        text_pretrained: open_clip pretrained tag or local weights file for ``text_model``.
        tiny_text_width: Width of the ``tiny`` text tower.
        tiny_text_layers: Layers of the ``tiny`` text tower.
        tiny_text_heads: Heads of the ``tiny`` text tower.
        tiny_text_context: Token context of the ``tiny`` text tower.
        layout: Layout of each ``.npz`` recording: ``"CT"`` or ``"TC"``; the default layout of ``.jsonl`` rows is
            always ``"TC"``.
        sample_rate: Rate (Hz) of recordings that state none.
        caption_template: Caption of a labelled recording, ``{label}`` replaced by its label.
        label_captions: Caption per label, taking precedence over ``caption_template``.
        steps: Optimiser steps.
        batch_size: Pairs per step.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        seed: Seed of the batch order and of the ``tiny`` text tower.
        max_seconds: Optional time budget for training.
        device: Torch device to train on.
        progress: Show a progress bar.
    """

    data: str = ""
    output: str = ""
    text_model: str = "ViT-L-14"
    text_pretrained: str | None = "openai"
    tiny_text_width: int = 64
    tiny_text_layers: int = 2
    tiny_text_heads: int = 2
    tiny_text_context: int = 32
    layout: str = "CT"
    sample_rate: float | None = None
    caption_template: str = "{label}"
    label_captions: dict[str, str] = field(default_factory=dict)
    steps: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_seconds: float | None = None
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("data", "output"):
            if not getattr(self, name):
                raise ConfigError(f"{TASK_NAME}.{name}: required (a path)")
        if not self.output.endswith(".safetensors"):
            raise ConfigError(f"{TASK_NAME}.output={self.output!r}: expected a .safetensors file name")
        if self.layout not in ("CT", "TC"):
            raise ConfigError(f"{TASK_NAME}.layout={self.layout!r}: expected 'CT' or 'TC'")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError(f"{TASK_NAME}: expected steps >= 1 and batch_size >= 2")


def load_pairs(plugin: ModalityPlugin, cfg: IMUContrastiveConfig) -> tuple[torch.Tensor, list[str]]:
    """Reads ``cfg.data`` and preprocesses every recording: ``([N, 6, window_samples], N captions)``."""
    path = Path(cfg.data)
    if not path.is_file():
        raise DataError(f"{TASK_NAME}.data: {path}: no such file")
    if path.suffix == ".npz":
        recordings, captions = _npz_pairs(path, cfg)
    elif path.suffix == ".jsonl":
        recordings, captions = _jsonl_pairs(path, cfg)
    else:
        raise DataError(f"{TASK_NAME}.data: {path}: expected a .npz or .jsonl file")
    if len(recordings) < 2:
        raise DataError(f"{path}: {len(recordings)} pair(s); contrastive training needs at least 2")
    windows = torch.stack([plugin.preprocess(recording) for recording in recordings])
    return windows, captions


def _npz_pairs(path: Path, cfg: IMUContrastiveConfig) -> tuple[list[IMURecording], list[str]]:
    with np.load(path, allow_pickle=False) as data:
        if "X" not in data:
            raise DataError(f"{path}: no 'X' array of recordings (found {', '.join(data.files)})")
        signals = data["X"]
        if "captions" in data:
            captions = [str(c) for c in data["captions"]]
        elif "y" in data:
            captions = [cfg.label_captions.get(str(y), cfg.caption_template.format(label=y)) for y in data["y"]]
        else:
            raise DataError(f"{path}: needs a 'captions' or a 'y' (labels) array next to 'X'")
        rate = cfg.sample_rate if cfg.sample_rate is not None else data.get("sample_rate_hz")
    if rate is None:
        raise DataError(f"{path}: no sample rate: set {TASK_NAME}.sample_rate or store 'sample_rate_hz' in the file")
    if signals.ndim != 3 or len(signals) != len(captions):
        raise DataError(f"{path}: expected X as [N, C, T] or [N, T, C] with N = number of captions ({len(captions)})")
    rate = float(np.asarray(rate))
    recordings = [IMURecording(x, rate, cfg.layout, source=f"{path}[X][{i}]") for i, x in enumerate(signals)]
    return recordings, captions


def _jsonl_pairs(path: Path, cfg: IMUContrastiveConfig) -> tuple[list[IMURecording], list[str]]:
    recordings, captions = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            file, caption = row["imu"], row["caption"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{number}: expected a JSON object with 'imu' and 'caption' ({exc})") from None
        try:
            recording = IMURecording.from_file(
                path.parent / file, row.get("sample_rate", cfg.sample_rate), row.get("layout", "TC")
            )
        except InputError as exc:
            raise DataError(f"{path}:{number}: {exc}") from None
        recordings.append(recording)
        captions.append(str(caption))
    return recordings, captions


def caption_table(text: FrozenTextTower, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Embeds the distinct captions once: ``(table [U, D], ids [N] into it, the U distinct captions)``."""
    distinct = list(dict.fromkeys(captions))
    index = {caption: i for i, caption in enumerate(distinct)}
    return text.encode(distinct), torch.tensor([index[c] for c in captions]), distinct


def pretrain_encoder(
    encoder: torch.nn.Module, windows: torch.Tensor, captions: list[str], text: FrozenTextTower, **train_kwargs: Any
) -> ContrastiveResult:
    """Aligns ``encoder`` (in place) to ``text``'s embeddings of ``captions``; ``train_kwargs`` go to
    ``train_contrastive`` (steps, batch_size, lr, ...)."""
    table, ids, _ = caption_table(text, captions)
    return train_contrastive(encoder, windows, table, ids, **train_kwargs)


def run_contrastive_pretraining(plugin: ModalityPlugin, config: dict[str, Any]) -> dict[str, Any]:
    """The task's entry point: trains ``plugin``'s encoder and writes ``config['output']``; returns metrics."""
    cfg = config_from_dict(IMUContrastiveConfig, config, TASK_NAME)
    text = build_text_tower(
        cfg.text_model,
        cfg.text_pretrained,
        embed_dim=plugin.config.embed_dim,
        width=cfg.tiny_text_width,
        layers=cfg.tiny_text_layers,
        heads=cfg.tiny_text_heads,
        context_length=cfg.tiny_text_context,
        seed=cfg.seed,
        device=cfg.device,
    )
    if text.output_dim != plugin.config.embed_dim:
        raise ConfigError(
            f"{TASK_NAME}.text_model={cfg.text_model!r} embeds text in {text.output_dim} dims but the imu encoder's "
            f"embed_dim is {plugin.config.embed_dim}; set embed_dim={text.output_dim} in the imu config"
        )
    windows, captions = load_pairs(plugin, cfg)
    encoder = plugin.build_encoder().to(cfg.device)
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    metrics_path = output.with_suffix(".metrics.jsonl")
    metrics_path.unlink(missing_ok=True)
    result = pretrain_encoder(
        encoder,
        windows,
        captions,
        text,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        max_seconds=cfg.max_seconds,
        metrics_path=metrics_path,
        progress=cfg.progress,
    )
    metrics = dict(result.metrics(), pairs=len(captions), distinct_captions=len(set(captions)))
    info = {"task": TASK_NAME, "task_config": asdict(cfg), "plugin_config": config_to_dict(plugin.config)}
    save_encoder(encoder, plugin.config, output, extra=dict(info, metrics=metrics))
    return dict(metrics, checkpoint=os.fspath(output), metrics_file=os.fspath(metrics_path))


CONTRASTIVE_TASK = PretrainingTask(
    name=TASK_NAME,
    description="Align the IMU encoder with a frozen CLIP text tower (symmetric InfoNCE, learnable temperature) "
    "on (recording, caption) pairs and save it as the checkpoint the imu config points at.",
    run=run_contrastive_pretraining,
)
