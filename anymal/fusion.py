"""Splicing projected modality tokens into the LLM's text embeddings.

Input rows are token-id lists in which each modality item is one sentinel id (see ``processing``). Each sentinel
expands to that item's ``[num_tokens, dim]`` projected embeddings; rows are then padded (left for generation,
right for training) into ``inputs_embeds``, ``attention_mask`` and ``labels``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from anymal.errors import InputError
from anymal.processing import IGNORE_INDEX, sentinel_index


@dataclass
class FusedInputs:
    """What the LLM consumes: padded embeddings, attention mask and (for training) labels."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None = None


def pad_to_multiple(fused: FusedInputs, multiple: int | None) -> FusedInputs:
    """Right-pads to a multiple of ``multiple`` positions (masked out, labels ignored); ``None``: unchanged.

    Training batches then come in a few lengths: on CUDA the first step at each new length costs 1-2 s more
    (measured on an H200 with a 7B 4-bit LLM), and captioning instructions re-drawn every epoch make new lengths.
    """
    length = fused.inputs_embeds.shape[1]
    extra = -length % multiple if multiple else 0
    if not extra:
        return fused
    pad = torch.nn.functional.pad
    labels = None if fused.labels is None else pad(fused.labels, (0, extra), value=IGNORE_INDEX)
    return FusedInputs(pad(fused.inputs_embeds, (0, 0, 0, extra)), pad(fused.attention_mask, (0, extra)), labels)


def as_int_rows(rows: Sequence[Sequence[object]], what: str = "input_ids") -> list[list[int]]:
    """``rows`` as lists of Python ints; a float, bool or other non-integer id is an InputError naming it.

    Floats are refused rather than truncated: ``5.7`` is not a token id, and ``int()`` would silently make it 5.
    """
    out: list[list[int]] = []
    for r, row in enumerate(rows):
        if isinstance(row, torch.Tensor) and not (
            row.is_floating_point() or row.is_complex() or row.dtype == torch.bool
        ):
            row = row.tolist()  # an integer tensor row: fast path
        if isinstance(row, (str, bytes)) or not isinstance(row, (Sequence, torch.Tensor)):
            raise InputError(f"{what} row {r}: expected a sequence of integer token ids, got {type(row).__name__}")
        ints = []
        for pos, token in enumerate(row):
            try:
                if isinstance(token, bool):
                    raise TypeError
                # int, numpy integers, 0-d integer tensors; never floats
                ints.append(operator.index(token))  # type: ignore[arg-type]
            except TypeError:
                raise InputError(
                    f"{what} row {r} position {pos}: {token!r} ({type(token).__name__}) is not a token id; "
                    "expected integer ids"
                ) from None
        out.append(ints)
    return out


def check_token_ids(
    rows: Sequence[Sequence[int]], vocab_size: int | None, n_modalities: int, what: str = "input_ids"
) -> None:
    """Every id is a vocabulary id (``0 <= id < vocab_size``) or the sentinel of one of the model's modalities."""
    for r, row in enumerate(rows):
        for pos, token in enumerate(row):
            k = sentinel_index(token)
            if k >= n_modalities:
                raise InputError(
                    f"{what} row {r} position {pos}: modality sentinel id {token} names modality index {k}, but "
                    f"this model has {n_modalities} modalit{'y' if n_modalities == 1 else 'ies'}"
                )
            if k < 0 and (token < 0 or (vocab_size is not None and token >= vocab_size)):
                bound = f"0 to {vocab_size - 1}" if vocab_size is not None else "a non-negative id"
                raise InputError(
                    f"{what} row {r} position {pos}: token id {token} is outside the LLM's vocabulary of "
                    f"{vocab_size} ids; expected {bound}"
                )


def count_sentinels(rows: Sequence[Sequence[int]], n_modalities: int) -> list[int]:
    """How many items of each modality (by index) the rows reference."""
    counts = [0] * n_modalities
    for row in rows:
        for token in row:
            k = sentinel_index(int(token))
            if k >= 0:
                counts[k] += 1
    return counts


def splice(
    rows: Sequence[Sequence[int]],
    embed_tokens: Callable[[torch.Tensor], torch.Tensor],
    modality_tokens: Sequence[torch.Tensor | None],
    modality_names: Sequence[str],
    labels: Sequence[Sequence[int]] | None = None,
    padding_side: str = "right",
    max_length: int | None = None,
) -> FusedInputs:
    """Builds padded LLM inputs from sentinel rows and per-modality projected tokens.

    Args:
        rows: token ids per row; sentinel ids mark modality items, consumed in row-major order.
        embed_tokens: the LLM's input-embedding module.
        modality_tokens: per modality index, ``[n_items, num_tokens, dim]`` (or ``None`` when unused).
        modality_names: names by modality index, for error messages.
        labels: per-row labels aligned with ``rows`` (training) or ``None`` (inference).
        padding_side: ``"left"`` for generation, ``"right"`` for training.
        max_length: the LLM context; a longer expanded row is an ``InputError``.
    """
    n_mod = len(modality_names)
    weight = getattr(embed_tokens, "weight", None)
    rows = as_int_rows(rows)
    vocab_size = int(weight.shape[0]) if weight is not None and weight.dim() == 2 else None
    vocab_size = getattr(embed_tokens, "num_embeddings", vocab_size)  # with added tokens beside the base matrix
    check_token_ids(rows, vocab_size, n_mod)
    needed = count_sentinels(rows, n_mod)
    for k, name in enumerate(modality_names):
        tokens = modality_tokens[k]
        have = 0 if tokens is None else tokens.shape[0]
        if needed[k] != have:
            raise InputError(f"the batch references {needed[k]} {name} item(s) but {have} were encoded")

    weight_device = weight.device if weight is not None else None
    text_dtype = weight.dtype if weight is not None and weight.is_floating_point() else None
    used = [0] * n_mod
    row_embeds: list[torch.Tensor] = []
    row_labels: list[torch.Tensor] = []
    for r, row in enumerate(rows):
        pieces: list[torch.Tensor] = []
        piece_labels: list[torch.Tensor] = []
        start = 0
        for pos in range(len(row) + 1):
            k = sentinel_index(row[pos]) if pos < len(row) else -2
            if k == -1:
                continue
            if pos > start:  # a run of text tokens
                ids = torch.tensor(row[start:pos], dtype=torch.long, device=weight_device)
                pieces.append(embed_tokens(ids))
                if labels is not None:
                    piece_labels.append(torch.tensor(labels[r][start:pos], dtype=torch.long))
            if k >= 0:
                tokens = modality_tokens[k]
                assert tokens is not None  # the count check above: every referenced modality was encoded
                item = tokens[used[k]]
                used[k] += 1
                pieces.append(item)
                piece_labels.append(torch.full((item.shape[0],), IGNORE_INDEX, dtype=torch.long))
            start = pos + 1
        if not pieces:
            raise InputError(f"row {r} of the batch is empty: give a prompt, input_ids or a modality input")
        # projectors may run in fp32 while the LLM runs in bf16: modality tokens take the text embeddings' dtype
        row_embeds.append(torch.cat([p.to(text_dtype or pieces[0].dtype) for p in pieces], dim=0))
        if labels is not None:
            row_labels.append(torch.cat(piece_labels, dim=0))

    lengths = [e.shape[0] for e in row_embeds]
    if max_length is not None and max(lengths) > max_length:
        r = lengths.index(max(lengths))
        n_mod_tokens = sum(t.shape[1] for t in modality_tokens[:n_mod] if t is not None)
        raise InputError(
            f"row {r} is {lengths[r]} tokens long after expanding modality placeholders "
            f"(modality tokens per item: {n_mod_tokens}), longer than the LLM context of {max_length} tokens; "
            "shorten the prompt or use fewer modality inputs/tokens"
        )
    width = max(lengths)
    device = row_embeds[0].device
    embeds, masks, out_labels = [], [], []
    for r, (emb, length) in enumerate(zip(row_embeds, lengths)):
        pad = (0, width - length) if padding_side == "right" else (width - length, 0)
        embeds.append(torch.nn.functional.pad(emb, (0, 0, *pad)))
        masks.append(torch.nn.functional.pad(torch.ones(length, dtype=torch.long, device=device), pad))
        if labels is not None:
            out_labels.append(torch.nn.functional.pad(row_labels[r].to(device), pad, value=IGNORE_INDEX))
    return FusedInputs(
        inputs_embeds=torch.stack(embeds),
        attention_mask=torch.stack(masks),
        labels=torch.stack(out_labels) if labels is not None else None,
    )
