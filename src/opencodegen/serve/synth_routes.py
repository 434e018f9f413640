"""The multi-turn synthesis session over HTTP, for the playground page and any other client:

    POST   /v1/synth/sessions                    create (body: optional settings/preamble/turns: a saved session)
    GET    /v1/synth/sessions/{id}               the session: settings, turns, program
    POST   /v1/synth/sessions/{id}/turns         {"intent": "..."}: the model writes the next sub-program
    PUT    /v1/synth/sessions/{id}/turns/{index} {"code": "..."}: replace a turn's code by hand (index from 0)
    POST   /v1/synth/sessions/{id}/undo          drop the last turn
    POST   /v1/synth/sessions/{id}/regenerate    sample the last turn again
    POST   /v1/synth/sessions/{id}/run           run the program in the sandbox: status, stdout, stderr
    DELETE /v1/synth/sessions/{id}

Sessions live in memory, at most `max_sessions`; creating one more forgets the least recently used. Requests on one
session are served one at a time. A client that disconnects while a turn is being sampled cancels it (the scheduler
slot is freed, the session is left as it was). Bad input gets a 4xx with an OpenAI-shaped body, `{"error":
{"message", "type", "param", "code"}}`, built here rather than by app-wide handlers so the router behaves the same in
any app.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from ..errors import UserError
from .protocol import APIError, error_response
from .synth import BadField, Complete, ProgramRunner, SynthSession, check_code, check_intent
from .transport import cancel_on_disconnect

DEFAULT_MAX_SESSIONS = 256
MAX_BODY_BYTES = 1 << 20  # a session document (program and turns) larger than this is not a person's session


@dataclass
class _Entry:
    session: SynthSession
    created: int = field(default_factory=lambda: int(time.time()))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SessionStore:
    """Sessions by id, least recently used first."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_sessions must be >= 1, not {limit}")
        self.limit = limit
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def add(self, session: SynthSession) -> str:
        sid = "synth-" + secrets.token_urlsafe(12)  # unguessable: a session id is its only access control
        self._entries[sid] = _Entry(session)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)
        return sid

    def get(self, sid: str) -> _Entry:
        entry = self._entries.get(sid)
        if entry is None:
            raise APIError(404, f"no synthesis session {sid!r} (it was deleted, or forgotten: the server keeps the "
                                f"{self.limit} most recently used sessions in memory)", param="session_id",
                           code="session_not_found")
        self._entries.move_to_end(sid)
        return entry

    def delete(self, sid: str) -> None:
        self.get(sid)
        del self._entries[sid]


def session_json(sid: str, entry: _Entry) -> dict:
    s = entry.session
    return {"id": sid, "object": "synth.session", "created": entry.created, "settings": asdict(s.settings),
            "preamble": s.preamble, "program": s.program,
            # lines: where the turn (comment and code) sits in the program, 1-based and inclusive, for highlighting
            "turns": [{"index": i, **asdict(t), "lines": [s.turn_lines(i)[0], s.turn_lines(i)[-1]]}
                      for i, t in enumerate(s.turns)]}


class _Command(BaseModel):
    # A command takes exactly its fields (unlike the OpenAI routes, which ignore extras as vLLM does): anything else
    # is a mistake worth naming.
    model_config = ConfigDict(strict=True, extra="forbid")


class TurnRequest(_Command):
    intent: str


class EditRequest(_Command):
    code: str


# A new session's body is a saved-session document, or nothing; its fields are checked by SynthSession.from_dict,
# which `ocg synth --load` shares.
SESSION_DOCUMENT = TypeAdapter(dict[str, Any])
# Which of several problems a body has is reported first: a wrong field name explains a missing one.
_PRECEDENCE = {"json_invalid": 0, "dict_type": 1, "model_type": 1, "extra_forbidden": 2, "missing": 3}


async def _parse_body(request: Request, command: type[_Command] | None, required: bool) -> Any:
    """The body as `command`, or as a session document when None."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise APIError(413, f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    if not raw.strip():
        if required:
            raise APIError(400, "request body is empty; expected a JSON object")
        raw = b"{}"
    try:
        return SESSION_DOCUMENT.validate_json(raw) if command is None else command.model_validate_json(raw)
    except ValidationError as e:
        raise _body_error(e, tuple(command.model_fields) if command else ()) from None


def _body_error(e: ValidationError, fields: tuple[str, ...]) -> APIError:
    """pydantic's first problem as this module's 400: the field as `param`, and a message naming it and the reason."""
    error = min(e.errors(), key=lambda x: _PRECEDENCE.get(x["type"], len(_PRECEDENCE)))
    kind, loc = error["type"], error["loc"]
    if kind == "json_invalid":
        return APIError(400, f"request body is not valid JSON ({error.get('ctx', {}).get('error', error['msg'])})")
    if not loc:
        return APIError(400, f"request body must be a JSON object, not {type(error['input']).__name__}")
    name = str(loc[0])
    if kind == "extra_forbidden":
        known = ", ".join(repr(f) for f in fields)
        return APIError(400, f"unknown field {name!r} (this request takes only {known})", param=name)
    if kind == "missing":
        return APIError(400, f"missing field {name!r}", param=name)
    if kind == "string_type":
        return APIError(400, f"{name}: must be a string, not {type(error['input']).__name__}", param=name)
    return APIError(400, f"{name}: {error['msg']}", param=name)


CODE_EXECUTION_OFF = ("this server does not run code: start it with `ocg serve --allow-code-execution` (and, on an "
                      "address other than loopback, --api-key) to enable Run")


def make_router(complete: Complete, *, max_sessions: int = DEFAULT_MAX_SESSIONS,
                runner: ProgramRunner | None = None, allow_code_execution: bool = False) -> APIRouter:
    """Routes for sessions that complete with `complete(prompt, *, max_tokens, temperature, top_p, seed, stop)`
    (async, typically the server's scheduler). /run executes code only with `allow_code_execution` (else 403);
    without a `runner`, the router then starts its own sandbox on the first run and closes it when the app shuts
    down."""
    store = SessionStore(max_sessions)
    own_runner = runner is None
    runner = runner or ProgramRunner()

    @asynccontextmanager
    async def lifespan(_app):
        yield
        if own_runner:
            runner.close()

    router = APIRouter(prefix="/v1/synth/sessions", tags=["synth"], lifespan=lifespan)

    async def handle(work):
        """Runs one request's work, turning bad input into its 4xx response."""
        try:
            return await work()
        except APIError as e:  # ours, or raised by `complete` (a full queue, a timeout)
            return error_response(e.status, e.message, type=e.type, param=e.param, code=e.code)
        except BadField as e:
            return error_response(400, str(e), param=e.param)
        except UserError as e:  # e.g. nothing to undo, or a `complete` that raises UserError (model_complete does)
            return error_response(400, str(e))

    async def on_session(sid: str, command, request: Request | None = None):
        """Runs command(entry) holding the session's lock (one request per session at a time). Given the `request`
        (the routes that sample), a client that disconnects cancels the command: the sampling it awaits is
        cancelled, which frees its scheduler slot, and the session stays as it was."""
        async def work():
            entry = store.get(sid)
            async with entry.lock:
                return await command(entry)
        if request is None:
            return await handle(work)
        await request.body()  # read (and kept by the request) before the disconnect watcher takes its messages
        return await handle(lambda: cancel_on_disconnect(request, work()))

    @router.post("", status_code=201)
    async def create(request: Request):
        async def work():
            session = SynthSession.from_dict(await _parse_body(request, None, required=False), complete)
            sid = store.add(session)
            return JSONResponse(status_code=201, content=session_json(sid, store.get(sid)))
        return await handle(work)

    @router.get("/{session_id}")
    async def get(session_id: str):
        async def show(entry):
            return session_json(session_id, entry)
        return await on_session(session_id, show)

    @router.delete("/{session_id}")
    async def delete(session_id: str):
        async def work():
            store.delete(session_id)
            return {"id": session_id, "object": "synth.session.deleted", "deleted": True}
        return await handle(work)

    @router.post("/{session_id}/turns")
    async def add_turn(session_id: str, request: Request):
        async def command(entry):
            intent = check_intent((await _parse_body(request, TurnRequest, required=True)).intent)
            await entry.session.add_turn(intent)
            return session_json(session_id, entry)
        return await on_session(session_id, command, request)

    @router.put("/{session_id}/turns/{index}")
    async def edit(session_id: str, index: str, request: Request):
        async def command(entry):
            code = check_code((await _parse_body(request, EditRequest, required=True)).code)
            # Parsed here, not by FastAPI, so a bad index gets this module's error shape in any app.
            if not index.isdigit() or not int(index) < len(entry.session.turns):
                raise APIError(404, f"no turn {index} (the session has {len(entry.session.turns)} turns, "
                                    "numbered from 0)", param="index", code="turn_not_found")
            entry.session.edit(int(index), code)
            return session_json(session_id, entry)
        return await on_session(session_id, command)

    @router.post("/{session_id}/undo")
    async def undo(session_id: str):
        async def command(entry):
            entry.session.undo()
            return session_json(session_id, entry)
        return await on_session(session_id, command)

    @router.post("/{session_id}/regenerate")
    async def regenerate(session_id: str, request: Request):
        async def command(entry):
            await entry.session.regenerate()
            return session_json(session_id, entry)
        return await on_session(session_id, command, request)

    @router.post("/{session_id}/run")
    async def run(session_id: str):
        if not allow_code_execution:
            return error_response(403, CODE_EXECUTION_OFF, type="permission_error", code="code_execution_disabled")

        async def command(entry):
            # The sandbox blocks: a worker thread keeps the event loop (and every other request) moving.
            result = await anyio.to_thread.run_sync(entry.session.run, runner)
            return {"object": "synth.run", **result.to_dict()}
        return await on_session(session_id, command)

    return router
