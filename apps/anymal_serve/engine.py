"""The model behind the server: one worker thread owns the model and runs ``generate`` on small batches.

Requests are prepared (messages rendered, token ids counted) on the event loop's side and queued (at most
``max_queue`` waiting; later ones get a 429). The worker takes the oldest job, waits up to ``batch_wait_s`` for
more non-streaming jobs with the same sampling settings (up to ``max_batch``), checks every job's media on its own
(a bad input fails only its request, naming its part) and runs one batched ``generate`` for the rest, each row
cut at its own ``max_tokens``. Should the batched call fail, each job is retried alone, so one bad request never
breaks the others. Streaming jobs run alone, through ``generate``'s ``streamer=``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from anymal.errors import AnyMALError
from anymal_serve.errors import APIError
from anymal_serve.parts import Conversation, MediaFile


@dataclass
class Job:
    """One prepared request: its prompt ids (with modality sentinels), raw inputs and generation arguments."""

    ids: list[int]
    conversation: Conversation
    generate_kwargs: dict[str, Any]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def batch_key(self) -> tuple[Any, ...]:
        """Jobs with equal keys can share a ``generate`` call (everything but ``max_new_tokens`` agrees)."""
        return tuple(sorted((k, repr(v)) for k, v in self.generate_kwargs.items() if k != "max_new_tokens"))


@dataclass
class Completion:
    """One job's answer: its new token ids (up to and including EOS) and their text."""

    tokens: list[int]
    text: str


@dataclass
class _Item:
    job: Job
    streamer: Any
    future: Future


class _Cancel:
    """An HF stopping criterion that ends generation when the client has gone (a closed stream)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Engine:
    """Runs jobs on ``model`` in one worker thread, batching compatible non-streaming jobs."""

    def __init__(self, model: Any, max_queue: int = 64, max_batch: int = 8, batch_wait_s: float = 0.01) -> None:
        self.model = model
        self.max_queue = max_queue
        self.max_batch = max(1, max_batch)
        self.batch_wait_s = batch_wait_s
        self.generate_calls = 0  # how many generate calls the jobs took (fewer than jobs when batched)
        self._pending = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._held: collections.deque[_Item] = collections.deque()  # taken while batching, not compatible
        eos = model.llm.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        self._thread = threading.Thread(target=self._loop, name="anymal-generate", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._queue.put(None)

    # --- the request side ------------------------------------------------------------------------------
    def _submit(self, job: Job, streamer: Any = None) -> Future:
        with self._lock:
            if self._pending >= self.max_queue:
                raise APIError(
                    f"the server is busy ({self._pending} requests queued); retry shortly",
                    status=429,
                    type="rate_limit_error",
                    code="queue_full",
                )
            self._pending += 1
        future: Future = Future()
        self._queue.put(_Item(job, streamer, future))
        return future

    async def generate(self, job: Job) -> Completion:
        """Runs ``job`` to completion."""
        return await asyncio.wrap_future(self._submit(job))

    def stream(self, job: Job) -> tuple[Iterator[str], Future]:
        """Queues ``job`` with a text streamer; returns the streamer (text pieces) and the future of its answer."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.model.tokenizer, skip_prompt=True, skip_special_tokens=True)
        return streamer, self._submit(job, streamer)

    # --- the worker ------------------------------------------------------------------------------------
    def _next(self) -> _Item | None:
        return self._held.popleft() if self._held else self._queue.get()

    def _loop(self) -> None:
        while True:
            first = self._next()
            if first is None:
                return
            batch = [first]
            if first.streamer is None and self.max_batch > 1:
                key, deadline, skipped = first.job.batch_key(), time.monotonic() + self.batch_wait_s, []
                while len(batch) < self.max_batch:
                    try:
                        item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if item is None:
                        self._queue.put(None)
                        break
                    if item.streamer is None and item.job.batch_key() == key:
                        batch.append(item)
                    else:
                        skipped.append(item)
                self._held.extend(skipped)
            try:
                self._run_batch(batch)
            except BaseException as exc:  # never lose the worker: whatever is unanswered gets the error
                for item in batch:
                    self._fail(item, exc)

    def _finish(self, item: _Item, result: Completion | None = None, exc: BaseException | None = None) -> None:
        if item.future.done():
            return
        with self._lock:
            self._pending -= 1
        if exc is not None:
            if item.streamer is not None:
                item.streamer.end()  # wake the reader; it then reads the error from the future
            item.future.set_exception(exc)
        else:
            item.future.set_result(result)

    def _fail(self, item: _Item, exc: BaseException) -> None:
        self._finish(item, exc=exc)

    def _inputs(self, job: Job, tmp: list[str]) -> dict[str, list[Any]]:
        """The job's raw inputs per modality, each checked by its plugin (an error names the part)."""
        modal: dict[str, list[Any]] = {}
        for name, raws in job.conversation.inputs.items():
            plugin = self.model.plugins[name]
            items = []
            for raw, where in zip(raws, job.conversation.where[name]):
                if isinstance(raw, MediaFile):  # decoders that read files (video): a temporary file
                    fd, path = tempfile.mkstemp(suffix=raw.suffix or ".bin")
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(raw.data)
                    tmp.append(path)
                    raw = path
                try:
                    plugin.preprocess(raw)
                except (AnyMALError, ValueError, OSError) as exc:
                    raise APIError(f"{where}: {exc}", param=where, code="invalid_media") from None
                items.append(raw)
            modal[name] = items
        return modal

    def _completion(self, row: list[int], max_tokens: int) -> Completion:
        n = min(len(row), max_tokens)
        for i, token in enumerate(row[:n]):
            if token in self._eos:
                n = i + 1
                break
        tokens = row[:n]
        return Completion(tokens, self.model.tokenizer.decode(tokens, skip_special_tokens=True))

    def _generate(self, items: list[_Item], inputs: list[dict[str, list[Any]]]) -> list[Completion]:
        from transformers import StoppingCriteriaList

        kwargs = dict(items[0].job.generate_kwargs)
        kwargs["max_new_tokens"] = max(item.job.generate_kwargs["max_new_tokens"] for item in items)
        if len(items) == 1:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_Cancel(items[0].job.cancelled)])
            if items[0].streamer is not None:
                kwargs["streamer"] = items[0].streamer
            modal: dict[str, Any] = inputs[0]
            ids: list[list[int]] = [items[0].job.ids]
        else:
            names = {name for row in inputs for name in row}
            modal = {name: [row.get(name) for row in inputs] for name in names}
            ids = [item.job.ids for item in items]
        self.generate_calls += 1
        output = self.model.generate(input_ids=ids, **modal, **kwargs)
        rows = output.sequences.tolist()
        return [self._completion(row, item.job.generate_kwargs["max_new_tokens"]) for row, item in zip(rows, items)]

    def _run_batch(self, batch: list[_Item]) -> None:
        tmp: list[str] = []
        try:
            ready: list[_Item] = []
            inputs: list[dict[str, list[Any]]] = []
            for item in batch:
                try:
                    inputs.append(self._inputs(item.job, tmp))
                    ready.append(item)
                except Exception as exc:
                    self._fail(item, exc)
            if not ready:
                return
            try:
                results = self._generate(ready, inputs)
            except Exception as exc:
                if len(ready) == 1:
                    self._fail(ready[0], exc)
                    return
                for item, row in zip(ready, inputs):  # find the one that failed: each alone
                    try:
                        self._finish(item, self._generate([item], [row])[0])
                    except Exception as single_exc:
                        self._fail(item, single_exc)
                return
            for item, result in zip(ready, results):
                self._finish(item, result)
        finally:
            for path in tmp:
                os.unlink(path)
