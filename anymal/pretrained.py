"""Building models from checkpoint records: ``from_pretrained`` and ``load_plugin``, with every fingerprint checked.

:mod:`anymal.checkpoint` reads folders into records; this module turns records into a model, refusing a projector
trained on another base LLM (naming both fingerprints) or an encoder whose weights differ from the ones the
projector was aligned to. The model class is passed in, so this module sits below :mod:`anymal.modeling`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from anymal.checkpoint import CheckpointContents, OutputRecord, PluginRecord, read_checkpoint, read_plugin
from anymal.config import AnyMALConfig, QuantizationConfig, config_from_dict
from anymal.errors import CheckpointError, ConfigError
from anymal.fingerprint import fingerprint_folder, fingerprint_module
from anymal.llm import has_tokenizer_files, load_tokenizer
from anymal.lora import load_lora


def quantization_override(
    value: str | QuantizationConfig | dict | None, current: QuantizationConfig
) -> QuantizationConfig:
    """The quantisation to load the LLM with now: a mode string keeps the stored quant type and compute dtype."""
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
        return config_from_dict(QuantizationConfig, {**current.__dict__, **value}, "quantization")
    raise ConfigError(f"quantization={value!r}: expected 'none', '8bit', '4bit', a dict or a QuantizationConfig")


def llm_fingerprint(model) -> str:
    """The fingerprint of the files of ``model``'s base LLM (what checkpoints record)."""
    llm = model.config.llm
    return fingerprint_folder(llm.name_or_path, llm.revision)


def check_llm(stored: dict[str, Any], name_or_path: str, fingerprint: str, source: Path) -> None:
    """Refuses weights trained on another base LLM, naming both LLMs and both fingerprints."""
    if stored.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"base LLM mismatch: {source} was trained on {stored.get('name_or_path')!r} "
            f"({stored.get('fingerprint')}), but {name_or_path!r} has fingerprint {fingerprint}; "
            "load the LLM it was trained on (llm_path=...) or pass check_fingerprints=False"
        )


def check_encoder(model, record: PluginRecord) -> None:
    """Refuses a projector whose frozen encoder, as built from its config, is not the one it was aligned to."""
    if record.encoder_fingerprint is None:
        return
    actual = fingerprint_module(model.encoders[record.name])
    if actual != record.encoder_fingerprint:
        raise CheckpointError(
            f"encoder mismatch for modality {record.name!r}: {record.source} expects {record.encoder_fingerprint}, "
            f"the encoder built from its config has {actual}; check the plugin config's weights path"
        )


def load_projector(model, name: str, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Copies stored projector weights into ``model.projectors[name]``, checking names and shapes."""
    load_module_weights(model.projectors[name], weights, source, f"projector {name!r}")


def load_module_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], source: Path, what: str) -> None:
    """Copies stored weights into ``module`` (a head, token rows), checking names and shapes; ``what`` names it."""
    expected = module.state_dict()
    missing, unexpected = set(expected) - set(weights), set(weights) - set(expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: {what} weights do not match the module built from its config "
            f"(missing: {sorted(missing)[:5]}, unexpected: {sorted(unexpected)[:5]})"
        )
    for key, value in weights.items():
        if expected[key].shape != value.shape:
            raise CheckpointError(
                f"{source}: {what} {key} has shape {tuple(value.shape)}, the model expects {tuple(expected[key].shape)}"
            )
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(weights[key].to(device=target.device, dtype=target.dtype))


def load_output(model, record: OutputRecord, check_fingerprints: bool = True) -> None:
    """Loads a stored output plugin's head and token rows into ``model`` (which already has it, untrained),
    refusing a frozen module whose weights differ from the ones the head was trained with."""
    name = record.name
    if check_fingerprints and record.frozen_fingerprint is not None and name in model.output_frozen:
        actual = fingerprint_module(model.output_frozen[name])
        if actual != record.frozen_fingerprint:
            raise CheckpointError(
                f"frozen module mismatch for output {name!r}: {record.source} expects {record.frozen_fingerprint}, "
                f"the module built from its config has {actual}; check the plugin config's weights path"
            )
    load_module_weights(model.heads[name], record.head, record.source, f"output {name!r} head")
    load_module_weights(model.token_rows[name], record.tokens, record.source, f"output {name!r} token rows")


def _load_extra(model, weights: dict[str, torch.Tensor], source: Path) -> None:
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for key, value in weights.items():
            target = params.get(key, buffers.get(key))
            if target is None or target.shape != value.shape:
                raise CheckpointError(f"{source}: {key} does not match a parameter of the model built from its config")
            target.copy_(value.to(device=target.device, dtype=target.dtype))


def _config_for_loading(
    contents: CheckpointContents, quantization: Any, torch_dtype: str | None, llm_path: str | os.PathLike | None
) -> AnyMALConfig:
    raw = contents.model_config_dict()
    if torch_dtype is not None:
        raw = {**raw, "llm": {**raw["llm"], "dtype": torch_dtype}}
    try:
        config = AnyMALConfig.from_dict(raw)
    except ConfigError as exc:
        raise CheckpointError(f"{contents.folder}: {exc}") from None
    config.llm.quantization = quantization_override(quantization, config.llm.quantization)
    if llm_path is not None:
        config.llm.name_or_path = str(llm_path)
    return config


def build_from_checkpoint(
    model_class: type,
    path: str | os.PathLike,
    quantization: str | QuantizationConfig | dict | None = None,
    torch_dtype: str | None = None,
    llm_path: str | os.PathLike | None = None,
    check_fingerprints: bool = True,
    merge_lora: bool = False,
):
    """Rebuilds a model of ``model_class`` from a checkpoint folder (either format version).

    Args:
        path: the checkpoint folder.
        quantization: how to load the base LLM now ('none', '8bit', '4bit' or a config): projectors trained
            against a 4-bit LLM load onto the full-precision one, as in the AnyMAL paper.
        torch_dtype: dtype of the base LLM ('float32', 'bfloat16', 'float16', 'auto').
        llm_path: where the base LLM lives now, if it moved (its fingerprint must still match).
        check_fingerprints: refuse base models whose fingerprint differs from the saved one (default).
        merge_lora: merge a saved LoRA adapter into the LLM weights (not possible on a quantised LLM).
    """
    contents = read_checkpoint(path)
    config = _config_for_loading(contents, quantization, torch_dtype, llm_path)
    if check_fingerprints:
        now = fingerprint_folder(config.llm.name_or_path, config.llm.revision)
        check_llm(contents.llm, config.llm.name_or_path, now, contents.folder)
        for record in contents.plugins.values():
            if record.llm and record.llm != contents.llm:
                check_llm(record.llm, config.llm.name_or_path, now, record.source)
    folder = contents.folder
    tokenizer = load_tokenizer(config.llm, source=str(folder)) if has_tokenizer_files(folder) else None
    model = model_class(config, tokenizer=tokenizer) if tokenizer is not None else model_class(config)
    for name, record in contents.plugins.items():
        if check_fingerprints:
            check_encoder(model, record)
        load_projector(model, name, record.weights, record.source)
    for output in contents.outputs.values():
        if check_fingerprints and output.llm and output.llm != contents.llm:
            check_llm(output.llm, config.llm.name_or_path, fingerprint_folder(config.llm.name_or_path), output.source)
        load_output(model, output, check_fingerprints)
    _load_extra(model, contents.extra_weights, folder)
    if contents.adapter is not None:
        model.llm = load_lora(model.llm, contents.adapter, merge=merge_lora)
    return model


def load_plugin(
    model,
    name: str,
    path: str | os.PathLike,
    source_name: str | None = None,
    check_fingerprints: bool = True,
    replace: bool = False,
):
    """Adds (or replaces) plugin ``name`` in ``model`` with the one stored at ``path``, projector weights included.

    ``path`` is a checkpoint folder or one plugin's folder inside it; ``source_name`` is the plugin's name there
    when it differs from ``name``. The checkpoint must have been trained on ``model``'s base LLM. If the encoder
    or the weights do not match, the plugin is removed again (with ``replace=True``, the old one is gone too).
    """
    record = read_plugin(path, source_name or name)
    if check_fingerprints:
        check_llm(record.llm, model.config.llm.name_or_path, llm_fingerprint(model), record.source)
    try:
        config = AnyMALConfig.from_dict({"modalities": {name: record.config}}).modalities[name]
    except ConfigError as exc:
        raise CheckpointError(f"{record.source}: {exc}") from None
    model.add_plugin(name, config, replace=replace)
    try:
        if check_fingerprints:
            renamed = PluginRecord(name, record.config, {}, record.encoder_fingerprint, record.llm, record.source)
            check_encoder(model, renamed)
        load_projector(model, name, record.weights, record.source)
    except BaseException:
        model.remove_plugin(name)  # never leave a plugin with an untrained projector behind
        raise
    return model


def _plugin_sources(init_from: Any) -> list[tuple[str, Path, str]]:
    """(name in the new model, checkpoint folder, name there) for an ``init_from`` list or mapping."""
    sources: list[tuple[str, Path, str]] = []
    if isinstance(init_from, dict):
        for name, path in init_from.items():
            if not isinstance(path, (str, os.PathLike)):
                raise ConfigError(f"init_from.{name}: expected a checkpoint folder path, got {type(path).__name__}")
            sources.append((str(name), Path(path), str(name)))
        return sources
    seen: dict[str, Any] = {}
    for path in init_from:
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"init_from: expected checkpoint folder paths, got {path!r}")
        for name in read_checkpoint(path).plugins:
            if name in seen:
                raise ConfigError(
                    f"init_from: plugin {name!r} is in both {seen[name]} and {path}; "
                    "use a mapping (init_from: {name: path}) to pick one"
                )
            seen[name] = path
            sources.append((name, Path(path), name))
    return sources


def compose_pretrained(
    model_class: type,
    init_from: str | os.PathLike | list | dict,
    quantization: str | QuantizationConfig | dict | None = None,
    torch_dtype: str | None = None,
    llm_path: str | os.PathLike | None = None,
    check_fingerprints: bool = True,
):
    """A model from one checkpoint (a path) or composed from several (AnyMAL's stage 1 -> stage 2).

    ``init_from`` is a checkpoint folder (the whole model, LoRA adapter included), a list of folders (every plugin
    of each) or a mapping ``{plugin name: folder}`` (that plugin from that folder). Composed plugins must share one
    base LLM; the LLM config, seed and tokenizer come from the first folder. Stage-1 checkpoints hold no adapter; a
    composed source that has one is refused rather than silently dropping it.
    """
    if isinstance(init_from, (str, os.PathLike)):
        return build_from_checkpoint(
            model_class, init_from, quantization, torch_dtype, llm_path, check_fingerprints=check_fingerprints
        )
    if not isinstance(init_from, (list, tuple, dict)) or not init_from:
        raise ConfigError(f"init_from={init_from!r}: expected a checkpoint folder, a list of them or a mapping")
    sources = _plugin_sources(dict(init_from) if isinstance(init_from, dict) else list(init_from))
    first = read_checkpoint(sources[0][1])
    for _, path, _ in sources:
        if (Path(path) / "adapter").is_dir():
            raise ConfigError(
                f"init_from: {path} holds a LoRA adapter, which composing plugins would drop; "
                "start from it alone (init_from: <that folder>)"
            )
    base = CheckpointContents(first.folder, first.format_version, first.llm_config, first.seed, first.llm)
    config = _config_for_loading(base, quantization, torch_dtype, llm_path)
    folder = first.folder
    tokenizer = load_tokenizer(config.llm, source=str(folder)) if has_tokenizer_files(folder) else None
    model = model_class(config, tokenizer=tokenizer) if tokenizer is not None else model_class(config)
    for name, path, source_name in sources:
        load_plugin(model, name, path, source_name=source_name, check_fingerprints=check_fingerprints)
    _compose_outputs(model, [path for _, path, _ in sources], check_fingerprints)
    return model


def _compose_outputs(model, folders: list[Path], check_fingerprints: bool) -> None:
    """Adds every output plugin (head, token rows) stored in ``folders`` to a composed model; one name twice is
    refused rather than silently keeping one of them."""
    seen: dict[str, Path] = {}
    for folder in dict.fromkeys(folders):
        contents = read_checkpoint(folder)
        for name, record in contents.outputs.items():
            if name in seen:
                raise ConfigError(f"init_from: output plugin {name!r} is in both {seen[name]} and {folder}")
            seen[name] = folder
            if check_fingerprints:
                check_llm(record.llm, model.config.llm.name_or_path, llm_fingerprint(model), record.source)
            try:
                config = AnyMALConfig.from_dict({"outputs": {name: record.config}}).outputs[name]
            except ConfigError as exc:
                raise CheckpointError(f"{record.source}: {exc}") from None
            model.add_output(name, config)
            load_output(model, record, check_fingerprints)
