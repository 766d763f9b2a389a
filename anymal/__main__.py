"""``python -m anymal <command>``: the project's command line (``anymal`` once installed).

Commands:
    demo    the whole pipeline learning on CPU in minutes (``python -m anymal demo [--quick] [--out DIR]``).

Training and evaluation have their own modules: ``python -m anymal.train``, ``python -m anymal.plan``.
"""

from __future__ import annotations

import argparse
import sys

from anymal.errors import AnyMALError


def _demo(args: argparse.Namespace) -> int:
    from anymal.demo import load_settings, run_demo

    settings = load_settings(args.quick, overrides=args.overrides)
    results = run_demo(args.out, quick=args.quick, settings=settings, progress=not args.no_progress)
    return 0 if results.get("frozen_llm_unchanged", False) else 1


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each command is a subparser with its handler in ``func``."""
    parser = argparse.ArgumentParser(prog="python -m anymal", description="anymal command line")
    commands = parser.add_subparsers(dest="command", title="commands")
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="train the whole pipeline on a synthetic world and show it learning (CPU, minutes)",
        description="Generate a synthetic multi-modal world, train a stand-in LLM on its text, align and "
        "instruction-tune the projectors through anymal.train, and report held-out accuracy (see docs/demo.md).",
    )
    demo.add_argument("--quick", action="store_true", help="a smaller run (about a minute) used by the tests")
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    demo.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides of configs/demo/demo.yaml, e.g. "
        "language_model.steps=300 'overrides.align_image=[max_steps=500]'",
    )
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AnyMALError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
