"""``IMUPlugin``: the ``imu`` modality (motion recordings from a 6-axis accelerometer + gyroscope)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anymal.plugin import ModalityPlugin, PretrainingTask
from anymal_imu.checkpoint import load_encoder
from anymal_imu.config import IMUPluginConfig
from anymal_imu.preprocess import preprocess_signal
from anymal_imu.projector import IMUProjector
from anymal_imu.recording import IMURecording, as_recording, is_array_rate_pair


class IMUPlugin(ModalityPlugin):
    """IMU motion recordings through a frozen IMU2CLIP-style encoder and a linear projector.

    ``preprocess`` returns a ``[6, window_samples]`` float32 tensor; ``encode`` returns
    ``{"embeds": [B, embed_dim] (unit norm, text-aligned), "features": [B, S, width]}``; ``project`` returns
    ``[B, num_tokens, llm_dim]``.
    """

    name = "imu"
    config_class = IMUPluginConfig
    noun = "motion recording"
    config: IMUPluginConfig

    # --- encoder -------------------------------------------------------------------------------------------
    def build_encoder(self) -> nn.Module:
        return load_encoder(self.config)

    def encoder_key(self) -> str | None:
        ident = {"arch": self.config.arch_dict(), "checkpoint": self.config.checkpoint}
        if self.config.checkpoint is None:
            ident["seed"] = self.config.seed
        return "imu:" + hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    def encode(self, encoder: nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        out = encoder(batch)
        return {"embeds": F.normalize(out["embeds"], dim=-1), "features": out["features"]}

    # --- projector -----------------------------------------------------------------------------------------
    def build_projector(self, llm_dim: int) -> nn.Module:
        cfg = self.config
        in_dim = cfg.embed_dim if cfg.projector_input == "pooled" else cfg.width
        return IMUProjector(in_dim, llm_dim, cfg.num_tokens, cfg.projector_rank, cfg.projector_input)

    def project(self, projector: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return projector(features)

    # --- data ----------------------------------------------------------------------------------------------
    def preprocess(self, raw: Any) -> torch.Tensor:
        """One raw IMU input (see ``anymal_imu.recording``) to a ``[6, window_samples]`` float32 tensor."""
        recording = as_recording(raw, self.config.default_sample_rate)
        signal = recording.time_major()
        return preprocess_signal(signal, recording.rate(), self.config, where=recording.source)

    def is_single_input(self, raw: Any) -> bool:
        """One input unless ``raw`` is a list/tuple of inputs; an ``(array, sample_rate)`` pair is one input."""
        if is_array_rate_pair(raw):
            return True
        return not isinstance(raw, (list, tuple))

    # --- training ------------------------------------------------------------------------------------------
    def pretraining_tasks(self) -> dict[str, PretrainingTask]:
        from anymal_imu.pretrain import CONTRASTIVE_TASK

        return {CONTRASTIVE_TASK.name: CONTRASTIVE_TASK}

    # --- testing -------------------------------------------------------------------------------------------
    @classmethod
    def tiny_config(cls) -> IMUPluginConfig:
        return IMUPluginConfig(
            num_tokens=4,
            sample_rate=20.0,
            window_samples=64,
            width=16,
            embed_dim=16,
            conv_layers=2,
            rnn_layers=1,
            heads=2,
            transformer_layers=1,
            patch_size=8,
            projector_rank=8,
            seed=0,
        )

    def example_inputs(self) -> list[Any]:
        """A walking-like ``(array, rate)`` pair at 50 Hz and a channel-first ``IMURecording`` at 10 Hz."""
        seconds = 2 * math.ceil(self.config.window_seconds)
        t50 = np.arange(int(seconds * 50)) / 50.0
        gait = np.stack([np.sin(2 * np.pi * f * t50 + p) for f, p in zip((1.8, 1.8, 3.6, 0.9, 1.8, 0.4), range(6))])
        t10 = np.arange(int(seconds * 10)) / 10.0
        sway = np.stack(
            [np.cos(2 * np.pi * f * t10) * a for f, a in zip((0.2, 0.3, 0.1, 0.5, 0.25, 0.15), range(1, 7))]
        )
        return [
            (gait.T.astype(np.float32), 50.0),
            IMURecording(torch.from_numpy(sway.astype(np.float32)), 10.0, layout="CT"),
        ]

    def bad_inputs(self) -> list[Any]:
        """Rejected inputs: wrong type, missing file, NaN, wrong layout/channels, no rate, too short, bad rate."""
        rate = self.config.sample_rate
        good_len = self.config.window_samples
        nan = np.zeros((good_len, 6), np.float32)
        nan[3, 2] = np.nan
        return [
            object(),
            "/nonexistent/anymal-missing-file.npy",
            (nan, rate),
            (np.zeros((6, good_len), np.float32), rate),  # channel-first data passed as [T, 6]
            (np.zeros((good_len, 5), np.float32), rate),
            np.zeros((good_len, 6), np.float32) if self.config.default_sample_rate is None else object(),
            (np.zeros((2, 6), np.float32), rate),
            (np.zeros((good_len, 6), np.float32), -1.0),
            (np.zeros((good_len, 6, 1), np.float32), rate),
        ]
