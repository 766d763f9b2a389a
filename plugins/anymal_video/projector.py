"""Trainable video projectors: per-frame patch features ``[n, T, P, D]`` to LLM tokens ``[n, num_tokens, llm_dim]``.

Two ways to aggregate time, both reading the same frozen per-frame features:

* :class:`TemporalResampler` (Flamingo): learned temporal embeddings, then one Perceiver resampler over all
  ``T * P`` patch features of the clip; ``num_tokens`` does not depend on ``T``.
* :class:`MeanPoolProjector` (u-LLaVA / Video-ChatGPT): ``T`` spatially pooled frame tokens followed by ``P``
  temporally pooled patch tokens, then a linear or MLP projection; ``T + P`` tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from anymal_image.resampler import PerceiverResampler


def _check_features(features: torch.Tensor, n_frames: int, where: str) -> None:
    if features.dim() != 4 or features.shape[1] != n_frames:
        raise ValueError(f"{where} expects features [n, {n_frames} frames, patches, dim], got {tuple(features.shape)}")


class TemporalResampler(nn.Module):
    """Adds a learned embedding per frame slot to that frame's patches, then resamples the whole clip.

    The temporal embeddings start at zero, so ``resampler`` can be warm-started from an image plugin's trained
    Perceiver resampler (``projector.resampler.load_state_dict(image_projector.state_dict())``); a one-frame clip
    then gives exactly the image projector's tokens.
    """

    def __init__(self, resampler: PerceiverResampler, n_frames: int, in_dim: int) -> None:
        super().__init__()
        self.n_frames = n_frames
        self.temporal_embed = nn.Parameter(torch.zeros(n_frames, in_dim))
        self.resampler = resampler

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_features(features, self.n_frames, "TemporalResampler")
        n, t, p, d = features.shape
        media = features + self.temporal_embed[None, :, None, :].to(features.dtype)
        return self.resampler(media.reshape(n, t * p, d))


def mean_pool_tokens(features: torch.Tensor) -> torch.Tensor:
    """``[n, T, P, D]`` to ``[n, T + P, D]``: each frame's mean over patches, then each patch's mean over frames."""
    return torch.cat([features.mean(dim=2), features.mean(dim=1)], dim=1)


class MeanPoolProjector(nn.Module):
    """Spatial and temporal mean pooling (parameter-free) followed by a linear or 2-layer GELU MLP projection."""

    def __init__(self, in_dim: int, out_dim: int, n_frames: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        self.n_frames = n_frames
        if hidden_dim is None:
            self.proj = nn.Linear(in_dim, out_dim)
        else:
            self.proj = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_features(features, self.n_frames, "MeanPoolProjector")
        return self.proj(mean_pool_tokens(features))
