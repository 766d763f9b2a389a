"""Qwen-VL box text: ``<ref>phrase</ref><box>(x1,y1),(x2,y2)</box>``, integers on the [0, 1000) grid.

Conventions (Qwen-VL paper §2.2 and its released code, see ../shared/reference/seeds_pink_qwenvl.md B2): each
coordinate is the fraction of the original image's width/height times 1000, written as an integer in [0, 1000)
with no spaces; one ``<ref>`` may be followed by several ``<box>`` spans; the phrase keeps its own spacing
(``<ref> Woman</ref>``). Qwen-VL's evaluator maps predictions back with ``/ 999``: parse with
``frame=QWEN_EVAL_GRID`` to reproduce that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from anymal_box.boxes import Boxes, Points
from anymal_box.frames import QWEN_GRID, GridFrame
from anymal_box.parsed import Grounding, ParseProblem, ParseResult

_TAG = re.compile(r"<(/?)(ref|box|quad)>")
_PAIR = re.compile(r"\(([^()]*)\)")
_INT = re.compile(r"^\s*[0-9]+\s*$")
_STRIP = re.compile(r"<ref>(.*?)</ref>(?:<box>.*?</box>)*(?:<quad>.*?</quad>)*", re.DOTALL)


def to_grid(boxes: Boxes, frame: GridFrame = QWEN_GRID) -> np.ndarray:
    """Integer grid coordinates ``[N, 4]``: rounded to nearest, clamped to ``[0, size - 1]``."""
    grid = np.rint(boxes.to(frame).data)
    return np.clip(grid, 0, frame.size - 1).astype(np.int64)


def format_boxes(boxes: Boxes, frame: GridFrame = QWEN_GRID) -> str:
    """``<box>(x1,y1),(x2,y2)</box>`` for each box, concatenated in the given order (any input frame)."""
    return "".join(f"<box>({a},{b}),({c},{d})</box>" for a, b, c, d in to_grid(boxes, frame).tolist())


def format_ref(phrase: str, boxes: Boxes, frame: GridFrame = QWEN_GRID) -> str:
    """``<ref>phrase</ref>`` followed by every box of the phrase."""
    if "<" in phrase and _TAG.search(phrase):
        raise ValueError(f"format_ref: phrase {phrase!r} contains a <ref>/<box>/<quad> tag")
    return f"<ref>{phrase}</ref>{format_boxes(boxes, frame)}"


def format_groundings(groundings: Sequence[Grounding], frame: GridFrame = QWEN_GRID, sep: str = " ") -> str:
    """Several groundings, each ``<ref>..</ref><box>..</box>...`` (bare boxes when ``phrase`` is None)."""
    return sep.join(
        format_boxes(g.boxes, frame) if g.phrase is None else format_ref(g.phrase, g.boxes, frame) for g in groundings
    )


def strip_grounding(text: str) -> str:
    """The text with the markup removed and each phrase kept (Qwen-VL's own post-processing regex)."""
    return _STRIP.sub(r"\1", text)


def _read_box(body: str, frame: GridFrame) -> tuple[list[float] | None, str]:
    pairs = _PAIR.findall(body)
    if len(pairs) != 2:
        return None, f"{len(pairs)} coordinate pairs; a box has 2: (x1,y1),(x2,y2)"
    values: list[float] = []
    for pair in pairs:
        parts = pair.split(",")
        if len(parts) != 2 or not all(_INT.match(p) for p in parts):
            return None, f"({pair}) is not two non-negative integers"
        values += [float(p) for p in parts]
    if max(values) > frame.size - 1:
        return None, f"coordinates must lie in [0, {frame.size})"
    if values[0] > values[2] or values[1] > values[3]:
        return None, "x1 > x2 or y1 > y2"
    return values, ""


class _Collector:
    """Accumulates groundings in text order: consecutive boxes after a ``</ref>`` belong to that phrase."""

    def __init__(self, frame: GridFrame) -> None:
        self.frame = frame
        self.groups: list[tuple[str | None, list[list[float]]]] = []
        self.attach_from: int | None = None  # text index up to which only whitespace may precede an attached box

    def ref(self, phrase: str, end: int) -> None:
        self.groups.append((phrase, []))
        self.attach_from = end

    def box(self, values: list[float], text: str, start: int, end: int) -> None:
        if self.attach_from is not None and self.groups and not text[self.attach_from : start].strip():
            self.groups[-1][1].append(values)
        else:
            self.groups.append((None, [values]))
        self.attach_from = end

    def skip(self, end: int, text: str, start: int) -> None:
        # a skipped box keeps the chain to its phrase alive (the next good box still attaches)
        if self.attach_from is not None and not text[self.attach_from : start].strip():
            self.attach_from = end

    def result(self, problems: list[ParseProblem]) -> ParseResult:
        groundings = tuple(Grounding(p, Boxes(np.asarray(b).reshape(-1, 4), self.frame)) for p, b in self.groups)
        every = [b for _, bs in self.groups for b in bs]
        boxes = Boxes(np.asarray(every).reshape(-1, 4), self.frame)
        return ParseResult(boxes, Points.empty(self.frame), groundings, tuple(problems))


def parse(text: str, frame: GridFrame = QWEN_GRID) -> ParseResult:
    """Every ``<box>`` in ``text`` with its ``<ref>`` phrase, leniently (never raises on a string).

    Recovered without complaint: a missing ``</box>`` (the box body runs to the next tag or the end), a ``</box>``
    whose ``<box>`` was in the prompt (Qwen-VL's REC prompt ends in ``<box>``), spaces inside the body. Skipped,
    with a problem each: bodies that are not two ``(int,int)`` pairs, values outside ``[0, size)``, inverted
    boxes, an unclosed ``<ref>`` (its text up to the next tag is still used as the phrase) and stray closing tags.
    ``<quad>`` spans (OCR quadrilaterals) are not boxes and are passed over.
    """
    if not isinstance(text, str):
        problem = ParseProblem(0, 0, repr(text)[:80], "not a string")
        return ParseResult(Boxes.empty(frame), Points.empty(frame), (), (problem,))
    tags = list(_TAG.finditer(text))
    out = _Collector(frame)
    problems: list[ParseProblem] = []
    prev_end = 0
    k = 0
    while k < len(tags):
        tag = tags[k]
        closing, name = tag.group(1) == "/", tag.group(2)
        nxt = tags[k + 1] if k + 1 < len(tags) else None
        body_end = nxt.start() if nxt else len(text)
        closed = nxt is not None and nxt.group(1) == "/" and nxt.group(2) == name
        if closing and name == "box":  # the opening <box> was in the prompt or got lost
            body, end = text[prev_end : tag.start()], tag.end()
            start = prev_end + max(body.find("("), 0)  # text before the coordinates is not part of the box
            body = text[start : tag.start()]
            k += 1
        elif closing:
            problems.append(ParseProblem(tag.start(), tag.end(), tag.group(0), f"stray </{name}> without <{name}>"))
            prev_end = tag.end()
            k += 1
            continue
        else:
            start, body = tag.start(), text[tag.end() : body_end]
            end = nxt.end() if (closed and nxt is not None) else body_end
            k += 2 if closed else 1
        prev_end = end
        if name == "ref":
            if not closed:
                problems.append(ParseProblem(start, end, text[start:end], "unclosed <ref>; phrase taken up to here"))
            out.ref(body, end)
        elif name == "box":
            values, reason = _read_box(body, frame)
            if values is None:
                problems.append(ParseProblem(start, end, text[start:end], reason))
                out.skip(end, text, start)
            else:
                out.box(values, text, start, end)
    return out.result(problems)


def qwen_eval_box(text: str, frame: GridFrame = QWEN_GRID) -> Boxes | None:
    """Qwen-VL's REC evaluator parse (``evaluate_grounding.py``): the first ``(a,b),(c,d)`` in the text, else None.

    Numbers are read as written (no range check), as the reference does; pass ``frame=QWEN_EVAL_GRID`` for its
    ``/ 999`` scaling. A miss (None) is Qwen-VL's zero box, which always scores as wrong.
    """
    if not isinstance(text, str):
        return None
    match = re.search(r"\((.*?)\),\((.*?)\)", text)
    if match is None:
        return None
    try:
        (x1, y1), (x2, y2) = (tuple(float(v) for v in g.split(",")) for g in match.groups())
    except ValueError:
        return None
    values = np.asarray([x1, y1, x2, y2])
    return Boxes(values, frame) if np.isfinite(values).all() else None
