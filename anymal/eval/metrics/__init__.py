"""Metrics of ``python -m anymal.eval``: each is a plain function of predictions and references."""

from anymal.eval.metrics.anls import ANLS_THRESHOLD, anls, levenshtein
from anymal.eval.metrics.caption import CAPTION_METRICS, caption_scores, java_available
from anymal.eval.metrics.choice import circular_accuracy, render_options, rotations
from anymal.eval.metrics.text import exact_match, normalize_short_answer, rouge_l
from anymal.eval.metrics.vqa import normalize_answer, vqa_accuracy

__all__ = [
    "ANLS_THRESHOLD",
    "CAPTION_METRICS",
    "anls",
    "caption_scores",
    "circular_accuracy",
    "exact_match",
    "java_available",
    "levenshtein",
    "normalize_answer",
    "normalize_short_answer",
    "render_options",
    "rotations",
    "rouge_l",
    "vqa_accuracy",
]
