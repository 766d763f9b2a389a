"""Bad training rows are skipped and counted, but a run that only skips must stop, loudly.

With ``on_error="skip"`` an item whose media or text cannot be used becomes a skip marker instead of a batch row.
That keeps a few bad rows from killing a long job; it must not turn a broken set-up (a tokenizer that did not load,
a media root that points nowhere) into a loop that spins at step 0 forever. :class:`SkipGuard` watches the rows in
the order the loader delivers them and raises a :class:`~anymal.errors.DataError` that lists the skip reasons and
counts when ``max_consecutive_skips`` rows in a row were skipped, or when a whole epoch yielded no usable row.
The markers travel inside the batches, so the counts are right with data-loader worker processes too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from anymal.errors import DataError

SKIP_KEY = "skip"  # a dataset item that is a skip marker: {"skip": "<ErrorType>: <message>", "where": "file:line"}
EXAMPLES_PER_REASON = 3


def skip_marker(exc: Exception, where: str) -> dict[str, str]:
    """The item a dataset returns in place of a row it could not use (picklable, for worker processes)."""
    return {SKIP_KEY: f"{type(exc).__name__}: {exc}", "where": where}


def is_skip(item: Any) -> bool:
    """Whether ``item`` is a skip marker (``None`` counts as one, without a reason)."""
    return item is None or (isinstance(item, dict) and SKIP_KEY in item)


@dataclass
class SkipGuard:
    """Counts skipped rows per reason and stops the run when skipping is all that happens.

    ``max_consecutive``: rows skipped in a row, in loader order, that end the run (0: no limit).
    """

    max_consecutive: int = 100

    def __post_init__(self) -> None:
        self.reasons: Counter = Counter()
        self.examples: dict[str, list[str]] = {}
        self.consecutive = 0
        self.usable_this_epoch = 0

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def observe(self, batch: dict[str, Any]) -> None:
        """Takes one collated batch's row outcomes (``batch["rows"]``: None for a usable row, else its marker)."""
        for outcome in batch.get("rows", ()):
            if outcome is None:
                self.consecutive = 0
                self.usable_this_epoch += 1
                continue
            self.consecutive += 1
            kind = outcome.get(SKIP_KEY, "unknown").split(":", 1)[0]
            self.reasons[kind] += 1
            shown = self.examples.setdefault(kind, [])
            if len(shown) < EXAMPLES_PER_REASON:
                shown.append(f"{outcome.get('where', '?')}: {outcome.get(SKIP_KEY, '')}")
            if self.max_consecutive and self.consecutive >= self.max_consecutive:
                raise DataError(
                    f"training stopped: the last {self.consecutive} rows were all skipped "
                    f"(max_consecutive_skips={self.max_consecutive}). {self.summary()}"
                )

    def start_epoch(self) -> None:
        self.usable_this_epoch = 0

    def end_epoch(self, epoch: int, paths: list[str]) -> None:
        """Raises when the epoch that just ended yielded no usable row: another pass would spin the same way."""
        if self.usable_this_epoch == 0:
            raise DataError(f"training stopped: epoch {epoch} over {paths} yielded no usable row. {self.summary()}")

    def summary(self) -> str:
        """Skip reasons with counts and the first locations, most frequent first."""
        if not self.reasons:
            return "No row was skipped with a reason."
        parts = []
        for kind, count in self.reasons.most_common():
            shown = "; ".join(self.examples.get(kind, []))
            parts.append(f"{kind} x{count} (e.g. {shown})")
        return f"Skipped {self.total} rows: " + " | ".join(parts)
