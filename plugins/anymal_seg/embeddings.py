"""SAM image embeddings, computed once per image and reused: in memory (LRU) and optionally on disk.

SAM's image encoder is frozen, so an image's embedding never changes while the decoder trains: it is the costliest
part of a step (a ViT-H at 1024 px) and is computed under ``no_grad`` once. Keys are the sha256 of the preprocessed
pixels (what the encoder actually sees) plus the encoder's weight fingerprint (and its dtype when not float32), so
another SAM, another input size or a bf16 copy never reads a stale entry. The disk cache stores one safetensors file
per image (``<folder>/<encoder key>/<aa>/<digest>.safetensors``), written atomically, like ``anymal.train``'s
feature cache.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from anymal.atomic import atomic_write_file
from anymal.fingerprint import fingerprint_module


def pixel_key(pixel_values: torch.Tensor) -> str:
    """The content key of one preprocessed image ``[3, S, S]``."""
    array = pixel_values.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha256(array.tobytes()).hexdigest()


class EmbeddingCache:
    """Image embeddings ``[C, g, g]`` by content key; ``compute`` fills what is missing in one batched call."""

    def __init__(self, folder: str | None, items: int) -> None:
        self.folder = Path(folder).expanduser() if folder else None
        self.items = items
        self.memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._encoder_key: str | None = None
        self.computed = 0
        self.hits = 0

    def _path(self, key: str) -> Path:
        assert self.folder is not None and self._encoder_key is not None
        return self.folder / self._encoder_key / key[:2] / f"{key}.safetensors"

    def _remember(self, key: str, value: torch.Tensor) -> None:
        if self.items <= 0:
            return
        self.memory[key] = value
        self.memory.move_to_end(key)
        while len(self.memory) > self.items:
            self.memory.popitem(last=False)

    def get_many(self, keys: list[str], pixels: torch.Tensor, encoder: torch.nn.Module) -> torch.Tensor:
        """Embeddings ``[B, C, g, g]`` of the ``B`` images (``pixels`` ``[B, 3, S, S]``, keys alike); ``encoder``
        maps pixels to embeddings (its weights' fingerprint is part of the disk key)."""
        if self._encoder_key is None:
            # the fingerprint is of the weights as built; a bf16 copy of them (frozen_dtype) gets its own entries
            dtype = next(encoder.parameters()).dtype
            suffix = "" if dtype == torch.float32 else "-" + str(dtype).removeprefix("torch.")
            self._encoder_key = fingerprint_module(encoder)[:20] + suffix
        found: dict[int, torch.Tensor] = {}
        for i, key in enumerate(keys):
            value = self.memory.get(key)
            if value is None and self.folder is not None and self._path(key).is_file():
                value = load_file(str(self._path(key)))["embedding"]
                self._remember(key, value)
            if value is not None:
                if key in self.memory:
                    self.memory.move_to_end(key)
                found[i] = value
                self.hits += 1
        missing = [i for i in range(len(keys)) if i not in found]
        if missing:
            with torch.no_grad():
                fresh = encoder(pixels[missing]).detach()
            self.computed += len(missing)
            for j, i in enumerate(missing):
                value = fresh[j].to("cpu").contiguous()
                found[i] = value
                self._remember(keys[i], value)
                if self.folder is not None:
                    atomic_write_file(self._path(keys[i]), lambda tmp, v=value: save_file({"embedding": v}, str(tmp)))
        return torch.stack([found[i] for i in range(len(keys))])
