"""``save_pretrained`` / ``from_pretrained``: HF-style folders holding only what anymal trained.

A checkpoint folder holds ``config.json`` (the AnyMAL config), ``model.safetensors`` (trainable weights only),
the tokenizer with its chat template, ``fingerprints.json`` (the base LLM and encoders, referenced by id/path plus
a fingerprint, never copied) and, when LoRA was trained, a PEFT adapter in ``adapter/``. It is written to a
temporary sibling folder and renamed into place, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import anymal
from anymal.config import AnyMALConfig, QuantizationConfig, config_from_dict
from anymal.errors import CheckpointError, ConfigError
from anymal.fingerprint import fingerprint_folder, fingerprint_module

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FINGERPRINTS_NAME = "fingerprints.json"
FORMAT = "anymal"


def base_fingerprints(model) -> dict[str, Any]:
    """What the checkpoint expects underneath it: the LLM and each encoder, by reference and fingerprint."""
    llm = model.config.llm
    prints = {
        "llm": {"name_or_path": llm.name_or_path, "fingerprint": fingerprint_folder(llm.name_or_path, llm.revision)}
    }
    prints["encoders"] = {name: fingerprint_module(encoder) for name, encoder in model.encoders.items()}
    return prints


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


def atomic_replace_dir(tmp: Path, target: Path) -> None:
    """Moves the finished folder ``tmp`` to ``target``, replacing an existing one only after ``tmp`` is complete."""
    _fsync_tree(tmp)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_pretrained(
    model,
    path: str | os.PathLike,
    save_tokenizer: bool = True,
    state_dict: dict[str, torch.Tensor] | None = None,
    fingerprints: dict[str, Any] | None = None,
) -> None:
    """Writes ``model``'s checkpoint folder at ``path`` atomically.

    ``state_dict`` replaces ``model.trainable_state_dict()`` and ``fingerprints`` replaces
    :func:`base_fingerprints`: training passes the weights it gathered from every rank and the fingerprints it took
    before FSDP sharded the frozen modules (see :mod:`anymal.train.sharded`).
    """
    if state_dict is None:
        state_dict = model.trainable_state_dict()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        config = {"format": FORMAT, "anymal_version": anymal.__version__, **model.config.to_dict()}
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in state_dict.items() if not k.startswith("llm.")}
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "anymal_version": anymal.__version__})
        (tmp / FINGERPRINTS_NAME).write_text(json.dumps(fingerprints or base_fingerprints(model), indent=2) + "\n")
        if save_tokenizer and model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp))
        if hasattr(model.llm, "peft_config"):
            lora = {k.removeprefix("llm."): v for k, v in state_dict.items() if k.startswith("llm.")}
            model.llm.save_pretrained(str(tmp / "adapter"), state_dict=lora)  # LoRA weights, in PEFT's format
        atomic_replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; is {path.parent} an anymal checkpoint folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt JSON ({exc})") from None


def _quantization(value: str | QuantizationConfig | dict | None, current: QuantizationConfig) -> QuantizationConfig:
    if value is None:
        return current
    if isinstance(value, QuantizationConfig):
        return value
    if isinstance(value, str):
        return config_from_dict(
            QuantizationConfig,
            {"mode": value, "quant_type": current.quant_type, "compute_dtype": current.compute_dtype},
            "quantization",
        )
    if isinstance(value, dict):
        return config_from_dict(QuantizationConfig, value, "quantization")
    raise ConfigError(f"quantization={value!r}: expected 'none', '8bit', '4bit', a dict or a QuantizationConfig")


def load_pretrained(
    path: str | os.PathLike,
    model_class: type | None = None,
    quantization: str | QuantizationConfig | dict | None = None,
    torch_dtype: str | None = None,
    llm_path: str | None = None,
    check_fingerprints: bool = True,
    merge_lora: bool = False,
):
    """Rebuilds a model saved with ``save_pretrained``.

    Args:
        path: the checkpoint folder.
        quantization: how to load the base LLM now ('none', '8bit', '4bit' or a config): projectors trained
            against a 4-bit LLM load onto the full-precision one, as in the AnyMAL paper.
        torch_dtype: dtype of the base LLM ('float32', 'bfloat16', 'float16', 'auto').
        llm_path: where the base LLM lives now, if it moved (its fingerprint must still match).
        check_fingerprints: refuse base models whose fingerprint differs from the saved one (default).
        merge_lora: merge a saved LoRA adapter into the LLM weights (not possible on a quantised LLM).
    """
    from anymal.llm import has_tokenizer_files, load_tokenizer
    from anymal.modeling import AnyMAL

    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    raw = _read_json(folder / CONFIG_NAME)
    if raw.pop("format", None) != FORMAT:
        raise CheckpointError(f'{folder / CONFIG_NAME}: not an anymal config (no "format": "anymal")')
    raw.pop("anymal_version", None)
    config = AnyMALConfig.from_dict(raw)
    config.llm.quantization = _quantization(quantization, config.llm.quantization)
    if torch_dtype is not None:
        config = AnyMALConfig.from_dict({**config.to_dict(), "llm": {**config.to_dict()["llm"], "dtype": torch_dtype}})
    if llm_path is not None:
        config.llm.name_or_path = llm_path
    saved_prints = _read_json(folder / FINGERPRINTS_NAME)
    if check_fingerprints:
        now = fingerprint_folder(config.llm.name_or_path, config.llm.revision)
        before = saved_prints.get("llm", {})
        if now != before.get("fingerprint"):
            raise CheckpointError(
                f"base LLM mismatch: checkpoint {folder} was trained on {before.get('name_or_path')!r} "
                f"({before.get('fingerprint')}), but {config.llm.name_or_path!r} has fingerprint {now}; "
                "load the LLM it was trained on (llm_path=...) or pass check_fingerprints=False"
            )
    tokenizer = load_tokenizer(config.llm, source=str(folder)) if has_tokenizer_files(folder) else None
    cls = model_class or AnyMAL
    model = cls(config, tokenizer=tokenizer) if tokenizer is not None else cls(config)
    if check_fingerprints:
        for name, expected in saved_prints.get("encoders", {}).items():
            actual = fingerprint_module(model.encoders[name]) if name in model.encoders else None
            if actual != expected:
                raise CheckpointError(
                    f"encoder mismatch for modality {name!r}: checkpoint {folder} expects {expected}, "
                    f"the encoder built from its config has {actual}; check the plugin config's weights path"
                )
    weights_path = folder / WEIGHTS_NAME
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: missing trainable weights file")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path}: corrupt safetensors file (safetensors failed: {exc})") from None
    adapter = folder / "adapter"
    if adapter.is_dir():
        from anymal.lora import load_lora

        load_lora(model, adapter, merge=merge_lora)
    expected_keys = {k for k in model.trainable_state_dict() if not k.startswith("llm.")}
    missing, unexpected = expected_keys - set(state), set(state) - expected_keys
    if missing or unexpected:
        raise CheckpointError(
            f"{weights_path}: weights do not match the model built from its config "
            f"(missing: {sorted(missing)[:5]}, unexpected: {sorted(unexpected)[:5]})"
        )
    device = model.device
    with torch.no_grad():
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        for key, value in state.items():
            target = params.get(key, buffers.get(key))
            if target.shape != value.shape:
                raise CheckpointError(
                    f"{weights_path}: {key} has shape {tuple(value.shape)}, the model expects {tuple(target.shape)}"
                )
            target.copy_(value.to(device=device, dtype=target.dtype))
    return model
