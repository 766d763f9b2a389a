"""Referring expression comprehension (REC) as text, in either grammar: training pairs and scoring.

Training pairs follow each paper's REC format:

- ``"qwen"``: prompt ``<ref>{expression}</ref><box>``, answer ``(x1,y1),(x2,y2)</box>`` (Qwen-VL's evaluation
  prompt; the model completes the box);
- ``"pink"``: a visual-grounding instruction (``Where is {expression}?``), answer ``[x0,y0,x1,y1]``.

Coordinates are fractions of the image the model sees: the original photo for a squash resize (both papers), or
the padded/cropped encoder input when a ``Geometry`` is given, in which case scoring maps answers back through it
to the photo's pixels. Scoring uses each paper's own answer parse and Acc@0.5 convention by default.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from anymal.errors import InputError
from anymal_box import pink, qwen
from anymal_box.boxes import Boxes
from anymal_box.frames import PixelFrame
from anymal_box.geometry import Geometry
from anymal_box.metrics import RECResult, rec_accuracy
from anymal_box.pink_templates import TEMPLATES

GRAMMARS = ("pink", "qwen")


@dataclass(frozen=True)
class RECExample:
    """One training/evaluation pair and the ground-truth box (pixels of the original photo)."""

    prompt: str
    answer: str
    box: Boxes


def _check(grammar: str) -> None:
    if grammar not in GRAMMARS:
        raise InputError(f"grammar={grammar!r}: expected one of {GRAMMARS}")


def _model_frame(box: Boxes, geometry: Geometry | None) -> Boxes:
    """The box as fractions of the image the model sees."""
    if not isinstance(box.frame, PixelFrame):
        raise InputError(f"REC box must be in the photo's pixels (a PixelFrame), got {box.frame!r}")
    return (geometry.forward(box) if geometry is not None else box).normalized().clip()


def rec_example(
    expression: str,
    box: Boxes,
    grammar: str = "pink",
    geometry: Geometry | None = None,
    rng: random.Random | None = None,
) -> RECExample:
    """The REC pair for one expression and its one box (pixels of the photo); ``rng`` picks a Pink template."""
    _check(grammar)
    if len(box) != 1:
        raise InputError(f"rec_example: expected one box for {expression!r}, got {len(box)}")
    target = _model_frame(box, geometry)
    if grammar == "qwen":
        if "<" in expression and qwen.strip_grounding(expression) != expression:
            raise InputError(f"rec_example: expression {expression!r} contains Qwen-VL grounding tags")
        text = qwen.format_boxes(target)
        return RECExample(f"<ref>{expression}</ref><box>", text.removeprefix("<box>"), box)
    templates = TEMPLATES["grounding"]
    template = rng.choice(templates) if rng is not None else templates[0]
    return RECExample(template.replace("<expr>", expression), pink.format_boxes(target), box)


def parse_rec_answer(text: str, grammar: str = "pink", geometry: Geometry | None = None) -> Boxes | None:
    """The answer's box in the photo's pixels (through ``geometry`` when given), or None when it does not parse.

    Uses the papers' evaluator parses: Pink's exactly-four ``d.ddd`` numbers, Qwen-VL's first ``(a,b),(c,d)``.
    Without a geometry the result stays normalised (the caller's targets decide the pixel frame).
    """
    _check(grammar)
    box = pink.pink_eval_box(text) if grammar == "pink" else qwen.qwen_eval_box(text)
    if box is None:
        return None
    return geometry.inverse(box.normalized()) if geometry is not None else box.normalized()


def score_rec(
    answers: Sequence[str],
    targets: Sequence[Boxes],
    grammar: str = "pink",
    convention: str | None = None,
    geometry: Geometry | Sequence[Geometry] | None = None,
) -> RECResult:
    """REC Acc@0.5 of model answers against one-box pixel targets.

    ``convention`` defaults to the grammar's paper (``"pink"``: +1-pixel IoU > 0.5; ``"qwen"``: IoU >= 0.5).
    ``geometry`` is one for all samples or one per sample.
    """
    _check(grammar)
    if len(answers) != len(targets):
        raise InputError(f"score_rec: {len(answers)} answers for {len(targets)} targets")
    geometries = list(geometry) if isinstance(geometry, Sequence) else [geometry] * len(answers)
    if len(geometries) != len(answers):
        raise InputError(f"score_rec: {len(geometries)} geometries for {len(answers)} answers")
    predictions = [parse_rec_answer(a, grammar, g) for a, g in zip(answers, geometries)]
    return rec_accuracy(predictions, targets, convention=convention or grammar)
