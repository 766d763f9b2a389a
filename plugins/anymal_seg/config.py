"""Config of the ``[SEG]`` mask decoder: which SAM, the projection's width, loss weights, the embedding cache."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from anymal.errors import ConfigError
from anymal.output_plugin import OutputPluginConfig
from anymal_seg.losses import DICE_SCALE, ULLAVA_BCE_WEIGHT, ULLAVA_DICE_WEIGHT


@dataclass
class SegConfig(OutputPluginConfig):
    """The ``seg`` output plugin.

    Attributes:
        sam: a SAM checkpoint folder in transformers' format (``SamModel.from_pretrained``; e.g. a local copy of
            ``facebook/sam-vit-huge``, u-LLaVA's SAM ViT-H). Nothing is downloaded.
        sam_config: instead of ``sam``, a ``SamConfig`` dict whose weights are drawn from ``init_seed`` (tests,
            tiny models). Exactly one of the two.
        init_seed: seeds the weights built from ``sam_config``.
        projection_dim: hidden width of the ``[SEG]`` projection ``llm_dim -> projection_dim -> SAM prompt dim``
            (``None``: the LLM width, as u-LLaVA's ``[4096 -> 4096, 4096 -> 256]``).
        bce_weight, dice_weight: u-LLaVA's alpha1 = 2.0 and alpha2 = 0.5; ``dice_scale``: its Dice scale 1000.
        modality: the input plugin whose first item of a row SAM segments (an image).
        threshold: mask logit above which a pixel is in the returned mask.
        embedding_cache: a folder where SAM image embeddings are stored on disk, keyed by the preprocessed image's
            content and the SAM image encoder's fingerprint (``None``: memory only).
        cache_items: how many image embeddings are kept in memory (0: none); one takes 4 MiB for SAM's released
            models (256 x 64 x 64 floats), so the default 256 holds about 1 GiB.
    """

    plugin_type: str = "seg"
    sam: str | None = None
    sam_config: dict[str, Any] | None = None
    init_seed: int = 0
    projection_dim: int | None = None
    bce_weight: float = ULLAVA_BCE_WEIGHT
    dice_weight: float = ULLAVA_DICE_WEIGHT
    dice_scale: float = DICE_SCALE
    modality: str = "image"
    threshold: float = 0.0
    embedding_cache: str | None = None
    cache_items: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sam is not None and self.sam_config is not None:
            raise ConfigError("seg: give sam (a SAM checkpoint folder) or sam_config (a SamConfig dict), not both")
        if self.projection_dim is not None and self.projection_dim < 1:
            raise ConfigError(f"projection_dim={self.projection_dim}: expected a width >= 1 (or null: the LLM width)")
        for name in ("bce_weight", "dice_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a number >= 0")
        if not self.dice_scale > 0:
            raise ConfigError(f"dice_scale={self.dice_scale}: expected a number > 0")
        if not math.isfinite(self.threshold):
            raise ConfigError(f"threshold={self.threshold}: expected a finite mask logit")
        if self.cache_items < 0:
            raise ConfigError(f"cache_items={self.cache_items}: expected 0 (no memory cache) or more")
