"""The training run's config: a typed dataclass, YAML files as partial overrides, ``key=value`` last.

Everything is validated before any model loads: a wrong type or an unknown key fails naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from anymal.config import (
    LORA_TARGETS,
    AnyMALConfig,
    check_choice,
    config_to_dict,
    load_config,
    merge_overrides,
    read_yaml_mapping,
)
from anymal.errors import ConfigError

STAGES = ("align", "instruct")


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


@dataclass
class LoRASpec:
    """LoRA on the frozen LLM in the instruct stage (``rank=0``: off). QLoRA when the LLM is quantised."""

    rank: int = 0
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    lr: float | None = None


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
        for name in ("max_steps", "batch_size", "grad_accum", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive integer")

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


INIT_FROM_LLM_KEYS = ("quantization", "dtype", "name_or_path")


def _check_model_beside_init_from(model: dict[str, Any]) -> None:
    """With ``init_from`` the checkpoints define the model: ``model`` may only add plugins and say how to load."""
    extra = sorted(set(model) - {"llm", "modalities"})
    if extra:
        raise ConfigError(f"model.{extra[0]}: not allowed with init_from (the checkpoints define the model)")
    extra = sorted(set(model.get("llm") or {}) - set(INIT_FROM_LLM_KEYS))
    if extra:
        raise ConfigError(
            f"model.llm.{extra[0]}: not allowed with init_from; the LLM comes from the checkpoint "
            f"(model.llm may set {', '.join(INIT_FROM_LLM_KEYS)})"
        )


def read_config_dict(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """A YAML file merged with ``key=value`` overrides, interpolations resolved; not yet validated."""
    data = read_yaml_mapping(path) if path is not None else {}
    return merge_overrides(data, overrides=list(overrides or []))


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Reads a YAML config, applies ``key=value`` overrides and validates everything (model config included)."""
    config = load_config(TrainConfig, path, list(overrides or []))
    if config.model:
        config.model_config()  # fail on a bad model section before anything loads
    if config.init_from:
        _check_model_beside_init_from(config.model)
    elif not config.model:
        raise ConfigError("give model: (an AnyMAL config) or init_from: (a checkpoint folder)")
    if not config.data:
        raise ConfigError("data: give at least one dataset")
    return config


def save_resolved(config: TrainConfig, folder: Path) -> Path:
    """Writes the resolved config next to the run, so the run can be reproduced from it alone."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path
