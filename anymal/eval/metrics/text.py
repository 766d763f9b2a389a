"""Short-answer metrics: exact match (GQA) and per-item ROUGE-L (M3IT / Ying-VLM).

Exact match follows the GQA evaluation as LLaVA-style models are scored on it: the answer and the reference are
lower-cased, stripped, and a trailing period is dropped, then compared as strings (any of several references
counts). M3IT reports ROUGE-L of the greedy answer against the reference; here it is pycocoevalcap's ROUGE-L
(LCS-based F-measure with beta 1.2, as in COCO) per item on lower-cased whitespace tokens, averaged over items.
"""

from __future__ import annotations

from collections.abc import Sequence


def normalize_short_answer(text: str) -> str:
    """Lower-cased, stripped, whitespace collapsed, one trailing period removed."""
    text = " ".join(text.strip().lower().split())
    return text[:-1].rstrip() if text.endswith(".") else text


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals one of the normalised references, else 0.0."""
    if not references:
        raise ValueError("exact_match: no reference answers")
    pred = normalize_short_answer(prediction)
    return float(any(pred == normalize_short_answer(r) for r in references))


def rouge_l(prediction: str, references: Sequence[str]) -> float:
    """ROUGE-L F (beta 1.2) of one prediction against its references, on lower-cased whitespace tokens."""
    from pycocoevalcap.rouge.rouge import Rouge

    if not references:
        raise ValueError("rouge_l: no reference answers")
    hyp = " ".join(prediction.lower().split()) or "<empty>"
    refs = [" ".join(r.lower().split()) for r in references]
    return float(Rouge().calc_score([hyp], refs))
