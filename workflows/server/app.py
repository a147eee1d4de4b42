"""The HTTP side: routes, the API key, the body bound, and errors in the OpenAI shape."""

import asyncio
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from loraledger.server import protocol
from loraledger.server.catalog import Catalog, Target
from loraledger.server.engine import Engine, Generated, Sampling
from loraledger.server.errors import ApiError, bad_request
from loraledger.server.options import ServeOptions

log = logging.getLogger("loraledger.server")
VERSION_HEADER = "X-Loraledger-Version"
DIGEST_HEADER = "X-Loraledger-Digest"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Gate:
    """Before any route: the API key on /v1 (checked before the body is even read), then the body,
    read up to ``limit`` bytes (Content-Length can lie, or be absent with chunked uploads); a larger
    one is answered 413 without being read further."""

    def __init__(self, app: ASGIApp, limit: int, api_key: str | None) -> None:
        self.app = app
        self.limit = limit
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._refused(scope)
        if refused is not None:
            await JSONResponse(refused.body(), status_code=401)(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                error = ApiError(
                    413,
                    f"The request body is larger than this server accepts ({self.limit:,} bytes).",
                    type="invalid_request_error",
                    code="request_too_large",
                )
                await JSONResponse(error.body(), status_code=413)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _refused(self, scope: Scope) -> ApiError | None:
        if self.api_key is None or not str(scope["path"]).startswith("/v1"):
            return None
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            message = "Missing API key: send `Authorization: Bearer KEY`."
        elif not hmac.compare_digest(given.strip().encode(), self.api_key.encode()):
            message = "Incorrect API key."
        else:
            return None
        return ApiError(401, message, type="invalid_request_error", code="invalid_api_key")


def create_api(catalog: Catalog, engine: Engine, adapter_cache: Path, options: ServeOptions) -> FastAPI:
    app = FastAPI(title="loraledger", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Gate, limit=options.max_body_bytes, api_key=options.api_key)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = exc.errors()
        if any(problem.get("type") == "json_invalid" for problem in problems):
            return await api_error(request, bad_request("The body is not valid JSON.", code="invalid_json"))
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        error = ApiError(
            422,
            f"{where or 'body'}: {first.get('msg', 'invalid')}",
            type="invalid_request_error",
            code="invalid_value",
            param=where or None,
        )
        return await api_error(request, error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        error = ApiError(exc.status_code, str(exc.detail), type="invalid_request_error", code=code)
        return JSONResponse(error.body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> Response:
        log.exception("request failed")  # the request's body (the prompt) is not in the record
        error = ApiError(500, f"Internal error: {type(exc).__name__}", type="server_error", code=None)
        return JSONResponse(error.body(), status_code=500)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "base": catalog.base.model_id, "loaded": engine.loaded_digests()}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": catalog.entries()}

    @app.get("/v1/models/{model:path}")
    def model(model: str) -> dict[str, Any]:
        target = catalog.resolve(model)
        for entry in catalog.entries():
            if entry["id"] == model:
                return entry
        return {
            "id": model,
            "object": "model",
            "created": 0,
            "owned_by": "loraledger",
            "version": target.label,
            "digest": target.digest,
        }

    @app.post("/v1/completions")
    async def completions(body: protocol.CompletionRequest) -> Response:
        if body.echo or body.logprobs:
            raise bad_request("echo and logprobs are not supported.", code="unsupported_parameter")
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise bad_request("Send one prompt per request.", code="unsupported_parameter", param="prompt")
        prompt = prompts[0]
        return await answer(body, lambda: engine.encode(prompt), prompt, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(body: protocol.ChatRequest) -> Response:
        if body.logprobs:
            raise bad_request("logprobs are not supported.", code="unsupported_parameter")
        if not engine.has_chat_template():
            raise bad_request(
                f"{catalog.base.model_id} has no chat template: use /v1/completions", code="no_chat_template"
            )
        messages = []
        for index, message in enumerate(body.messages):
            text = message.text()
            if text is None:
                raise bad_request(
                    "Only text content is supported.",
                    code="unsupported_content",
                    param=f"messages.{index}.content",
                )
            messages.append({"role": message.role, "content": text})
        return await answer(body, lambda: engine.encode_chat(messages), messages, chat=True)

    async def answer(
        body: protocol._Request, encode: Callable[[], list[int]], prompt: Any, *, chat: bool
    ) -> Response:
        if (body.n or 1) != 1:
            raise bad_request("Only n=1 is supported.", code="unsupported_parameter", param="n")
        # Resolved now, once: an alias moved after this point changes the next request, not this one.
        target = await run_in_threadpool(catalog.resolve, body.model)
        folder = None
        if target.version is not None:
            folder = await run_in_threadpool(catalog.ledger.adapter_folder, target.version, adapter_cache)
        prompt_ids = await run_in_threadpool(encode)
        sampling = bounded(body, len(prompt_ids), chat=chat)
        if options.log_prompts:
            log.info("prompt for %s: %r", target.label, prompt)
        headers = {VERSION_HEADER: target.label, DIGEST_HEADER: target.digest or ""}
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = stream(
                target, folder, prompt_ids, sampling, protocol.Chunks(target.label, chat=chat), include_usage
            )
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        result = await run_in_threadpool(engine.generate, target, folder, prompt_ids, sampling)
        build = protocol.chat_completion if chat else protocol.completion
        return JSONResponse(build(target.label, result), headers=headers)

    def bounded(body: protocol._Request, prompt_tokens: int, *, chat: bool) -> Sampling:
        asked = body.max_completion_tokens or body.max_tokens
        if asked is not None and asked > options.max_tokens:
            raise bad_request(
                f"max_tokens is {asked}; this server allows at most {options.max_tokens}.",
                code="max_tokens_too_large",
                param="max_tokens",
            )
        if prompt_tokens == 0:
            raise bad_request("The prompt is empty.", code="empty_prompt", param="prompt")
        # OpenAI's completions default to 16 tokens; chat to as many as fit (at least one).
        wanted = asked or (max(1, min(options.max_tokens, engine.context - prompt_tokens)) if chat else 16)
        if prompt_tokens + wanted > engine.context:
            raise bad_request(
                f"This model's maximum context length is {engine.context} tokens; the prompt has "
                f"{prompt_tokens} and {wanted} were asked to be generated.",
                code="context_length_exceeded",
                param="messages" if chat else "prompt",
            )
        stops = body.stops()
        if len(stops) > 4 or any(not stop for stop in stops):
            raise bad_request("stop takes up to 4 non-empty strings.", code="invalid_value", param="stop")
        return Sampling(
            max_tokens=wanted,
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            stop=stops,
            seed=body.seed,
        )

    async def stream(
        target: Target,
        folder: Path | None,
        prompt_ids: list[int],
        sampling: Sampling,
        chunks: protocol.Chunks,
        include_usage: bool,
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def post(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
            except RuntimeError:  # the loop is gone: the server is shutting down
                cancelled.set()

        def work() -> None:
            try:
                result = engine.generate(
                    target,
                    folder,
                    prompt_ids,
                    sampling,
                    on_text=lambda delta: post("text", delta),
                    cancelled=cancelled,
                )
                post("end", result)
            except Exception as exc:
                log.exception("streamed generation failed")
                post("error", exc)

        loop.run_in_executor(None, work)
        try:
            if chunks.chat:
                yield sse(chunks.text("", first=True))
            while True:
                kind, item = await queue.get()
                if kind == "text":
                    yield sse(chunks.text(item))
                elif kind == "end":
                    result: Generated = item
                    yield sse(chunks.end(result))
                    if include_usage:
                        yield sse(chunks.usage(result))
                    yield "data: [DONE]\n\n"
                    return
                else:
                    error = ApiError(500, f"Internal error: {type(item).__name__}", type="server_error")
                    yield sse(error.body())
                    return
        finally:
            cancelled.set()  # a client that went away stops the generation at the next token

    return app


def sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"
