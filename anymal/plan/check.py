"""The memory check ``python -m anymal.train`` runs before it loads a model: the planned peak of the very config,
and on CUDA whether it fits the device's free memory, with the planner's suggestions when it does not."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anymal.plan.estimate import GIB

# the CUDA context torch.cuda.mem_get_info creates before it answers (part of the planned 1.4 GiB context)
CONTEXT_AT_QUERY_GIB = 0.5


@dataclass
class MemoryCheck:
    """The verdict: ``fits`` is ``None`` when nothing was compared (no CUDA, or the plan could not be made)."""

    message: str
    fits: bool | None = None
    peak_bytes: int | None = None
    free_bytes: int | None = None
    suggestions: list[str] = field(default_factory=list)


def _cuda_free_bytes() -> int | None:
    import torch

    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info()
    return int(free)


def check_memory(config: Any, config_path: str | Path | None = None, free_bytes: int | None = None) -> MemoryCheck:
    """Plans ``config`` (a ``TrainConfig``) and compares its peak with the free memory of the CUDA device.

    ``free_bytes`` stands in for the device's free memory (tests); by default it is read from CUDA, and without
    CUDA the peak is only reported. A config the planner cannot read is reported, never refused: the check is
    advice until it has a number.
    """
    from anymal.errors import AnyMALError
    from anymal.plan.estimate import estimate
    from anymal.plan.from_train import plan_from_train, train_overrides
    from anymal.plan.suggest import plan_to_fit, suggest

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return MemoryCheck("memory plan: skipped (several processes: the planner models one device)")
    if free_bytes is None:
        free_bytes = _cuda_free_bytes()
    device = "cuda" if free_bytes is not None else "cpu"
    try:
        budget = (free_bytes / GIB + CONTEXT_AT_QUERY_GIB) if free_bytes is not None else 80.0
        plan, _notes = plan_from_train(config, config_path, {"device": device, "budget_gib": budget})
        est = estimate(plan)
    except (AnyMALError, OSError, ValueError) as exc:
        return MemoryCheck(f"memory plan: skipped ({exc})")
    peak = est.peak_bytes
    head = (
        f"memory plan: peak {peak / GIB:.2f} GiB during {est.peak_phase} ({plan.text_tokens} text tokens per "
        f"example assumed; python -m anymal.plan --config <this config> text_tokens=N for yours)"
    )
    if free_bytes is None:
        return MemoryCheck(head, peak_bytes=peak)
    if est.fits:
        return MemoryCheck(f"{head}; {free_bytes / GIB:.2f} GiB free on the GPU", True, peak, free_bytes)

    def keep(overrides: dict[str, Any]) -> bool:
        return train_overrides(overrides) is not None

    def args(overrides: dict[str, Any]) -> str:
        mapped = train_overrides(overrides) or overrides
        return " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in mapped.items())

    lines = [
        f"  {s.change}: {args(s.overrides)} (peak {s.peak_after_bytes / GIB:.2f} GiB)" for s in suggest(plan, est, keep)
    ]
    fit = plan_to_fit(plan, keep=keep)
    merged: dict[str, Any] = {}
    for step in fit.steps:
        merged.update(step.overrides)
    if fit.fits and merged:
        lines.append(f"  together: {args(merged)} (peak {fit.estimate.peak_bytes / GIB:.2f} GiB)")
    message = (
        f"{head}, but only {free_bytes / GIB:.2f} GiB is free on the GPU: this run would run out of memory. "
        "What to change:\n"
        + "\n".join(lines or ["  (no suggestion fits)"])
        + "\nRun with --no-memory-check to start anyway."
    )
    return MemoryCheck(message, False, peak, free_bytes, lines)
