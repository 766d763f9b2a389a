"""Evaluation: ``python -m anymal.eval`` and :func:`evaluate`, the same scorers on an in-memory model.

See :mod:`anymal.eval.tasks` for the tasks and their metrics, :mod:`anymal.eval.items` for the data schema and
:mod:`anymal.eval.runner` for batching and resumable predictions.
"""

from anymal.eval.items import DATA_KINDS, EvalItem, read_eval_items
from anymal.eval.likelihood import CandidateScore, ScoreRequest, score_candidates
from anymal.eval.runner import evaluate
from anymal.eval.tasks import TASKS, Task, get_task

__all__ = [
    "DATA_KINDS",
    "TASKS",
    "CandidateScore",
    "EvalItem",
    "ScoreRequest",
    "Task",
    "evaluate",
    "get_task",
    "read_eval_items",
    "score_candidates",
]
