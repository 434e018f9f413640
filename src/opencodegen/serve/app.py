"""The HTTP server: an OpenAI-compatible completions API with fill-in-the-middle, llama.cpp's /infill, the multi-turn
synthesis routes and the playground page, over one continuous-batching scheduler.

    POST /v1/completions   OpenAI completions (see completions.py)
    POST /v1/chat/completions  OpenAI chat, in the model's chat template (see chat_route.py); a 400 naming
                           /v1/completions for a model without one
    POST /v1/fim/completions  Mistral's (Codestral's) fill in the middle, as Continue sends it (see fim_route.py)
    POST /infill           llama.cpp infill (see infill_route.py)
    GET  /props            llama.cpp's server properties: context size, slots, the FIM and repository formats
    GET  /v1/models        the one model served, with its context length and FIM format (prompt_format.describe_fim)
    GET  /health           liveness plus the scheduler's slots, queue and counters, and the prefix cache's use
    /v1/synth/sessions...  multi-turn synthesis (synth_routes.py)
    /                      the playground (static/), when present: GETs that no route takes

With an API key, every request but those for the playground's own files needs `Authorization: Bearer KEY`
(OpenAI-style; a browser cannot send that header when it opens a page, and the page holds nothing and can do
nothing without the key, which it asks for). /v1/synth/sessions/{id}/run executes code only when the app is made
with allow_code_execution (`ocg serve --allow-code-execution`); otherwise it answers 403 saying how to enable it.

Every error, including invalid JSON, wrong types, unknown routes (404) and wrong methods (405, with Allow), is
OpenAI-shaped: {"error": {"message", "type", "param", "code"}}. A request can fail but never stops the server: the
model thread turns exceptions into failed jobs, and the handler of last resort answers 500."""

from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..engine import DEFAULT_PREFILL_BUDGET
from ..errors import UserError
from ..healing import token_index
from ..prefix_cache import DEFAULT_BLOCK
from ..prompt_format import describe_fim
from ..progress import log
from ..sampling import SamplingParams
from .chat_route import create_chat
from .completions import create_completion
from .fim_route import create_fim
from .infill_route import create_infill
from .protocol import APIError, ChatRequest, CompletionRequest, FimRequest, InfillRequest, error_response
from .scheduler import Scheduler
from .state import ServerState
from .synth import ProgramRunner
from .synth_routes import make_router
from .transport import fit_prompts, job_error, submit

STATIC_DIR = Path(__file__).parent / "static"
# The keys and values of ~18 distinct 1000-token prompts in fp32 on tiny-30m (28 KiB a token) or ~21 on the
# Qwen2.5-Coder-0.5B shape (24 KiB a token: 24 layers but 2 kv heads): one file each for a team's editors.
DEFAULT_PREFIX_CACHE_MB = 512


def create_app(model, tokenizer, *, model_name: str, slots: int = 16, queue_size: int = 64, timeout: float = 120.0,
               max_len: int | None = None, prefix_cache_mb: float = DEFAULT_PREFIX_CACHE_MB,
               prefill_chunk: int = DEFAULT_BLOCK, prefill_budget: int = DEFAULT_PREFILL_BUDGET,
               allow_code_execution: bool = False, api_key: str | None = None, allow_unsafe: bool = False,
               speculative_tokens: int = 0, compile: bool = False) -> FastAPI:
    """An app serving `model`. The scheduler's thread starts and stops with the app's lifespan (uvicorn runs it).
    prefix_cache_mb: memory for the keys and values of earlier prompts, reused by prompts that start the same way
    (0 disables it); prefill_chunk: the prefill grid and cache block in tokens (prefix_cache.py); prefill_budget:
    prompt tokens prefilled between two decode steps (scheduler.py). allow_code_execution: /run executes programs
    (in the sandbox; allow_unsafe: even where it cannot isolate them); api_key: required on every API request.
    speculative_tokens: prompt-lookup drafts of up to this many tokens for requests that do not set their own
    (0: off). compile: decode steps run one call of the model's torch.compile'd decode step (model/compiled.py)."""
    scheduler = Scheduler(model, tokenizer, slots=slots, queue_size=queue_size, timeout=timeout, max_len=max_len,
                          prefix_cache_bytes=int(prefix_cache_mb * 2**20), prefill_chunk=prefill_chunk,
                          prefill_budget=prefill_budget, compile=compile)
    if speculative_tokens < 0:
        raise ValueError(f"speculative_tokens={speculative_tokens} must be >= 0")
    state = ServerState(scheduler, tokenizer, model_name, speculative_tokens)
    token_index(tokenizer)  # token healing's index of the vocabulary: built now rather than on the first request
    runner = ProgramRunner(allow_unsafe=allow_unsafe)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        scheduler.start()
        try:
            yield
        finally:
            await asyncio.to_thread(scheduler.close)
            await asyncio.to_thread(runner.close)

    app = FastAPI(title="opencodegen", lifespan=lifespan)
    app.add_middleware(JsonBodies)
    app.state.server = state
    _add_error_handlers(app)
    if api_key:
        _require_api_key(app, api_key)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": model_name, **scheduler.stats()}

    fim_format = describe_fim(tokenizer)

    @app.get("/v1/models")
    async def models() -> dict:
        # max_model_len is vLLM's name for the context, context_length OpenRouter's; fim is null without FIM tokens.
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": state.created,
                                            "owned_by": "opencodegen", "max_model_len": scheduler.context,
                                            "context_length": scheduler.context, "fim": fim_format,
                                            "code_execution": allow_code_execution}]}

    @app.get("/props")
    async def props() -> dict:
        # llama.cpp's /props fields that clients read (n_ctx, total_slots, model_path), plus the FIM format.
        return {"default_generation_settings": {"n_ctx": scheduler.context, "params": InfillRequest().model_dump(
                    include={"n_predict", "temperature", "top_k", "top_p"})},
                "total_slots": scheduler.slots, "model_path": model_name, "n_ctx": scheduler.context,
                "fim": fim_format}

    @app.post("/v1/fim/completions")
    async def fim_completions(req: FimRequest, request: Request):
        return await create_fim(req, request, state)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        return await create_completion(req, request, state)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest, request: Request):
        return await create_chat(req, request, state)

    @app.post("/infill")
    async def infill(req: InfillRequest, request: Request):
        return await create_infill(req, request, state)

    app.include_router(make_router(completer(state), runner=runner, allow_code_execution=allow_code_execution))
    return app


def completer(state: ServerState):
    """The `complete` the synthesis routes sample with, through the same scheduler as every other request. A program
    longer than the context keeps its end (the turns being continued); errors are APIErrors (a full queue is 503)."""

    async def complete(prompt: str, *, max_tokens: int, temperature: float, top_p: float, seed: int | None,
                       stop: list[str]) -> str:
        context = state.scheduler.context
        if not 1 <= max_tokens < context:
            raise APIError(400, f"max_tokens={max_tokens} must be in 1..{context - 1} (the model's context is "
                                f"{context})", param="max_tokens")
        ids = fit_prompts(state, [state.tokenizer.encode(prompt)[-(context - max_tokens):]], max_tokens)[0].ids
        try:
            params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                                    stop=tuple(stop), speculative_tokens=state.speculative_tokens)
        except UserError as e:
            raise APIError(400, str(e)) from None
        job = submit(state.scheduler, [ids], params, stream=False)
        try:
            completions, _ = await job.result()
        except Exception as e:  # the job failed in the model thread
            raise job_error(e) from None
        finally:
            job.cancel()  # frees the slot if the caller was cancelled (a no-op once finished)
        return completions[0][0].text

    return complete


class JsonBodies:
    """Reads every POST body as JSON, whatever its Content-Type says, as llama.cpp's server does: `curl -d '{...}'`
    sends application/x-www-form-urlencoded unless told otherwise, and FastAPI would answer that with an error about
    the body's type. A body that is not JSON still gets the invalid-JSON error. (No route takes a form or a file.)
    A plain ASGI middleware, so streamed answers pass through untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" \
                and b"json" not in dict(scope["headers"]).get(b"content-type", b"").lower():
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": headers + [(b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def _require_api_key(app: FastAPI, api_key: str) -> None:
    expected = f"Bearer {api_key}".encode()
    public = {"/"} | {"/" + p.name for p in STATIC_DIR.iterdir()} if STATIC_DIR.is_dir() else set()

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        if request.method in ("GET", "HEAD") and request.url.path in public:
            return await call_next(request)
        given = request.headers.get("authorization", "").encode()
        if not secrets.compare_digest(given, expected):  # constant time: the key is not guessable by timing
            return error_response(401, "this server needs an API key: send `Authorization: Bearer KEY`",
                                  type="invalid_request_error", code="invalid_api_key")
        return await call_next(request)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_request: Request, e: APIError):
        return error_response(e.status, e.message, type=e.type, param=e.param, code=e.code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, e: RequestValidationError):
        errors = e.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": ""}
        loc = [str(x) for x in first.get("loc", ())]
        if first.get("type") == "json_invalid":
            return error_response(400, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}"
                                  .rstrip(": "), code="invalid_json")
        field = loc[1] if len(loc) > 1 and loc[0] == "body" else None
        if field and len(errors) > 1 and all(list(x.get("loc", ()))[1:2] == [field] for x in errors):
            # A union (prompt: str | list[str] | ...) reports one error per alternative; name the field once.
            return error_response(400, f"{field}: wrong type, matches none of the accepted forms ({first.get('msg')} "
                                       f"and {len(errors) - 1} more)", param=field, code="invalid_type")
        where = ".".join(loc[1:]) if field else "request body"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        return error_response(400, f"{where}: {first.get('msg', 'invalid')}{more}", param=field,
                              code="invalid_value" if field else "invalid_body")

    # The playground's files answer the GETs that no route takes. They are not a mount at /: a mount there takes every
    # path, so an unknown POST would get the files' 405 and a GET to a POST route their 404.
    playground = StaticFiles(directory=STATIC_DIR, html=True) if STATIC_DIR.is_dir() else None

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        where = f"{request.method} {request.url.path}"
        if e.status_code == 405:  # a route has this path, for other methods (Starlette's router sets Allow)
            allow = (e.headers or {}).get("Allow", "")
            return error_response(405, f"Method not allowed ({where}); this route takes {allow}",
                                  code="method_not_allowed", headers={"Allow": allow})
        if e.status_code == 404 and e.detail == HTTPStatus.NOT_FOUND.phrase:  # no route has this path
            if playground is not None and request.method in ("GET", "HEAD"):
                try:
                    return await playground.get_response(request.url.path.lstrip("/"), request.scope)
                except StarletteHTTPException:
                    pass
            return error_response(404, f"Invalid URL ({where}): no such route", code="not_found")
        return error_response(e.status_code, str(e.detail), code="not_found" if e.status_code == 404 else None)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        log(f"serve: {request.method} {request.url.path} failed: {e!r}")
        return error_response(500, f"internal error: {e!r}", type="server_error", code="internal_error")
