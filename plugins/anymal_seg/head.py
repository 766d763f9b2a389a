"""The trainable part of the ``[SEG]`` decoder: a projection into SAM's prompt space, and SAM's mask decoder.

As u-LLaVA (and LISA): the ``[SEG]`` hidden state goes through an MLP (``llm_dim -> hidden -> SAM prompt dim``,
ReLU) and becomes one sparse prompt embedding; the dense prompt is SAM's ``no_mask_embed``; SAM's mask decoder
(``multimask_output=False``) reads the frozen image embedding with SAM's image-wide positional encoding and
returns low-resolution mask logits. The prompt encoder and the positional encoding are SAM's frozen parts
(:class:`anymal_seg.plugin.SamFrozen`) and are passed in. The decoder's IoU head is part of the head but no loss
reaches it (u-LLaVA freezes it): the optimiser leaves parameters without a gradient untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def prompt_inputs(frozen: nn.Module, n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's dense prompt (``no_mask_embed`` everywhere) ``[n, C, g, g]`` and image-wide positional encoding
    ``[n, C, g, g]`` (``SamModel.get_image_wide_positional_embeddings``) from its frozen parts."""
    prompt_encoder = frozen.prompt_encoder
    size = int(prompt_encoder.image_embedding_size[0])
    weight = prompt_encoder.no_mask_embed.weight
    dense = weight.to(dtype).reshape(1, -1, 1, 1).expand(n, -1, size, size)
    grid = torch.ones((size, size), device=weight.device, dtype=dtype)
    y = (grid.cumsum(dim=0) - 0.5) / size
    x = (grid.cumsum(dim=1) - 0.5) / size
    positions = frozen.shared_image_embedding(torch.stack([x, y], dim=-1)).permute(2, 0, 1).unsqueeze(0)
    return dense, positions.to(dtype).expand(n, -1, -1, -1)


class SegHead(nn.Module):
    """``[SEG]`` states ``[N, llm_dim]`` + image embeddings ``[N, C, g, g]`` -> mask logits ``[N, 4g, 4g]``."""

    def __init__(self, sam, llm_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        prompt_dim = int(sam.config.prompt_encoder_config.hidden_size)
        hidden = hidden_dim or llm_dim
        self.projection = nn.Sequential(nn.Linear(llm_dim, hidden), nn.ReLU(), nn.Linear(hidden, prompt_dim))
        self.mask_decoder = copy.deepcopy(sam.mask_decoder)  # each head its own copy of SAM's pretrained decoder

    def forward(
        self, states: torch.Tensor, image_embeddings: torch.Tensor, dense: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        if states.shape[0] != image_embeddings.shape[0]:
            raise ValueError(f"SegHead: {states.shape[0]} [SEG] states for {image_embeddings.shape[0]} images")
        dtype = self.projection[0].weight.dtype
        sparse = self.projection(states.to(dtype)).view(states.shape[0], 1, 1, -1)
        low_res, _ = self.mask_decoder(
            image_embeddings=image_embeddings.to(dtype),
            image_positional_embeddings=positions.to(dtype),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense.to(dtype),
            multimask_output=False,
        )
        return low_res[:, 0, 0]
