"""The FastAPI application: ``/v1/chat/completions`` (stream and non-stream), ``/v1/models`` and ``/health``.

Streaming uses ``generate``'s ``streamer=`` (transformers' ``TextIteratorStreamer``): pieces of text go out as
OpenAI ``chat.completion.chunk`` events as the model produces them, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from anymal.errors import AnyMALError, InputError
from anymal_serve.engine import Completion, Engine, Job, load_model  # noqa: F401  (re-exported)
from anymal_serve.errors import APIError
from anymal_serve.limits import Limits
from anymal_serve.parts import parse_messages
from anymal_serve.prompt import context_length, modality_tokens, prompt_ids
from anymal_serve.safety import Refused, SafetyPipeline
from anymal_serve.sampling import Sampling

log = logging.getLogger("anymal_serve")


@dataclass
class ServerSettings:
    """What a deployment chooses (the command line's flags)."""

    model_name: str = "anymal"
    allow_local_files: bool = False
    max_body_bytes: int = 64 * 1024 * 1024
    max_queue: int = 64
    max_batch: int = 8
    batch_wait_ms: float = 10.0
    default_max_tokens: int = 256
    limits: Limits = field(default_factory=Limits)
    safety: list[Any] = field(default_factory=list)  # classifiers (anymal_serve.safety); empty: safety off
    playground: bool = True  # serve the browser playground at /


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes (declared or as received) gets a 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = APIError(
            f"the request body is larger than this server takes ({self.limit} bytes)",
            status=413,
            code="request_too_large",
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await JSONResponse(too_big.body(), status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise too_big
            return message

        try:
            await self.app(scope, limited_receive, send)
        except APIError as exc:
            if exc.status != 413:
                raise
            await JSONResponse(exc.body(), status_code=413)(scope, receive, send)


def _int_field(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise APIError(f"{name} must be an integer >= {minimum}, got {value!r}", param=name)
    return value


def _float_field(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise APIError(f"{name} must be a number in [{low}, {high}], got {value!r}", param=name)
    return float(value)


def _stop_field(body: dict[str, Any], limit: int) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(x, str) and x for x in stops) or len(stops) > limit:
        raise APIError(
            f"stop must be a non-empty string or a list of at most {limit} of them, got {stop!r}", param="stop"
        )
    return stops


async def _unless_gone(request: Request, waiting: Any, job: Job) -> Any:
    """Awaits ``waiting``; should the client disconnect meanwhile, cancels ``job`` (a queued job is dropped, a
    running row ends at its next token) so that no one computes an answer nobody will read."""
    task = asyncio.ensure_future(waiting)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            return task.result()
        if await request.is_disconnected():
            job.cancelled.set()
            return await task


def create_app(model: Any, settings: ServerSettings | None = None) -> Any:
    """The ASGI application serving ``model`` (an :class:`anymal.AnyMAL`)."""
    settings = settings or ServerSettings()
    limits = settings.limits
    safety = SafetyPipeline(settings.safety)
    engine = Engine(
        model, max_queue=settings.max_queue, max_batch=settings.max_batch, batch_wait_s=settings.batch_wait_ms / 1000
    )
    modalities = list(model.plugins)
    context = context_length(model)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.close()

    app = FastAPI(title="anymal", version="0.1", lifespan=lifespan)
    app.state.engine = engine

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        err = APIError(f"internal error: {type(exc).__name__}: {exc}", status=500, type="server_error")
        return JSONResponse(err.body(), status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": settings.model_name,
            "modalities": modalities,
            "safety": [getattr(c, "name", type(c).__name__) for c in safety.classifiers],
            "generate_calls": engine.generate_calls,
            "batched_requests": sum(size * n for size, n in engine.batch_sizes.items()),
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": settings.model_name, "object": "model", "created": 0, "owned_by": "anymal"}
        return {"object": "list", "data": [card]}

    if settings.playground:

        @app.get("/", response_class=HTMLResponse)
        async def playground() -> str:
            return files("anymal_serve").joinpath("playground.html").read_text(encoding="utf-8")

    def prepare(body: Any, safety_log: list[dict[str, Any]]) -> tuple[Job, int]:
        if not isinstance(body, dict):
            raise APIError("the request body must be a JSON object")
        requested = body.get("model")
        if requested is not None and requested != settings.model_name:
            raise APIError(
                f"model {requested!r} is not served here; this server serves {settings.model_name!r}",
                status=404,
                param="model",
                code="model_not_found",
            )
        n = _int_field(body, "n", 1)
        if n not in (None, 1):
            raise APIError("n > 1 is not supported", param="n")
        max_tokens = _int_field(body, "max_completion_tokens", 1) or _int_field(body, "max_tokens", 1)
        if max_tokens is not None and limits.max_tokens is not None and max_tokens > limits.max_tokens:
            raise APIError(
                f"max_tokens is {max_tokens}, over this server's limit of {limits.max_tokens}",
                param="max_tokens",
                code="max_tokens_too_large",
            )
        max_tokens = max_tokens or settings.default_max_tokens
        temperature = _float_field(body, "temperature", 0.0, 2.0)
        top_p = _float_field(body, "top_p", 0.0, 1.0)
        seed = _int_field(body, "seed", 0)
        stop = _stop_field(body, limits.max_stop)
        screen = None
        if safety:

            def screen(kind: str, value: Any, where: str) -> Any:
                return safety.screen_input(kind, value, where, safety_log)

        conversation = parse_messages(
            body.get("messages"),
            modalities,
            allow_local_files=settings.allow_local_files,
            limits=limits,
            screen=screen,
        )
        try:
            ids = prompt_ids(model, conversation)
        except InputError as exc:
            raise APIError(str(exc), param="messages") from None
        except Exception as exc:  # a chat template that refuses the roles (jinja's TemplateError)
            raise APIError(f"messages: the model's chat template refused them: {exc}", param="messages") from None
        prompt_tokens = len(ids) + modality_tokens(model, conversation)
        if context is not None and prompt_tokens + max_tokens > context:
            raise APIError(
                f"this model's context is {context} tokens; the messages take {prompt_tokens} and max_tokens asks "
                f"for {max_tokens} more: shorten the messages or lower max_tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
        # OpenAI's default temperature is 1; top_p applies to sampled rows only
        sampling = Sampling(
            temperature=1.0 if temperature is None else temperature,
            top_p=1.0 if top_p is None else top_p,
            seed=seed,
        )
        job = Job(ids=ids, conversation=conversation, max_tokens=max_tokens, sampling=sampling, stop=stop)
        if safety:
            job.check_sentence = safety.check_output
        return job, prompt_tokens

    def failure(exc: BaseException) -> APIError:
        if isinstance(exc, APIError):
            return exc
        if isinstance(exc, (InputError, AnyMALError)):
            return APIError(str(exc), param="messages", code="invalid_input")
        log.error("generation failed", exc_info=exc)
        return APIError(f"generation failed: {type(exc).__name__}: {exc}", status=500, type="server_error")

    def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        total = prompt_tokens + completion_tokens
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}

    def message(completion: Completion) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": "assistant",
            "content": completion.text if completion.text or completion.refusal is None else None,
            "refusal": completion.refusal,
        }
        for name, value in completion.outputs.items():  # "boxes" (a box output plugin), "masks", ...
            out.setdefault(name, value)
        return out

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise APIError("the request body is not valid JSON") from None
        safety_log: list[dict[str, Any]] = []
        refused: Refused | None = None
        try:
            job, prompt_tokens = await asyncio.to_thread(prepare, body, safety_log)
        except Refused as exc:  # an input classifier refused: a normal answer, no generation
            refused, job, prompt_tokens = exc, None, 0  # type: ignore[assignment]
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        base = {"id": completion_id, "created": int(time.time()), "model": settings.model_name}
        stream = isinstance(body, dict) and bool(body.get("stream"))
        options = body.get("stream_options") if isinstance(body, dict) else None
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        pieces: asyncio.Queue[Any] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        end = object()
        if refused is not None:
            future: Any = None
            output: Completion | None = Completion([], "", "content_filter", refused.verdict.reason)
        else:
            if stream:
                job.sink = lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)
            future = engine.submit(job)
            output = None
        if not stream:
            if output is None:
                try:
                    output = await _unless_gone(request, asyncio.wrap_future(future), job)
                except Exception as exc:
                    raise failure(exc) from None
            response = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {"index": 0, "message": message(output), "finish_reason": output.finish_reason, "logprobs": None}
                ],
                "usage": usage(prompt_tokens, len(output.tokens)),
            }
            if safety_log or output.safety:
                response["safety"] = safety_log + output.safety
            return response

        if future is not None:
            future.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, end))
            # wait for the first piece so that bad media (found in the worker) still get a 400 status, not a 200
            first = await _unless_gone(request, pieces.get(), job)
            if first is end:
                try:
                    future.result()
                except Exception as exc:
                    raise failure(exc) from None
        else:
            first = end

        def event(delta: dict[str, Any], reason: str | None = None, use: Any = None, choices: bool = True) -> str:
            chunk: dict[str, Any] = {**base, "object": "chat.completion.chunk"}
            chunk["choices"] = (
                [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}] if choices else []
            )
            if include_usage:
                chunk["usage"] = use
            return f"data: {json.dumps(chunk)}\n\n"

        async def events() -> AsyncIterator[str]:
            nonlocal output
            piece = first
            try:
                yield event({"role": "assistant", "content": ""})
                while piece is not end:
                    yield event({"content": piece})
                    piece = await pieces.get()
                if output is None:
                    try:
                        output = future.result()
                    except Exception as exc:
                        yield f"data: {json.dumps(failure(exc).body())}\n\n"
                        return
                assert output is not None
                if output.refusal is not None:
                    yield event({"refusal": output.refusal})
                last: dict[str, Any] = {}
                for name, value in output.outputs.items():
                    last.setdefault(name, value)
                final = event(last, output.finish_reason)
                if safety_log or output.safety:
                    chunk = json.loads(final[len("data: ") :])
                    chunk["safety"] = safety_log + output.safety
                    final = f"data: {json.dumps(chunk)}\n\n"
                yield final
                if include_usage:
                    yield event({}, use=usage(prompt_tokens, len(output.tokens)), choices=False)
                yield "data: [DONE]\n\n"
            finally:
                if job is not None:
                    job.cancelled.set()  # a client that went away stops its row at the next token

        return StreamingResponse(events(), media_type="text/event-stream")

    return BodyLimit(app, settings.max_body_bytes)
