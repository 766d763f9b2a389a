"""``python -m anymal.plan``: will this training setup fit in accelerator memory, and if not, what to change.

Examples::

    python -m anymal.plan --config configs/plan/llama2_70b_4bit_paper.yaml
    python -m anymal.plan --config configs/plan/llama2_70b_4bit_paper.yaml micro_batch=8 --json
    python -m anymal.plan llm.preset=llama2-7b quantization=none compute_dtype=float16 budget_gib=24
"""

from __future__ import annotations

import argparse
import sys

from anymal.errors import ConfigError
from anymal.plan.config import load_plan_config
from anymal.plan.estimate import estimate
from anymal.plan.report import format_table, to_json
from anymal.plan.suggest import plan_to_fit, suggest


def main(argv: list[str] | None = None) -> int:
    """Runs the planner; exit status 0 (estimated), 2 (bad config)."""
    parser = argparse.ArgumentParser(
        prog="python -m anymal.plan",
        description="Estimate the peak accelerator memory of an anymal training step and what to change if it "
        "does not fit.",
    )
    parser.add_argument("--config", help="YAML plan config (a partial PlanConfig); optional")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. micro_batch=2 llm.preset=llama2-13b")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    try:
        cfg = load_plan_config(args.config, args.overrides)
        est = estimate(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    suggestions = plan = None
    if not est.fits:
        suggestions = suggest(cfg, est)
        plan = plan_to_fit(cfg)
    print(to_json(est, suggestions, plan) if args.json else format_table(est, suggestions, plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
