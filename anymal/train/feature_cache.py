"""A disk cache of frozen-encoder features, reused across epochs and runs.

Encoders are frozen, so the features of an input never change while training: they are computed once (one
batched pass before training, with a progress bar) and stored as one small safetensors file per input, at
``root/<modality>/<encoder key>/<aa>/<content hash>.safetensors``. The encoder key combines the encoder's weight
fingerprint with the plugin config, so a different encoder or preprocessing setting uses a fresh folder; the content
hash is of the input's bytes, so an edited file is re-encoded. Writes are atomic (temp file + rename).

Caching fixes preprocessing: a plugin's random train-time choices (e.g. random segment sampling) happen once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from anymal.atomic import atomic_write_file
from anymal.config import config_to_dict
from anymal.errors import AnyMALError
from anymal.fingerprint import fingerprint_module
from anymal.progress import bars_disabled_by_env


def _flatten(features: Any) -> dict[str, torch.Tensor]:
    if isinstance(features, torch.Tensor):
        return {"features": features.detach().contiguous().cpu()}
    return {f"features.{k}": v.detach().contiguous().cpu() for k, v in features.items()}


def _unflatten(tensors: dict[str, torch.Tensor]) -> Any:
    if set(tensors) == {"features"}:
        return tensors["features"]
    return {k.split(".", 1)[1]: v for k, v in tensors.items()}


def concat_features(items: list[Any]) -> Any:
    """Batches per-item features (each with a leading dimension of 1) along dimension 0."""
    if isinstance(items[0], torch.Tensor):
        return torch.cat(items, dim=0)
    return {key: torch.cat([item[key] for item in items], dim=0) for key in items[0]}


class FeatureCache:
    """Features of one model's frozen encoders, keyed by input content and encoder identity."""

    def __init__(self, root: str | os.PathLike, model) -> None:
        self.root = Path(root)
        self.model = model
        self._encoder_keys: dict[str, str] = {}
        self._content: dict[tuple[str, int, int], str] = {}
        self.hits = 0
        self.writes = 0
        self.failures: list[str] = []  # inputs precompute could not read, with the row they came from

    def encoder_key(self, modality: str) -> str:
        if modality not in self._encoder_keys:
            plugin = self.model.plugins[modality]
            digest = hashlib.sha256()
            digest.update(fingerprint_module(self.model.encoders[modality]).encode())
            digest.update(json.dumps(config_to_dict(plugin.config), sort_keys=True, default=str).encode())
            self._encoder_keys[modality] = digest.hexdigest()[:20]
        return self._encoder_keys[modality]

    def content_hash(self, ref) -> str:
        """sha256 of the input's bytes (memoised per path, size and modification time)."""
        if ref.data is not None:
            return hashlib.sha256(ref.data).hexdigest()
        stat = ref.path.stat()
        key = (str(ref.path), stat.st_size, stat.st_mtime_ns)
        if key not in self._content:
            self._content[key] = hashlib.sha256(ref.path.read_bytes()).hexdigest()
        return self._content[key]

    def path(self, modality: str, ref) -> Path:
        digest = self.content_hash(ref)
        return self.root / modality / self.encoder_key(modality) / digest[:2] / f"{digest}.safetensors"

    def get(self, modality: str, ref) -> Any | None:
        """Cached features of one input (leading dimension 1), or ``None``."""
        try:
            path = self.path(modality, ref)
        except OSError:
            return None
        if not path.is_file():
            return None
        self.hits += 1
        return _unflatten(load_file(str(path)))

    def put(self, modality: str, ref, features: Any) -> None:
        path = self.path(modality, ref)
        flat = _flatten(features)
        atomic_write_file(path, lambda tmp: save_file(flat, str(tmp)))
        self.writes += 1

    def precompute(self, examples: Iterable, batch_size: int = 8, show_progress: bool = True) -> dict[str, int]:
        """Encodes every input of ``examples`` that is not cached yet. Bad inputs are left out: counted in the
        returned ``failed`` and listed in ``self.failures`` as ``file:line (modality): error``."""
        todo: dict[str, dict[str, Any]] = {}
        where: dict[int, str] = {}  # id(ref) -> the row it came from
        for example in examples:
            for modality, refs in example.media.items():
                if modality not in self.model.plugins:
                    continue
                for ref in refs:
                    try:
                        if not self.path(modality, ref).is_file():
                            todo.setdefault(modality, {})[self.content_hash(ref)] = ref
                            where[id(ref)] = f"{getattr(example, 'location', '?')} ({modality})"
                    except OSError:
                        continue
        stats = {"encoded": 0, "failed": 0}
        total = sum(len(refs) for refs in todo.values())
        bar = tqdm(total=total, desc="feature cache", disable=not show_progress or total == 0 or bars_disabled_by_env())
        for modality, refs in todo.items():
            plugin = self.model.plugins[modality]
            pending = list(refs.values())
            for start in range(0, len(pending), batch_size):
                chunk, items = [], []
                for ref in pending[start : start + batch_size]:
                    try:
                        items.append(plugin.preprocess(ref.raw()))
                        chunk.append(ref)
                    except AnyMALError as exc:
                        stats["failed"] += 1
                        self.failures.append(f"{where.get(id(ref), '?')}: {exc}")
                if items:
                    features = self.model.encode_features(modality, plugin.collate(items))
                    for i, ref in enumerate(chunk):
                        one = (
                            features[i : i + 1]
                            if isinstance(features, torch.Tensor)
                            else {k: v[i : i + 1] for k, v in features.items()}
                        )
                        self.put(modality, ref, one)
                    stats["encoded"] += len(chunk)
                bar.update(len(pending[start : start + batch_size]))
        bar.close()
        return stats
