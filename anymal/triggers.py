"""Finding output plugins' trigger tokens in a batch and tapping the LLM's last hidden state there.

The last-layer hidden state is read with a forward hook on the LLM's decoder (the transformer body below the LM
head) rather than ``output_hidden_states=True``, which would keep every layer's states: the hook holds one
``[batch, length, dim]`` tensor, with its autograd graph in training.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from anymal.errors import ConfigError
from anymal.output_plugin import TriggerStates


def llm_decoder(llm: Any) -> torch.nn.Module:
    """The transformer body of a HF causal LM (``LlamaModel`` inside ``LlamaForCausalLM``), PEFT-wrapped or not."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    getter = getattr(base, "get_decoder", None)
    decoder = getter() if getter is not None else None
    if decoder is None:
        raise ConfigError(f"{type(base).__name__} has no get_decoder(): output plugins cannot read its hidden states")
    return decoder


class _Captured:
    value: torch.Tensor | None = None


@contextmanager
def capture_last_hidden(llm: Any) -> Iterator[_Captured]:
    """Within the block, ``captured.value`` is the last hidden state ``[batch, length, dim]`` of the LLM's most
    recent forward (after the final norm, i.e. what the LM head reads)."""
    captured = _Captured()

    def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        captured.value = output[0] if isinstance(output, tuple) else output.last_hidden_state

    handle = llm_decoder(llm).register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def trigger_states(
    hidden: torch.Tensor, token_ids: torch.Tensor, trigger_ids: Sequence[int], tap: str
) -> TriggerStates:
    """The hidden states of every occurrence of ``trigger_ids`` in ``token_ids`` (``[batch, length]``, aligned with
    ``hidden``), row by row, left to right. ``tap="before"`` reads the position before each occurrence (the state
    that predicts the token), ``"at"`` the occurrence itself. An occurrence at position 0 has no state before it
    and is skipped under ``"before"`` (it cannot be a generated or target token)."""
    ids = torch.as_tensor(list(trigger_ids), device=token_ids.device)
    found = torch.isin(token_ids, ids)
    if tap == "before":
        found[:, 0] = False
    rows, cols = found.nonzero(as_tuple=True)  # row-major: reading order
    read = cols - 1 if tap == "before" else cols
    token = (token_ids[rows, cols].unsqueeze(1) == ids.unsqueeze(0)).int().argmax(dim=1)
    counts = torch.bincount(rows, minlength=token_ids.shape[0]).tolist()
    return TriggerStates(states=hidden[rows, read], rows=rows, token=token, counts=counts)
