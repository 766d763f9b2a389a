"""The memory planner: will a training setup fit on the accelerator, and if not, what to change.

``python -m anymal.plan --config configs/plan/llama2_70b_4bit_paper.yaml [key=value ...] [--json]``
"""

from anymal.plan.arch import PRESETS, Arch, resolve_arch
from anymal.plan.config import LLMArchConfig, ModalityLoad, PlanConfig, load_plan_config, plan_config_from_dict
from anymal.plan.estimate import GIB, Component, MemoryEstimate, estimate

__all__ = [
    "GIB",
    "PRESETS",
    "Arch",
    "Component",
    "LLMArchConfig",
    "MemoryEstimate",
    "ModalityLoad",
    "PlanConfig",
    "estimate",
    "load_plan_config",
    "plan_config_from_dict",
    "resolve_arch",
]
