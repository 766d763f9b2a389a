"""The image plugin's projector types (``projector_type``), patch features ``[n, P, D]`` to ``[n, num_tokens, llm]``:

* ``perceiver`` (AnyMAL, Flamingo): :mod:`anymal_image.resampler`, ``num_tokens`` learned latents.
* ``linear`` (LLaVA, Pink, u-LLaVA): one ``nn.Linear`` per patch token; ``num_tokens`` is the patch count.
* ``cross_attention_2d`` (Qwen-VL's position-aware VL adapter): :class:`CrossAttention2D`, one cross-attention
  layer, ``num_tokens`` (a square) learned queries, fixed 2-D sin-cos positions added to queries and keys.
* ``qformer`` (BLIP-2 / InstructBLIP / Ying-VLM): :class:`QFormerProjector`, transformers' ``Blip2QFormerModel``
  over ``num_tokens`` learned queries, then a linear projection to the LLM width.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anymal.errors import ConfigError
from anymal_image.config import PROJECTOR_TYPES


def sincos_2d(dim: int, grid: int) -> np.ndarray:
    """MAE's fixed 2-D sin-cos table ``[grid * grid, dim]`` (half the channels encode rows, half columns), the one
    Qwen-VL's resampler adds to its queries and keys."""
    if dim % 4:
        raise ConfigError(f"cross_attention_2d: the LLM width {dim} must be a multiple of 4 for 2-D sin-cos positions")

    def one_axis(positions: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
        out = np.einsum("m,d->md", positions.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    ys, xs = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    # MAE's convention: the first half of the channels encodes the w (column) coordinate
    return np.concatenate([one_axis(xs), one_axis(ys)], axis=1).astype(np.float32)


def resize_positions(table: torch.Tensor, n_keys: int) -> torch.Tensor:
    """A ``[g*g, dim]`` position table bicubic-interpolated to ``n_keys`` (a square) positions (Qwen's get_abs_pos)."""
    grid, target = math.isqrt(table.shape[0]), math.isqrt(n_keys)
    if target * target != n_keys:
        raise ConfigError(
            f"cross_attention_2d: {n_keys} image features is not a square patch grid (set keep_cls_token: false)"
        )
    if target == grid:
        return table
    square = table.float().reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square, size=(target, target), mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1).reshape(n_keys, -1).to(table.dtype)


class CrossAttention2D(nn.Module):
    """Qwen-VL's VL adapter (``visual.py::Resampler`` + ``ln_post`` + ``proj``): ``num_queries`` learned queries
    attend once to the ViT patch features; fixed 2-D sin-cos positions are added to queries and keys (not values)."""

    def __init__(self, in_dim: int, out_dim: int, num_queries: int = 256, heads: int | None = None) -> None:
        super().__init__()
        grid = math.isqrt(num_queries)
        if grid * grid != num_queries:
            raise ConfigError(f"num_tokens={num_queries}: cross_attention_2d needs a square number of queries (256)")
        heads = heads or max(1, out_dim // 128)  # Qwen-VL: 4096 / 128 = 32 heads
        if out_dim % heads:
            raise ConfigError(f"resampler_heads={heads}: the LLM width {out_dim} is not a multiple of it")
        self.query = nn.Parameter(torch.empty(num_queries, out_dim))
        if not self.query.is_meta:
            nn.init.trunc_normal_(self.query, std=0.02)
        self.register_buffer("pos", torch.from_numpy(sincos_2d(out_dim, grid)), persistent=False)
        self.kv_proj = nn.Linear(in_dim, out_dim, bias=False) if in_dim != out_dim else nn.Identity()
        self.attn = nn.MultiheadAttention(out_dim, heads, batch_first=True)
        self.ln_q = nn.LayerNorm(out_dim, eps=1e-6)
        self.ln_kv = nn.LayerNorm(out_dim, eps=1e-6)
        self.ln_post = nn.LayerNorm(out_dim, eps=1e-6)
        self.proj = nn.Parameter(torch.empty(out_dim, out_dim))
        if not self.proj.is_meta:
            nn.init.normal_(self.proj, std=out_dim**-0.5)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        kv = self.ln_kv(self.kv_proj(features))
        pos_k = resize_positions(self.pos, kv.shape[1]).to(kv.dtype)
        q = (self.ln_q(self.query) + self.pos.to(kv.dtype)).unsqueeze(0).expand(kv.shape[0], -1, -1)
        out, _ = self.attn(q, kv + pos_k, kv, need_weights=False)
        return self.ln_post(out) @ self.proj


class QFormerProjector(nn.Module):
    """BLIP-2's querying transformer as the projector: ``num_queries`` learned query embeddings go through
    ``Blip2QFormerModel`` (self-attention, cross-attention to the image features every ``cross_attention_frequency``
    layers), then ``language_projection`` to the LLM width. ``qformer_config`` overrides ``Blip2QFormerConfig``
    (defaults: BLIP-2's 12-layer, 768-wide BERT-base Q-Former)."""

    def __init__(self, in_dim: int, out_dim: int, num_queries: int = 32, qformer_config: dict[str, Any] | None = None):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        config = Blip2QFormerConfig(**{**(qformer_config or {}), "encoder_hidden_size": in_dim})
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, config.hidden_size))
        if not self.query_tokens.is_meta:
            nn.init.normal_(self.query_tokens, std=config.initializer_range)
        self.qformer = Blip2QFormerModel(config)
        self.language_projection = nn.Linear(config.hidden_size, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.expand(features.shape[0], -1, -1).to(features.dtype)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=features).last_hidden_state
        return self.language_projection(out)


def build_head(config: Any, in_dim: int, llm_dim: int, n_features: int | None) -> nn.Module:
    """The projector ``config.projector_type`` names; ``n_features`` is the tower's tokens per image (when known),
    which a ``linear`` projector passes through one to one."""
    from anymal_image.resampler import resampler_from_config

    kind = config.projector_type
    if kind == "perceiver":
        return resampler_from_config(config, in_dim, llm_dim)
    if kind == "linear":
        if n_features is not None and config.num_tokens != n_features:
            raise ConfigError(
                f"num_tokens={config.num_tokens}: projector_type='linear' passes every image feature through, and "
                f"this tower gives {n_features} per image; set num_tokens={n_features}"
            )
        return nn.Linear(in_dim, llm_dim)
    if kind == "cross_attention_2d":
        return CrossAttention2D(in_dim, llm_dim, config.num_tokens, config.cross_attention_heads)
    if kind == "qformer":
        return QFormerProjector(in_dim, llm_dim, config.num_tokens, config.qformer_config)
    raise ConfigError(f"projector_type={kind!r}: expected one of {', '.join(PROJECTOR_TYPES)}")
