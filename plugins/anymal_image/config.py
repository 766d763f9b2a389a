"""Config of the image plugin: which vision tower, which layer's features, and the Perceiver resampler's size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anymal.config import PluginConfig
from anymal.errors import ConfigError


@dataclass
class ImagePluginConfig(PluginConfig):
    """Image encoder + Perceiver resampler settings.

    ``backend="open_clip"``: ``model_name`` (e.g. ViT-L-14-336, ViT-bigG-14) and ``pretrained`` (a tag such as
    ``openai``/``laion2b_s39b_b160k`` or a local checkpoint file); ``model_config`` optionally defines a custom
    open_clip architecture. ``backend="hf"``: ``model_name`` is a hub id or folder of a CLIP/SigLIP model, or
    ``model_config`` a ``CLIPVisionConfig``/``SiglipVisionConfig`` dict (with ``model_type``) for random init.
    Random-init encoders (no pretrained weights) are seeded by ``init_seed`` so they rebuild bit-identically.
    ``resampler_dim`` (the width the latents work at) defaults to the vision tower's feature width, as in
    Flamingo's Perceiver resampler: 1024 for the paper's ViT-L/14-336.
    """

    plugin_type: str = "image"
    num_tokens: int = 64
    backend: str = "open_clip"
    model_name: str = "ViT-L-14-336"
    pretrained: str | None = "openai"
    model_config: dict[str, Any] | None = None
    init_seed: int = 0
    feature_layer: int = -2
    keep_cls_token: bool = False
    resampler_depth: int = 2
    resampler_dim: int | None = None
    resampler_heads: int = 16
    resampler_dim_head: int = 64
    resampler_ff_mult: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backend not in ("open_clip", "hf"):
            raise ConfigError(f"backend={self.backend!r}: expected 'open_clip' or 'hf'")
        if self.resampler_depth < 1:
            raise ConfigError(f"resampler_depth={self.resampler_depth}: expected at least 1 layer")
        sizes = (self.resampler_dim or 1, self.resampler_heads, self.resampler_dim_head, self.resampler_ff_mult)
        if min(sizes) < 1:
            raise ConfigError("resampler_dim, resampler_heads, resampler_dim_head and resampler_ff_mult must be >= 1")
