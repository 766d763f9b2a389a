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
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from anymal.errors import AnyMALError, InputError
from anymal_serve.engine import Engine, Job
from anymal_serve.errors import APIError
from anymal_serve.parts import parse_messages

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
    max_imu_samples: int = 100_000


def load_model(path: str) -> Any:
    """``AnyMAL.from_pretrained(path)`` in eval mode."""
    from anymal import AnyMAL

    return AnyMAL.from_pretrained(path).eval()


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


def _context_length(model: Any) -> int | None:
    config = model.llm.config
    getter = getattr(config, "get_text_config", None)
    config = getter() if callable(getter) else config
    return getattr(config, "max_position_embeddings", None)


def _prompt_ids(model: Any, conversation: Any) -> list[int]:
    """Token ids of the conversation: through the tokenizer's chat template when the model uses one, else the
    messages as ``role: text`` lines (a single user message: its text verbatim, as ``generate(prompt)``)."""
    encoder = model.prompt_encoder
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise APIError("this model has no tokenizer; it cannot be served", status=500, type="server_error")
    counts = {name: len(items) for name, items in conversation.inputs.items()}
    messages = conversation.messages
    if model.config.llm.apply_chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        encoder.add_missing_placeholders(text, counts, "messages")  # checks counts (a literal <image> in text)
        return list(encoder.tokenize_text(text))
    if len(messages) == 1:
        text = messages[0]["content"]
    else:
        text = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages) + "\nAssistant:"
    return list(encoder.encode_prompt(text, counts, chat=False, where="messages"))


def _modality_tokens(model: Any, conversation: Any) -> int:
    total = 0
    for name, items in conversation.inputs.items():
        total += len(items) * int(getattr(model.plugins[name].config, "num_tokens", 0) or 0)
    return total


def create_app(model: Any, settings: ServerSettings | None = None) -> Any:
    """The ASGI application serving ``model`` (an :class:`anymal.AnyMAL`)."""
    settings = settings or ServerSettings()
    engine = Engine(
        model, max_queue=settings.max_queue, max_batch=settings.max_batch, batch_wait_s=settings.batch_wait_ms / 1000
    )
    eos = model.llm.generation_config.eos_token_id
    engine_eos = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    modalities = list(model.plugins)
    context = _context_length(model)

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
        return {"status": "ok", "model": settings.model_name, "modalities": modalities}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": settings.model_name, "object": "model", "created": 0, "owned_by": "anymal"}
        return {"object": "list", "data": [card]}

    def prepare(body: Any) -> tuple[Job, int]:
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
        max_tokens = max_tokens or settings.default_max_tokens
        temperature = _float_field(body, "temperature", 0.0, 2.0)
        top_p = _float_field(body, "top_p", 0.0, 1.0)
        seed = _int_field(body, "seed", 0)
        conversation = parse_messages(
            body.get("messages"),
            modalities,
            allow_local_files=settings.allow_local_files,
            max_imu_samples=settings.max_imu_samples,
        )
        try:
            ids = _prompt_ids(model, conversation)
        except InputError as exc:
            raise APIError(str(exc), param="messages") from None
        except Exception as exc:  # a chat template that refuses the roles (jinja's TemplateError)
            raise APIError(f"messages: the model's chat template refused them: {exc}", param="messages") from None
        prompt_tokens = len(ids) + _modality_tokens(model, conversation)
        if context is not None and prompt_tokens + max_tokens > context:
            raise APIError(
                f"this model's context is {context} tokens; the messages take {prompt_tokens} and max_tokens asks "
                f"for {max_tokens} more: shorten the messages or lower max_tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens}
        if temperature is not None:
            kwargs["do_sample"] = temperature > 0
            if temperature > 0:
                kwargs["temperature"] = temperature
        if top_p is not None and kwargs.get("do_sample"):
            kwargs["top_p"] = top_p
        if seed is not None:
            import torch

            torch.manual_seed(seed)  # best effort: requests share the generator
        return Job(ids=ids, conversation=conversation, generate_kwargs=kwargs), prompt_tokens

    def finish(completion: Any, max_tokens: int) -> tuple[int, str]:
        tokens = completion.tokens
        ended = bool(tokens) and tokens[-1] in engine_eos
        return len(tokens), "length" if len(tokens) >= max_tokens and not ended else "stop"

    def failure(exc: BaseException) -> APIError:
        if isinstance(exc, APIError):
            return exc
        if isinstance(exc, (InputError, AnyMALError)):
            return APIError(str(exc), param="messages", code="invalid_input")
        log.error("generation failed", exc_info=exc)
        return APIError(f"generation failed: {type(exc).__name__}: {exc}", status=500, type="server_error")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise APIError("the request body is not valid JSON") from None
        job, prompt_tokens = prepare(body)
        max_tokens = job.generate_kwargs["max_new_tokens"]
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        base = {"id": completion_id, "created": created, "model": settings.model_name}
        if not body.get("stream"):
            try:
                output = await engine.generate(job)
            except Exception as exc:
                raise failure(exc) from None
            n, reason = finish(output, max_tokens)
            return {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": output.text},
                        "finish_reason": reason,
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n},
            }
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
        streamer, future = engine.stream(job)
        done = object()
        pieces = iter(streamer)
        # wait for the first piece so that bad media (found in the worker) still gets a 400 status, not a 200
        first: Any = ""
        while first == "":  # the streamer's end() puts an empty piece before its stop signal
            first = await asyncio.to_thread(next, pieces, done)
        if first is done:
            try:
                await asyncio.wrap_future(future)
            except Exception as exc:
                raise failure(exc) from None

        def event(delta: dict[str, Any], reason: str | None = None, usage: Any = None, choices: bool = True) -> str:
            chunk: dict[str, Any] = {**base, "object": "chat.completion.chunk"}
            chunk["choices"] = (
                [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}] if choices else []
            )
            if include_usage:
                chunk["usage"] = usage
            return f"data: {json.dumps(chunk)}\n\n"

        async def events() -> AsyncIterator[str]:
            piece = first
            try:
                yield event({"role": "assistant", "content": ""})
                while piece is not done:
                    if piece:
                        yield event({"content": piece})
                    piece = await asyncio.to_thread(next, pieces, done)
                try:
                    output = await asyncio.wrap_future(future)
                except Exception as exc:
                    err = failure(exc)
                    yield f"data: {json.dumps(err.body())}\n\n"
                    return
                n, reason = finish(output, max_tokens)
                yield event({}, reason)
                if include_usage:
                    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
                    yield event({}, usage=usage, choices=False)
                yield "data: [DONE]\n\n"
            finally:
                job.cancelled.set()  # a client that went away stops the generation at its next token

        return StreamingResponse(events(), media_type="text/event-stream")

    return BodyLimit(app, settings.max_body_bytes)
