"""Proof that the language model stays frozen: hashes of its weights before and after every training stage.

Two hashes are kept. ``folder_hash`` is a SHA-256 over every byte of the LM's weight files (nothing may write
them). ``llm_hash`` is a SHA-256 over the base weights *in memory* of the model being trained, 4-bit packed weights
and quantisation constants included, LoRA adapter tensors excluded and PEFT's name prefixes removed, so that the
same LM hashes the same inside and outside a PEFT wrapper. :func:`capture_models` lets the demo hash the very model
object a training stage optimised, right after it was built and again after the stage ends.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from anymal.fingerprint import base_weights_hash

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def folder_hash(folder: str | Path) -> str:
    """SHA-256 of the names and full contents of the weight files in ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.name.endswith(WEIGHT_SUFFIXES):
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def llm_hash(llm: nn.Module) -> str:
    """SHA-256 of the LM's base weights in memory (LoRA excluded): :func:`anymal.fingerprint.base_weights_hash`."""
    return base_weights_hash(llm)


@contextlib.contextmanager
def capture_models() -> Iterator[list[dict]]:
    """Records, for each model ``anymal.train`` builds inside the block, the model and its LM hash at build time.

    ``anymal.train.train`` returns a ``TrainResult`` without the model it trained; until it does, this wraps the
    loop's ``build_model`` for the duration of the block (and restores it after) so that the demo can hash the
    trained model's LM in memory.
    """
    from anymal.train import loop

    captured: list[dict] = []
    original = loop.build_model

    def build_and_record(config):
        model = original(config)
        captured.append({"model": model, "before": llm_hash(model.llm)})
        return model

    loop.build_model = build_and_record
    try:
        yield captured
    finally:
        loop.build_model = original
