"""Cheap, stable fingerprints of base models, so a checkpoint is never loaded onto the wrong LLM or encoder.

The LLM fingerprint is computed from its files (config and weight files), so it is the same whether the LLM is
loaded in fp32, bf16, 8-bit or 4-bit: that is what lets projectors trained on a 4-bit LLM load onto the
full-precision one. Encoders (never quantised) are fingerprinted from their weights in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from anymal.errors import CheckpointError

_CHUNK = 1 << 20  # bytes read at each of three places in a weight file
_IGNORED_CONFIG_KEYS = {"transformers_version", "torch_dtype", "dtype", "quantization_config", "_name_or_path"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def resolve_model_folder(name_or_path: str, revision: str | None = None) -> Path:
    """The local folder of a model given by path or hub id (already in the HF cache; never downloads)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, revision=revision, local_files_only=True))
    except Exception as exc:
        raise CheckpointError(
            f"cannot locate the files of {name_or_path!r} locally to fingerprint them ({exc})"
        ) from exc


def _sample_file(digest: hashlib._Hash, path: Path) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}".encode())
    with path.open("rb") as handle:
        for offset in sorted({0, max(0, size // 2 - _CHUNK // 2), max(0, size - _CHUNK)}):
            handle.seek(offset)
            digest.update(handle.read(_CHUNK))


def fingerprint_folder(name_or_path: str, revision: str | None = None) -> str:
    """Fingerprint of a HF model folder: its config (minus load-time keys) plus sampled bytes of each weight file."""
    folder = resolve_model_folder(name_or_path, revision)
    digest = hashlib.sha256()
    config_path = folder / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        config = {k: v for k, v in config.items() if k not in _IGNORED_CONFIG_KEYS}
        digest.update(json.dumps(config, sort_keys=True).encode())
    weights = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    if not weights:
        raise CheckpointError(f"{folder}: no weight files ({', '.join(_WEIGHT_SUFFIXES)}) to fingerprint")
    for path in weights:
        _sample_file(digest, path)
    return "sha256:" + digest.hexdigest()[:32]


def fingerprint_file(path: str | os.PathLike) -> str:
    """Fingerprint of one weight file (size plus sampled bytes)."""
    digest = hashlib.sha256()
    _sample_file(digest, Path(path))
    return "sha256:" + digest.hexdigest()[:32]


@torch.no_grad()
def fingerprint_module(module: nn.Module, max_values: int = 65536) -> str:
    """Fingerprint of a module's weights: names, shapes, dtypes and up to ``max_values`` strided values each.

    A frozen encoder cast to its ``encoder_dtype`` answers with the fingerprint of its weights as built
    (``anymal.plugin.place_frozen_encoder`` keeps it), so checkpoints match across devices and dtypes.
    """
    kept = getattr(module, "anymal_fingerprint_as_built", None)
    if isinstance(kept, str):
        return kept
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        flat = tensor.detach().reshape(-1)
        if flat.numel() > max_values:
            flat = flat[:: flat.numel() // max_values]
        digest.update(flat.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()[:32]


_PEFT_NAME_PARTS = ("base_model.model.", ".base_layer")


def _base_weight_name(name: str) -> str:
    for part in _PEFT_NAME_PARTS:
        name = name.replace(part, "")
    return name


@torch.no_grad()
def base_weights_hash(llm: nn.Module) -> str:
    """SHA-256 (16 hex digits) over every byte of an LLM's base weights in memory, for proving it stayed frozen.

    4-bit packed weights and quantisation constants are included; LoRA adapter tensors are excluded and PEFT's name
    prefixes removed, so the same LLM hashes the same inside and outside a PEFT wrapper. Unlike
    :func:`fingerprint_module` (sampled, for identity) this reads every value: any change shows.
    """
    digest = hashlib.sha256()
    state = {_base_weight_name(k): v for k, v in llm.state_dict().items() if "lora_" not in k}
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]
