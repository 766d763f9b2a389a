"""Trainable projectors from CLAP features to ``num_tokens`` LLM input embeddings.

AnyMAL projects the audio encoder's output with linear layers. Two feature choices are offered:

* ``PooledProjector`` maps CLAP's pooled, text-aligned embedding (one vector per clip, 512-d for LAION CLAP) to
  ``num_tokens`` tokens. This is the default: it is the representation CLAP aligned with text, which is what
  makes stage-1 alignment cheap, and it is the same whatever the clip length.
* ``SequenceProjector`` maps the encoder's last hidden states, averaged over frequency (a time sequence of
  ``4 * spec_size / 32`` frames, 32 for LAION CLAP), pooled to ``num_tokens`` positions. It keeps temporal order
  (what happens when) at the cost of using features that were never aligned with text directly.
"""

from __future__ import annotations

import torch
from torch import nn


class PooledProjector(nn.Module):
    """``[n, in_dim]`` -> ``[n, num_tokens, llm_dim]``.

    ``hidden_dim=None`` is the paper's single linear layer ``in_dim -> num_tokens * llm_dim``. With a hidden size,
    a first linear layer makes ``num_tokens`` distinct ``hidden_dim`` vectors and a GELU MLP layer shared across
    tokens lifts each to ``llm_dim`` (32 tokens into LLaMA-2-7B, hidden 1024: ~21M parameters instead of ~67M).
    """

    def __init__(self, in_dim: int, llm_dim: int, num_tokens: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.llm_dim = llm_dim
        width = llm_dim if hidden_dim is None else hidden_dim
        self.expand = nn.Linear(in_dim, num_tokens * width)
        self.out = None if hidden_dim is None else nn.Sequential(nn.GELU(), nn.Linear(hidden_dim, llm_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens = self.expand(features).unflatten(-1, (self.num_tokens, -1))
        return tokens if self.out is None else self.out(tokens)


class SequenceProjector(nn.Module):
    """``[n, frames, in_dim]`` -> ``[n, num_tokens, llm_dim]``: average-pool time to ``num_tokens``, then project.

    Adaptive average pooling keeps the order of events and is exact (no resampling artefacts) when the frame
    count is a multiple of ``num_tokens``; each pooled position then goes through the same linear layer (or
    two-layer GELU MLP with ``hidden_dim``).
    """

    def __init__(self, in_dim: int, llm_dim: int, num_tokens: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.pool = nn.AdaptiveAvgPool1d(num_tokens)
        if hidden_dim is None:
            self.proj = nn.Linear(in_dim, llm_dim)
        else:
            self.proj = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, llm_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(features.transpose(1, 2)).transpose(1, 2)
        return self.proj(pooled)
