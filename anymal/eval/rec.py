"""The ``rec`` task: referring expression comprehension scored as REC Acc@0.5, through the grounding plugin.

Rows give the image, the expression (``expression`` or ``question``) and its box ``[x0, y0, x1, y1]`` in pixels of
the image (``image_size: [w, h]`` optional; else read from the image header). The prompt and the answer's box
grammar are ``anymal_box.rec``'s (``box_format``: ``"pink"``, ``[x0,y0,x1,y1]`` fractions; or ``"qwen"``,
``<ref>..</ref><box>(x1,y1),(x2,y2)</box>`` on the 0-1000 grid), and so is the scoring: each paper's own answer
parse and Acc@0.5 convention (Pink: +1-pixel IoU > 0.5; Qwen-VL: IoU >= 0.5), via ``anymal_box.metrics``.
Answers are taken as boxes on the whole image (a squash resize, as in both papers).

anymal's core never imports a first-party plugin: this module loads ``anymal_box`` by name when the task runs, and
``get_task("rec")`` loads this module by name (``anymal.eval.tasks.LAZY_TASKS``).
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
from typing import Any

from anymal.errors import ConfigError, DataError
from anymal.eval.items import EvalItem
from anymal.eval.tasks import Task

BOX_FORMATS = ("pink", "qwen")


def _box_module(name: str) -> Any:
    try:
        return importlib.import_module(f"anymal_box.{name}")
    except ImportError as exc:
        raise ConfigError(f"task 'rec' needs the grounding plugin anymal_box ({exc})") from exc


def _grammar(settings: dict[str, Any]) -> str:
    grammar = settings.get("box_format") or "pink"
    if grammar not in BOX_FORMATS:
        raise ConfigError(f"box_format={grammar!r}: expected one of {', '.join(BOX_FORMATS)}")
    return grammar


def image_size(item: EvalItem) -> tuple[float, float]:
    """``(width, height)`` of the item's image: from the row, else from the image file's header."""
    if item.image_size is not None:
        return item.image_size
    refs = item.media.get("image") or []
    if len(refs) != 1:
        raise DataError(f"{item.location}: task 'rec' needs exactly one image, got {len(refs)}")
    from PIL import Image

    ref = refs[0]
    try:
        with Image.open(io.BytesIO(ref.data) if ref.data is not None else str(ref.path)) as image:
            return float(image.width), float(image.height)
    except OSError as exc:
        raise DataError(f"{item.location}: cannot read the size of {ref!r} ({exc}); give image_size: [w, h]") from exc


def _target(item: EvalItem) -> Any:
    boxes, frames = _box_module("boxes"), _box_module("frames")
    width, height = image_size(item)
    return boxes.Boxes([item.box], frames.PixelFrame(width, height))


def _prompt(item: EvalItem, settings: dict[str, Any]) -> str:
    rec = _box_module("rec")
    expression = item.question or ""
    example = rec.rec_example(expression, _target(item), grammar=_grammar(settings))
    return example.prompt if not settings.get("template") else settings["template"].format(question=expression)


def _score(item: EvalItem, prediction: str, settings: dict[str, Any]) -> dict[str, Any]:
    rec, metrics = _box_module("rec"), _box_module("metrics")
    grammar = _grammar(settings)
    box = rec.parse_rec_answer(prediction, grammar)
    result = metrics.rec_accuracy([box], [_target(item)], convention=grammar)
    return {"box": None if box is None else [float(v) for v in box.to(_target(item).frame).data[0]],
            "iou": result.ious[0], "correct": bool(result.correct)}  # fmt: skip


def _aggregate(items: Sequence[EvalItem], records: Sequence[dict[str, Any]], settings: dict[str, Any]) -> dict:
    rec, metrics = _box_module("rec"), _box_module("metrics")
    grammar = _grammar(settings)
    predictions = [rec.parse_rec_answer(r["prediction"], grammar) for r in records]
    result = metrics.rec_accuracy(predictions, [_target(item) for item in items], convention=grammar)
    return {"rec_accuracy@0.5": result.accuracy, "mean_iou": sum(result.ious) / max(len(result.ious), 1),
            "format_errors": result.format_errors, "convention": grammar}  # fmt: skip


def _check(item: EvalItem) -> None:
    if item.box is None or not item.question:
        raise DataError(f"{item.location}: task 'rec' needs an 'expression' (or 'question') and its 'box'")


REC_TASK = Task(
    "rec",
    "generate",
    "{question}",
    needs="box",
    description="referring expressions: REC Acc@0.5 (anymal_box)",
    prompt_fn=_prompt,
    score_fn=_score,
    aggregate_fn=_aggregate,
    check_fn=_check,
    settings=("box_format",),
)
