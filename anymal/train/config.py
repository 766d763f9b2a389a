"""The training run's config: a typed dataclass, YAML files as partial overrides, ``key=value`` last.

Everything is validated before any model loads: a wrong type, an unknown key or a value out of range fails naming
the key (``__post_init__`` of each dataclass), and :func:`preflight` then checks what needs the file system (data
files, ``init_from`` checkpoints, ``train_modalities`` and data modalities against the model's plugins) without
building a model. ``python -m anymal.train --dry-run`` runs both, so a config it passes does not fail on them later.
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from anymal.config import (
    LORA_TARGETS,
    AnyMALConfig,
    check_choice,
    config_from_dict,
    config_to_dict,
    merge_overrides,
    read_yaml_mapping,
)
from anymal.data.readers import READERS
from anymal.errors import ConfigError

STAGES = ("align", "instruct")


def _check_number(value: Any, name: str, minimum: float, *, strict: bool = False, maximum: float | None = None) -> None:
    """``name=value`` must be a finite number ``>= minimum`` (``> minimum`` with ``strict``) and below ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r}: expected a finite number")
    if value < minimum or (strict and value == minimum) or (maximum is not None and value >= maximum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        if maximum is not None:
            bound += f" and < {maximum:g}"
        raise ConfigError(f"{name}={value!r}: expected a value {bound}")


@dataclass
class DataSpec:
    """One dataset: ``kind`` is a reader of ``anymal.data`` (pairs, llava, m3it, conversations)."""

    kind: str = "pairs"
    path: str = ""
    modality: str | None = None
    media_key: str | None = None
    caption_key: str = "caption"
    media_root: str | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        check_choice(self.kind, tuple(READERS), "kind")
        if not self.path:
            raise ConfigError("path: empty; expected the data file")
        if not self.caption_key:
            raise ConfigError("caption_key: empty; expected the caption column's name")
        _check_number(self.weight, "weight", 0, strict=True)


@dataclass
class EvalTaskSpec:
    """A task scored on the in-memory model during training (``anymal.eval``), every ``eval_every`` steps and at
    the end: ``task`` is a name of ``anymal.eval.TASKS`` (caption, vqav2, gqa, anls, m3it, mmbench, classify,
    rec, names), ``data`` its file in the eval schema, ``labels`` the label set of ``classify`` and ``names``."""

    task: str = ""
    data: str = ""
    limit: int | None = None
    labels: list[str] | None = None
    batch_size: int = 8
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        if not self.task or not self.data:
            raise ConfigError("eval_tasks: each entry needs task: and data:")
        if self.batch_size < 1 or self.max_new_tokens < 1 or (self.limit is not None and self.limit < 1):
            raise ConfigError(f"eval_tasks.{self.task}: batch_size, max_new_tokens and limit must be positive")


@dataclass
class LoRASpec:
    """LoRA on the frozen LLM in the instruct stage (``rank=0``: off). QLoRA when the LLM is quantised."""

    rank: int = 0
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    lr: float | None = None

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise ConfigError(f"lora.rank={self.rank}: expected 0 (LoRA off) or a positive rank")
        if self.alpha <= 0:
            raise ConfigError(f"lora.alpha={self.alpha}: expected a positive integer")
        _check_number(self.dropout, "lora.dropout", 0, maximum=1)
        if self.lr is not None:
            _check_number(self.lr, "lora.lr", 0, strict=True)
        if self.rank and not self.target_modules:
            raise ConfigError("lora.target_modules: empty; expected the names of the LLM's linear layers to adapt")


@dataclass
class TrainConfig:
    """A whole run. ``model`` is an AnyMAL config (dict form); ``init_from`` checkpoint(s) to start from instead.

    ``init_from`` is one checkpoint folder, a list of folders, or a mapping ``{plugin: folder}`` composing
    separately aligned plugins into one model (AnyMAL's stage 1 -> stage 2). With ``init_from``, ``model`` may add
    fresh plugins (``model.modalities``) and choose how the LLM loads (``model.llm``: quantization, dtype,
    name_or_path); nothing else.
    """

    model: dict[str, Any] = field(default_factory=dict)
    init_from: Any = None
    stage: str = "align"
    train_modalities: list[str] = field(default_factory=list)
    data: list[DataSpec] = field(default_factory=list)
    eval_data: list[DataSpec] = field(default_factory=list)
    chat: bool = False
    on_error: str = "skip"
    # with on_error=skip: this many rows skipped in a row stop the run with the skip reasons (0: no limit)
    max_consecutive_skips: int = 100
    output_dir: str = "runs/anymal"
    max_steps: int = 100
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 1e-4
    module_lr: dict[str, float] = field(default_factory=dict)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    lora: LoRASpec = field(default_factory=LoRASpec)
    save_every: int = 0
    keep_last: int = 2
    eval_every: int = 0
    # scored with anymal.eval on the in-memory model every eval_every steps (if set) and at the end (main process)
    eval_tasks: list[EvalTaskSpec] = field(default_factory=list)
    log_every: int = 1
    seed: int = 0
    num_workers: int = 0
    feature_cache: str | None = None
    # batches hold one modality set each (all-image, all-audio, ...); None: on in align, off in instruct
    group_by_modality: bool | None = None

    def __post_init__(self) -> None:
        check_choice(self.stage, STAGES, "stage")
        check_choice(self.on_error, ("skip", "raise"), "on_error")
        check_choice(self.mixed_precision, ("no", "bf16", "fp16"), "mixed_precision")
        _check_init_from(self.init_from)
        if self.max_consecutive_skips < 0:
            raise ConfigError(f"max_consecutive_skips={self.max_consecutive_skips}: expected 0 (no limit) or more")
        for name in ("max_steps", "batch_size", "grad_accum", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive integer")
        for name in ("warmup_steps", "save_every", "eval_every", "num_workers", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected 0 or a positive integer")
        _check_number(self.lr, "lr", 0, strict=True)
        _check_number(self.weight_decay, "weight_decay", 0)
        _check_number(self.max_grad_norm, "max_grad_norm", 0)  # 0: no clipping
        for module, module_lr in self.module_lr.items():
            _check_number(module_lr, f"module_lr.{module}", 0)  # 0 freezes that module
        if not self.output_dir:
            raise ConfigError("output_dir: empty; expected a folder")
        seen = set()
        for name in self.train_modalities:
            if name in seen:
                raise ConfigError(f"train_modalities: {name!r} is listed twice")
            seen.add(name)

    @property
    def modality_batches(self) -> bool:
        """Whether batches are cut within one modality set (``group_by_modality``, by default in ``align``)."""
        return self.stage == "align" if self.group_by_modality is None else self.group_by_modality

    def model_config(self) -> AnyMALConfig:
        """The validated AnyMAL config (plugin configs typed through the registry)."""
        return AnyMALConfig.from_dict(self.model)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def _check_init_from(value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return
    if isinstance(value, dict) and value and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return
    raise ConfigError(
        f"init_from={value!r}: expected a checkpoint folder, a non-empty list of folders or a mapping "
        "{plugin name: folder}"
    )


INIT_FROM_LLM_KEYS = ("quantization", "dtype", "name_or_path", "pad_to_multiple_of")


def _check_model_beside_init_from(model: dict[str, Any]) -> None:
    """With ``init_from`` the checkpoints define the model: ``model`` may only add plugins (``modalities``,
    ``outputs``) and say how to load."""
    extra = sorted(set(model) - {"llm", "modalities", "outputs"})
    if extra:
        raise ConfigError(f"model.{extra[0]}: not allowed with init_from (the checkpoints define the model)")
    extra = sorted(set(model.get("llm") or {}) - set(INIT_FROM_LLM_KEYS))
    if extra:
        raise ConfigError(
            f"model.llm.{extra[0]}: not allowed with init_from; the LLM comes from the checkpoint "
            f"(model.llm may set {', '.join(INIT_FROM_LLM_KEYS)})"
        )


def _check_model_shape(model: dict[str, Any]) -> None:
    """``model.llm`` and ``model.modalities`` are mappings and each plugin entry a mapping (or null)."""
    for key in ("llm", "modalities"):
        value = model.get(key)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"model.{key}: expected a mapping, got {type(value).__name__} {value!r}")
    for name, sub in (model.get("modalities") or {}).items():
        if sub is not None and not isinstance(sub, dict):
            raise ConfigError(
                f"model.modalities.{name}: expected a mapping (the plugin's config) or null, got {type(sub).__name__}"
            )


def read_config_dict(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """A YAML file merged with ``key=value`` overrides, interpolations resolved; not yet validated."""
    data = read_yaml_mapping(path) if path is not None else {}
    return merge_overrides(data, overrides=list(overrides or []))


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Reads a YAML config, applies ``key=value`` overrides and validates everything (model config included)."""
    data = read_config_dict(path, overrides)
    for section in ("data", "eval_data"):  # dataset entries first, so that an error names data.<i>.<key>
        entries = data.get(section)
        if isinstance(entries, list):
            for i, entry in enumerate(entries):
                if isinstance(entry, dict):
                    config_from_dict(DataSpec, entry, f"{section}.{i}")
    config = config_from_dict(TrainConfig, data)
    _check_model_shape(config.model)
    if config.model:
        config.model_config()  # fail on a bad model section before anything loads
    if config.init_from:
        _check_model_beside_init_from(config.model)
    elif not config.model:
        raise ConfigError("give model: (an AnyMAL config) or init_from: (a checkpoint folder)")
    if not config.data:
        raise ConfigError("data: give at least one dataset")
    return config


def model_modalities(config: TrainConfig) -> list[str]:
    """The plugin names the run's model will have, read without building it: ``model.modalities`` plus, with
    ``init_from``, the plugins of the checkpoint(s) (their config files only; a mapping names them itself)."""
    from anymal.checkpoint import read_checkpoint

    names: list[str] = []
    init_from = config.init_from
    if isinstance(init_from, dict):
        names += list(init_from)
    elif init_from:
        for folder in [init_from] if isinstance(init_from, str) else init_from:
            names += list(read_checkpoint(folder).plugins)
    names += list((config.model or {}).get("modalities") or {})
    return list(dict.fromkeys(names))


def _reader_modality(kind: str) -> str | None:
    """The modality a reader assigns its media when the run gives none (``read_llava``'s ``modality="image"``)."""
    parameter = inspect.signature(READERS[kind]).parameters.get("modality")
    default = parameter.default if parameter is not None else None
    return default if isinstance(default, str) else None


def preflight(config: TrainConfig) -> None:
    """Checks everything a run would otherwise fail on after loading its model, without loading it.

    ``init_from`` checkpoints are read (config and small projector files, never the LLM); ``train_modalities``
    and every dataset's ``modality`` must be plugins of the model; data files and media roots must exist. Called by
    ``python -m anymal.train`` before ``--dry-run`` answers and before training starts.
    """
    if config.init_from:
        folders = list(config.init_from.values()) if isinstance(config.init_from, dict) else config.init_from
        for folder in [folders] if isinstance(folders, str) else folders:
            if not Path(folder).is_dir():
                raise ConfigError(f"init_from: {folder}: no such checkpoint folder")
    modalities = model_modalities(config)
    have = ", ".join(modalities) or "none"
    unknown = [name for name in config.train_modalities if name not in modalities]
    if unknown:
        raise ConfigError(f"train_modalities: unknown {unknown}; the model's modalities are: {have}")
    for section in ("data", "eval_data"):
        for i, spec in enumerate(getattr(config, section)):
            where = f"{section}.{i}"
            if spec.kind == "pairs" and not spec.modality:
                raise ConfigError(f"{where}.modality: kind 'pairs' needs the modality of its media (e.g. image)")
            modality = spec.modality if spec.kind == "pairs" else _reader_modality(spec.kind)
            if modality and modality not in modalities:
                raise ConfigError(
                    f"{where}.modality={modality!r} (kind {spec.kind}): not a modality of the model ({have})"
                )
            path = Path(spec.path).expanduser()
            if not path.is_file():
                raise ConfigError(f"{where}.path: {spec.path}: no such data file")
            if not os.access(path, os.R_OK):
                raise ConfigError(f"{where}.path: {spec.path}: not readable (permissions)")
            if spec.media_root and not Path(spec.media_root).expanduser().is_dir():
                raise ConfigError(f"{where}.media_root: {spec.media_root}: no such folder")
    output = Path(config.output_dir).expanduser()
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output_dir: {config.output_dir} exists and is not a folder")
    cache = Path(config.feature_cache).expanduser() if config.feature_cache else None
    if cache is not None and cache.exists() and not cache.is_dir():
        raise ConfigError(f"feature_cache: {config.feature_cache} exists and is not a folder")
    if config.eval_tasks:
        from anymal.eval.tasks import get_task

        for i, task in enumerate(config.eval_tasks):
            try:
                get_task(task.task)
            except ConfigError as exc:
                raise ConfigError(f"eval_tasks.{i}.task: {exc}") from None
            if not Path(task.data).expanduser().is_file():
                raise ConfigError(f"eval_tasks.{i}.data: {task.data}: no such data file")


def save_resolved(config: TrainConfig, folder: Path) -> Path:
    """Writes the resolved config next to the run, so the run can be reproduced from it alone."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path
