"""Bad-row errors that carry their location, and the report a ``on_error="skip"`` run keeps of them.

A malformed row raises :class:`RowError` (an ``anymal.errors.DataError``) whose message reads
``"train.jsonl:17: field 'caption': empty text; expected a non-empty caption"``. With ``on_error="skip"`` the reader
drops the row and counts it in a :class:`DataReport` instead, so that a long run survives a few broken rows while
still saying how many there were, why, and where the first ones are.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from anymal.config import check_choice
from anymal.errors import DataError

ON_ERROR = ("raise", "skip")


class RowError(DataError):
    """A malformed row: names the file, the 1-based line (or row), the field and what was expected.

    Attributes:
        source: the data file or dataset name.
        line: 1-based line (text formats) or row (parquet, in-memory datasets) number.
        field: the field (dotted path, e.g. ``conversations[1].value``) that was wrong.
        reason: a short category for reports, e.g. ``"missing_field"``, ``"media_missing"``.
        problem: what was wrong and what was expected.
    """

    def __init__(self, source: str, line: int, field: str, reason: str, problem: str) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.reason = reason
        self.problem = problem
        super().__init__(f"{source}:{line}: field {field!r}: {problem}")

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"


def check_on_error(on_error: str) -> str:
    """Validates an ``on_error`` policy name (a ConfigError naming the value and the choices)."""
    check_choice(on_error, ON_ERROR, "on_error")
    return on_error


@dataclass
class DataReport:
    """Counts of good and skipped rows of one pass over a dataset.

    Attributes:
        ok: rows that became examples.
        skipped: per reason, how many rows were skipped.
        locations: per reason, the first ``max_locations`` ``"file:line"`` locations (with the field).
        first_errors: the first ``max_locations`` error messages, in order.
        max_locations: how many locations to keep per reason.
    """

    ok: int = 0
    skipped: Counter = field(default_factory=Counter)
    locations: dict[str, list[str]] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    max_locations: int = 5

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def add(self, error: RowError) -> None:
        """Counts a skipped row."""
        self.skipped[error.reason] += 1
        where = self.locations.setdefault(error.reason, [])
        if len(where) < self.max_locations:
            where.append(f"{error.location} ({error.field})")
        if len(self.first_errors) < self.max_locations:
            self.first_errors.append(str(error))

    def merge(self, other: DataReport) -> None:
        """Adds another report's counts into this one (e.g. to total a mixture)."""
        self.ok += other.ok
        self.skipped.update(other.skipped)
        for reason, where in other.locations.items():
            mine = self.locations.setdefault(reason, [])
            mine.extend(where[: max(0, self.max_locations - len(mine))])
        self.first_errors.extend(other.first_errors[: max(0, self.max_locations - len(self.first_errors))])

    def reset(self) -> None:
        self.ok = 0
        self.skipped.clear()
        self.locations.clear()
        self.first_errors.clear()

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "skipped": dict(self.skipped),
            "locations": {k: list(v) for k, v in self.locations.items()},
        }

    def summary(self) -> str:
        """One readable paragraph: how many rows were used and skipped, by reason, with example locations."""
        lines = [f"{self.ok} examples read, {self.total_skipped} rows skipped"]
        for reason, count in self.skipped.most_common():
            lines.append(f"  {reason}: {count} (e.g. {', '.join(self.locations.get(reason, []))})")
        return "\n".join(lines)
