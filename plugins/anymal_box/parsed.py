"""What a lenient parse of model output returns: the boxes it could read and a report of what it could not.

Model output is untrusted text; a grounding evaluator must score a malformed answer as wrong, not crash on it.
The lenient parsers therefore never raise: they keep every well-formed box, and record each skipped span with the
reason in ``problems``. For user-given text, ``ParseResult.raise_for_problems`` turns any problem into an
``InputError`` naming the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anymal.errors import InputError
from anymal_box.boxes import Boxes, Points
from anymal_box.frames import Frame


@dataclass(frozen=True)
class ParseProblem:
    """A span of the text that was skipped, and why (``start``/``end`` index into the parsed text)."""

    start: int
    end: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.text!r} at {self.start}:{self.end}: {self.reason}"


@dataclass(frozen=True)
class Grounding:
    """One referring phrase with the boxes the text gives it (``phrase`` is None for boxes without a ``<ref>``)."""

    phrase: str | None
    boxes: Boxes


@dataclass(frozen=True)
class ParseResult:
    """All boxes and points read from one text, in the grammar's frame, in text order, plus the problems."""

    boxes: Boxes
    points: Points
    groundings: tuple[Grounding, ...] = ()
    problems: tuple[ParseProblem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when nothing was skipped."""
        return not self.problems

    @property
    def frame(self) -> Frame:
        return self.boxes.frame

    def raise_for_problems(self, name: str) -> ParseResult:
        """Strict mode for user-given text: raise ``InputError`` naming ``name`` if anything was skipped."""
        if self.problems:
            listed = "; ".join(str(p) for p in self.problems[:3])
            more = f" (+{len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
            raise InputError(f"{name}: {len(self.problems)} malformed box span(s): {listed}{more}")
        return self
