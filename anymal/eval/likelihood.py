"""Log-likelihood of candidate answers given a prompt and its media: the scorer behind multiple choice and
classification, with no generation.

Each (prompt, candidate) pair is encoded as a one-exchange conversation exactly as training encodes it
(``PromptEncoder.encode_conversation``: the candidate is the assistant turn, followed by EOS without a chat
template), run through ``AnyMAL.forward(..., return_labels=True)`` with the modality tokens spliced in, and the
log-probabilities of the candidate's tokens are summed. Summing includes EOS, so the score is the log-probability
of answering exactly that candidate and stopping; ``mean`` divides by the token count. Pairs are batched across
candidates and items; each item's media are preprocessed once and reused for all of its candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from anymal.errors import ConfigError
from anymal.processing import IGNORE_INDEX
from anymal.records import Turn

NORMALIZATIONS = ("sum", "mean")


@dataclass
class ScoreRequest:
    """One prompt with its raw media (per modality, a list of raw inputs) and the candidate answers to score."""

    prompt: str
    candidates: Sequence[str]
    media: Mapping[str, Sequence[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class CandidateScore:
    """Summed log-probability of a candidate's tokens (EOS included) and how many tokens that is."""

    logprob: float
    n_tokens: int

    def value(self, normalize: str = "sum") -> float:
        """The ranking score: the sum, or the per-token mean."""
        return self.logprob if normalize == "sum" else self.logprob / max(self.n_tokens, 1)


def check_normalize(normalize: str) -> str:
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"normalize={normalize!r}: expected one of {', '.join(NORMALIZATIONS)}")
    return normalize


@torch.no_grad()
def score_candidates(
    model: Any, requests: Sequence[ScoreRequest], batch_size: int = 8, chat: bool | None = None
) -> list[list[CandidateScore]]:
    """Per request, per candidate, the candidate's log-likelihood under ``model`` (an :class:`anymal.AnyMAL`).

    ``batch_size`` counts (prompt, candidate) sequences per forward pass.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: must be >= 1")
    use_chat = model.config.llm.apply_chat_template if chat is None else chat
    was_training = model.training
    model.eval()
    encoder = model.prompt_encoder
    pairs = [(r, c) for r, request in enumerate(requests) for c in range(len(request.candidates))]
    preprocessed: dict[int, dict[str, list[Any]]] = {}
    out: list[list[CandidateScore]] = [[] for _ in requests]
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            rows, label_rows = [], []
            media: dict[str, list[Any]] = {}
            for r, c in chunk:
                request = requests[r]
                counts = {name: len(items) for name, items in request.media.items() if items}
                turns = [Turn("user", request.prompt), Turn("assistant", request.candidates[c])]
                ids, labels = encoder.encode_conversation(turns, counts, chat=use_chat, where=f"request {r}")
                rows.append(ids)
                label_rows.append(labels)
                if r not in preprocessed:
                    preprocessed = {r: {n: [model.plugins[n].preprocess(x) for x in items]
                                        for n, items in request.media.items() if items}}  # fmt: skip
                for name, items in preprocessed[r].items():
                    media.setdefault(name, []).extend(items)
            batches = {name: model.plugins[name].collate(items) for name, items in media.items()}
            result = model(input_ids=rows, labels=label_rows, modality_inputs=batches, return_labels=True,
                           use_cache=False)  # fmt: skip
            logits, labels = result.logits.float(), result.labels
            mask = labels != IGNORE_INDEX
            logp = F.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            sums = (logp * mask).sum(dim=1).tolist()
            counts_ = mask.sum(dim=1).tolist()
            for (r, _), total, n in zip(chunk, sums, counts_):
                out[r].append(CandidateScore(float(total), int(n)))
    finally:
        model.train(was_training)
    return out
