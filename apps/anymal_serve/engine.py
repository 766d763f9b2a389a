"""The model behind the server: one ``generate`` at a time in a worker thread, behind a bounded queue.

Requests are prepared (messages rendered, token ids counted) on the event loop's side; media decoding, the
plugins' input checks and ``generate`` run in the single worker thread, so the model is never entered twice at
once and the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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


class _Cancel:
    """An HF stopping criterion that ends generation when the client has gone (a closed stream)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Engine:
    """Runs jobs on ``model`` one at a time; at most ``max_queue`` wait, later ones get a 429."""

    def __init__(self, model: Any, max_queue: int = 64) -> None:
        self.model = model
        self.max_queue = max_queue
        self._pending = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anymal-generate")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _admit(self) -> None:
        with self._lock:
            if self._pending >= self.max_queue:
                raise APIError(
                    f"the server is busy ({self._pending} requests queued); retry shortly",
                    status=429,
                    type="rate_limit_error",
                    code="queue_full",
                )
            self._pending += 1

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    def _run(self, job: Job, streamer: Any = None) -> Any:
        """In the worker thread: decode and check each input (errors name its part), then generate."""
        from transformers import StoppingCriteriaList

        tmp: list[str] = []
        try:
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
            kwargs = dict(job.generate_kwargs)
            kwargs["stopping_criteria"] = StoppingCriteriaList([_Cancel(job.cancelled)])
            if streamer is not None:
                kwargs["streamer"] = streamer
            return self.model.generate(input_ids=[job.ids], **modal, **kwargs)
        finally:
            for path in tmp:
                os.unlink(path)

    async def generate(self, job: Job) -> Any:
        """Runs ``job`` to completion; returns the model's GenerateOutput."""
        self._admit()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, job)
        finally:
            self._release()

    def stream(self, job: Job) -> tuple[Iterator[str], Any]:
        """Starts ``job`` with a text streamer; returns the streamer (text pieces) and the future of its output."""
        from transformers import TextIteratorStreamer

        self._admit()
        streamer = TextIteratorStreamer(self.model.tokenizer, skip_prompt=True, skip_special_tokens=True)
        future = self._executor.submit(self._run_streaming, job, streamer)
        return streamer, future

    def _run_streaming(self, job: Job, streamer: Any) -> Any:
        try:
            return self._run(job, streamer)
        except BaseException:
            streamer.end()  # wake the reader; it then reads the error from the future
            raise
        finally:
            self._release()
