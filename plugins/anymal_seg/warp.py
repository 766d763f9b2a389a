"""Mask logits from SAM's input frame back to the original photo's pixels, through an ``anymal_box.Geometry``.

SAM predicts low-resolution logits covering its whole (resized, padded) input square. Each pixel of the photo is
mapped through the geometry (``x_in = scale * x + offset`` at the pixel's centre) and the logits are read there
with bilinear interpolation (``grid_sample``): one differentiable resampling, used both for the loss against masks
labelled on the photo and for the masks ``generate`` returns. LISA upsamples to the input size, crops the padding
and resizes to the photo; this reads the same surface at the same points in one step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from anymal_box import Geometry


def logits_to_source(logits: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """``[N, h, w]`` logits over ``geometry.dst`` (any resolution) -> ``[N, H, W]`` over ``geometry.src`` pixels."""
    if logits.dim() != 3:
        raise ValueError(f"logits_to_source: expected [N, h, w] logits, got shape {tuple(logits.shape)}")
    src_w, src_h = (round(v) for v in geometry.src)
    dst_w, dst_h = geometry.dst
    device, dtype = logits.device, torch.float32
    xs = (torch.arange(src_w, device=device, dtype=dtype) + 0.5) * geometry.scale[0] + geometry.offset[0]
    ys = (torch.arange(src_h, device=device, dtype=dtype) + 0.5) * geometry.scale[1] + geometry.offset[1]
    gx = (2 * xs / dst_w - 1).view(1, -1).expand(src_h, src_w)
    gy = (2 * ys / dst_h - 1).view(-1, 1).expand(src_h, src_w)
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0).expand(logits.shape[0], -1, -1, -1)
    sampled = F.grid_sample(
        logits.float().unsqueeze(1), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled.squeeze(1)
