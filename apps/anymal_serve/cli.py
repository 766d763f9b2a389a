"""The server's command line: ``python -m anymal serve``, ``python -m anymal_serve`` and ``anymal-serve`` run it.

The parser lives here so that ``anymal``'s own command line only forwards the arguments and imports the server
(and FastAPI) only when the ``serve`` command is chosen.
"""

from __future__ import annotations

import argparse
import sys

from anymal.errors import AnyMALError


def build_parser(prog: str = "python -m anymal serve") -> argparse.ArgumentParser:
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
    return parser


def run(argv: list[str] | None = None, prog: str = "python -m anymal serve") -> int:
    """Parses ``argv``, loads the model and serves until interrupted."""
    args = build_parser(prog).parse_args(argv)
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise AnyMALError("the server needs FastAPI and uvicorn: pip install 'anymal[serve]'") from None
    from anymal_serve.app import ServerSettings, create_app, load_model

    model = load_model(args.model)
    settings = ServerSettings(
        model_name=args.model_name or args.model.rstrip("/").rsplit("/", 1)[-1],
        allow_local_files=args.allow_local_files,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_queue=args.max_queue,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        default_max_tokens=args.default_max_tokens,
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
