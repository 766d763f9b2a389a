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
        logits = scores.detach().float().cpu()
        chosen = logits.argmax(dim=-1)  # greedy rows; sampled rows are drawn below
        rows = [i for i, generator in enumerate(self.generators) if generator is not None]
        if rows:
            index = torch.tensor(rows)
            temperature = torch.tensor([self.settings[i].temperature for i in rows]).unsqueeze(1)
            probs = torch.softmax(logits[index] / temperature, dim=-1)
            top_p = torch.tensor([self.settings[i].top_p for i in rows]).unsqueeze(1)
            if bool((top_p < 1.0).any()):
                sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
                keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p  # always keeps the top token
                probs = probs * torch.zeros_like(probs).scatter(1, order, keep.to(probs.dtype))
            for j, i in enumerate(rows):
                chosen[i] = torch.multinomial(probs[j], 1, generator=self.generators[i])[0]
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(chosen), device=scores.device), chosen.to(scores.device)] = 0.0
        return out
