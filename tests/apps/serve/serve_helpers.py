"""Helpers of the server's tests: a running server for an app, and a model whose answers follow a script.

:class:`Scripted` wraps a real tiny model: its ``generate`` is the real one (HF generation, the server's rows,
sampler, stop strings and safety checks all run), with one extra logits processor in front that forces every row
to say a fixed text and then EOS. Tests about sentences, stop strings and cut-off streams need an answer with
known sentences, which a random tiny model does not give.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch

uvicorn = pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """Serves ``app`` with uvicorn in a background thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class _Force:
    """Forces the script's next token in every row (then EOS); later processors see only that token finite."""

    def __init__(self, script: list[int], eos: int, delay_s: float = 0.0) -> None:
        self.script, self.eos, self.step, self.delay_s = script, eos, 0, delay_s

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        token = self.script[self.step] if self.step < len(self.script) else self.eos
        self.step += 1
        if self.delay_s:
            time.sleep(self.delay_s)  # a slow model: each token takes this long
        out = torch.full_like(scores, float("-inf"))
        out[:, token] = 0.0
        return out


class Scripted:
    """``model`` whose every answer is ``text`` (then EOS); with ``boxes``, outputs carry those boxes per row."""

    def __init__(self, model: Any, text: str, boxes: Any = None, delay_s: float = 0.0) -> None:
        self.inner = model
        self.script = model.tokenizer.encode(text, add_special_tokens=False)
        self.text = model.tokenizer.decode(self.script)
        self.boxes = boxes
        self.delay_s = delay_s
        # a model with output plugins is answered when its whole call returns (the boxes exist only then)
        self.output_plugins = {"loc": object()} if boxes is not None else dict(getattr(model, "output_plugins", {}))
        eos = model.llm.generation_config.eos_token_id
        self.eos = eos[0] if isinstance(eos, list) else eos

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, input_ids: Any, **kwargs: Any) -> Any:
        from transformers import LogitsProcessorList

        forced = _Force(self.script, self.eos, self.delay_s)
        kwargs["logits_processor"] = LogitsProcessorList([forced, *kwargs.get("logits_processor", [])])
        output = self.inner.generate(input_ids=input_ids, **kwargs)
        if self.boxes is not None:  # as a box output plugin fills GenerateOutput.outputs
            output.outputs["boxes"] = [self.boxes for _ in range(output.sequences.shape[0])]
        return output
