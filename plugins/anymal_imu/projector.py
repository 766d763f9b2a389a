"""The trainable IMU projector: frozen encoder features to ``num_tokens`` LLM input embeddings.

AnyMAL maps IMU features to the LLM with linear layers. A single ``Linear(embed_dim, num_tokens * llm_dim)`` would
hold ~100M parameters for 32 tokens of a 4096-wide LLM, so the projection is factored: a per-token linear map into a
small ``rank``-wide space, GELU, then one linear map shared by all tokens into the LLM width.

* ``pooled`` input: the unit-norm text-aligned embedding ``[B, embed_dim]`` is expanded to ``[B, K, rank]``;
* ``sequence`` input: the encoder's ``[B, S, width]`` features are average-pooled over time to ``K`` positions and
  mapped position-wise to ``rank``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class IMUProjector(nn.Module):
    """Maps the encoder's output dict to ``[B, num_tokens, llm_dim]``.

    Args:
        in_dim: ``embed_dim`` for ``pooled`` input, the encoder ``width`` for ``sequence`` input.
        llm_dim: Width of the LLM's input embeddings.
        num_tokens: Tokens per IMU item.
        rank: Inner width.
        source: ``"pooled"`` or ``"sequence"``.
    """

    def __init__(self, in_dim: int, llm_dim: int, num_tokens: int, rank: int, source: str = "pooled") -> None:
        super().__init__()
        self.source = source
        self.num_tokens = num_tokens
        self.rank = rank
        self.norm = nn.LayerNorm(in_dim)
        self.expand = nn.Linear(in_dim, num_tokens * rank if source == "pooled" else rank)
        self.act = nn.GELU()
        self.out = nn.Linear(rank, llm_dim)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.source == "pooled":
            hidden = self.expand(self.norm(features["embeds"])).unflatten(-1, (self.num_tokens, self.rank))
        else:
            sequence = F.adaptive_avg_pool1d(features["features"].transpose(1, 2), self.num_tokens)
            hidden = self.expand(self.norm(sequence.transpose(1, 2)))
        return self.out(self.act(hidden))
