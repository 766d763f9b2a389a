"""The ``names`` task: free generation scored by whether the answer names the right label of a label set, and no
other (e.g. "The person is running." for an IMU window labelled ``running``).

It is classification read off free text, the way a user reads a caption: likelihood ranking (``classify``) asks
which of the labels the model prefers, this task asks whether what it says unprompted is right. A label is named
when it occurs as whole words, case-insensitively (``running`` is named in "Running fast." but not in
"outrunning"); an answer that names two labels, or none, is wrong. Rows give ``label`` (or ``options`` with the
right ``answer``); the label set comes from ``labels`` (``--labels``) or each row's ``options``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from anymal.eval.items import EvalItem
from anymal.eval.tasks import TASKS, Task


def named_labels(text: str, labels: Sequence[str]) -> list[str]:
    """The labels that ``text`` names as whole words (case-insensitive), in label-set order."""
    return [label for label in labels if re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text, re.IGNORECASE)]


def _labels(item: EvalItem, settings: dict[str, Any]) -> list[str]:
    return list(settings.get("labels") or item.options or [])


def _score(item: EvalItem, prediction: str, settings: dict[str, Any]) -> dict[str, Any]:
    named = named_labels(prediction, _labels(item, settings))
    gold = item.gold_label()
    return {"label": gold, "named": named, "correct": named == [gold]}


def _aggregate(items: Sequence[EvalItem], records: Sequence[dict[str, Any]], settings: dict[str, Any]) -> dict:
    n = len(records)
    return {
        **TASKS["classify"].aggregate(items, records),  # accuracy and per-class accuracy, from label and correct
        "names_none": sum(not r["named"] for r in records) / n if n else 0.0,
        "names_several": sum(len(r["named"]) > 1 for r in records) / n if n else 0.0,
    }


NAMES_TASK = Task(
    "names",
    "generate",
    "{question}",
    needs="label",
    description="free generation naming the right label and no other: accuracy, per class",
    default_question="What is this?",
    score_fn=_score,
    aggregate_fn=_aggregate,
    settings=("labels",),
)
