"""The image modality: a frozen CLIP-family vision tower and a trainable projector (AnyMAL's Perceiver resampler by
default; linear, Qwen-VL cross-attention or Q-Former by ``projector_type``), optionally with Pink's adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anymal.plugin import ModalityPlugin
from anymal_image.adapters import AdaptedImageProjector, AdaptedViT, ViTStem, attach_llm_adapters
from anymal_image.config import ImagePluginConfig
from anymal_image.encoders import build_tower, build_transform, encoder_key
from anymal_image.io import load_image
from anymal_image.projectors import build_head


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
        self._tower: nn.Module | None = None

    @property
    def transform(self):
        """The encoder's eval transform (built lazily: data workers need it, not the encoder)."""
        if self._transform is None:
            self._transform = build_transform(self.config)
        return self._transform

    def build_encoder(self) -> nn.Module:
        tower = build_tower(self.config)
        self._encoder_dim = tower.out_dim
        self._tower = tower
        # with ViT adapters the frozen (cached) encoder is the stem; the adapted blocks run in the projector
        return ViTStem(tower) if self.config.vision_adapter_dim else tower

    def encoder_key(self) -> str | None:
        # an adapted tower's blocks run inside this plugin's projector: never shared with another plugin
        return None if self.config.vision_adapter_dim else encoder_key(self.config)

    def encoder_dim(self) -> int:
        """Width of the encoder features (builds the tower once if it was not built yet)."""
        if self._encoder_dim is None:
            self._encoder_dim = build_tower(self.config).out_dim
        return self._encoder_dim

    def encode(self, encoder: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return encoder(batch)

    def build_projector(self, llm_dim: int) -> nn.Module:
        cfg = self.config
        if cfg.vision_adapter_dim and self._tower is None:
            self.build_encoder()  # the adapted blocks are the encoder's: build_encoder normally comes first
        n_features = getattr(self._tower, "n_tokens", None)
        head = build_head(cfg, self.encoder_dim(), llm_dim, n_features)
        if not (cfg.vision_adapter_dim or cfg.llm_adapter_dim):
            return head
        vit = None
        if cfg.vision_adapter_dim:
            vit = AdaptedViT(self._tower, cfg.vision_adapter_dim, cfg.adapter_activation)
        return AdaptedImageProjector(head, vit)

    def attach_to_llm(self, llm: nn.Module, projector: nn.Module) -> list[Any]:
        """Pink's LLM-side adapters (``llm_adapter_dim``), hooked after each decoder layer's input norm."""
        if not self.config.llm_adapter_dim:
            return []
        return attach_llm_adapters(llm, projector, self.config.llm_adapter_dim, self.config.adapter_activation)

    def preprocess(self, raw: Any) -> torch.Tensor:
        return self.transform(load_image(raw))

    def geometry(self, original_size: tuple[float, float]):
        """Where a photo of ``original_size`` (width, height) lands in the encoder input: an ``anymal_box.Geometry``
        of this plugin's transform (open_clip's resize mode, or the HF processor's resize and crop). Output
        plugins map boxes predicted on the encoder input back to the photo with ``geometry(size).inverse``."""
        from anymal_box import Geometry
        from anymal_image.encoders import transform_geometry_settings

        settings = transform_geometry_settings(self.config)
        if "resize_mode" in settings:
            return Geometry.for_open_clip(original_size, settings["image_size"], settings["resize_mode"])
        return Geometry.for_hf_processor(original_size, **settings)

    def original_size(self, raw: Any) -> tuple[int, int]:
        """The (width, height) of one raw image input, as loaded before the encoder's transform."""
        return load_image(raw).size

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
