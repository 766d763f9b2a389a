"""Learning-rate schedule: linear warm-up then cosine decay to zero (transformers' implementation)."""

from __future__ import annotations

import torch


def cosine_with_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
