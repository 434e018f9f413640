"""The synthesis session over HTTP (serve/synth_routes.py) on a small FastAPI app of its own: every route, the
OpenAI-shaped 4xx bodies, the bound on sessions, one request at a time per session, and the sandbox run."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from opencodegen.errors import UserError
from opencodegen.eval import mtpb
from opencodegen.serve.protocol import APIError
from opencodegen.serve.synth import ProgramRunner, SynthSession
from opencodegen.serve.synth_routes import MAX_BODY_BYTES, make_router

BASE = "/v1/synth/sessions"


class FakeModel:
    """An async `complete` with the server's signature: answers from a script (or a default) and records calls."""

    def __init__(self, *answers: str, delay: float = 0.0) -> None:
        self.answers, self.delay, self.calls = list(answers), delay, []

    async def __call__(self, prompt: str, *, max_tokens: int, temperature: float, top_p: float, seed, stop) -> str:
        self.calls.append({"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                           "seed": seed, "stop": stop})
        await asyncio.sleep(self.delay)
        return self.answers.pop(0) if self.answers else f"v{len(self.calls)} = {len(self.calls)}\n"


@pytest.fixture(scope="module")
def runner():
    with ProgramRunner(timeout=2) as r:
        yield r


def client_for(model, **kwargs) -> TestClient:
    app = FastAPI()
    app.include_router(make_router(model, **kwargs))
    return TestClient(app)


def assert_error(response, status: int, param=None, code=None, match: str = "") -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == code
    assert match in error["message"]
    return error


def test_a_whole_session(runner):
    model = FakeModel("xs = [3, 1, 2]\n# more", "ys = sorted(xs)\nys", "ys = sorted(xs, reverse=True)\nys")
    with client_for(model, runner=runner, allow_code_execution=True) as client:
        created = client.post(BASE, json={"settings": {"temperature": 0.0, "seed": 7}})
        assert created.status_code == 201
        sid = created.json()["id"]
        assert created.json()["turns"] == [] and created.json()["program"] == mtpb.PREAMBLE
        client.post(f"{BASE}/{sid}/turns", json={"intent": "Let xs be [3, 1, 2]."}).raise_for_status()
        after = client.post(f"{BASE}/{sid}/turns", json={"intent": "Sort xs."}).json()
        assert [t["code"] for t in after["turns"]] == ["xs = [3, 1, 2]", "ys = sorted(xs)\nys"]
        assert model.calls[1]["prompt"] == after["program"][: after["program"].index("ys =")]
        assert (model.calls[0]["temperature"], model.calls[0]["seed"]) == (0.0, 7)
        assert client.post(f"{BASE}/{sid}/run").json() | {"duration": 0} == {
            "object": "synth.run", "status": "passed", "stdout": "[1, 2, 3]\n", "stderr": "", "reason": "",
            "duration": 0, "answer": "[1, 2, 3]"}
        regenerated = client.post(f"{BASE}/{sid}/regenerate").json()
        assert regenerated["turns"][1] == {"index": 1, "intent": "Sort xs.", "edited": False, "attempt": 1,
                                           "code": "ys = sorted(xs, reverse=True)\nys", "lines": [8, 10]}
        assert regenerated["program"].splitlines()[7:10] == ["# Sort xs.", "ys = sorted(xs, reverse=True)", "ys"]
        assert model.calls[2]["seed"] == 8
        edited = client.put(f"{BASE}/{sid}/turns/0", json={"code": "xs = [5, 4]"}).json()
        assert edited["turns"][0]["edited"]
        assert edited["program"].startswith(mtpb.PREAMBLE + "# Let xs be [3, 1, 2].\nxs = [5, 4]\n")
        assert client.post(f"{BASE}/{sid}/run").json()["stdout"] == "[5, 4]\n"
        undone = client.post(f"{BASE}/{sid}/undo").json()
        assert [t["intent"] for t in undone["turns"]] == ["Let xs be [3, 1, 2]."]
        assert client.get(f"{BASE}/{sid}").json() == undone
        assert client.delete(f"{BASE}/{sid}").json() == {"id": sid, "object": "synth.session.deleted", "deleted": True}
        assert_error(client.get(f"{BASE}/{sid}"), 404, "session_id", "session_not_found", "no synthesis session")


def test_create_from_a_saved_session():
    saved = {"settings": {"max_tokens": 32}, "turns": [{"intent": "Let a be 1.", "code": "a = 1"},
                                                      {"intent": "Print a.", "code": "print(a)", "edited": True}]}
    with client_for(FakeModel()) as client:
        body = client.post(BASE, json=saved).json()
    expected = SynthSession.from_dict(saved)
    assert body["program"] == expected.program and body["settings"]["max_tokens"] == 32
    assert [t["edited"] for t in body["turns"]] == [False, True]


@pytest.mark.parametrize("method,path,kwargs,status,param,code,match", [
    ("post", "", {"content": b"{not json"}, 400, None, None, "not valid JSON"),
    ("post", "", {"json": [1, 2]}, 400, None, None, "must be a JSON object"),
    ("post", "", {"json": {"settings": {"temperature": -1}}}, 400, "settings.temperature", None, "must be a number"),
    ("post", "", {"json": {"settings": {"n": 2}}}, 400, "settings.n", None, "unknown setting"),
    ("post", "", {"json": {"turns": [{"intent": "x", "code": 3}]}}, 400, "turns[0].code", None, "must be a string"),
    ("post", "/{sid}/turns", {"json": {"intent": 5}}, 400, "intent", None, "must be a string"),
    ("post", "/{sid}/turns", {"json": {"intent": "a\nb"}}, 400, "intent", None, "one line"),
    ("post", "/{sid}/turns", {"json": {}}, 400, "intent", None, "missing field"),
    ("post", "/{sid}/turns", {"json": {"intent": "x", "n": 3}}, 400, "n", None, "unknown field"),
    ("post", "/{sid}/turns", {}, 400, None, None, "body is empty"),
    ("post", "/{sid}/undo", {}, 400, None, None, "nothing to undo"),
    ("post", "/{sid}/regenerate", {}, 400, None, None, "nothing to regenerate"),
    ("put", "/{sid}/turns/0", {"json": {"code": "x"}}, 404, "index", "turn_not_found", "no turn 0"),
    ("put", "/{sid}/turns/minus-one", {"json": {"code": "x"}}, 404, "index", "turn_not_found", "no turn"),
    ("put", "/{sid}/turns/0", {"json": {"code": None}}, 400, "code", None, "must be a string"),
    ("post", "/synth-nope/run", {}, 404, "session_id", "session_not_found", "synth-nope"),
    ("delete", "/synth-nope", {}, 404, "session_id", "session_not_found", "synth-nope"),
])
def test_bad_requests_get_openai_shaped_errors(method, path, kwargs, status, param, code, match):
    with client_for(FakeModel(), allow_code_execution=True) as client:
        sid = client.post(BASE).json()["id"]
        response = getattr(client, method)(BASE + path.format(sid=sid), **kwargs)
        assert_error(response, status, param, code, match)
        assert client.get(f"{BASE}/{sid}").json()["turns"] == []  # nothing half-done


@pytest.mark.parametrize("path,body,status,param,match", [
    ("/{sid}/turns", b"[1]", 400, None, "request body must be a JSON object, not list"),
    ("/{sid}/turns", b'{"intent": "x", "code": "y"}', 400, "code", "unknown field 'code' (this request takes only 'intent')"),
    ("/{sid}/turns", b'{"intent": "\xff"}', 400, None, "not valid JSON"),
    ("/{sid}/turns", b" " * (MAX_BODY_BYTES + 1), 413, None, f"the limit is {MAX_BODY_BYTES}"),
    ("", b'{"settings": 3}', 400, "settings", "must be an object"),
])
def test_command_bodies_are_parsed_strictly(path, body, status, param, match):
    with client_for(FakeModel()) as client:
        sid = client.post(BASE).json()["id"]
        assert_error(client.post(BASE + path.format(sid=sid), content=body), status, param, None, match)
        assert client.get(f"{BASE}/{sid}").json()["turns"] == []


@pytest.mark.parametrize("error,status,code,match", [
    (UserError("prompt is 5000 tokens; the model's context is 2048"), 400, None, "context is 2048"),
    (APIError(503, "the server is busy", type="server_error", code="queue_full"), 503, "queue_full", "busy"),
])
def test_a_completion_error_is_answered_and_leaves_the_session_as_it_was(error, status, code, match):
    async def failing(prompt, **kwargs):
        raise error

    with client_for(failing) as client:
        sid = client.post(BASE).json()["id"]
        response = client.post(f"{BASE}/{sid}/turns", json={"intent": "x"})
        assert response.status_code == status and response.json()["error"]["code"] == code
        assert match in response.json()["error"]["message"]
        assert client.get(f"{BASE}/{sid}").json()["turns"] == []


def test_sessions_are_bounded_least_recently_used_first():
    with client_for(FakeModel(), max_sessions=2) as client:
        a, b = (client.post(BASE).json()["id"] for _ in range(2))
        client.get(f"{BASE}/{a}")  # a is now more recently used than b
        c = client.post(BASE).json()["id"]
        assert client.get(f"{BASE}/{a}").status_code == 200 and client.get(f"{BASE}/{c}").status_code == 200
        assert_error(client.get(f"{BASE}/{b}"), 404, "session_id", "session_not_found", "2 most recently used")


def test_requests_on_one_session_are_served_in_turn():
    """Two turns sent at once: the second is sampled on top of the first, never on the same history."""
    model = FakeModel("first = 1", "second = 2", delay=0.05)
    app = FastAPI()
    app.include_router(make_router(model))

    async def both():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            sid = (await client.post(BASE)).json()["id"]
            await asyncio.gather(*(client.post(f"{BASE}/{sid}/turns", json={"intent": f"turn {i}"}) for i in (1, 2)))
            return (await client.get(f"{BASE}/{sid}")).json()

    session = asyncio.run(both())
    assert [t["code"] for t in session["turns"]] == ["first = 1", "second = 2"]
    assert model.calls[1]["prompt"].endswith("first = 1\n\n" + f"# {session['turns'][1]['intent']}\n")


def test_the_router_closes_the_sandbox_it_started(monkeypatch):
    from opencodegen.serve import synth_routes

    closed = []

    class Recording(ProgramRunner):
        def close(self) -> None:
            closed.append(self._sandbox is not None)  # a sandbox was running when the app shut down
            super().close()

    monkeypatch.setattr(synth_routes, "ProgramRunner", Recording)
    app = FastAPI()
    app.include_router(make_router(FakeModel("print('hi')"), allow_code_execution=True))
    with TestClient(app) as client:
        sid = client.post(BASE).json()["id"]
        client.post(f"{BASE}/{sid}/turns", json={"intent": "Say hi."})
        assert client.post(f"{BASE}/{sid}/run").json()["stdout"] == "hi\n"
        assert closed == []
    assert closed == [True]


def test_a_turn_whose_client_disconnects_is_cancelled_and_frees_its_slot(tmp_path):
    """On the real server: a client that gives up on a turn mid-generation frees the scheduler slot at once (not
    after the whole budget) and leaves the session as it was; the server and the session go on serving."""
    from opencodegen.engine import generate
    from opencodegen.sampling import SamplingParams
    from opencodegen.prompt_format import turn_code
    from opencodegen.serve.synth import TURN_STOPS
    from serve_fixtures import BLOCK_SIZE, SlowForward, health, running_server, wait_for, write_checkpoint

    settings = {"max_tokens": 200, "temperature": 0.0}
    with running_server(write_checkpoint(tmp_path / "tiny"), slots=1) as (server, model, tok):
        sid = httpx.post(server.url + BASE, json={"settings": settings}).json()["id"]
        turns = f"{server.url}{BASE}/{sid}/turns"
        prompt = tok.encode(mtpb.PREAMBLE + mtpb.turn_prompt("Sort xs."))[-(BLOCK_SIZE - 200):]
        [[alone]] = generate(model, tok, [prompt], SamplingParams(max_new_tokens=200, stop=TURN_STOPS))
        assert len(alone.token_ids) == 200  # no stop string: only the disconnect can end it early
        with SlowForward(model, delay=0.02) as slow:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(turns, json={"intent": "Sort xs."}, timeout=0.5)
            wait_for(lambda: health(server)["active_slots"] == 0, "the turn's slot to be freed", 3)
            assert slow.calls < 100 and health(server)["cancelled"] == 1
        assert httpx.get(f"{server.url}{BASE}/{sid}").json()["turns"] == []
        done = httpx.post(turns, json={"intent": "Sort xs."}, timeout=60)  # the lock and the slot were released
        assert done.status_code == 200 and done.json()["turns"][0]["code"] == turn_code(mtpb.truncate(alone.text))
        assert health(server)["completed"] == 1 and health(server)["active_slots"] == 0


def test_run_is_refused_unless_code_execution_is_allowed():
    """Executing code sent over HTTP is opt-in: without it /run answers 403 saying how to turn it on, and nothing
    runs (no sandbox is even started)."""
    class NeverRun(ProgramRunner):
        def run(self, program):
            raise AssertionError("a program ran")

    with client_for(FakeModel("print('hi')"), runner=NeverRun()) as client:
        sid = client.post(BASE).json()["id"]
        client.post(f"{BASE}/{sid}/turns", json={"intent": "Say hi."}).raise_for_status()
        response = client.post(f"{BASE}/{sid}/run")
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "code_execution_disabled" and "--allow-code-execution" in error["message"]
