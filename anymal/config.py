"""Typed, self-validating configs with JSON/YAML round trip.

Dataclasses are the schema; OmegaConf does the merging, type checks and unknown-key detection, so that a YAML file
is a partial override and ``key=value`` overrides have the last word. Per-modality configs are looked up through
the plugin registry by their key (the plugin name), so third-party plugins bring their own config classes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from anymal.errors import ConfigError, PluginError

# PluginConfig is part of the plugin contract (anymal.plugin, below this module and the registry); it is
# re-exported here, where plugin packages have always imported it from.
from anymal.plugin import PluginConfig as PluginConfig
from anymal.registry import get_output_plugin, get_plugin

T = TypeVar("T")

# LoRA's default target modules: every linear layer of a LLaMA block, as QLoRA (Dettmers et al. 2023) recommends.
# The one default of training (LoRASpec), the planner (PlanConfig.lora_targets) and anymal.lora.add_lora.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = ("float32", "bfloat16", "float16", "auto")
QUANTIZATION_MODES = ("none", "8bit", "4bit")


def read_yaml_mapping(path: str | os.PathLike, what: str = "config") -> dict[str, Any]:
    """The mapping at the top of YAML file ``path`` (empty file: ``{}``), or a ConfigError naming the file.

    ``what`` names the file's role in the messages (``"plan config"``, ``"the demo config"``).
    """
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def config_from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Builds dataclass ``cls`` from a (partial) dict, rejecting unknown keys and wrong types by field path."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.create(data or {}))
        # OmegaConf types to_object as any container; for a structured config it is an instance of ``cls``
        return cast(T, OmegaConf.to_object(merged))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        path = ".".join(p for p in (where, str(key)) if p)
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"{path or cls.__name__}: {msg}") from None
    except (TypeError, ValueError) as exc:  # raised by __post_init__ validators
        if isinstance(exc, ConfigError):
            raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def merge_overrides(*layers: dict[str, Any], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Mappings merged left to right (OmegaConf), then ``key=value`` dot-list ``overrides``; interpolations
    (``${seed}``) resolved. Not validated yet: :func:`config_from_dict` does that against the schema."""
    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise ConfigError(f"overrides {bad}: expected key=value")
    # `data.0.path=x` indexes into a list, which a dot-list merge cannot do (it would build {"0": ...}); such
    # overrides are applied one by one after the merge, in their order, each value parsed as a dot-list parses it
    indexed = [item for item in overrides if any(part.isdigit() for part in item.split("=", 1)[0].split("."))]
    try:
        merged = OmegaConf.merge(
            *(OmegaConf.create(layer) for layer in layers),
            OmegaConf.from_dotlist([item for item in overrides if item not in indexed]),
        )
        for item in indexed:
            key, value = item.split("=", 1)
            try:
                OmegaConf.update(merged, key, OmegaConf.from_dotlist([f"value={value}"])["value"], merge=True)
            except (OmegaConfBaseException, IndexError, KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"override {item!r}: cannot apply it ({str(exc).splitlines()[0]})") from None
        return cast(dict[str, Any], OmegaConf.to_container(merged, resolve=True))  # a merge of mappings is one
    except ConfigError:
        raise
    except OmegaConfBaseException as exc:
        raise ConfigError(f"overrides: {str(exc).splitlines()[0]}") from None
    except yaml.YAMLError as exc:  # each override value is parsed as YAML: `lr={x`, `seed=%`, control characters
        raise ConfigError(
            f"override {_bad_override(overrides)!r}: the value is not valid YAML ({exc.__class__.__name__}: "
            f"{' '.join(str(exc).split())})"
        ) from None
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # `lora=[]` then `lora.rank=8`: a key into a list
        raise ConfigError(f"overrides {list(overrides)}: cannot apply them ({type(exc).__name__}: {exc})") from None


def _bad_override(overrides: Sequence[str]) -> str:
    """The first ``key=value`` whose value alone does not parse (for the message), else all of them."""
    for item in overrides:
        try:
            OmegaConf.from_dotlist([item])
        except (OmegaConfBaseException, yaml.YAMLError, ValueError, TypeError, KeyError, IndexError):
            return item
    return " ".join(overrides)


def load_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    what: str = "config",
    where: str = "",
) -> T:
    """The one way anymal reads a config file: YAML (or JSON) as a partial override of dataclass ``cls``, then
    ``key=value`` overrides, then typed validation that names the bad key. Train, plan and the demo all use it."""
    data = read_yaml_mapping(path, what) if path is not None else {}
    return config_from_dict(cls, merge_overrides(data, overrides=overrides), where)


def check_choice(value: Any, choices: Collection[Any], field_name: str, error: type[Exception] = ConfigError) -> None:
    """Raises ``error`` (ConfigError by default) saying ``field=value: expected one of a, b, c`` unless ``value``
    is one of ``choices``: the one choice validator of anymal and its plugins."""
    if value not in choices:
        raise error(f"{field_name}={value!r}: expected one of {', '.join(map(str, choices))}")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain JSON-able dict of a config dataclass (nested dataclasses included)."""
    return dataclasses.asdict(cfg)


@dataclass
class QuantizationConfig:
    """How the frozen LLM is quantised by bitsandbytes (``mode='none'`` loads it unquantised)."""

    mode: str = "none"
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_choice(self.mode, QUANTIZATION_MODES, "quantization.mode")
        check_choice(self.quant_type, ("nf4", "fp4"), "quantization.quant_type")
        check_choice(self.compute_dtype, ("float32", "bfloat16", "float16"), "quantization.compute_dtype")


@dataclass
class LLMConfig:
    """The frozen core language model, referenced by hub id or local folder (never copied into checkpoints)."""

    name_or_path: str = ""
    tokenizer: str | None = None
    revision: str | None = None
    dtype: str = "float32"
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    chat_template: str | None = None
    apply_chat_template: bool = False
    pad_to_multiple_of: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.dtype, DTYPES, "llm.dtype")


@dataclass
class AnyMALConfig:
    """A whole model: the LLM, per modality plugin name that plugin's config (order = default token order), and per
    output plugin name (``outputs``: box, mask heads; :mod:`anymal.output_plugin`) that plugin's config."""

    llm: LLMConfig = field(default_factory=LLMConfig)
    modalities: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "llm": config_to_dict(self.llm),
            "modalities": {name: config_to_dict(cfg) for name, cfg in self.modalities.items()},
            "seed": self.seed,
        }
        if self.outputs:
            data["outputs"] = {name: config_to_dict(cfg) for name, cfg in self.outputs.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnyMALConfig:
        """Builds the config, resolving each modality's config class through the plugin registry."""
        if not isinstance(data, dict):
            raise ConfigError(f"AnyMALConfig: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {"llm", "modalities", "seed", "outputs"}
        if unknown:
            raise ConfigError(
                f"unknown top-level config keys {sorted(unknown)}; expected llm, modalities, seed, outputs"
            )
        llm = config_from_dict(LLMConfig, data.get("llm"), "llm")
        modalities = {}
        raw_modalities = data.get("modalities") or {}
        if not isinstance(raw_modalities, dict):
            got = type(raw_modalities).__name__
            raise ConfigError(f"modalities: expected a mapping {{plugin name: plugin config}}, got {got}")
        for name, sub in raw_modalities.items():
            modalities[name] = _typed_plugin_config(f"modalities.{name}", name, sub, get_plugin)
        seed = data.get("seed", 0)
        if not isinstance(seed, int):
            raise ConfigError(f"seed={seed!r}: expected an integer")
        return cls(llm=llm, modalities=modalities, seed=seed, outputs=_output_configs(data.get("outputs"), modalities))

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> AnyMALConfig:
        """Reads a JSON or YAML config file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
        return cls.from_dict(data or {})


def _output_configs(raw: Any, modalities: dict[str, Any]) -> dict[str, Any]:
    """The typed configs of ``outputs`` (output plugin name -> config), each resolved through the registry."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"outputs: expected a mapping {{output plugin name: config}}, got {type(raw).__name__}")
    outputs = {}
    for name, sub in raw.items():
        if name in modalities:
            raise ConfigError(f"outputs.{name}: {name!r} is already a modality; give the output plugin another name")
        outputs[name] = _typed_plugin_config(f"outputs.{name}", name, sub, get_output_plugin)
    return outputs


def _typed_plugin_config(where: str, name: str, sub: Any, lookup: Any) -> Any:
    """One plugin's config section as its plugin's typed config: the plugin found by ``plugin_type`` (default: the
    section's name) through ``lookup`` (``get_plugin`` or ``get_output_plugin``); errors name ``where``."""
    if dataclasses.is_dataclass(sub):
        sub = config_to_dict(sub)
    if sub is not None and not isinstance(sub, dict):
        raise ConfigError(f"{where}: expected a mapping (the plugin's config), got {type(sub).__name__}")
    try:
        plugin_cls = lookup((sub or {}).get("plugin_type") or name)
    except PluginError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return config_from_dict(plugin_cls.config_class, dict(sub or {}, plugin_type=plugin_cls.name), where)
