"""u-LLaVA's box head: the ``[LOC]`` hidden state -> projector MLP -> location decoder MLP -> 4 coordinates."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn


def mlp(widths: Sequence[int]) -> nn.Sequential:
    """Linear layers through ``widths`` with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BoxHead(nn.Module):
    """``[N, llm_dim] -> [N, 4]`` normalised ``x0, y0, x1, y1`` (unconstrained: no output activation, as u-LLaVA)."""

    def __init__(self, llm_dim: int, projection_dim: int, decoder_dims: Sequence[int]) -> None:
        super().__init__()
        self.projector = mlp([llm_dim, llm_dim, projection_dim])
        self.decoder = mlp([projection_dim, *decoder_dims, 4])

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.projector(states))
