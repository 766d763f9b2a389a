"""The checkpoint folder layout: writing it atomically and reading it back into plain records.

A checkpoint holds only what anymal trained, one folder per plugin so that plugins aligned in separate runs
compose into one model (AnyMAL's stage 1 -> stage 2) and can be added, swapped or dropped::

    config.json                      format, format_version, llm (AnyMAL's LLM config), seed, modalities (order)
    fingerprints.json                the base LLM: name_or_path and a fingerprint of its files (never copied)
    plugins/<name>/config.json       the plugin's config (``plugin_type`` names the registry entry)
    plugins/<name>/projector.safetensors
    plugins/<name>/fingerprints.json the plugin's frozen encoder and the LLM its projector was trained against
    plugins/<output>/config.json     an output plugin's config (config.json lists them under ``outputs``)
    plugins/<output>/head.safetensors    its trained head
    plugins/<output>/tokens.safetensors  its trigger tokens' embedding rows (``embed``) and LM-head rows (``head``)
    plugins/<output>/fingerprints.json   its frozen module (if any) and the LLM it was trained against
    adapter/                         a PEFT LoRA adapter, when one was trained
    model.safetensors                other trainable weights, only if there are any
    tokenizer files                  with the chat template

Version 2 is the per-plugin layout; a checkpoint with output plugins is written as version 3 (same layout) so
that an anymal from before output plugins refuses it instead of building a model without its heads. Format
version 1 (before per-plugin folders: every projector in ``model.safetensors``, encoders in the top-level
``fingerprints.json``) is still read. This module turns folders into :class:`CheckpointContents`; building a model
from them is :mod:`anymal.pretrained`'s job, so this layer never imports the model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import anymal
from anymal.atomic import atomic_dir, recover_dir
from anymal.errors import CheckpointError
from anymal.fingerprint import fingerprint_folder, fingerprint_module
from anymal.pickles import refuse_pickles

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FINGERPRINTS_NAME = "fingerprints.json"
PLUGINS_DIR = "plugins"
PROJECTOR_NAME = "projector.safetensors"
HEAD_NAME = "head.safetensors"
TOKENS_NAME = "tokens.safetensors"
ADAPTER_DIR = "adapter"
FORMAT = "anymal"
FORMAT_VERSION = 3  # the newest layout this anymal writes; it reads 1 to FORMAT_VERSION
PLUGINS_FORMAT_VERSION = 2  # per-plugin folders, no output plugins: what a checkpoint without outputs is written as
_PROJECTOR_PREFIX = "projectors."
_LLM_PREFIX = "llm."
_HEAD_PREFIX = "heads."
_TOKENS_PREFIX = "token_rows."


@dataclass
class PluginRecord:
    """One plugin as stored: its config, projector weights and what they were trained against."""

    name: str
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    encoder_fingerprint: str | None
    llm: dict[str, Any]
    source: Path


@dataclass
class OutputRecord:
    """One output plugin as stored: its config, head and token-row weights, and what they were trained against."""

    name: str
    config: dict[str, Any]
    head: dict[str, torch.Tensor]
    tokens: dict[str, torch.Tensor]
    frozen_fingerprint: str | None
    llm: dict[str, Any]
    source: Path


@dataclass
class CheckpointContents:
    """Everything a checkpoint folder holds, read and validated, not yet turned into a model."""

    folder: Path
    format_version: int
    llm_config: dict[str, Any]
    seed: int
    llm: dict[str, Any]
    plugins: dict[str, PluginRecord] = field(default_factory=dict)
    extra_weights: dict[str, torch.Tensor] = field(default_factory=dict)
    adapter: Path | None = None
    outputs: dict[str, OutputRecord] = field(default_factory=dict)

    def model_config_dict(self) -> dict[str, Any]:
        """The AnyMAL config (dict form) of the whole checkpoint, plugins in their stored order."""
        modalities = {name: record.config for name, record in self.plugins.items()}
        data = {"llm": self.llm_config, "modalities": modalities, "seed": self.seed}
        if self.outputs:
            data["outputs"] = {name: record.config for name, record in self.outputs.items()}
        return data


# --- writing -----------------------------------------------------------------------------------------------------
def base_fingerprints(model) -> dict[str, Any]:
    """What the checkpoint expects underneath it: the LLM and each encoder, by reference and fingerprint."""
    llm = model.config.llm
    prints = {
        "llm": {"name_or_path": llm.name_or_path, "fingerprint": fingerprint_folder(llm.name_or_path, llm.revision)}
    }
    prints["encoders"] = {name: fingerprint_module(encoder) for name, encoder in model.encoders.items()}
    frozen = getattr(model, "output_frozen", {})
    prints["outputs"] = {name: fingerprint_module(module) for name, module in frozen.items()}
    return prints


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _split_state(
    state: dict[str, torch.Tensor], names: list[str], outputs: list[str] | None = None
) -> tuple[dict, dict, dict]:
    """Splits a model state dict into per-plugin weights (projectors; ``heads``/``tokens`` of output plugins under
    ``"<name>/head"`` and ``"<name>/tokens"``), LoRA weights and the rest."""
    per_plugin: dict[str, dict[str, torch.Tensor]] = {name: {} for name in names}
    for name in outputs or []:
        per_plugin[f"{name}/head"], per_plugin[f"{name}/tokens"] = {}, {}
    lora, extra = {}, {}
    for key, value in state.items():
        value = value.detach().contiguous().cpu()
        owner = None
        for prefix, part in ((_HEAD_PREFIX, "head"), (_TOKENS_PREFIX, "tokens")):
            if key.startswith(prefix):
                name, _, rest = key.removeprefix(prefix).partition(".")
                owner = f"{name}/{part}"
                if owner not in per_plugin:
                    raise CheckpointError(f"weight {key}: no output plugin named {name!r} in the model")
                per_plugin[owner][rest] = value
        if owner is not None:
            continue
        if key.startswith(_LLM_PREFIX):
            lora[key.removeprefix(_LLM_PREFIX)] = value
        elif key.startswith(_PROJECTOR_PREFIX):
            name, _, rest = key.removeprefix(_PROJECTOR_PREFIX).partition(".")
            if name not in per_plugin:
                raise CheckpointError(f"weight {key}: no plugin named {name!r} in the model")
            per_plugin[name][rest] = value
        else:
            extra[key] = value
    return per_plugin, lora, extra


def save_pretrained(
    model,
    path: str | os.PathLike,
    save_tokenizer: bool = True,
    state_dict: dict[str, torch.Tensor] | None = None,
    fingerprints: dict[str, Any] | None = None,
) -> None:
    """Writes ``model``'s checkpoint folder at ``path`` atomically (see the module docstring for the layout).

    ``state_dict`` replaces ``model.trainable_state_dict()`` and ``fingerprints`` replaces
    :func:`base_fingerprints`: training passes the weights it gathered from every rank and the fingerprints it took
    before FSDP sharded the frozen modules (see :mod:`anymal.train.sharded`).
    """
    state = model.trainable_state_dict() if state_dict is None else state_dict
    prints = fingerprints or base_fingerprints(model)
    names = list(model.config.modalities)
    outputs = list(getattr(model.config, "outputs", {}))
    per_plugin, lora, extra = _split_state(state, names, outputs)
    config = model.config.to_dict()
    with atomic_dir(path) as tmp:
        top = {
            "format": FORMAT,
            # 3 only when output plugins are stored: an anymal from before output plugins reads version 2 and
            # would build the model without its heads; version 3 makes it refuse and say "upgrade anymal"
            "format_version": FORMAT_VERSION if outputs else PLUGINS_FORMAT_VERSION,
            "anymal_version": anymal.__version__,
            "llm": config["llm"],
            "seed": config["seed"],
            "modalities": names,
        }
        if outputs:
            top["outputs"] = outputs
        _write_json(tmp / CONFIG_NAME, top)
        _write_json(tmp / FINGERPRINTS_NAME, {"llm": prints["llm"]})
        metadata = {"format": "pt", "anymal_version": anymal.__version__}
        for name in names:
            folder = tmp / PLUGINS_DIR / name
            folder.mkdir(parents=True)
            _write_json(folder / CONFIG_NAME, config["modalities"][name])
            save_file(per_plugin[name], str(folder / PROJECTOR_NAME), metadata=metadata)
            encoder = prints.get("encoders", {}).get(name)
            _write_json(folder / FINGERPRINTS_NAME, {"encoder": encoder, "llm": prints["llm"]})
        for name in outputs:
            folder = tmp / PLUGINS_DIR / name
            folder.mkdir(parents=True)
            _write_json(folder / CONFIG_NAME, config["outputs"][name])
            save_file(per_plugin[f"{name}/head"], str(folder / HEAD_NAME), metadata=metadata)
            save_file(per_plugin[f"{name}/tokens"], str(folder / TOKENS_NAME), metadata=metadata)
            frozen = prints.get("outputs", {}).get(name)
            _write_json(folder / FINGERPRINTS_NAME, {"frozen": frozen, "llm": prints["llm"]})
        if extra:
            save_file(extra, str(tmp / WEIGHTS_NAME), metadata=metadata)
        if save_tokenizer and model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp))
        if hasattr(model.llm, "peft_config"):
            # LoRA weights, in PEFT's format. Output plugins resize the vocabulary, so PEFT would turn on
            # save_embedding_layers (and warn); the base embeddings stay frozen and fingerprinted, and the trigger
            # tokens' rows are stored in plugins/<output>/tokens.safetensors
            model.llm.save_pretrained(str(tmp / ADAPTER_DIR), state_dict=lora, save_embedding_layers=False)


# --- reading -----------------------------------------------------------------------------------------------------
def _read_json(path: Path, expect: type = dict) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; is {path.parent} an anymal checkpoint folder?")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt JSON ({exc})") from None
    if not isinstance(data, expect):
        raise CheckpointError(f"{path}: expected a JSON {expect.__name__}, got {type(data).__name__}")
    return data


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CheckpointError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing weights file")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors file (safetensors failed: {exc})") from None
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"{path}: {key} holds {bad} NaN/inf values; the file is damaged")
    return state


def _read_llm_record(prints: dict[str, Any], path: Path) -> dict[str, Any]:
    record = _mapping(prints.get("llm", {}), f"{path}: llm")
    return {"name_or_path": record.get("name_or_path"), "fingerprint": record.get("fingerprint")}


def _read_plugin_folder(folder: Path, name: str, fallback_llm: dict[str, Any] | None = None) -> PluginRecord:
    refuse_pickles(folder)
    config = _read_json(folder / CONFIG_NAME)
    prints_path = folder / FINGERPRINTS_NAME
    prints = _read_json(prints_path) if prints_path.is_file() else {}
    llm = _read_llm_record(prints, prints_path) if "llm" in prints else dict(fallback_llm or {})
    encoder = prints.get("encoder")
    if encoder is not None and not isinstance(encoder, str):
        raise CheckpointError(f"{prints_path}: encoder: expected a fingerprint string, got {type(encoder).__name__}")
    return PluginRecord(name, config, _read_weights(folder / PROJECTOR_NAME), encoder, llm, folder)


def _read_output_folder(folder: Path, name: str, fallback_llm: dict[str, Any]) -> OutputRecord:
    refuse_pickles(folder)
    config = _read_json(folder / CONFIG_NAME)
    prints_path = folder / FINGERPRINTS_NAME
    prints = _read_json(prints_path) if prints_path.is_file() else {}
    llm = _read_llm_record(prints, prints_path) if "llm" in prints else dict(fallback_llm)
    frozen = prints.get("frozen")
    if frozen is not None and not isinstance(frozen, str):
        raise CheckpointError(f"{prints_path}: frozen: expected a fingerprint string, got {type(frozen).__name__}")
    head, tokens = _read_weights(folder / HEAD_NAME), _read_weights(folder / TOKENS_NAME)
    return OutputRecord(name, config, head, tokens, frozen, llm, folder)


def _read_top(folder: Path) -> dict[str, Any]:
    recover_dir(folder)  # a save killed between its two renames left the previous version aside
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    refuse_pickles(folder)  # e.g. a planted adapter/adapter_model.bin that PEFT would unpickle
    top = _read_json(folder / CONFIG_NAME)
    if top.get("format") != FORMAT:
        raise CheckpointError(f'{folder / CONFIG_NAME}: not an anymal config (no "format": "anymal")')
    version = top.get("format_version", 1)
    if version not in range(1, FORMAT_VERSION + 1) or not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(
            f"{folder / CONFIG_NAME}: format_version {version!r}; this anymal ({anymal.__version__}) reads 1 to "
            f"{FORMAT_VERSION}: upgrade anymal"
        )
    return top


def read_checkpoint(path: str | os.PathLike) -> CheckpointContents:
    """Reads and validates a checkpoint folder (either format version); raises CheckpointError naming the file."""
    folder = Path(path)
    top = _read_top(folder)
    prints = _read_json(folder / FINGERPRINTS_NAME)
    llm = _read_llm_record(prints, folder / FINGERPRINTS_NAME)
    version = top.get("format_version", 1)
    contents = CheckpointContents(
        folder=folder,
        format_version=version,
        llm_config=_mapping(top.get("llm", {}), f"{folder / CONFIG_NAME}: llm"),
        seed=top.get("seed", 0),
        llm=llm,
        adapter=folder / ADAPTER_DIR if (folder / ADAPTER_DIR).is_dir() else None,
    )
    if contents.adapter is not None and (contents.adapter / "adapter_model.safetensors").is_file():
        _read_weights(contents.adapter / "adapter_model.safetensors")  # refuses NaN/inf before PEFT loads it
    if version == 1:
        _read_version_1(contents, top, prints)
    else:
        names = top.get("modalities", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{folder / CONFIG_NAME}: modalities: expected a list of plugin names")
        for name in names:
            plugin_folder = folder / PLUGINS_DIR / name
            if not plugin_folder.is_dir():
                raise CheckpointError(f"{plugin_folder}: missing; {folder / CONFIG_NAME} lists plugin {name!r}")
            contents.plugins[name] = _read_plugin_folder(plugin_folder, name, llm)
        outputs = top.get("outputs", [])
        if not isinstance(outputs, list) or not all(isinstance(n, str) for n in outputs):
            raise CheckpointError(f"{folder / CONFIG_NAME}: outputs: expected a list of output plugin names")
        for name in outputs:
            output_folder = folder / PLUGINS_DIR / name
            if not output_folder.is_dir() or name in contents.plugins:
                raise CheckpointError(
                    f"{output_folder}: missing or a modality's folder; {folder / CONFIG_NAME} lists output {name!r}"
                )
            contents.outputs[name] = _read_output_folder(output_folder, name, llm)
        if (folder / WEIGHTS_NAME).is_file():
            contents.extra_weights = _read_weights(folder / WEIGHTS_NAME)
    return contents


def _read_version_1(contents: CheckpointContents, top: dict[str, Any], prints: dict[str, Any]) -> None:
    """Format 1: one ``model.safetensors`` with every projector, encoder fingerprints at the top level."""
    folder = contents.folder
    modalities = _mapping(top.get("modalities", {}), f"{folder / CONFIG_NAME}: modalities")
    encoders = _mapping(prints.get("encoders", {}), f"{folder / FINGERPRINTS_NAME}: encoders")
    state = _read_weights(folder / WEIGHTS_NAME)
    for name, config in modalities.items():
        weights = {
            key.removeprefix(f"{_PROJECTOR_PREFIX}{name}."): value
            for key, value in state.items()
            if key.startswith(f"{_PROJECTOR_PREFIX}{name}.")
        }
        contents.plugins[name] = PluginRecord(
            name,
            _mapping(config, f"{folder / CONFIG_NAME}: modalities.{name}"),
            weights,
            encoders.get(name),
            contents.llm,
            folder,
        )
    contents.extra_weights = {k: v for k, v in state.items() if not k.startswith(_PROJECTOR_PREFIX)}


def read_plugin(path: str | os.PathLike, name: str) -> PluginRecord:
    """Plugin ``name`` from a checkpoint folder, or from one plugin's own folder (``<checkpoint>/plugins/<name>``)."""
    folder = Path(path)
    if (folder / PROJECTOR_NAME).is_file():  # a plugin folder on its own
        return _read_plugin_folder(folder, name)
    contents = read_checkpoint(folder)
    if name not in contents.plugins:
        have = ", ".join(contents.plugins) or "none"
        raise CheckpointError(f"{folder}: has no plugin {name!r} (it has: {have})")
    return contents.plugins[name]


def read_trainable_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A checkpoint's stored weights keyed as in ``model.trainable_state_dict()`` (``projectors.<name>.*`` and any
    other trained weights; LoRA stays in ``adapter/``): for comparing runs without building a model."""
    contents = read_checkpoint(path)
    state = {
        f"{_PROJECTOR_PREFIX}{name}.{key}": value
        for name, record in contents.plugins.items()
        for key, value in record.weights.items()
    }
    for name, output in contents.outputs.items():
        state.update({f"{_HEAD_PREFIX}{name}.{key}": value for key, value in output.head.items()})
        state.update({f"{_TOKENS_PREFIX}{name}.{key}": value for key, value in output.tokens.items()})
    state.update(contents.extra_weights)
    return state
