"""Per-request sampling inside one batched ``generate`` call.

HF ``generate`` takes one temperature/top_p for the whole batch. :class:`RowSampler`, a logits processor, picks
each row's next token itself (greedy, or temperature + top-p sampling with the request's own seeded generator) and
hands HF a score row where only that token is finite, so HF's greedy step takes exactly that token. A row's draw
then depends only on its own request (its settings and seed), never on who else shares the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """A request's sampling settings: ``temperature`` 0 is greedy; ``seed`` None draws from a fresh generator."""

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


class RowSampler:
    """An HF logits processor choosing every row's token by that row's :class:`Sampling`."""

    def __init__(self, settings: list[Sampling]) -> None:
        self.settings = settings
        self.generators: list[torch.Generator | None] = []
        for s in settings:
            if s.greedy:
                self.generators.append(None)
                continue
            generator = torch.Generator()
            if s.seed is not None:
                generator.manual_seed(s.seed)
            else:
                generator.seed()
            self.generators.append(generator)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        chosen = []
        logits = scores.float().cpu()
        for row, (s, generator) in enumerate(zip(self.settings, self.generators)):
            if generator is None:
                chosen.append(int(torch.argmax(logits[row])))
                continue
            probs = torch.softmax(logits[row] / s.temperature, dim=-1)
            if s.top_p < 1.0:
                sorted_probs, order = torch.sort(probs, descending=True)
                keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < s.top_p  # always keeps the top token
                mask = torch.zeros_like(probs, dtype=torch.bool)
                mask[order[keep]] = True
                probs = torch.where(mask, probs, torch.zeros_like(probs))
            chosen.append(int(torch.multinomial(probs, 1, generator=generator)))
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(chosen)), torch.tensor(chosen, device=scores.device)] = 0.0
        return out
