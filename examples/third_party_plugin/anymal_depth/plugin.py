"""The depth plugin: reading depth maps, the frozen CNN encoder and the pooled MLP projector."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from anymal.config import PluginConfig
from anymal.errors import ConfigError, InputError
from anymal.plugin import ModalityPlugin
from anymal_depth.encoder import DepthEncoder


@dataclass
class DepthPluginConfig(PluginConfig):
    """``weights``: a safetensors file of ``DepthEncoder`` weights (``None``: seeded random init)."""

    plugin_type: str = "depth"
    num_tokens: int = 16
    image_size: int = 224
    max_depth: float = 10.0
    widths: tuple[int, ...] = (32, 64, 128, 256)
    weights: str | None = None
    init_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_depth <= 0:
            raise ConfigError(f"max_depth={self.max_depth}: expected a positive range in metres")


def read_depth(raw: Any) -> np.ndarray:
    """A float32 ``[H, W]`` depth map in metres from a path (.npy, 16-bit PNG in mm), array or tensor."""
    if isinstance(raw, (str, os.PathLike)):
        path = Path(raw)
        if not path.is_file():
            raise InputError(f"depth: file not found: {path}")
        try:
            if path.suffix == ".npy":
                depth = np.load(path, allow_pickle=False)
            else:
                with Image.open(path) as image:
                    if image.mode not in ("I;16", "I", "I;16B"):
                        raise InputError(f"depth: {path} is a {image.mode} image; expected a 16-bit PNG in mm")
                    depth = np.asarray(image, dtype=np.float32) / 1000.0
        except (OSError, ValueError) as exc:
            raise InputError(f"depth: cannot read {path} as a depth map ({exc})") from None
    elif isinstance(raw, torch.Tensor):
        depth = raw.detach().cpu().numpy()
    elif isinstance(raw, np.ndarray):
        depth = raw
    else:
        raise InputError(f"depth: expected a path, numpy array or tensor, got {type(raw).__name__}")
    depth = np.asarray(depth, dtype=np.float32).squeeze()
    if depth.ndim != 2:
        raise InputError(f"depth: expected a [H, W] depth map, got shape {depth.shape}")
    if (depth[np.isfinite(depth)] < 0).any():
        raise InputError("depth: negative depth values; expected metres >= 0 (0, NaN or inf = no reading)")
    return depth


class DepthPlugin(ModalityPlugin):
    name = "depth"
    noun = "depth map"
    config_class = DepthPluginConfig

    def preprocess(self, raw: Any) -> torch.Tensor:
        depth = read_depth(raw)
        valid = np.isfinite(depth) & (depth > 0)
        if not valid.any():
            raise InputError("depth: the map has no valid reading (all 0, NaN or inf)")
        scaled = np.where(valid, np.clip(depth, 0, self.config.max_depth) / self.config.max_depth, 0.0)
        x = torch.from_numpy(np.stack([scaled, valid]).astype(np.float32))[None]
        size = self.config.image_size
        return F.interpolate(x, size=(size, size), mode="nearest")[0]

    def build_encoder(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.init_seed)
            encoder = DepthEncoder(tuple(self.config.widths))
        if self.config.weights:
            from safetensors.torch import load_file

            encoder.load_state_dict(load_file(self.config.weights))
        return encoder

    def encode(self, encoder: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return encoder(batch)

    def build_projector(self, llm_dim: int) -> nn.Module:
        grid = round(self.config.num_tokens**0.5)
        if grid * grid != self.config.num_tokens:
            raise ConfigError(f"depth num_tokens={self.config.num_tokens}: expected a square number (a token grid)")
        width = self.config.widths[-1]
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(grid),
            nn.Flatten(2),
            _Transpose(),
            nn.Linear(width, llm_dim),
            nn.GELU(),
            nn.Linear(llm_dim, llm_dim),
        )

    @classmethod
    def tiny_config(cls) -> DepthPluginConfig:
        return DepthPluginConfig(num_tokens=4, image_size=32, widths=(8, 16))

    def example_inputs(self) -> list[Any]:
        _ys, xs = np.mgrid[0:48, 0:64].astype(np.float32)
        ramp = 1.0 + xs / 16.0  # a wall receding to the right
        box = ramp.copy()
        box[10:30, 20:40] = 0.8  # an object in front of it
        box[0, 0] = np.nan  # a missing reading
        return [ramp, torch.from_numpy(box)]

    def bad_inputs(self) -> list[Any]:
        return [
            object(),
            "/nonexistent/depth.npy",
            np.zeros((4, 4, 4), np.float32),
            -np.ones((8, 8), np.float32),
            np.zeros((8, 8), np.float32),
        ]


class _Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)
