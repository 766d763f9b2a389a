"""The Perceiver resampler (Flamingo, as used by AnyMAL for vision): a fixed set of learned latent queries
cross-attends to a variable number of patch features, giving ``num_latents`` tokens per image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class PerceiverAttention(nn.Module):
    """Latents attend to the concatenation of media features and latents (keys/values), as in Flamingo."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        media, latents = self.norm_media(media), self.norm_latents(latents)
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([media, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int) -> None:
        super().__init__(
            nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(), nn.Linear(dim * mult, dim, bias=False)
        )


class PerceiverResampler(nn.Module):
    """Maps ``[n, tokens_in, in_dim]`` features to ``[n, num_latents, out_dim]`` LLM embeddings."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_latents: int = 64,
        depth: int = 2,
        dim: int = 1024,
        heads: int = 16,
        dim_head: int = 64,
        ff_mult: int = 4,
    ) -> None:
        super().__init__()
        self.input_proj = nn.Linear(in_dim, dim)
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, heads, dim_head), FeedForward(dim, ff_mult)]) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.output_proj = nn.Linear(dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        media = self.input_proj(features)
        latents = self.latents.unsqueeze(0).expand(media.shape[0], -1, -1)
        for attention, feed_forward in self.layers:
            latents = latents + attention(media, latents)
            latents = latents + feed_forward(latents)
        return self.output_proj(self.norm(latents))


def resampler_from_config(config, in_dim: int, out_dim: int) -> PerceiverResampler:
    """The resampler an ``ImagePluginConfig`` (or a config with the same ``resampler_*`` fields) describes."""
    return PerceiverResampler(
        in_dim=in_dim,
        out_dim=out_dim,
        num_latents=config.num_tokens,
        depth=config.resampler_depth,
        dim=config.resampler_dim or in_dim,  # default: the vision features' own width
        heads=config.resampler_heads,
        dim_head=config.resampler_dim_head,
        ff_mult=config.resampler_ff_mult,
    )
