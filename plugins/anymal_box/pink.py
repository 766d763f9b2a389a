"""Pink/Shikra box text: ``[x0,y0,x1,y1]`` in [0, 1] with 3 decimals, points ``[x,y]``.

Conventions (Pink's released code, see ../shared/reference/seeds_pink_qwenvl.md A2): coordinates are fractions of
the original image's width and height, written ``"{:.3f}"``; several boxes are joined by one space, sorted by
area ascending; an empty answer is ``N/A``; a box with its class is ``"[box] name [box] name"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from anymal_box.boxes import Boxes, Points
from anymal_box.frames import NORMALIZED
from anymal_box.parsed import Grounding, ParseProblem, ParseResult

EMPTY = "N/A"
DECIMALS = 3
QUANTUM = 10.0**-DECIMALS  # the grammar's resolution in normalised units

# a bracketed group that holds only numbers, commas and spaces (anything else in brackets is not a box)
_GROUP = re.compile(r"\[([^\[\]]*)\]")
_NUMERIC = re.compile(r"^[\s0-9eE+\-.,]*$")
# Pink's own evaluator (eval_vg.py): exactly four numbers with one digit, a dot and three decimals
_PINK_EVAL_NUMBER = re.compile(r"[0-9]\.[0-9][0-9][0-9]")


def _fmt(value: float) -> str:
    text = f"{value:.{DECIMALS}f}"
    return "0.000" if text == "-0.000" else text


def format_box(box: Sequence[float]) -> str:
    """One normalised box as ``[x0,y0,x1,y1]`` with 3 decimals."""
    return "[" + ",".join(_fmt(float(v)) for v in box) + "]"


def format_point(point: Sequence[float]) -> str:
    """One normalised point as ``[x,y]`` with 3 decimals."""
    return "[" + ",".join(_fmt(float(v)) for v in point) + "]"


def format_boxes(boxes: Boxes, labels: Sequence[str] | None = None, sort: bool = True) -> str:
    """Several boxes (any frame; written normalised), space-separated, smallest area first; ``N/A`` if none.

    ``labels`` (one per box) gives Pink's ``"[box] name [box] name"`` form; labels follow their box when sorting.
    Boxes are clipped to [0, 1] first, since the grammar cannot express anything outside.
    """
    norm = boxes.normalized().clip()
    if labels is not None and len(labels) != len(norm):
        raise ValueError(f"format_boxes: {len(labels)} labels for {len(norm)} boxes")
    if not len(norm):
        return EMPTY
    order = norm.sorted_by_area()[1] if sort else np.arange(len(norm))
    parts = []
    for i in order:
        parts.append(format_box(norm.data[i]))
        if labels is not None:
            parts.append(labels[int(i)])
    return " ".join(parts)


def format_points(points: Points) -> str:
    """Several points (written normalised), space-separated in the given order; ``N/A`` if none."""
    norm = points.normalized().clip()
    return " ".join(format_point(p) for p in norm.data) if len(norm) else EMPTY


def _numbers(body: str) -> list[float] | None:
    if not _NUMERIC.match(body):
        return None
    try:
        return [float(part) for part in body.split(",")]
    except ValueError:
        return None


def parse(text: str) -> ParseResult:
    """Every ``[x0,y0,x1,y1]`` box and ``[x,y]`` point in ``text``, leniently (never raises on a string).

    Skipped, with a problem each: bracket groups of numbers that are not 2 or 4 numbers, values outside [0, 1] or
    not finite, and boxes with ``x0 > x1`` or ``y0 > y1``. Bracketed non-numbers (``[sic]``) are ordinary text and
    not reported. ``N/A`` gives an empty, problem-free result. Extra decimals are accepted as written.
    """
    if not isinstance(text, str):
        return ParseResult(Boxes.empty(), Points.empty(), (), (ParseProblem(0, 0, repr(text)[:80], "not a string"),))
    boxes: list[list[float]] = []
    points: list[list[float]] = []
    problems: list[ParseProblem] = []
    for match in _GROUP.finditer(text):
        body = match.group(1)
        if not any(ch.isdigit() for ch in body):
            continue
        values = _numbers(body)
        span = (match.start(), match.end(), match.group(0))
        if values is None:
            if _NUMERIC.match(body):
                problems.append(ParseProblem(*span, "not a comma-separated list of numbers"))
            continue
        if len(values) not in (2, 4):
            problems.append(ParseProblem(*span, f"{len(values)} numbers; a box has 4, a point 2"))
            continue
        array = np.asarray(values)
        if not np.isfinite(array).all() or (array < 0).any() or (array > 1).any():
            problems.append(ParseProblem(*span, "coordinates must lie in [0, 1]"))
            continue
        if len(values) == 4 and (values[0] > values[2] or values[1] > values[3]):
            problems.append(ParseProblem(*span, "x0 > x1 or y0 > y1"))
            continue
        (boxes if len(values) == 4 else points).append(values)
    return ParseResult(
        Boxes(np.asarray(boxes).reshape(-1, 4), NORMALIZED),
        Points(np.asarray(points).reshape(-1, 2), NORMALIZED),
        (),
        tuple(problems),
    )


def parse_labeled(text: str) -> ParseResult:
    """Pink's ``"[box] name [box] name"`` answers (coarse location, relation locate-and-classify): ``parse`` plus
    one ``Grounding`` per box whose phrase is the text after it up to the next box (None when there is none).

    Groundings are built from the well-formed boxes only, so a skipped box's label is dropped with it (and its
    text may run into the previous box's label); ``problems`` says where.
    """
    result = parse(text)
    if not isinstance(text, str) or not len(result.boxes):
        return result
    spans = [m for m in _GROUP.finditer(text) if (v := _numbers(m.group(1))) is not None and len(v) == 4]
    good = {tuple(b) for b in result.boxes.data.tolist()}
    kept = [m for m in spans if tuple(_numbers(m.group(1)) or ()) in good]
    groundings = []
    for i, match in enumerate(kept):
        stop = kept[i + 1].start() if i + 1 < len(kept) else len(text)
        label = text[match.end() : stop].strip(" ,;.\n") or None
        box = Boxes([_numbers(match.group(1))], NORMALIZED)
        groundings.append(Grounding(label, box))
    return ParseResult(result.boxes, result.points, tuple(groundings), result.problems)


def pink_eval_box(text: str) -> Boxes | None:
    """Pink's REC evaluator parse (``eval_vg.py``): the four ``d.ddd`` numbers of the answer, else None.

    Exactly four matches of ``[0-9]\\.[0-9]{3}`` anywhere in the text are required; any other count is Pink's
    ``format_error`` (scored as a miss). Kept separate from ``parse`` so REC numbers reproduce Pink's protocol.
    """
    if not isinstance(text, str):
        return None
    found = _PINK_EVAL_NUMBER.findall(text)
    if len(found) != 4:
        return None
    return Boxes([float(v) for v in found], NORMALIZED)
