"""The server's command line: ``python -m anymal.serve`` (or ``python -m anymal serve``), ``python -m anymal_serve``
and ``anymal-serve`` run it.

The parser lives here so that ``anymal``'s own command line only forwards the arguments and imports the server
(and FastAPI) only when the ``serve`` command is chosen.
"""

from __future__ import annotations

import argparse
import sys

from anymal.errors import AnyMALError


def build_parser(prog: str = "python -m anymal.serve") -> argparse.ArgumentParser:
    """The server's parser (``prog`` is the command shown in its usage line)."""
    parser = argparse.ArgumentParser(prog=prog, description="Serve an AnyMAL model behind the OpenAI chat API.")
    parser.add_argument("--model", required=True, help="a folder saved by AnyMAL.save_pretrained (or a hub id)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--model-name", default=None, help="the id /v1/models reports (default: the folder's name)")
    parser.add_argument(
        "--allow-local-files",
        action="store_true",
        help="accept file:// URLs and paths in media parts (they read this machine's files: trusted clients only)",
    )
    parser.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body (default: 64 MB)")
    parser.add_argument("--max-queue", type=int, default=64, help="requests waiting for the model before 429s")
    parser.add_argument("--max-batch", type=int, default=8, help="most requests in one generate call (default: 8)")
    parser.add_argument(
        "--batch-wait-ms", type=float, default=10.0, help="how long a request waits for others to batch with"
    )
    parser.add_argument("--default-max-tokens", type=int, default=256, help="max_tokens when a request gives none")
    limits = parser.add_argument_group("per-request limits (a request over one gets a 400 naming its part)")
    limits.add_argument("--max-tokens", type=int, default=4096, help="largest max_tokens a request may ask for")
    limits.add_argument("--max-pixels", type=int, default=4096 * 4096, help="largest image (width x height)")
    limits.add_argument("--max-audio-seconds", type=float, default=600.0, help="longest audio input")
    limits.add_argument("--max-video-seconds", type=float, default=600.0, help="longest video input")
    limits.add_argument("--max-imu-samples", type=int, default=100_000, help="most samples in one input_imu part")
    parser.add_argument(
        "--safety",
        action="append",
        default=[],
        metavar="NAME[=OPTION]",
        help="turn on a safety classifier from the anymal.safety entry points (repeatable), e.g. "
        "--safety keyword_policy=policy.yaml; off by default",
    )
    parser.add_argument("--no-playground", action="store_true", help="do not serve the browser playground at /")
    return parser


def run(argv: list[str] | None = None, prog: str = "python -m anymal.serve") -> int:
    """Parses ``argv``, loads the model and serves until interrupted."""
    args = build_parser(prog).parse_args(argv)
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise AnyMALError("the server needs FastAPI and uvicorn: pip install 'anymal[serve]'") from None
    from anymal_serve.app import ServerSettings, create_app
    from anymal_serve.engine import load_model
    from anymal_serve.limits import Limits
    from anymal_serve.safety import load_classifier

    classifiers = [load_classifier(spec) for spec in args.safety]  # before the model: a typo fails fast
    model = load_model(args.model)
    settings = ServerSettings(
        model_name=args.model_name or args.model.rstrip("/").rsplit("/", 1)[-1],
        allow_local_files=args.allow_local_files,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_queue=args.max_queue,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        default_max_tokens=args.default_max_tokens,
        limits=Limits(
            max_pixels=args.max_pixels,
            max_audio_seconds=args.max_audio_seconds,
            max_video_seconds=args.max_video_seconds,
            max_imu_samples=args.max_imu_samples,
            max_tokens=args.max_tokens,
        ),
        safety=classifiers,
        playground=not args.no_playground,
    )
    uvicorn.run(create_app(model, settings), host=args.host, port=args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m anymal_serve`` and ``anymal-serve``."""
    try:
        return run(sys.argv[1:] if argv is None else argv, prog="python -m anymal_serve")
    except AnyMALError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run_chat(argv: list[str] | None = None, prog: str = "python -m anymal.chat") -> int:
    """``python -m anymal.chat``: the terminal chat (:mod:`anymal_serve.chat`; needs no FastAPI)."""
    from anymal_serve.chat import run as chat

    return chat(argv, prog=prog)
