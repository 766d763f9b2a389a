"""The demo's command line: ``python -m anymal demo``, ``python -m anymal_demo`` and ``anymal-demo`` run it.

The parser lives here, with the demo, so that ``anymal``'s own command line only forwards the arguments and never
imports the demo before the ``demo`` command is chosen.
"""

from __future__ import annotations

import argparse
import sys

from anymal.errors import AnyMALError


def build_parser(prog: str = "python -m anymal demo") -> argparse.ArgumentParser:
    """The demo's parser (``prog`` is the command shown in its usage line)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate a synthetic multi-modal world, train a stand-in LLM on its text, align and "
        "instruction-tune the projectors through anymal.train, and report held-out accuracy (see docs/demo.md).",
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run (minutes; what the tests run)")
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides of the demo's settings (anymal_demo/configs/demo.yaml), e.g. "
        "language_model.steps=300 'overrides.align_image=[max_steps=500]'",
    )
    return parser


def run(argv: list[str] | None = None, prog: str = "python -m anymal demo") -> int:
    """Parses ``argv`` and runs the demo: 0 when it finished with the frozen LM unchanged, else 1.

    Raises:
        AnyMALError: a bad setting or override (the caller prints it).
    """
    from anymal_demo.run import run_demo
    from anymal_demo.settings import load_settings

    args = build_parser(prog).parse_args(argv)
    settings = load_settings(args.quick, overrides=args.overrides)
    results = run_demo(args.out, quick=args.quick, settings=settings, progress=not args.no_progress)
    return 0 if results.get("frozen_llm_unchanged", False) else 1


def main(argv: list[str] | None = None) -> int:
    """``anymal-demo`` / ``python -m anymal_demo``: :func:`run`, with anymal's errors printed as ``error: ...``."""
    try:
        return run(argv, prog="anymal-demo")
    except AnyMALError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
