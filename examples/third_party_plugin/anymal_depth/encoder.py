"""A small ResNet-style CNN that encodes a depth map (plus its validity mask) into a grid of features."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
            nn.GroupNorm(8, channels_out),
            nn.SiLU(),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False),
            nn.GroupNorm(8, channels_out),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and channels_in == channels_out
            else nn.Conv2d(channels_in, channels_out, 1, stride, bias=False)
        )
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class DepthEncoder(nn.Module):
    """``[n, 2, H, W]`` (scaled depth, mask) to ``[n, widths[-1], H / 2**len(widths), W / 2**len(widths)]``."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(2, widths[0], 3, 1, 1)]
        channels = widths[0]
        for width in widths:
            layers.append(ResidualBlock(channels, width, stride=2))
            channels = width
        self.net = nn.Sequential(*layers)
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
