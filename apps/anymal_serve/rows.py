"""One request's row inside a batched ``generate`` call: its new tokens, the text released so far and why it ended.

``generate`` runs a batch to its longest row; each row ends on its own through :class:`RowStopper`, an HF stopping
criterion called after every step with the new token of every row. A row ends at EOS, at its own ``max_tokens``,
at one of its ``stop`` strings, when its client has gone, or when an output safety classifier refuses a sentence.
Text is released to the row's sink (a stream's events) as it becomes final: a suffix that could still grow into a
stop string is held back, and with output classifiers on, text goes out a whole sentence at a time, each sentence
checked first. A row that ends resolves its future at once, without waiting for the rest of the batch.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

# a sentence ends at . ! ? or a newline, with the closing quotes/brackets after it and the whitespace that follows
_SENTENCE_END_RE = re.compile(r"[.!?\n][\"')\]]*\s+|\n")


@dataclass
class Completion:
    """A finished row: its new token ids (up to and including EOS), the released text and the finish reason.

    ``finish_reason`` is OpenAI's: ``stop`` (EOS or a stop string), ``length`` (``max_tokens``) or
    ``content_filter`` (a safety classifier refused; ``refusal`` holds its stated reason).
    """

    tokens: list[int]
    text: str
    finish_reason: str
    refusal: str | None = None
    safety: list[dict[str, Any]] = field(default_factory=list)  # what each classifier that acted did
    # the row's decoded outputs when the model has output plugins, by field: {"boxes": [[x1, y1, x2, y2], ...]}
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)  # rows are told apart by identity
class Row:
    """The state of one request's row while its batch runs."""

    max_tokens: int
    eos: set[int]
    decode: Callable[[list[int]], str]
    stop: list[str] = field(default_factory=list)
    sink: Callable[[str], None] | None = None  # receives released text pieces (streams)
    check_sentence: Callable[[str], Any] | None = None  # the output safety check (None: off)
    cancelled: threading.Event = field(default_factory=threading.Event)
    future: Future = field(default_factory=Future)
    tokens: list[int] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    safety: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    refusal: str | None = None
    _text: str = ""  # the decoded text of ``tokens`` (what is released is a prefix of it, stop strings cut)
    _done_upto: int = 0  # how much of ``_text`` has been released or dropped

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def add(self, token: int) -> None:
        """Takes the row's next token (ignored once the row has ended)."""
        if self.done:
            return
        if self.cancelled.is_set():
            self._end("stop")
            return
        self.tokens.append(token)
        if token in self.eos:
            self._end("stop")
            return
        text = self.decode([t for t in self.tokens if t not in self.eos])
        if not text.endswith("\ufffd"):  # a multi-byte character still half-decoded: wait for the rest
            self._text = text
            self._advance(final=False)
        if not self.done and len(self.tokens) >= self.max_tokens:
            self._end("length")

    def _end(self, reason: str) -> None:
        if self.done:
            return
        if reason != "content_filter":
            self._text = self.decode([t for t in self.tokens if t not in self.eos])
            self._advance(final=True)
        if self.finish_reason is None:  # _advance may have ended it (a stop string, a refused last sentence)
            self.finish_reason = reason

    def _advance(self, final: bool) -> None:
        """Releases what is final of the text, cut at the first stop string."""
        pending = self._text[self._done_upto :]
        cut = None
        for stop in self.stop:
            at = pending.find(stop)
            if at >= 0 and (cut is None or at < cut):
                cut = at
        if cut is not None:
            pending, final = pending[:cut], True
        elif not final:
            pending = pending[: len(pending) - _held_back(pending, self.stop)]
        if self.check_sentence is not None and not final:
            ends = list(_SENTENCE_END_RE.finditer(pending))
            pending = pending[: ends[-1].end()] if ends else ""
        if pending:
            self._release(pending)
        if cut is not None and self.finish_reason is None:
            self.finish_reason = "stop"

    def _release(self, text: str) -> None:
        self._done_upto += len(text)
        if self.check_sentence is None:
            self._emit(text)
            return
        start = 0
        pieces = [m.end() for m in _SENTENCE_END_RE.finditer(text)]
        if not pieces or pieces[-1] != len(text):
            pieces.append(len(text))
        for end in pieces:
            sentence = text[start:end]
            start = end
            if not sentence.strip():
                self._emit(sentence)
                continue
            verdict = self.check_sentence(sentence)
            if verdict is None or verdict.action == "pass":
                self._emit(sentence)
                continue
            self.safety.append(verdict.record("output"))
            if verdict.action == "redact":
                self._emit(verdict.replacement)
                continue
            self.refusal = verdict.reason
            self.finish_reason = "content_filter"
            return

    def _emit(self, text: str) -> None:
        if not text:
            return
        self.released.append(text)
        if self.sink is not None:
            self.sink(text)

    def completion(self) -> Completion:
        return Completion(
            list(self.tokens), "".join(self.released), self.finish_reason or "stop", self.refusal, list(self.safety)
        )


def _held_back(text: str, stops: list[str]) -> int:
    """The length of the longest suffix of ``text`` that begins one of ``stops`` (it may still become one)."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-n:]):
                longest = n
                break
    return longest


class RowStopper:
    """An HF stopping criterion over a batch's rows: feeds each row its new token and reports which have ended.

    ``on_done(row)`` runs once per row as it ends (the engine resolves its future there).
    """

    def __init__(self, rows: list[Row], on_done: Callable[[Row], None]) -> None:
        self.rows = rows
        self.on_done = on_done
        self._reported = [False] * len(rows)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        last = input_ids[:, -1].tolist()
        for i, (row, token) in enumerate(zip(self.rows, last)):
            row.add(int(token))
            if row.done and not self._reported[i]:
                self._reported[i] = True
                self.on_done(row)
        return torch.tensor([row.done for row in self.rows], dtype=torch.bool, device=input_ids.device)

    def finish(self) -> None:
        """Ends the rows ``generate`` stopped without this criterion's word (its own max length)."""
        for i, row in enumerate(self.rows):
            if not row.done:
                row._end("length")
            if not self._reported[i]:
                self._reported[i] = True
                self.on_done(row)
