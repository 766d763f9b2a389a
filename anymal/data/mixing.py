"""Reproducible weighted mixing of several datasets.

At every step :class:`Mixture` draws which dataset gives the next example with probability proportional to its
weight (``random.Random(f"mixture:{seed}:{epoch}").choices``), so the same seed and epoch give the same sequence of
examples, and over ``n`` draws dataset ``k`` contributes about ``n * w_k / sum(w)`` of them. What happens when a
dataset runs out is the ``stopping`` policy:

* ``"first_exhausted"`` (default): stop; proportions hold exactly in expectation, nothing is repeated.
* ``"all_exhausted"``: drop the exhausted dataset and renormalise the others' weights until all are used up.
* ``"cycle"``: restart the exhausted dataset (a new pass, ``set_epoch`` applied); give ``num_examples``, or the
  mixture never ends.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence

from anymal.data.report import DataReport
from anymal.errors import DataError
from anymal.records import Example

STOPPING = ("first_exhausted", "all_exhausted", "cycle")


class Mixture:
    """Interleaves datasets by weight.

    Args:
        datasets: name -> iterable of examples (e.g. ``ExampleReader`` s), or a list (names become ``"0"``, ``"1"``).
        weights: name -> weight or a list in the same order; non-negative, at least one positive. Weights need
            not sum to one.
        seed: seeds the draw sequence.
        stopping: ``"first_exhausted"``, ``"all_exhausted"`` or ``"cycle"`` (see the module docstring).
        num_examples: stop after this many examples (required for ``"cycle"``).

    Attributes:
        counts: per dataset name, how many examples the current (or last) pass took from it.
    """

    def __init__(
        self,
        datasets: Mapping[str, Iterable[Example]] | Sequence[Iterable[Example]],
        weights: Mapping[str, float] | Sequence[float],
        seed: int = 0,
        stopping: str = "first_exhausted",
        num_examples: int | None = None,
    ) -> None:
        if isinstance(datasets, Mapping):
            self.names = list(datasets)
            self.datasets = list(datasets.values())
        else:
            self.datasets = list(datasets)
            self.names = [str(i) for i in range(len(self.datasets))]
        if not self.datasets:
            raise DataError("Mixture: no datasets given")
        if isinstance(weights, Mapping):
            missing = set(self.names) - set(weights)
            extra = set(weights) - set(self.names)
            if missing or extra:
                raise DataError(f"Mixture weights: missing {sorted(missing)}, unknown {sorted(extra)}")
            weights = [weights[name] for name in self.names]
        self.weights = [float(w) for w in weights]
        if len(self.weights) != len(self.datasets):
            raise DataError(f"Mixture: {len(self.datasets)} datasets but {len(self.weights)} weights")
        if any(w < 0 for w in self.weights) or not any(w > 0 for w in self.weights):
            raise DataError(f"Mixture weights {self.weights}: expected non-negative numbers, at least one positive")
        if stopping not in STOPPING:
            raise DataError(f"Mixture stopping={stopping!r}: expected one of {', '.join(STOPPING)}")
        if stopping == "cycle" and num_examples is None:
            raise DataError("Mixture stopping='cycle' never ends: give num_examples")
        self.seed = seed
        self.stopping = stopping
        self.num_examples = num_examples
        self.epoch = 0
        self.counts: Counter = Counter()

    @property
    def probabilities(self) -> dict[str, float]:
        """The normalised weights: the expected share of each dataset."""
        total = sum(self.weights)
        return {name: w / total for name, w in zip(self.names, self.weights)}

    def set_epoch(self, epoch: int) -> None:
        """Sets the pass number: it changes the draw sequence and is passed on to datasets that take it."""
        self.epoch = epoch
        for dataset in self.datasets:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)

    @property
    def report(self) -> DataReport:
        """The bad-row reports of the datasets that keep one, added up."""
        total = DataReport()
        for dataset in self.datasets:
            report = getattr(dataset, "report", None)
            if isinstance(report, DataReport):
                total.merge(report)
        return total

    def __iter__(self) -> Iterator[Example]:
        rng = random.Random(f"mixture:{self.seed}:{self.epoch}")
        iterators: list[Iterator[Example]] = [iter(d) for d in self.datasets]
        active = [i for i, w in enumerate(self.weights) if w > 0]
        restarts: Counter[int] = Counter()
        self.counts = Counter()
        produced = 0
        while active and (self.num_examples is None or produced < self.num_examples):
            index = rng.choices(active, weights=[self.weights[i] for i in active])[0]
            try:
                example = next(iterators[index])
            except StopIteration:
                if self.stopping == "first_exhausted":
                    return
                if self.stopping == "all_exhausted":
                    active.remove(index)
                    continue
                restarts[index] += 1
                set_epoch = getattr(self.datasets[index], "set_epoch", None)
                if set_epoch is not None:
                    set_epoch(self.epoch + restarts[index])
                iterators[index] = iter(self.datasets[index])
                try:
                    example = next(iterators[index])
                except StopIteration:
                    raise DataError(f"Mixture: dataset {self.names[index]!r} is empty; cannot cycle it") from None
            self.counts[self.names[index]] += 1
            produced += 1
            yield example
