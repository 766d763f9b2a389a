"""What to change when a setup does not fit: each candidate change re-estimated, and a combination that fits.

Every suggestion is a set of config overrides, so it can be pasted back as ``key=value`` arguments. Suggestions
carry an ``effect`` tier, and :func:`plan_to_fit` prefers changes that leave results alone before those that only
change numerics, and those before changes to the model or data:

* ``same results``: gradient checkpointing (about a third more compute), smaller micro-batches with gradient
  accumulation (same effective batch, slower), caching encoder features, double quantisation, no KV cache;
* ``numerics``: 8-bit AdamW, bf16 compute, keeping hidden states in the compute dtype, no LoRA dropout;
* ``model or data``: 4-bit quantisation, LoRA instead of full fine-tuning, fewer modality tokens, shorter text.

The memory each suggestion saves is relative to the original setup; in a plan, each step's saving is relative to
the steps before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from anymal.errors import ConfigError
from anymal.plan.config import PlanConfig
from anymal.plan.estimate import MemoryEstimate, estimate

EFFECTS = ("same results", "numerics", "model or data")


@dataclass(frozen=True)
class Suggestion:
    """One change and what it does to the peak.

    Attributes:
        change: what to do, in words.
        overrides: the config overrides (dotted keys) that make the change.
        effect: one of ``EFFECTS``.
        saves_bytes: peak before minus peak after.
        peak_after_bytes: the peak with the change.
        fits_after: whether the change alone makes it fit.
    """

    change: str
    overrides: dict[str, Any]
    effect: str
    saves_bytes: int
    peak_after_bytes: int
    fits_after: bool

    def as_args(self) -> str:
        """The overrides as ``key=value`` command-line arguments."""
        return " ".join(f"{k}={_arg(v)}" for k, v in self.overrides.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "overrides": self.overrides,
            "args": self.as_args(),
            "effect": self.effect,
            "saves_bytes": self.saves_bytes,
            "peak_after_bytes": self.peak_after_bytes,
            "fits_after": self.fits_after,
        }


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def apply_overrides(cfg: PlanConfig, overrides: dict[str, Any]) -> PlanConfig:
    """A copy of ``cfg`` with dotted-key overrides applied (``micro_batch``, ``llm.preset``,
    ``modalities.image.tokens_per_item``); the dataclasses validate the result."""
    top: dict[str, Any] = {}
    llm: dict[str, Any] = {}
    mods: dict[str, dict[str, Any]] = {name: {} for name in cfg.modalities}
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) == 1:
            top[key] = value
        elif len(parts) == 2 and parts[0] == "llm":
            llm[parts[1]] = value
        elif len(parts) == 3 and parts[0] == "modalities" and parts[1] in mods:
            mods[parts[1]][parts[2]] = value
        else:
            raise ConfigError(
                f"override {key!r}: expected a PlanConfig field, llm.<field> or modalities.<name>.<field>"
            )
    try:
        return replace(
            cfg,
            **top,
            llm=replace(cfg.llm, **llm),
            modalities={name: replace(m, **mods[name]) for name, m in cfg.modalities.items()},
        )
    except TypeError as exc:
        raise ConfigError(f"overrides {overrides}: {exc}") from None


def _candidates(cfg: PlanConfig, base: MemoryEstimate) -> list[tuple[str, dict[str, Any], str]]:
    out: list[tuple[str, dict[str, Any], str]] = []
    if cfg.use_cache:
        out.append(("pass use_cache=False to the forward (no KV cache in training)", {"use_cache": False}, EFFECTS[0]))
    if not cfg.gradient_checkpointing:
        out.append(("enable gradient checkpointing", {"gradient_checkpointing": True}, EFFECTS[0]))
    if cfg.micro_batch > 1:
        effective = cfg.micro_batch * cfg.grad_accumulation
        chosen = 1
        for mb in range(cfg.micro_batch - 1, 0, -1):
            trial = apply_overrides(cfg, {"micro_batch": mb, "grad_accumulation": math.ceil(effective / mb)})
            if estimate(trial).fits:
                chosen = mb
                break
        accum = math.ceil(effective / chosen)
        out.append(
            (
                f"micro-batch {chosen} with gradient accumulation {accum} (effective batch {chosen * accum})",
                {"micro_batch": chosen, "grad_accumulation": accum},
                EFFECTS[0],
            )
        )
    for name, m in cfg.modalities.items():
        if m.encoder_params:
            change = f"precompute {name} encoder features (feature cache) so the encoder stays off the device"
            out.append((change, {f"modalities.{name}.encoder_params": 0}, EFFECTS[0]))
        if m.encoder_params and m.encoder_dtype == "float32":
            change = f"keep the frozen {name} encoder in bfloat16"
            out.append((change, {f"modalities.{name}.encoder_dtype": "bfloat16"}, EFFECTS[1]))
    if cfg.quantization == "4bit" and not cfg.double_quant:
        out.append(("enable double quantisation of the 4-bit constants", {"double_quant": True}, EFFECTS[0]))
    trainable = base.details.get("trainable_params", 0)
    if cfg.optimizer == "adamw" and trainable:
        out.append(("use 8-bit AdamW (bitsandbytes AdamW8bit)", {"optimizer": "adamw_8bit"}, EFFECTS[1]))
    if cfg.compute_dtype == "float32" and not cfg.full_finetune:
        out.append(("compute in bfloat16", {"compute_dtype": "bfloat16"}, EFFECTS[1]))
    if cfg.quantization != "none" and cfg.lora_rank and cfg.kbit_prepare:
        change = "keep hidden states in the compute dtype (skip prepare_model_for_kbit_training's fp32 upcast)"
        out.append((change, {"kbit_prepare": False}, EFFECTS[1]))
    if cfg.lora_rank and cfg.lora_dropout > 0:
        out.append(("set lora_dropout=0 (no per-module dropout copies)", {"lora_dropout": 0.0}, EFFECTS[1]))
    if cfg.full_finetune:
        change = "train LoRA adapters (r=16) on a frozen 4-bit LLM instead of every weight"
        overrides = {"full_finetune": False, "lora_rank": 16, "quantization": "4bit", "double_quant": True}
        out.append((change, overrides, EFFECTS[2]))
    elif cfg.quantization != "4bit":
        overrides = {"quantization": "4bit", "quant_type": "nf4", "double_quant": True}
        out.append(("quantise the frozen LLM to 4-bit NF4 with double quantisation", overrides, EFFECTS[2]))
    for name, m in cfg.modalities.items():
        if m.tokens_per_item > 32:
            fewer = m.tokens_per_item // 2
            change = f"use {fewer} instead of {m.tokens_per_item} {name} tokens per item"
            out.append((change, {f"modalities.{name}.tokens_per_item": fewer}, EFFECTS[2]))
    if cfg.text_tokens > 128:
        shorter = cfg.text_tokens // 2
        out.append((f"truncate text to {shorter} tokens", {"text_tokens": shorter}, EFFECTS[2]))
    return out


Keep = Callable[[dict[str, Any]], bool]


def suggest(cfg: PlanConfig, base: MemoryEstimate | None = None, keep: Keep | None = None) -> list[Suggestion]:
    """Each applicable change on its own, re-estimated, ordered by the memory it saves (largest first).

    ``keep``: only changes whose overrides it accepts (e.g. those the trainer has a knob for).
    """
    base = base or estimate(cfg)
    found = []
    for change, overrides, effect in _candidates(cfg, base):
        if keep is not None and not keep(overrides):
            continue
        after = estimate(apply_overrides(cfg, overrides))
        saves = base.peak_bytes - after.peak_bytes
        if saves > 0:
            found.append(Suggestion(change, overrides, effect, saves, after.peak_bytes, after.fits))
    return sorted(found, key=lambda s: -s.saves_bytes)


@dataclass(frozen=True)
class FitPlan:
    """A combination of suggestions, applied in order, and where it ends.

    Attributes:
        steps: the suggestions applied (each re-estimated on top of the previous ones).
        config: the config after all steps.
        estimate: its estimate.
    """

    steps: list[Suggestion]
    config: PlanConfig
    estimate: MemoryEstimate

    @property
    def fits(self) -> bool:
        return self.estimate.fits

    def as_args(self) -> str:
        merged: dict[str, Any] = {}
        for step in self.steps:
            merged.update(step.overrides)
        return " ".join(f"{k}={_arg(v)}" for k, v in merged.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits,
            "steps": [s.to_dict() for s in self.steps],
            "args": self.as_args(),
            "peak_bytes": self.estimate.peak_bytes,
        }


def _apply_all(cfg: PlanConfig, steps: list[Suggestion]) -> PlanConfig:
    for step in steps:
        cfg = apply_overrides(cfg, step.overrides)
    return cfg


def plan_to_fit(cfg: PlanConfig, max_steps: int = 8, keep: Keep | None = None) -> FitPlan:
    """A small set of changes that makes ``cfg`` fit.

    Greedy: at each step take a change that makes it fit on its own if there is one, else any change; the mildest
    effect tier first and the largest saving within a tier. Then drop every step the others do not need.
    """
    current, est = cfg, estimate(cfg)
    steps: list[Suggestion] = []
    while not est.fits and len(steps) < max_steps:
        options = suggest(current, est, keep)
        if not options:
            break
        pool = [s for s in options if s.fits_after] or options
        best = min(pool, key=lambda s: (EFFECTS.index(s.effect), -s.saves_bytes))
        steps.append(best)
        current = apply_overrides(current, best.overrides)
        est = estimate(current)
    if est.fits:
        for step in list(steps):
            rest = [s for s in steps if s is not step]
            trial = _apply_all(cfg, rest)
            if estimate(trial).fits:
                steps = rest
        current = _apply_all(cfg, steps)
        est = estimate(current)
    return FitPlan(steps, current, est)
