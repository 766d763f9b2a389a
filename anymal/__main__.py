"""``python -m anymal <command>``: the project's command line (``anymal`` once installed).

Commands:
    demo    the whole pipeline learning on CPU in minutes (``python -m anymal demo [--quick] [--out DIR]``). The
            demo is an application in its own package, ``anymal_demo``, installed with anymal; this module
            forwards the command's arguments to it and imports it only when the command runs.
    serve   an OpenAI-compatible HTTP server for a saved model (``python -m anymal serve --model DIR``, also
            ``python -m anymal.serve``); the application package ``anymal_serve`` (FastAPI + uvicorn: the ``serve``
            extra), forwarded the same way.
    chat    a terminal chat with a saved model (``python -m anymal chat --model DIR``, also
            ``python -m anymal.chat``), from the same application package.

Training and evaluation have their own modules: ``python -m anymal.train``, ``python -m anymal.plan``.
"""

from __future__ import annotations

import argparse
import sys

from anymal.errors import AnyMALError


def _demo(args: argparse.Namespace, rest: list[str]) -> int:
    try:
        # the demo is a separate top-level package (apps/anymal_demo) that mypy checking anymal does not see
        from anymal_demo.cli import run  # type: ignore[import-not-found, unused-ignore]
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "anymal_demo":
            raise  # the demo is there but one of its dependencies is not: that traceback says which
        raise AnyMALError(
            "the demo is not installed: `python -m anymal demo` runs the anymal_demo package, which ships with "
            "anymal's own distribution (pip install anymal, or pip install -e . in a checkout)"
        ) from None
    return run(rest)


def _serve(args: argparse.Namespace, rest: list[str]) -> int:
    """``serve`` and ``chat``: both commands of the serving application."""
    try:
        # the server is a separate top-level package (apps/anymal_serve) that mypy checking anymal does not see
        from anymal_serve.cli import run, run_chat  # type: ignore[import-not-found, unused-ignore]
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "anymal_serve":
            raise
        raise AnyMALError(
            "the server is not installed: `python -m anymal serve` runs the anymal_serve package, which ships with "
            "anymal's own distribution (pip install 'anymal[serve]', or pip install -e '.[serve]' in a checkout)"
        ) from None
    return int(run_chat(rest) if args.command == "chat" else run(rest))


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each command is a subparser with its handler in ``func``.

    A handler takes the parsed namespace and the arguments the top level did not parse, which a command that
    brings its own parser (``demo``) parses itself.
    """
    parser = argparse.ArgumentParser(prog="python -m anymal", description="anymal command line")
    commands = parser.add_subparsers(dest="command", title="commands")
    commands.required = True

    demo = commands.add_parser(
        "demo",
        add_help=False,  # --help goes to the demo's own parser, like every other argument
        help="train the whole pipeline on a synthetic world and show it learning (CPU, minutes); "
        "python -m anymal demo --help lists its options",
    )
    demo.set_defaults(func=_demo, forwards=True)
    serve = commands.add_parser(
        "serve",
        add_help=False,
        help="serve a saved model behind the OpenAI chat API; python -m anymal serve --help lists its options",
    )
    serve.set_defaults(func=_serve, forwards=True)
    chat = commands.add_parser(
        "chat",
        add_help=False,
        help="chat with a saved model in the terminal (/image, /audio, /video, /imu commands); "
        "python -m anymal chat --help lists its options",
    )
    chat.set_defaults(func=_serve, forwards=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "forwards", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args, rest)
    except AnyMALError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
