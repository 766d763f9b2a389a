"""ANLS, the average normalised Levenshtein similarity of DocVQA / ST-VQA (Biten et al., 2019).

Per question: ``max`` over the reference answers of ``1 - NL(pred, ref)`` when ``NL < tau`` else 0, where ``NL`` is
the edit distance divided by the longer string's length; both strings are lower-cased with whitespace collapsed
(as the official DocVQA evaluation does). ``tau = 0.5`` is the standard threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

ANLS_THRESHOLD = 0.5


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls(prediction: str, answers: Sequence[str], threshold: float = ANLS_THRESHOLD) -> float:
    """The ANLS of one prediction against its reference answers, in ``[0, 1]``."""
    if not answers:
        raise ValueError("anls: no reference answers")
    pred = _norm(prediction)
    best = 0.0
    for answer in answers:
        ref = _norm(answer)
        longest = max(len(pred), len(ref))
        distance = levenshtein(pred, ref) / longest if longest else 0.0
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best
