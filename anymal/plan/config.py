"""The memory planner's own config: the training setup whose peak accelerator memory is estimated.

A YAML file is a partial override of :class:`PlanConfig`, and ``key=value`` arguments (OmegaConf dot-list syntax,
e.g. ``micro_batch=2 modalities.image.tokens_per_item=256``) have the last word.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omegaconf import OmegaConf

from anymal.config import LORA_TARGETS, check_choice, config_from_dict, merge_overrides, read_yaml_mapping
from anymal.errors import ConfigError
from anymal.plan.arch import LINEAR_NAMES, Arch, resolve_arch

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
QUANTIZATION = ("none", "8bit", "4bit")
OPTIMIZERS = ("adamw", "adamw_8bit")
DEVICES = ("cuda", "cpu")
MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class LLMArchConfig:
    """Where the LLM's architecture numbers come from; explicit numbers override ``preset`` and ``config_json``.

    Attributes:
        preset: ``llama2-7b``, ``llama2-13b`` or ``llama2-70b``.
        config_json: a local HF ``config.json`` (or the folder holding it).
    """

    preset: str | None = None
    config_json: str | None = None
    n_layers: int | None = None
    hidden: int | None = None
    intermediate: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    vocab: int | None = None
    tie_embeddings: bool | None = None

    def resolve(self) -> Arch:
        return resolve_arch(
            self.preset,
            self.config_json,
            n_layers=self.n_layers,
            hidden=self.hidden,
            intermediate=self.intermediate,
            heads=self.heads,
            kv_heads=self.kv_heads,
            vocab=self.vocab,
            tie_embeddings=self.tie_embeddings,
        )


@dataclass
class ModalityLoad:
    """What one modality adds to a training step.

    Attributes:
        tokens_per_item: LLM input tokens one item becomes (the plugin's ``num_tokens``).
        items_per_example: items of this modality in one example.
        projector_params: trainable projector parameters.
        encoder_params: frozen encoder parameters held on the device (0 when features come from a cache).
        encoder_dtype: the encoder's weight dtype.
        feature_tokens: encoder output tokens per item that the projector reads (0: not counted).
        feature_dim: width of those features.
    """

    tokens_per_item: int = 64
    items_per_example: int = 1
    projector_params: int = 0
    encoder_params: int = 0
    encoder_dtype: str = "float16"
    feature_tokens: int = 0
    feature_dim: int = 0

    def __post_init__(self) -> None:
        check_choice(self.encoder_dtype, DTYPE_BYTES, "encoder_dtype")
        for name in ("tokens_per_item", "items_per_example", "projector_params", "encoder_params"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a non-negative number")


@dataclass
class OutputLoad:
    """What one output plugin (a ``[LOC]`` box head, a ``[SEG]`` mask decoder) adds to a training step.

    Attributes:
        head_params: its trainable parameters: the head and its trigger tokens' embedding and LM-head rows.
        frozen_params: its frozen pretrained module's parameters on the device (SAM's image encoder), 0 if none.
        frozen_dtype: their dtype.
        workspace_bytes: transient memory of its forward over one micro-batch (the plugin's
            ``planned_workspace_bytes``); it runs after the LLM's forward, while every saved activation is alive.
    """

    head_params: int = 0
    frozen_params: int = 0
    frozen_dtype: str = "float32"
    workspace_bytes: int = 0

    def __post_init__(self) -> None:
        check_choice(self.frozen_dtype, DTYPE_BYTES, "frozen_dtype")
        for name in ("head_params", "frozen_params", "workspace_bytes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a non-negative number")


@dataclass
class PlanConfig:
    """A training setup to plan memory for.

    Attributes:
        llm: the LLM architecture.
        quantization: ``none``, ``8bit`` (LLM.int8) or ``4bit`` (bitsandbytes ``quant_type``).
        quant_type: ``nf4`` or ``fp4`` (4-bit only).
        double_quant: quantise the 4-bit absmax constants again (QLoRA's double quantisation).
        quant_blocksize: 4-bit block size (bitsandbytes' default 64).
        compute_dtype: dtype of the unquantised LLM weights, the activations and the dequantised weights (with
            ``mixed_precision``: the dtype of the 4/8-bit layers' dequantised weights and matmuls).
        weights_dtype: dtype of the LLM's unquantised weights (embeddings, norms, LM head; every weight when not
            quantised), the trainer's ``model.llm.dtype``; ``None``: ``compute_dtype``. It sets the residual
            stream's dtype: a float32 embedding keeps the hidden states float32 even under autocast.
        mixed_precision: the trainer's autocast, ``no``, ``bf16`` or ``fp16``. Under autocast attention, the LM
            head and LoRA matmuls save half-precision copies of their inputs; a 4-bit layer casts its output back
            to its input's dtype, so the MLP keeps the residual stream's dtype.
        target_tokens: tokens per example that predict a target (the trainer computes logits only there,
            ``logits_to_keep``); ``None``: every token.
        trainable_dtype: dtype of trainable parameters (projectors, LoRA), their gradients and AdamW states.
        kbit_prepare: with LoRA on a quantised LLM, PEFT's ``prepare_model_for_kbit_training`` is applied (as
            ``anymal.lora.add_lora`` does): it casts the unquantised weights to fp32, so hidden states are fp32.
        full_finetune: train every LLM weight (unquantised LLM only).
        lora_rank: LoRA rank (0: no LoRA).
        lora_targets: module names LoRA wraps.
        lora_dropout: LoRA dropout (> 0 keeps a dropout mask and output per wrapped module).
        modalities: per modality name, its token and parameter load.
        outputs: per output plugin name, its head, frozen module and forward workspace.
        text_tokens: text tokens per example (prompt + answer, after padding to the batch's longest).
        micro_batch: examples per forward/backward pass.
        grad_accumulation: micro-batches per optimiser step (gradients persist between them).
        gradient_checkpointing: keep only each decoder layer's input and recompute the rest in backward.
        padded: the batch has padding, so an attention mask is materialised (and grouped KV heads are repeated).
        optimizer: ``adamw`` (states in ``trainable_dtype``) or ``adamw_8bit`` (bitsandbytes blockwise 8-bit).
        use_cache: the forward builds a KV cache (pass ``use_cache=False`` when training; this is the cost if not).
        device: ``cuda`` (adds the context and allocator overhead) or ``cpu`` (neither; used by the accuracy bench).
        cuda_context_gib: memory the CUDA context, kernels and cuBLAS workspaces take outside PyTorch's allocator
            (measured on an H200 with torch 2.11 / CUDA 13: 1.35-1.37 GiB of nvml "used" beyond torch's reserved
            memory, whatever the model size).
        allocator_overhead: fraction of the dynamic (non-weight) memory added for caching-allocator fragmentation;
            with a quantised LLM two dequantised weights are added too (fitted to reserved minus allocated at the
            measured peaks: 0.27, 0.50, 1.52 and 1.02 GiB).
        budget_gib: accelerator memory available, in GiB (an "80 GB" A100/H100 has 80 GiB nominal).
    """

    llm: LLMArchConfig = field(default_factory=LLMArchConfig)
    quantization: str = "none"
    quant_type: str = "nf4"
    double_quant: bool = True
    quant_blocksize: int = 64
    compute_dtype: str = "bfloat16"
    weights_dtype: str | None = None
    mixed_precision: str = "no"
    target_tokens: int | None = None
    trainable_dtype: str = "float32"
    kbit_prepare: bool = True
    full_finetune: bool = False
    lora_rank: int = 0
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    lora_dropout: float = 0.0
    modalities: dict[str, ModalityLoad] = field(default_factory=dict)
    outputs: dict[str, OutputLoad] = field(default_factory=dict)
    text_tokens: int = 256
    micro_batch: int = 4
    grad_accumulation: int = 1
    gradient_checkpointing: bool = False
    padded: bool = True
    optimizer: str = "adamw"
    use_cache: bool = False
    device: str = "cuda"
    cuda_context_gib: float = 1.4
    allocator_overhead: float = 0.035
    budget_gib: float = 80.0

    def __post_init__(self) -> None:
        check_choice(self.quantization, QUANTIZATION, "quantization")
        check_choice(self.quant_type, ("nf4", "fp4"), "quant_type")
        check_choice(self.compute_dtype, DTYPE_BYTES, "compute_dtype")
        check_choice(self.trainable_dtype, DTYPE_BYTES, "trainable_dtype")
        if self.weights_dtype is not None:
            check_choice(self.weights_dtype, DTYPE_BYTES, "weights_dtype")
        check_choice(self.mixed_precision, MIXED_PRECISION, "mixed_precision")
        if self.target_tokens is not None and not 0 <= self.target_tokens <= self.seq_len:
            raise ConfigError(f"target_tokens={self.target_tokens}: expected 0 to the sequence length {self.seq_len}")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.device, DEVICES, "device")
        if self.quant_blocksize not in (32, 64, 128, 256, 512, 1024, 2048, 4096):
            raise ConfigError(f"quant_blocksize={self.quant_blocksize}: expected a power of two from 32 to 4096")
        unknown = [t for t in self.lora_targets if t not in LINEAR_NAMES]
        if unknown:
            raise ConfigError(f"lora_targets: unknown module(s) {unknown}; expected names from {list(LINEAR_NAMES)}")
        if self.full_finetune and self.quantization != "none":
            raise ConfigError("full_finetune=true needs quantization=none: quantised weights cannot be trained")
        if self.full_finetune and self.lora_rank:
            raise ConfigError("full_finetune=true and lora_rank>0 exclude each other")
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{item.name}={value}: expected a finite number")
        for name in ("lora_rank", "text_tokens", "cuda_context_gib", "allocator_overhead"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a non-negative number")
        for name in ("micro_batch", "grad_accumulation"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a positive integer")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout={self.lora_dropout}: expected a value in [0, 1)")
        if self.budget_gib <= 0:
            raise ConfigError(f"budget_gib={self.budget_gib}: expected a positive size in GiB")

    @property
    def autocast(self) -> bool:
        """Whether the step runs under autocast (the trainer's ``mixed_precision`` other than ``no``)."""
        return self.mixed_precision != "no"

    @property
    def llm_weights_dtype(self) -> str:
        """The unquantised LLM weights' dtype: ``weights_dtype``, else ``compute_dtype``."""
        return self.weights_dtype or self.compute_dtype

    @property
    def seq_len(self) -> int:
        """Tokens per example: text plus every modality item's tokens."""
        return self.text_tokens + sum(m.tokens_per_item * m.items_per_example for m in self.modalities.values())

    def arch(self) -> Arch:
        return self.llm.resolve()

    def to_dict(self) -> dict[str, Any]:
        # OmegaConf types to_container as any container; a structured config's is a dict
        return cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(self)))


def plan_config_from_dict(data: dict[str, Any] | None, overrides: list[str] | tuple[str, ...] = ()) -> PlanConfig:
    """A validated :class:`PlanConfig` from a (partial) dict plus ``key=value`` overrides."""
    return config_from_dict(PlanConfig, merge_overrides(dict(data or {}), overrides=overrides), "")


def load_plan_config(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> PlanConfig:
    """Reads a YAML (or JSON) plan config and applies ``key=value`` overrides.

    A relative ``llm.config_json`` in the file resolves against the file's folder.
    """
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        data = read_yaml_mapping(file, "plan config")
        cfg_json = (data.get("llm") or {}).get("config_json")
        if cfg_json and not Path(cfg_json).is_absolute():
            data["llm"]["config_json"] = str(file.parent / cfg_json)
    return plan_config_from_dict(data, overrides)
