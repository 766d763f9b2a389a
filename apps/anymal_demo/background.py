"""Training the stand-in LM in a second process while the main one makes the world and pretrains the encoders.

The demo's models are so small that a second CPU thread barely speeds any one of them up, while the LM (which
needs only the world's vocabulary, not its media) and the encoders (which need the media, not the LM) are
independent. On a machine with two cores they therefore train side by side, one per core.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from anymal_demo.language import LanguageModelConfig, pretrain_language_model


def _child(config: dict[str, Any], output: str, steps_done, threads, results) -> None:
    import torch

    torch.set_num_threads(threads.value)
    parent = os.getppid()

    def on_step(step: int, loss: float) -> None:
        if os.getppid() != parent:  # the demo was killed: do not train on as an orphan
            raise SystemExit(1)
        steps_done.value = step + 1
        if threads.value != torch.get_num_threads():  # the parent has freed its core
            torch.set_num_threads(threads.value)

    try:
        stats = pretrain_language_model(LanguageModelConfig(**config), output, progress=False, on_step=on_step)
        results.put(("ok", stats))
    except BaseException:  # the parent re-raises it with the child's traceback
        results.put(("error", traceback.format_exc()))


class BackgroundLanguageModel:
    """Starts :func:`pretrain_language_model` in a spawned process; :meth:`result` waits with a progress bar."""

    def __init__(self, config: LanguageModelConfig, output: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.steps = config.steps
        self.steps_done = context.Value("i", 0)
        self.threads = context.Value("i", 1)
        self.results = context.SimpleQueue()
        self.process = context.Process(
            target=_child,
            args=(asdict(config), str(output), self.steps_done, self.threads, self.results),
            daemon=True,
        )
        self.process.start()

    def result(self, progress: bool = True, threads: int = 1) -> dict[str, Any]:
        """The training statistics, once the child is done; raises ``RuntimeError`` if it failed.

        While it waits, the child may use ``threads`` CPU threads (the parent's core is free by then).
        """
        self.threads.value = threads
        with tqdm(total=self.steps, desc="language model", unit="step", disable=not progress) as bar:
            while self.results.empty() and self.process.is_alive():
                bar.update(self.steps_done.value - bar.n)
                time.sleep(0.25)
            bar.update(self.steps_done.value - bar.n)
        if self.results.empty():
            raise RuntimeError(f"the language-model process died (exit code {self.process.exitcode})")
        status, payload = self.results.get()
        self.process.join()
        if status != "ok":
            raise RuntimeError(f"training the stand-in language model failed:\n{payload}")
        return payload
