"""Trainable weights and optimiser state as whole tensors, whether the model runs plain, under DDP or sharded by
FSDP2 (``fully_shard``, accelerate's ``fsdp_version: 2``).

Under FSDP2 every parameter is a ``DTensor`` holding one shard per rank, so saving needs a gather and loading a
re-shard. Both are collectives: every rank must call these functions, in the same order. Checkpoints hold whole
tensors, so a run saved on N processes resumes on M (or on one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard

import torch
from torch import nn

if TYPE_CHECKING:  # both import slowly; only the annotations need them
    from torch.distributed.tensor import DTensor

    from anymal.modeling import AnyMAL


def _is_dtensor(value: Any) -> TypeGuard[DTensor]:
    from torch.distributed.tensor import DTensor

    return isinstance(value, DTensor)


def full_trainable_state(model: AnyMAL) -> dict[str, torch.Tensor]:
    """``model.trainable_state_dict()`` with every shard gathered, on CPU, on every rank."""
    state = {}
    for key, value in model.trainable_state_dict().items():
        if _is_dtensor(value):
            value = value.full_tensor()
        state[key] = value.detach().contiguous().cpu()
    return state


def load_full_trainable_state(model: nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Copies whole tensors into ``model``'s trainable parameters and buffers, re-sharding where FSDP2 sharded them.

    Raises ``KeyError`` naming the first key that is not a parameter or buffer of ``model``.
    """
    from torch.distributed.tensor import distribute_tensor

    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for key in sorted(weights):
            target = params.get(key, buffers.get(key))
            if target is None:
                raise KeyError(f"{source}: {key} is not a parameter of the model being trained")
            value = weights[key].to(dtype=target.dtype)
            if _is_dtensor(target):
                value = distribute_tensor(value.to(target.device), target.device_mesh, target.placements)
            target.copy_(value)


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's state keyed by parameter name, with whole tensors on CPU (empty on ranks other than 0).

    Uses ``torch.distributed.checkpoint.state_dict``, which understands DDP and FSDP and keys state by parameter
    name rather than by position, so the file does not depend on how the optimiser's groups were ordered.
    """
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the real one
    return get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Restores :func:`full_optimizer_state`'s output, sharding it again under FSDP2 (every rank passes it)."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    optimizer = getattr(optimizer, "optimizer", optimizer)
    set_optimizer_state_dict(model, optimizer, state, options=_options())
