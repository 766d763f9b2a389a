"""The plan of a training config: the very YAML ``python -m anymal.train`` runs, turned into a :class:`PlanConfig`.

Where each number comes from:

* the LLM's shape: the local ``config.json`` of ``model.llm.name_or_path`` when it is a folder, else a preset
  picked from the hub id (``meta-llama/Llama-2-70b-chat-hf`` -> ``llama2-70b``); nothing is fetched;
* quantisation, ``model.llm.dtype`` (the unquantised weights) and ``mixed_precision`` (autocast) from the config;
* per plugin: LLM tokens per item (``num_tokens``), and the frozen encoder's and the projector's parameter counts
  from the plugin itself, built on the meta device (no memory, no weights: ``pretrained`` is set to ``None`` for
  the build). The encoder's dtype is the plugin config's ``encoder_dtype`` (``auto``: bfloat16 on CUDA);
* per output plugin (``model.outputs``: ``[LOC]``, ``[SEG]`` heads): the trainable head and trigger-token rows,
  the frozen module (SAM's image encoder) built on the meta device from the plugin's ``architecture_config``, and
  the forward workspace the plugin declares (``planned_workspace_bytes``);
* batch (``batch_size``, ``grad_accum``), ``gradient_checkpointing`` and LoRA (``lora.*``, instruct stage only;
  QLoRA's ``prepare_model_for_kbit_training`` upcast included) from the training fields.

``init_from`` checkpoints: their stored configs are read (:func:`anymal.checkpoint.read_checkpoint`) when the
folders exist; a folder that does not exist yet (a stage-1 run still to come) is looked up among the align configs
(``configs/align/*.yaml``) whose ``output_dir`` it is under, and that config's ``model`` section stands in for it.

Not in the training config, so planner knobs with defaults: ``text_tokens`` (256), ``budget_gib`` (80),
``device`` (cuda). Logits are planned at every text token (the trainer computes them at target tokens only,
which are fewer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymal.errors import AnyMALError, ConfigError
from anymal.plan.arch import PRESETS
from anymal.plan.config import DTYPE_BYTES, LLMArchConfig, ModalityLoad, OutputLoad, PlanConfig

# planner-only knobs accepted next to the trainer's own key=value overrides
PLAN_KEYS = ("budget_gib", "text_tokens", "target_tokens", "device", "cuda_context_gib", "allocator_overhead")
ALIGN_CONFIG_DIRS = ("configs/align",)
_HUB_SIZE = re.compile(r"llama-?2[-_](7|13|70)b", re.IGNORECASE)


def preset_for(name_or_path: str) -> str | None:
    """The planner preset for a LLaMA-2 hub id or folder name (``meta-llama/Llama-2-7b-hf`` -> ``llama2-7b``)."""
    match = _HUB_SIZE.search(name_or_path or "")
    if match is None:
        return None
    preset = f"llama2-{match.group(1)}b"
    return preset if preset in PRESETS else None


def llm_arch(name_or_path: str) -> LLMArchConfig:
    """Where the LLM's shape comes from: a local ``config.json`` or a preset named by the hub id."""
    folder = Path(name_or_path) if name_or_path else None
    if folder is not None and (folder / "config.json").is_file():
        return LLMArchConfig(config_json=str(folder / "config.json"))
    preset = preset_for(name_or_path)
    if preset is None:
        raise ConfigError(
            f"model.llm.name_or_path={name_or_path!r}: no local config.json and no known preset for it; "
            f"pass llm.preset=<{'|'.join(PRESETS)}> to the planner"
        )
    return LLMArchConfig(preset=preset)


@contextlib.contextmanager
def meta_device() -> Iterator[None]:
    """Modules built inside live on the meta device (shapes only), even when their code calls ``.to("cpu")``."""
    original = nn.Module.to

    def to(self: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
        if any(t.is_meta for t in self.parameters()):
            return self  # open_clip moves the model it built to a device; on meta, stay
        return original(self, *args, **kwargs)

    nn.Module.to = to  # type: ignore[method-assign,assignment]
    quiet = _NoWeightsWarning()
    logging.getLogger().addFilter(quiet)  # open_clip logs on the root logger
    try:
        with torch.device("meta"):
            yield
    finally:
        nn.Module.to = original  # type: ignore[method-assign]
        logging.getLogger().removeFilter(quiet)


class _NoWeightsWarning(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded ... initialized randomly" warning: a shapes-only build
    loads no weights on purpose, and the warning read as if the plan were of a random model."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


_COUNTS: dict[str, tuple[int, int, str | None, str]] = {}
# fields that point at weights: cleared for a shapes-only build (the architecture stays)
WEIGHT_FIELDS = ("pretrained", "checkpoint")


def _weightless(plugin_config: Any) -> Any:
    fields = {f.name for f in dataclasses.fields(plugin_config)}
    return dataclasses.replace(plugin_config, **{name: None for name in WEIGHT_FIELDS if name in fields})


def _architecture_defaults(plugin_config: Any) -> Any | None:
    """Fallback for encoders named by a hub id whose config cannot be read offline (the audio plugin's CLAP):
    ``encoder=""`` builds the architecture from the plugin's defaults (transformers' ``ClapAudioConfig``, which is
    HTSAT-tiny as in ``laion/clap-htsat-unfused``)."""
    fields = {f.name for f in dataclasses.fields(plugin_config)}
    encoder = getattr(plugin_config, "encoder", None) if "encoder" in fields else None
    if isinstance(encoder, str) and encoder and not Path(encoder).exists():
        return dataclasses.replace(plugin_config, encoder="")
    return None


def _build_counts(name: str, plugin_config: Any, llm_hidden: int) -> tuple[int, int, str | None]:
    from anymal.registry import get_plugin

    plugin = get_plugin(plugin_config.plugin_type or name)(plugin_config)
    with meta_device(), torch.random.fork_rng(devices=[]):
        encoder = plugin.build_encoder()
        projector = plugin.build_projector(llm_hidden)
    enc = sum(p.numel() for p in encoder.parameters())
    return enc, sum(p.numel() for p in projector.parameters()), plugin.encoder_key()


def plugin_counts(name: str, plugin_config: Any, llm_hidden: int) -> tuple[int, int, str | None, str]:
    """``(encoder params, projector params, encoder key, how counted)`` of a plugin, built on the meta device
    without weights (see :data:`WEIGHT_FIELDS` and :func:`_architecture_defaults`).

    Raises:
        ConfigError: the plugin cannot be built on the meta device (the message names it and the cause).
    """
    shapes_only = _weightless(plugin_config)
    key = json.dumps([name, dataclasses.asdict(shapes_only), llm_hidden], sort_keys=True, default=str)
    if key not in _COUNTS:
        errors = (AnyMALError, OSError, RuntimeError, NotImplementedError, ValueError)
        try:
            counts = _build_counts(name, shapes_only, llm_hidden)
            how = "built on the meta device"
        except errors as exc:
            fallback = _architecture_defaults(shapes_only)
            if fallback is None:
                raise ConfigError(
                    f"model.modalities.{name}: cannot build the plugin on the meta device to count its "
                    f"parameters ({type(exc).__name__}: {exc})"
                ) from None
            try:
                counts = _build_counts(name, fallback, llm_hidden)
            except errors as exc2:
                raise ConfigError(
                    f"model.modalities.{name}: cannot build the plugin on the meta device ({exc2})"
                ) from None
            how = f"architecture defaults ({shapes_only.encoder!r} is not readable offline)"
        _COUNTS[key] = (*counts, how)
    return _COUNTS[key]


_OUTPUT_COUNTS: dict[str, tuple[int, int, Any]] = {}


def output_counts(name: str, output_config: Any, llm_hidden: int) -> tuple[int, int, Any]:
    """``(trainable params, frozen params, plugin)`` of an output plugin: its head plus its trigger
    tokens' embedding and LM-head rows (two rows of ``llm_hidden`` per token: anymal never ties them), and its
    frozen module, built on the meta device from the plugin's ``architecture_config``.

    Raises:
        ConfigError: the plugin cannot be built on the meta device (the message names it and the cause).
    """
    from anymal.registry import get_output_plugin

    key = json.dumps([name, dataclasses.asdict(output_config), llm_hidden], sort_keys=True, default=str)
    if key not in _OUTPUT_COUNTS:
        plugin_class = get_output_plugin(output_config.plugin_type or name)
        try:
            plugin = plugin_class(plugin_class(output_config).architecture_config())
            with meta_device(), torch.random.fork_rng(devices=[]):
                head = plugin.build_head(llm_hidden)
                frozen = plugin.build_frozen()
        except ConfigError as exc:
            raise ConfigError(f"model.outputs.{name}: {exc}") from None
        except (AnyMALError, OSError, RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"model.outputs.{name}: cannot build the output plugin on the meta device to count its parameters "
                f"({type(exc).__name__}: {exc})"
            ) from None
        rows = 2 * len(plugin.tokens) * llm_hidden
        frozen_params = sum(p.numel() for p in frozen.parameters()) if frozen is not None else 0
        _OUTPUT_COUNTS[key] = (sum(p.numel() for p in head.parameters()) + rows, frozen_params, plugin)
    return _OUTPUT_COUNTS[key]


def _deep_update(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def _align_config_for(folder: Path, search: list[Path]) -> dict[str, Any] | None:
    """The ``model`` section of the align config whose ``output_dir`` holds ``folder``, if one does."""
    from anymal.config import read_yaml_mapping

    target = folder.resolve() if folder.is_absolute() else folder
    for directory in search:
        for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
            try:
                data = read_yaml_mapping(path)
            except AnyMALError:
                continue
            out = data.get("output_dir")
            if out and isinstance(data.get("model"), dict) and (target == Path(out) or Path(out) in target.parents):
                return data["model"]
    return None


def model_section(config: Any, config_path: str | Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """The AnyMAL config (dict form) a training config builds, and notes on where its parts came from."""
    from anymal.checkpoint import read_checkpoint

    if not config.init_from:
        return dict(config.model), ["model: from the config"]
    search = [Path(d) for d in ALIGN_CONFIG_DIRS]
    if config_path is not None:
        search.insert(0, Path(config_path).resolve().parent.parent / "align")
    init = config.init_from
    pairs: list[tuple[str | None, Path]]
    if isinstance(init, str):
        pairs = [(None, Path(init))]
    elif isinstance(init, dict):
        pairs = [(str(k), Path(v)) for k, v in init.items()]
    else:
        pairs = [(None, Path(p)) for p in init]
    llm: dict[str, Any] | None = None
    modalities: dict[str, Any] = {}
    outputs: dict[str, Any] = {}  # a checkpoint brings every output plugin it holds (compose_pretrained)
    notes = []
    for name, folder in pairs:
        if folder.is_dir():
            stored = read_checkpoint(folder).model_config_dict()
            notes.append(f"{folder}: its stored config")
        else:
            found = _align_config_for(folder, search)
            if found is None:
                raise ConfigError(
                    f"init_from: {folder} does not exist and no align config in {', '.join(map(str, search))} "
                    "writes it (output_dir); plan the align config itself, or train it first"
                )
            stored = found
            notes.append(f"{folder}: not there yet; the model section of the align config writing it")
        llm = llm or dict(stored.get("llm") or {})
        for plugin, plugin_cfg in (stored.get("modalities") or {}).items():
            if name is None or plugin == name:
                modalities[name or plugin] = plugin_cfg
        outputs.update(stored.get("outputs") or {})
    over = dict(config.model.get("llm") or {})
    quant = over.pop("quantization", None)
    llm = _deep_update(llm or {}, over)
    if isinstance(quant, str):
        llm["quantization"] = {**(llm.get("quantization") or {}), "mode": quant}
    elif isinstance(quant, dict):
        llm["quantization"] = {**(llm.get("quantization") or {}), **quant}
    modalities.update(config.model.get("modalities") or {})
    outputs.update(config.model.get("outputs") or {})
    return {"llm": llm, "modalities": modalities, "outputs": outputs}, notes


def resolve_encoder_dtype(value: str, device: str) -> str:
    """A plugin's ``encoder_dtype`` for ``device``: ``auto`` is bfloat16 on CUDA and float32 elsewhere."""
    if value == "auto":
        return "bfloat16" if device == "cuda" else "float32"
    return value


def plan_from_train(
    config: Any,
    config_path: str | Path | None = None,
    plan_overrides: dict[str, Any] | None = None,
) -> tuple[PlanConfig, list[str]]:
    """The :class:`PlanConfig` of a :class:`~anymal.train.TrainConfig`, and notes on where the numbers came from.

    ``plan_overrides``: planner-only knobs (:data:`PLAN_KEYS`, plus ``llm.preset``) on top.
    """
    from anymal.config import AnyMALConfig

    extra = dict(plan_overrides or {})
    model_dict, notes = model_section(config, config_path)
    model = AnyMALConfig.from_dict(model_dict)
    preset = extra.pop("llm.preset", None)
    llm = LLMArchConfig(preset=preset) if preset else llm_arch(model.llm.name_or_path)
    notes.append(f"LLM shape: {'preset ' + llm.preset if llm.preset else llm.config_json}")
    hidden = llm.resolve().hidden
    device = str(extra.get("device", "cuda"))
    quant = model.llm.quantization
    weights_dtype = model.llm.dtype if model.llm.dtype != "auto" else "bfloat16"
    align = config.stage == "align"
    trained = set(config.train_modalities or model.modalities) if align else set(model.modalities)
    loads: dict[str, ModalityLoad] = {}
    seen_keys: set[str] = set()
    for name, plugin_config in model.modalities.items():
        enc, proj, key, how = plugin_counts(name, plugin_config, hidden)
        shared = key is not None and key in seen_keys
        if key is not None:
            seen_keys.add(key)
        enc_dtype = resolve_encoder_dtype(getattr(plugin_config, "encoder_dtype", "float32"), device)
        loads[name] = ModalityLoad(
            tokens_per_item=plugin_config.num_tokens,
            items_per_example=1,
            projector_params=proj if name in trained else 0,
            encoder_params=0 if shared else enc + (0 if name in trained else proj),  # a frozen projector too
            encoder_dtype=enc_dtype,
        )
        notes.append(
            f"{name}: {plugin_config.num_tokens} tokens, encoder {enc / 1e6:.1f}M params in {enc_dtype}"
            f"{' (shared)' if shared else ''}, projector {proj / 1e6:.2f}M "
            f"({'trained' if name in trained else 'frozen'}); {how}"
        )
    if align and len(loads) > 1 and config.modality_batches:
        # a batch holds one modality: the example carries the largest plugin's tokens only
        largest = max(loads, key=lambda n: loads[n].tokens_per_item)
        loads = {n: dataclasses.replace(m, items_per_example=int(n == largest)) for n, m in loads.items()}
    lora = config.stage == "instruct" and config.lora.rank > 0
    quantized = quant.mode != "none"
    outputs: dict[str, OutputLoad] = {}
    for name, output_config in model.outputs.items():
        head, frozen, plugin = output_counts(name, output_config, hidden)
        frozen_dtype = resolve_encoder_dtype(output_config.frozen_dtype, device)
        act_bytes = 2 if config.mixed_precision != "no" else DTYPE_BYTES[frozen_dtype]
        workspace = plugin.planned_workspace_bytes(config.batch_size, act_bytes)  # frozen_dtype's, or autocast's
        outputs[name] = OutputLoad(
            head_params=head, frozen_params=frozen, frozen_dtype=frozen_dtype, workspace_bytes=workspace
        )
        notes.append(
            f"output {name}: head + token rows {head / 1e6:.2f}M (trained), "
            + (f"frozen {frozen / 1e6:.1f}M in {frozen_dtype}" if frozen else "no frozen module")
            + f", forward workspace {workspace / 2**30:.2f} GiB at batch {config.batch_size}"
        )
    data: dict[str, Any] = dict(
        llm=llm,
        quantization=quant.mode,
        quant_type=quant.quant_type,
        double_quant=quant.double_quant,
        compute_dtype=quant.compute_dtype if quantized else weights_dtype,
        weights_dtype=weights_dtype,
        mixed_precision=config.mixed_precision,
        lora_rank=config.lora.rank if lora else 0,
        lora_targets=list(config.lora.target_modules) if lora else PlanConfig().lora_targets,
        lora_dropout=config.lora.dropout if lora else 0.0,
        kbit_prepare=True,
        modalities=loads,
        outputs=outputs,
        micro_batch=config.batch_size,
        grad_accumulation=config.grad_accum,
        gradient_checkpointing=config.gradient_checkpointing,
        optimizer="adamw",
        device=device,
    )
    for key, value in extra.items():
        if key not in PLAN_KEYS:
            raise ConfigError(f"{key}: not a planner knob; expected one of {', '.join(PLAN_KEYS)} or llm.preset")
        data[key] = value
    multiple = model.llm.pad_to_multiple_of
    if multiple:  # batches padded to a multiple of this many tokens: plan the padded length
        media = sum(m.tokens_per_item * m.items_per_example for m in loads.values())
        text = int(data.get("text_tokens", PlanConfig().text_tokens))
        data["text_tokens"] = -(-(text + media) // multiple) * multiple - media
        notes.append(f"text tokens {text} -> {data['text_tokens']}: sequences padded to a multiple of {multiple}")
    try:
        return PlanConfig(**data), notes
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


# the planner's override keys (suggestions) in the trainer's names; None: no trainer knob does it
def train_overrides(plan: dict[str, Any]) -> dict[str, Any] | None:
    """A suggestion's planner overrides as ``python -m anymal.train`` overrides, or ``None`` when the trainer
    has no knob for one of them."""
    out: dict[str, Any] = {}
    for key, value in plan.items():
        parts = key.split(".")
        if key == "gradient_checkpointing":
            out[key] = value
        elif key == "micro_batch":
            out["batch_size"] = value
        elif key == "grad_accumulation":
            out["grad_accum"] = value
        elif key == "double_quant":
            out["model.llm.quantization.double_quant"] = value
        elif key == "quantization":
            out["model.llm.quantization.mode"] = value
        elif key == "quant_type":
            out["model.llm.quantization.quant_type"] = value
        elif key == "lora_dropout":
            out["lora.dropout"] = value
        elif key in ("text_tokens",):
            out[key] = value  # a planner knob: the data's length, to be truncated by the user
        elif len(parts) == 3 and parts[0] == "modalities" and parts[2] == "encoder_dtype":
            out[f"model.modalities.{parts[1]}.encoder_dtype"] = value
        elif len(parts) == 3 and parts[0] == "modalities" and parts[2] == "tokens_per_item":
            out[f"model.modalities.{parts[1]}.num_tokens"] = value
        else:
            return None
    return out
