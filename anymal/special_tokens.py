"""New vocabulary tokens on a frozen (even 4-bit) LLM: trainable rows beside the frozen embedding and LM head.

Output plugins add trigger tokens (``[LOC]``, ``[SEG]``). Resizing the LLM's embedding matrix would copy it, make the
whole matrix a trainable candidate and change the base weights; PEFT's ``trainable_token_indices`` needs the tokens
to exist in that matrix already. Instead the LLM's input embedding and LM head are wrapped: ids below the base
vocabulary size read the frozen matrix untouched, the ``k`` new ids read a small ``[k, dim]`` trainable matrix,
and the LM head appends ``k`` logits computed from its own ``[k, dim]`` rows. The base matrices are the same
tensors as before (same storage, same fingerprint); only the new rows train and are saved, per plugin.

The rows live in :class:`TokenRows` modules owned by the model (``model.token_rows[<plugin>]``), not inside the
LLM, so that LoRA adapters, the frozen-LLM policy and checkpoints see them as the plugin's weights. The wrappers
hold them by reference only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import nn

from anymal.errors import ConfigError


def weight_of(module: nn.Module) -> torch.Tensor:
    """``module.weight`` (an embedding's or a linear layer's matrix), typed."""
    return cast(torch.Tensor, module.weight)


class TokenRows(nn.Module):
    """``k`` new tokens' input-embedding rows (``embed``) and LM-head rows (``head``; the same tensor when
    ``base_head`` is None), initialised to the mean of the base rows as u-LLaVA initialises its new tokens.
    :class:`anymal.AnyMAL` always gives them separate rows, even on an LLM that ties its embeddings."""

    def __init__(self, tokens: Sequence[str], base_embed: torch.Tensor, base_head: torch.Tensor | None) -> None:
        super().__init__()
        self.tokens: list[str] = list(tokens)
        self.embed: nn.Parameter
        self.head: nn.Parameter
        k = len(self.tokens)
        with torch.no_grad():
            mean = base_embed.detach().float().mean(dim=0, keepdim=True)
            self.embed = nn.Parameter(mean.repeat(k, 1).to(torch.float32))
            self.tied = base_head is None
            if base_head is not None:
                head_mean = base_head.detach().float().mean(dim=0, keepdim=True)
                self.head = nn.Parameter(head_mean.repeat(k, 1).to(torch.float32))

    def head_rows(self) -> torch.Tensor:
        return self.embed if self.tied else self.head


class ExtendedEmbedding(nn.Module):
    """The LLM's frozen input embedding plus new rows: ids ``>= base_size`` read the rows of ``rows()``."""

    def __init__(self, base: nn.Module, rows: Callable[[], torch.Tensor]) -> None:
        super().__init__()
        self.base = base
        self._rows = [rows]  # a list, so that the rows' owner module is not registered a second time here
        self.base_size = int(weight_of(base).shape[0])

    @property
    def weight(self) -> torch.Tensor:
        """The base matrix (what HF code reads for the dtype and device of the embedding)."""
        return weight_of(self.base)

    @property
    def num_embeddings(self) -> int:
        """Ids this embedding answers to: the base vocabulary plus the added tokens."""
        return self.base_size + int(self._rows[0]().shape[0])

    @property
    def embedding_dim(self) -> int:
        return int(weight_of(self.base).shape[1])

    @property
    def padding_idx(self) -> int | None:
        return getattr(self.base, "padding_idx", None)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        new = input_ids >= self.base_size
        if not bool(new.any()):
            return self.base(input_ids)
        out = self.base(input_ids.masked_fill(new, 0))
        rows = self._rows[0]().to(device=out.device, dtype=out.dtype)
        added = rows[(input_ids - self.base_size).clamp(min=0)]
        return torch.where(new.unsqueeze(-1), added, out)


class ExtendedHead(nn.Module):
    """The LLM's frozen LM head plus ``k`` more logits from new rows (no bias)."""

    def __init__(self, base: nn.Module, rows: Callable[[], torch.Tensor]) -> None:
        super().__init__()
        self.base = base
        self._rows = [rows]

    @property
    def weight(self) -> torch.Tensor:
        return weight_of(self.base)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.base(hidden)
        rows = self._rows[0]()
        extra = hidden.to(rows.dtype) @ rows.t()
        return torch.cat([logits, extra.to(logits.dtype)], dim=-1)


def base_modules(llm: Any) -> tuple[nn.Module, nn.Module]:
    """The LLM's own (unwrapped) input embedding and LM head."""
    embed, head = llm.get_input_embeddings(), llm.get_output_embeddings()
    if isinstance(embed, ExtendedEmbedding):
        embed = embed.base
    if isinstance(head, ExtendedHead):
        head = head.base
    return embed, head


def base_vocab_size(llm: Any) -> int:
    """Rows of the LLM's own embedding matrix (the first new token's id)."""
    return int(weight_of(base_modules(llm)[0]).shape[0])


def install(llm: Any, rows: Callable[[], torch.Tensor], head_rows: Callable[[], torch.Tensor], count: int) -> None:
    """Wraps ``llm``'s embedding and LM head so that ids ``V .. V + count - 1`` use the given rows (``count=0``
    unwraps). ``llm.config.vocab_size`` follows, as HF's causal-LM loss and generation read it."""
    embed, head = base_modules(llm)
    base_size = int(weight_of(embed).shape[0])
    if count == 0:
        llm.set_input_embeddings(embed)
        llm.set_output_embeddings(head)
    else:
        llm.set_input_embeddings(ExtendedEmbedding(embed, rows))
        llm.set_output_embeddings(ExtendedHead(head, head_rows))
    llm.config.vocab_size = base_size + count
    text_config = getattr(llm.config, "get_text_config", None)
    if text_config is not None:
        text_config().vocab_size = base_size + count


def add_to_tokenizer(tokenizer: Any, tokens: Sequence[str], first_id: int) -> list[int]:
    """Adds ``tokens`` to ``tokenizer`` (kept whole, visible in decoded text) and checks they get the ids
    ``first_id, first_id + 1, ...`` that the LLM's added rows answer to; returns their ids."""
    from tokenizers import AddedToken

    missing = [t for t in tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in missing])
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    expected = list(range(first_id, first_id + len(tokens)))
    if ids != expected:
        raise ConfigError(
            f"new tokens {list(tokens)} got ids {ids} from the tokenizer, but the LLM's added rows are "
            f"{expected}: the tokenizer ({len(tokenizer)} entries) and the LLM's vocabulary must end at the same id "
            "before tokens are added"
        )
    return ids
