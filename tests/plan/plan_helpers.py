"""Helpers for the memory-planner tests: tiny plan configs (a uniquely named module, imported by the tests)."""

from __future__ import annotations

from typing import Any

from anymal.plan import PlanConfig, plan_config_from_dict
from anymal.plan.measure import cpu_case


def tiny_plan(
    hidden: int = 128,
    intermediate: int = 344,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    vocab: int = 512,
    batch: int = 2,
    text: int = 40,
    image_tokens: int = 8,
    feature_dim: int = 32,
    **overrides: Any,
) -> PlanConfig:
    """A CPU plan of a small LLaMA with one projector-fed modality (``feature_dim`` 0: no modality)."""
    shape = dict(hidden=hidden, intermediate=intermediate, layers=layers, heads=heads, kv_heads=kv_heads, vocab=vocab)
    load = dict(batch=batch, text=text, image_tokens=image_tokens, feature_dim=feature_dim)
    return plan_config_from_dict(cpu_case(**shape, **load, **overrides))
