"""Config of the image plugin: which vision tower, which layer's features, and the Perceiver resampler's size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anymal.config import PluginConfig, check_choice
from anymal.errors import ConfigError

PROJECTOR_TYPES = ("perceiver", "linear", "cross_attention_2d", "qformer")  # see anymal_image.projectors


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

    ``projector_type`` picks the projector (:mod:`anymal_image.projectors`): ``perceiver`` (AnyMAL, the default),
    ``linear`` (LLaVA/Pink/u-LLaVA: every patch token through one linear layer; ``num_tokens`` = patches),
    ``cross_attention_2d`` (Qwen-VL: one cross-attention layer, ``num_tokens`` queries, 2-D sin-cos positions on
    queries and keys; ``cross_attention_heads`` defaults to LLM width / 128) or ``qformer`` (BLIP-2/Ying-VLM:
    transformers' Q-Former, ``qformer_config`` overriding ``Blip2QFormerConfig``).

    Pink's bottleneck adapters (:mod:`anymal_image.adapters`): ``vision_adapter_dim`` > 0 puts one in every ViT block
    up to the feature layer, ``llm_adapter_dim`` > 0 one after every LLM decoder layer's input norm; both train with
    the projector and are saved in its file. ``adapter_activation``: ``identity`` (Pink's release), ``silu``, ``gelu``.
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
    projector_type: str = "perceiver"
    cross_attention_heads: int | None = None
    qformer_config: dict[str, Any] | None = None
    vision_adapter_dim: int = 0
    llm_adapter_dim: int = 0
    adapter_activation: str = "identity"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backend not in ("open_clip", "hf"):
            raise ConfigError(f"backend={self.backend!r}: expected 'open_clip' or 'hf'")
        if self.resampler_depth < 1:
            raise ConfigError(f"resampler_depth={self.resampler_depth}: expected at least 1 layer")
        check_choice(self.projector_type, PROJECTOR_TYPES, "projector_type")
        check_choice(self.adapter_activation, ("identity", "silu", "gelu"), "adapter_activation")
        for name in ("vision_adapter_dim", "llm_adapter_dim"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected 0 (no adapters) or a bottleneck width >= 1")
        if self.cross_attention_heads is not None and self.cross_attention_heads < 1:
            raise ConfigError(f"cross_attention_heads={self.cross_attention_heads}: expected >= 1 or None")
        if self.qformer_config is not None and not isinstance(self.qformer_config, dict):
            raise ConfigError("qformer_config: expected a mapping of Blip2QFormerConfig fields")
        sizes = (self.resampler_dim or 1, self.resampler_heads, self.resampler_dim_head, self.resampler_ff_mult)
        if min(sizes) < 1:
            raise ConfigError("resampler_dim, resampler_heads, resampler_dim_head and resampler_ff_mult must be >= 1")
