"""The IMU encoder: an IMU2CLIP-style network mapping a ``[B, 6, T]`` window to a text-aligned embedding.

IMU2CLIP (Moon et al., 2022) aligns IMU windows with CLIP's embedding space using a 1-D convolution stack followed by
a recurrent layer; its weights were never released and its code is non-commercial, so this is an independent
implementation from the paper's description, with three interchangeable trunks (``encoder_type``):

* ``conv_gru``: conv blocks (Conv1d, GroupNorm, GELU, max-pool by 2) then a GRU; the pooled vector is the GRU's last
  hidden state of the top layer;
* ``conv_attention``: the same conv blocks, pooled by one learned query attending over time;
* ``patch_transformer``: non-overlapping time patches, linearly embedded, with a CLS token and learned positions,
  through a pre-norm transformer; the pooled vector is the CLS output.

Every trunk returns ``embeds`` (``[B, embed_dim]``, the pooled vector projected into the text embedding space, not
normalised) and ``features`` (``[B, S, width]``, per-time-step features). No layer depends on other items of the
batch, so a window encodes the same alone or batched.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from anymal_imu.config import NUM_CHANNELS, IMUPluginConfig


class ConvBlock(nn.Module):
    """Conv1d + GroupNorm + GELU, then max-pooling that halves the time axis."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.GroupNorm(_groups(out_channels), out_channels)
        self.act = nn.GELU()
        self.pool = nn.MaxPool1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.norm(self.conv(x))))


def _groups(channels: int) -> int:
    for groups in (8, 4, 2):
        if channels % groups == 0:
            return groups
    return 1


class ConvStack(nn.Module):
    """``conv_layers`` conv blocks: ``[B, C, T]`` to ``[B, width, T / 2**conv_layers]``."""

    def __init__(self, config: IMUPluginConfig) -> None:
        super().__init__()
        channels = [NUM_CHANNELS] + [config.width] * config.conv_layers
        self.blocks = nn.Sequential(*(ConvBlock(a, b, config.kernel_size) for a, b in itertools.pairwise(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class ConvGRUTrunk(nn.Module):
    """Conv stack then a GRU; pooled = the top layer's final hidden state."""

    def __init__(self, config: IMUPluginConfig) -> None:
        super().__init__()
        self.conv = ConvStack(config)
        self.rnn = nn.GRU(config.width, config.width, num_layers=config.rnn_layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, hidden = self.rnn(self.conv(x).transpose(1, 2))
        return hidden[-1], features


class ConvAttentionTrunk(nn.Module):
    """Conv stack then attention pooling with one learned query; features are the conv outputs."""

    def __init__(self, config: IMUPluginConfig) -> None:
        super().__init__()
        self.conv = ConvStack(config)
        self.norm = nn.LayerNorm(config.width)
        self.query = nn.Parameter(torch.randn(1, 1, config.width) * config.width**-0.5)
        self.attn = nn.MultiheadAttention(config.width, config.heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.norm(self.conv(x).transpose(1, 2))
        query = self.query.expand(features.shape[0], -1, -1)
        pooled, _ = self.attn(query, features, features, need_weights=False)
        return pooled[:, 0], features


class PatchTransformerTrunk(nn.Module):
    """Time patches of ``patch_size`` samples, a CLS token and a pre-norm transformer encoder."""

    def __init__(self, config: IMUPluginConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        num_patches = config.window_samples // config.patch_size
        self.embed = nn.Linear(NUM_CHANNELS * config.patch_size, config.width)
        self.cls = nn.Parameter(torch.randn(1, 1, config.width) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, num_patches + 1, config.width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            config.width,
            config.heads,
            dim_feedforward=4 * config.width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, config.transformer_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, length = x.shape
        patches = x.reshape(batch, channels, length // self.patch_size, self.patch_size)
        patches = patches.permute(0, 2, 1, 3).reshape(batch, length // self.patch_size, channels * self.patch_size)
        tokens = torch.cat([self.cls.expand(batch, -1, -1), self.embed(patches)], dim=1) + self.pos
        tokens = self.norm(self.transformer(tokens))
        return tokens[:, 0], tokens[:, 1:]


TRUNKS = {"conv_gru": ConvGRUTrunk, "conv_attention": ConvAttentionTrunk, "patch_transformer": PatchTransformerTrunk}


class IMUEncoder(nn.Module):
    """A trunk plus a linear head into the ``embed_dim``-sized text embedding space.

    ``forward(x)`` takes ``[B, 6, window_samples]`` (the output of the plugin's preprocessing, stacked) and returns
    ``{"embeds": [B, embed_dim], "features": [B, S, width]}``.
    """

    def __init__(self, config: IMUPluginConfig) -> None:
        super().__init__()
        self.window_samples = config.window_samples
        self.trunk = TRUNKS[config.encoder_type](config)
        self.head = nn.Linear(config.width, config.embed_dim)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled, features = self.trunk(x)
        return {"embeds": self.head(pooled), "features": features}


def init_encoder(config: IMUPluginConfig) -> IMUEncoder:
    """Builds the encoder with a random init drawn from ``config.seed`` only (global RNG state is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return IMUEncoder(config)
