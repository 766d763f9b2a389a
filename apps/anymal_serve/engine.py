"""The model behind the server: one worker thread owns the model and runs ``generate`` on small batches.

Requests are prepared (messages rendered, token ids counted, limits and input classifiers applied) on the event
loop's side and queued (at most ``max_queue`` waiting; later ones get a 429). The worker takes the oldest job and
waits up to ``batch_wait_s`` for more (up to ``max_batch``), streaming or not, whatever their sampling settings:
each row samples with its own settings and seed (:mod:`anymal_serve.sampling`) and ends on its own
(:mod:`anymal_serve.rows`: EOS, its ``max_tokens``, its ``stop`` strings, a client gone, a refused sentence). A row
that ends is answered at once; the call runs on until its longest row ends, and the next batch starts after it.

One request never breaks the others: each job's media are checked on their own first (a bad input fails only
its request, naming its part); should the batched call still fail, each job that has not yet sent text is retried
alone. Stream pieces go to each job's ``sink`` without waiting on the client, so a slow reader holds up no one.
"""

from __future__ import annotations

import asyncio
import collections
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from anymal.errors import AnyMALError
from anymal_serve.errors import APIError
from anymal_serve.parts import Conversation, MediaFile
from anymal_serve.rows import Completion, Row, RowStopper
from anymal_serve.sampling import RowSampler, Sampling

__all__ = ["Completion", "Engine", "Job", "load_model"]


def load_model(path: str) -> Any:
    """``AnyMAL.from_pretrained(path)`` in eval mode."""
    from anymal import AnyMAL

    return AnyMAL.from_pretrained(path).eval()


@dataclass
class Job:
    """One prepared request: prompt ids (with modality sentinels), raw inputs and how to generate.

    ``sink`` receives the answer's text pieces as they are released (streams); ``check_sentence`` is the output
    safety check (None: off).
    """

    ids: list[int]
    conversation: Conversation
    max_tokens: int
    sampling: Sampling = field(default_factory=lambda: Sampling(temperature=0.0))
    stop: list[str] = field(default_factory=list)
    sink: Callable[[str], None] | None = None
    check_sentence: Callable[[str], Any] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Item:
    job: Job
    future: Future


def _has_output_plugins(model: Any) -> bool:
    """Whether ``generate`` decodes outputs (boxes, masks) that exist only once the whole call has returned."""
    return bool(getattr(model, "output_plugins", None))


def _json_ready(value: Any) -> Any:
    """Decoded outputs as JSON: boxes (``anymal_box.Boxes``) as ``[[x1, y1, x2, y2], ...]`` in their frame (the
    original image's pixels, as ``generate`` returns them), masks (``anymal_seg.Masks``) as COCO RLEs with their
    scores and boxes (a photo's bool mask as nested lists would be megabytes), tensors and arrays as nested lists."""
    if all(hasattr(value, name) for name in ("data", "scores", "boxes", "frame")):
        from anymal_box import encode_mask

        return {
            "rle": [encode_mask(mask) for mask in value.data],
            "scores": _json_ready(value.scores),
            "boxes": _json_ready(value.boxes()),
        }
    if hasattr(value, "xyxy"):
        return _json_ready(value.xyxy)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return {k: _json_ready(v) for k, v in vars(value).items() if not k.startswith("_")}
    return value


class Engine:
    """Runs jobs on ``model`` in one worker thread, in batches of up to ``max_batch``."""

    def __init__(self, model: Any, max_queue: int = 64, max_batch: int = 8, batch_wait_s: float = 0.01) -> None:
        self.model = model
        self.max_queue = max_queue
        self.max_batch = max(1, max_batch)
        self.batch_wait_s = batch_wait_s
        self.generate_calls = 0  # how many generate calls the jobs took (fewer than jobs when batched)
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        self.dropped = 0  # jobs whose client left before their batch started
        self._pending = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        eos = model.llm.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        self._thread = threading.Thread(target=self._loop, name="anymal-generate", daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = 60.0) -> None:
        """Stops the worker after the jobs already queued and waits for it: a daemon thread still inside torch when
        the interpreter exits aborts the process ("terminate called without an active exception")."""
        self._queue.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # --- the request side ------------------------------------------------------------------------------
    def submit(self, job: Job) -> Future:
        """Queues ``job``; its future resolves to a :class:`Completion` (or the error that failed it)."""
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
        self._queue.put(_Item(job, future))
        return future

    _submit = submit  # the name the first tests used

    async def generate(self, job: Job) -> Completion:
        """Runs ``job`` to completion."""
        return await asyncio.wrap_future(self.submit(job))

    # --- the worker ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                self._run_batch(batch)
            except BaseException as exc:  # never lose the worker: whatever is unanswered gets the error
                for item in batch:
                    self._finish(item, exc=exc)

    def _finish(self, item: _Item, result: Completion | None = None, exc: BaseException | None = None) -> None:
        if item.future.done():
            return
        with self._lock:
            self._pending -= 1
        if exc is not None:
            item.future.set_exception(exc)
        else:
            item.future.set_result(result)

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

    def _row(self, item: _Item) -> Row:
        job = item.job
        return Row(
            max_tokens=job.max_tokens,
            eos=self._eos,
            decode=lambda tokens: self.model.tokenizer.decode(tokens, skip_special_tokens=True),
            stop=list(job.stop),
            sink=job.sink,
            check_sentence=job.check_sentence,
            cancelled=job.cancelled,
        )

    def _generate(self, items: list[_Item], inputs: list[dict[str, list[Any]]], rows: list[Row]) -> None:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        late = _has_output_plugins(self.model)  # outputs exist only when the call returns: answer then

        def on_done(row: Row) -> None:
            if not late:
                self._finish(items[rows.index(row)], row.completion())

        stopper = RowStopper(rows, on_done)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(item.job.max_tokens for item in items),
            "do_sample": False,  # RowSampler has chosen each row's token; HF's greedy step takes it
            "logits_processor": LogitsProcessorList([RowSampler([item.job.sampling for item in items])]),
            "stopping_criteria": StoppingCriteriaList([stopper]),
        }
        if len(items) == 1:
            modal: dict[str, Any] = inputs[0]
        else:
            names = {name for row in inputs for name in row}
            modal = {name: [row.get(name) for row in inputs] for name in names}
        self.generate_calls += 1
        self.batch_sizes[len(items)] += 1
        output = self.model.generate(input_ids=[item.job.ids for item in items], **modal, **kwargs)
        stopper.finish()
        decoded = getattr(output, "outputs", None) or {}  # output plugins' fields ("boxes", "masks"), per row
        for i, (item, row) in enumerate(zip(items, rows)):
            completion = row.completion()
            completion.outputs = {name: _json_ready(values[i]) for name, values in decoded.items() if i < len(values)}
            self._finish(item, completion)

    def _run_batch(self, batch: list[_Item]) -> None:
        tmp: list[str] = []
        try:
            ready: list[_Item] = []
            inputs: list[dict[str, list[Any]]] = []
            for item in batch:
                if item.job.cancelled.is_set():  # its client left while it waited: nothing to compute
                    self.dropped += 1
                    self._finish(item, exc=APIError("the client closed the request", status=499, code="cancelled"))
                    continue
                try:
                    inputs.append(self._inputs(item.job, tmp))
                    ready.append(item)
                except Exception as exc:
                    self._finish(item, exc=exc)
            if not ready:
                return
            rows = [self._row(item) for item in ready]
            try:
                self._generate(ready, inputs, rows)
            except Exception as exc:
                if len(ready) == 1:
                    self._finish(ready[0], exc=exc)
                    return
                for item, row_inputs, row in zip(ready, inputs, rows):  # find the one that failed: each alone
                    if item.future.done():
                        continue
                    if row.released:  # its client has seen text: a retry would repeat it
                        self._finish(item, exc=exc)
                        continue
                    try:
                        self._generate([item], [row_inputs], [self._row(item)])
                    except Exception as single_exc:
                        self._finish(item, exc=single_exc)
        finally:
            for path in tmp:
                os.unlink(path)
