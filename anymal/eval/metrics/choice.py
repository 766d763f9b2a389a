"""Multiple choice by likelihood ranking, with MMBench's circular evaluation.

An item with N options is asked N times, the options rotated circularly (pass k shows ``options[k:] +
options[:k]``); it counts as correct only if the model picks the right option in every pass (Liu et al., MMBench,
2023, "CircularEval"). The model's pick is the option with the highest log-likelihood (no generation, so there is
no answer-extraction step to get wrong).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase


def rotations(options: Sequence[str], answer: int) -> list[tuple[list[str], int]]:
    """Each circular shift of ``options`` with the index the right answer then has."""
    n = len(options)
    if not 0 <= answer < n:
        raise ValueError(f"answer index {answer} outside the {n} options")
    return [(list(options[k:]) + list(options[:k]), (answer - k) % n) for k in range(n)]


def render_options(options: Sequence[str]) -> str:
    """``"A. first\\nB. second..."``, MMBench's layout."""
    if len(options) > len(LETTERS):
        raise ValueError(f"{len(options)} options; at most {len(LETTERS)} can be lettered")
    return "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(options))


def circular_accuracy(passes: Sequence[Sequence[bool]]) -> dict[str, float]:
    """``circular``: share of items right in every pass; ``vanilla``: share right in the first (unrotated) pass."""
    if not passes:
        return {"circular_accuracy": 0.0, "vanilla_accuracy": 0.0}
    return {
        "circular_accuracy": sum(all(p) for p in passes) / len(passes),
        "vanilla_accuracy": sum(bool(p[0]) for p in passes) / len(passes),
    }
