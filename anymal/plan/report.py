"""The planner's output: a readable table, or JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from anymal.plan.estimate import GIB, MemoryEstimate
from anymal.plan.suggest import FitPlan, Suggestion

Translate = Callable[[dict[str, Any]], dict[str, Any] | None]


def _args(overrides: dict[str, Any], translate: Translate | None) -> str:
    if translate is not None:
        overrides = translate(overrides) or overrides
    return " ".join(f"{k}={_arg(v)}" for k, v in overrides.items())


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _merged(plan: FitPlan) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for step in plan.steps:
        merged.update(step.overrides)
    return merged


def _gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def describe(est: MemoryEstimate) -> str:
    """One line naming the setup."""
    cfg, arch = est.config, est.arch
    quant = cfg.quantization
    if quant == "4bit":
        quant = f"4-bit {cfg.quant_type}{' + double quant' if cfg.double_quant else ''}"
    training = "full fine-tune" if cfg.full_finetune else (f"LoRA r={cfg.lora_rank}" if cfg.lora_rank else "frozen")
    mods = ", ".join(f"{n} {m.items_per_example}x{m.tokens_per_item}" for n, m in cfg.modalities.items())
    return (
        f"LLM {arch.total_params() / 1e9:.2f}B params ({arch.n_layers} layers, hidden {arch.hidden}), {quant}, "
        f"{training}, {cfg.compute_dtype}; micro-batch {cfg.micro_batch} x {cfg.seq_len} tokens "
        f"(text {cfg.text_tokens}{'; ' + mods if mods else ''}); gradient checkpointing "
        f"{'on' if cfg.gradient_checkpointing else 'off'}; {cfg.optimizer}; {cfg.device}"
        + (f"; output plugins {', '.join(cfg.outputs)}" if cfg.outputs else "")
    )


def format_table(
    est: MemoryEstimate,
    suggestions: list[Suggestion] | None = None,
    plan: FitPlan | None = None,
    translate: Translate | None = None,
    notes: list[str] | None = None,
) -> str:
    """The breakdown at the peak, the verdict, and (when it does not fit) the suggestions and a plan that fits.

    ``translate`` writes the suggested overrides in another program's names (the trainer's); ``notes`` are
    printed under the summary (where the numbers came from).
    """
    lines = [describe(est), *(f"  {n}" for n in notes or []), ""]
    width = max(len(c.name) for c in est.components)
    lines.append(f"{'component':<{width}}  {'GiB':>8}  note")
    lines.append(f"{'-' * width}  {'-' * 8}  ----")
    for c in est.components:
        lines.append(f"{c.name:<{width}}  {_gib(c.bytes):>8}  {c.note}")
    lines.append(f"{'-' * width}  {'-' * 8}")
    lines.append(f"{'peak':<{width}}  {_gib(est.peak_bytes):>8}  during {est.peak_phase}")
    lines.append("phases: " + " | ".join(f"{name} {_gib(b)} GiB" for name, b in est.phases.items()))
    budget = est.config.budget_gib
    if est.fits:
        lines.append(f"FITS in {budget:g} GiB with {_gib(est.headroom_bytes)} GiB to spare.")
    else:
        lines.append(f"DOES NOT FIT in {budget:g} GiB: {_gib(-est.headroom_bytes)} GiB over.")
    if suggestions:
        lines += ["", "what to change (each alone, largest saving first):"]
        w = max(len(s.change) for s in suggestions)
        lines.append(f"  {'change':<{w}}  {'saves GiB':>9}  {'peak GiB':>8}  {'fits':<4}  {'effect':<13}  args")
        for s in suggestions:
            lines.append(
                f"  {s.change:<{w}}  {_gib(s.saves_bytes):>9}  {_gib(s.peak_after_bytes):>8}  "
                f"{'yes' if s.fits_after else 'no':<4}  {s.effect:<13}  {_args(s.overrides, translate)}"
            )
    if plan is not None and plan.steps:
        verdict = "fits" if plan.fits else "still does not fit"
        args = _args(_merged(plan), translate)
        lines += ["", f"combined ({verdict}, peak {_gib(plan.estimate.peak_bytes)} GiB): {args}"]
        for step in plan.steps:
            lines.append(f"  - {step.change}")
    return "\n".join(lines)


def to_json(
    est: MemoryEstimate,
    suggestions: list[Suggestion] | None = None,
    plan: FitPlan | None = None,
    translate: Translate | None = None,
    notes: list[str] | None = None,
) -> str:
    """The estimate, suggestions and plan as a JSON document (``args`` in ``translate``'s names when given)."""
    data: dict[str, Any] = est.to_dict()
    data["summary"] = describe(est)
    data["notes"] = list(notes or [])
    data["suggestions"] = [{**s.to_dict(), "args": _args(s.overrides, translate)} for s in suggestions or []]
    data["plan_to_fit"] = None
    if plan is not None:
        data["plan_to_fit"] = {**plan.to_dict(), "args": _args(_merged(plan), translate)}
    return json.dumps(data, indent=2, default=str)
