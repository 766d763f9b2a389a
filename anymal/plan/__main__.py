"""``python -m anymal.plan``: will this training setup fit in accelerator memory, and if not, what to change.

``--config`` takes either a training config (the YAML ``python -m anymal.train`` runs, with the trainer's own
``key=value`` overrides plus the planner knobs ``text_tokens``, ``budget_gib``, ``device``, ``llm.preset``...) or a
plan config (a partial :class:`~anymal.plan.PlanConfig`).

Examples::

    python -m anymal.plan --config configs/align/image_llama2_70b.yaml --json
    python -m anymal.plan --config configs/align/image_llama2_70b.yaml gradient_checkpointing=false text_tokens=210
    python -m anymal.plan --config configs/plan/llama2_70b_4bit_paper.yaml micro_batch=8 --json
    python -m anymal.plan llm.preset=llama2-7b quantization=none compute_dtype=float16 budget_gib=24
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the planner reads local files only; never wait on the hub

import argparse
import sys
from pathlib import Path
from typing import Any

from anymal.errors import AnyMALError, ConfigError
from anymal.plan.config import PlanConfig, load_plan_config
from anymal.plan.estimate import estimate
from anymal.plan.report import format_table, to_json
from anymal.plan.suggest import plan_to_fit, suggest

TRAIN_KEYS = ("model", "init_from", "stage", "data")


def is_train_config(path: str | Path | None) -> bool:
    """Whether ``path`` is a training config (it has ``model``, ``init_from``, ``stage`` or ``data``)."""
    if path is None:
        return False
    from anymal.config import read_yaml_mapping

    return any(key in read_yaml_mapping(path) for key in TRAIN_KEYS)


def split_overrides(overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``key=value`` arguments split into the trainer's and the planner's own (values parsed as YAML)."""
    import yaml

    from anymal.plan.from_train import PLAN_KEYS

    train, plan = [], {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and (key in PLAN_KEYS or key == "llm.preset"):
            plan[key] = yaml.safe_load(value)
        else:
            train.append(item)
    return train, plan


def plan_train_config(path: str | Path, overrides: list[str]) -> tuple[PlanConfig, list[str]]:
    """The plan of a training config file with ``key=value`` overrides (trainer's and planner's)."""
    from anymal.plan.from_train import plan_from_train
    from anymal.train.config import load_train_config

    train_args, plan_args = split_overrides(overrides)
    config = load_train_config(path, train_args)
    return plan_from_train(config, path, plan_args)


def main(argv: list[str] | None = None) -> int:
    """Runs the planner; exit status 0 (estimated), 2 (bad config)."""
    parser = argparse.ArgumentParser(
        prog="python -m anymal.plan",
        description="Estimate the peak accelerator memory of an anymal training step and what to change if it "
        "does not fit.",
    )
    parser.add_argument("--config", help="a training config (as python -m anymal.train takes) or a plan config")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides: the trainer's (batch_size=2, gradient_checkpointing=true) with a training "
        "config, plus text_tokens/budget_gib/device/llm.preset; PlanConfig fields with a plan config",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    translate = None
    notes: list[str] = []
    try:
        if is_train_config(args.config):
            from anymal.plan.from_train import train_overrides

            cfg, notes = plan_train_config(args.config, args.overrides)
            translate = train_overrides
        else:
            cfg = load_plan_config(args.config, args.overrides)
        est = estimate(cfg)
    except (ConfigError, AnyMALError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    suggestions = plan = None
    if not est.fits:
        keep = (lambda o: translate(o) is not None) if translate is not None else None
        suggestions = suggest(cfg, est, keep)
        plan = plan_to_fit(cfg, keep=keep)
    if args.json:
        print(to_json(est, suggestions, plan, translate, notes))
    else:
        print(format_table(est, suggestions, plan, translate, notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
