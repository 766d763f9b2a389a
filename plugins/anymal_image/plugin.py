"""The image modality: a frozen CLIP-family vision tower and a trainable Perceiver resampler (AnyMAL's recipe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anymal.plugin import ModalityPlugin
from anymal_image.config import ImagePluginConfig
from anymal_image.encoders import build_tower, build_transform, encoder_key
from anymal_image.io import load_image
from anymal_image.resampler import resampler_from_config


def _example_photos() -> list[Path]:
    """Real COCO photos from the shared assets folder (``anymal.testing.assets_dir()``, ``$ANYMAL_ASSETS``)."""
    from anymal.testing import asset

    return sorted(asset("images").glob("COCO_val2014_*.jpg"))


class ImagePlugin(ModalityPlugin):
    """``image=``: paths, bytes, PIL images, arrays or tensors; several images per sample are allowed."""

    name = "image"
    noun = "image"
    config_class = ImagePluginConfig

    def __init__(self, config: ImagePluginConfig | None = None) -> None:
        super().__init__(config)
        self._transform = None
        self._encoder_dim: int | None = None

    @property
    def transform(self):
        """The encoder's eval transform (built lazily: data workers need it, not the encoder)."""
        if self._transform is None:
            self._transform = build_transform(self.config)
        return self._transform

    def build_encoder(self) -> nn.Module:
        tower = build_tower(self.config)
        self._encoder_dim = tower.out_dim
        return tower

    def encoder_key(self) -> str:
        return encoder_key(self.config)

    def encoder_dim(self) -> int:
        """Width of the encoder features (builds the tower once if it was not built yet)."""
        if self._encoder_dim is None:
            self._encoder_dim = build_tower(self.config).out_dim
        return self._encoder_dim

    def encode(self, encoder: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return encoder(batch)

    def build_projector(self, llm_dim: int) -> nn.Module:
        return resampler_from_config(self.config, self.encoder_dim(), llm_dim)

    def preprocess(self, raw: Any) -> torch.Tensor:
        return self.transform(load_image(raw))

    @classmethod
    def tiny_config(cls) -> ImagePluginConfig:
        return ImagePluginConfig(
            num_tokens=4,
            backend="open_clip",
            model_name="tiny-vit",
            pretrained=None,
            model_config={
                "vision_cfg": {
                    "image_size": 32,
                    "layers": 2,
                    "width": 32,
                    "head_width": 16,
                    "patch_size": 8,
                    "mlp_ratio": 2.0,
                },
                "embed_dim": 16,
            },
            resampler_depth=2,
            resampler_dim=32,
            resampler_heads=2,
            resampler_dim_head=16,
            resampler_ff_mult=2,
        )

    def example_inputs(self) -> list[Any]:
        photos = _example_photos()[:2]
        if len(photos) == 2:
            return [str(photos[0]), photos[1].read_bytes()]
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), rng.random((3, 40, 40)).astype(np.float32)]

    def bad_inputs(self) -> list[Any]:
        return [
            object(),
            "/nonexistent/anymal-missing-image.jpg",
            b"this is not an image",
            np.full((8, 8, 3), np.nan, dtype=np.float32),
            np.zeros((2, 3, 4, 5), dtype=np.uint8),
        ]
