"""The memory planner: will a training setup fit on the accelerator, and if not, what to change.

``python -m anymal.plan --config configs/plan/llama2_70b_4bit_paper.yaml [key=value ...] [--json]``
"""

from anymal.plan.arch import PRESETS, Arch, resolve_arch
from anymal.plan.config import LLMArchConfig, ModalityLoad, PlanConfig, load_plan_config, plan_config_from_dict
from anymal.plan.estimate import GIB, Component, MemoryEstimate, estimate
from anymal.plan.report import format_table, to_json
from anymal.plan.suggest import FitPlan, Suggestion, apply_overrides, plan_to_fit, suggest

__all__ = [
    "GIB",
    "PRESETS",
    "Arch",
    "Component",
    "FitPlan",
    "LLMArchConfig",
    "MemoryEstimate",
    "ModalityLoad",
    "PlanConfig",
    "Suggestion",
    "apply_overrides",
    "estimate",
    "format_table",
    "load_plan_config",
    "plan_config_from_dict",
    "plan_to_fit",
    "resolve_arch",
    "suggest",
    "to_json",
]
