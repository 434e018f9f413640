"""Bad requests: each gets a 4xx with OpenAI's error shape, {"error": {"message", "type", "param", "code"}}, naming
the field at fault; the server keeps serving afterwards. Also the official client's view of one such error, and a
model without FIM tokens asked for a suffix."""

from __future__ import annotations

import httpx
import openai
import pytest

from opencodegen.serve.completions import prepare
from opencodegen.serve.protocol import APIError, CompletionRequest
from opencodegen.serve.scheduler import Scheduler
from opencodegen.serve.state import ServerState
from serve_fixtures import (  # noqa: F401 (one_torch_thread is an autouse fixture)
    BLOCK_SIZE, one_torch_thread, client, health, running_server, write_checkpoint)

OK = {"model": "tiny", "prompt": "def f():", "max_tokens": 4}
LONG_PROMPT = "x = 1\n" * BLOCK_SIZE  # more tokens than the context

BAD_COMPLETIONS = [  # (body, status, param)
    ("{not json", 400, None),
    ("[1, 2]", 400, None),
    ({"model": "tiny"}, 400, "prompt"),
    ({**OK, "prompt": 3}, 400, "prompt"),
    ({**OK, "prompt": [True]}, 400, "prompt"),
    ({**OK, "prompt": []}, 400, "prompt"),
    ({**OK, "prompt": [10**9]}, 400, "prompt"),
    ({**OK, "temperature": "hot"}, 400, "temperature"),
    ({**OK, "temperature": -0.5}, 400, "temperature"),
    ({**OK, "top_p": 0}, 400, "top_p"),
    ({**OK, "n": 1.5}, 400, "n"),
    ({**OK, "n": 0}, 400, "n"),
    ({**OK, "n": 1000}, 400, "n"),
    ({**OK, "max_tokens": 0}, 400, "max_tokens"),
    ({**OK, "max_tokens": "4"}, 400, "max_tokens"),
    ({**OK, "max_tokens": BLOCK_SIZE}, 400, "max_tokens"),
    ({**OK, "max_tokens": BLOCK_SIZE - 3}, 400, "max_tokens"),  # fits alone, not after the prompt
    ({**OK, "prompt": LONG_PROMPT}, 400, "prompt"),
    ({**OK, "model": "gpt-4"}, 404, "model"),
    ({**OK, "stream": "yes"}, 400, "stream"),
    ({**OK, "stop": ["ok", ""]}, 400, "stop"),
    ({**OK, "stop": 7}, 400, "stop"),
    ({**OK, "logprobs": 50}, 400, "logprobs"),
    ({**OK, "seed": "1"}, 400, "seed"),
    ({**OK, "echo": True, "suffix": "x"}, 400, "echo"),
    ({**OK, "prompt": [1, 2], "suffix": "x"}, 400, "suffix"),
    ({**OK, "best_of": 3}, 400, "best_of"),
    ({**OK, "presence_penalty": 0.5}, 400, "presence_penalty"),
]

BAD_INFILL = [
    ({"input_prefix": 1}, 400, "input_prefix"),
    ({"input_prefix": "a", "n_predict": -2}, 400, "n_predict"),  # (0 is llama.cpp's cache warm-up: an empty answer)
    ({"input_prefix": "a", "n_predict": BLOCK_SIZE}, 400, "n_predict"),
    ({"input_prefix": "a", "input_extra": [{"filename": "a.py"}]}, 400, "input_extra"),
    ({"input_prefix": "a", "model": "other"}, 404, "model"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with running_server(write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")) as s:
        yield s


def post(server, path: str, body) -> httpx.Response:
    if isinstance(body, str):
        return httpx.post(server.url + path, content=body, headers={"content-type": "application/json"})
    return httpx.post(server.url + path, json=body)


def assert_openai_error(r: httpx.Response, status: int, param: str | None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error


@pytest.mark.parametrize("body,status,param", BAD_COMPLETIONS, ids=lambda x: str(x)[:40] if isinstance(x, (str, dict)) else None)
def test_bad_completion_requests_get_an_openai_shaped_4xx(served, body, status, param):
    assert_openai_error(post(served[0], "/v1/completions", body), status, param)


@pytest.mark.parametrize("body,status,param", BAD_INFILL, ids=lambda x: str(x)[:40] if isinstance(x, dict) else None)
def test_bad_infill_requests_get_an_openai_shaped_4xx(served, body, status, param):
    assert_openai_error(post(served[0], "/infill", body), status, param)


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_a_body_is_read_as_json_whatever_its_content_type_says(served, content_type):
    """As llama.cpp's server: `curl -d '{...}'` without a JSON Content-Type is answered, not refused for its type."""
    server = served[0]
    headers = {"content-type": content_type} if content_type else {}
    want = httpx.post(server.url + "/infill", json={"input_prefix": "def f():", "n_predict": 4, "temperature": 0})
    r = httpx.post(server.url + "/infill", headers=headers,
                   content='{"input_prefix": "def f():", "n_predict": 4, "temperature": 0}')
    assert r.status_code == 200 and want.status_code == 200, r.text
    assert r.json()["content"] == want.json()["content"]
    bad = httpx.post(server.url + "/v1/completions", headers=headers, content="model=tiny&prompt=x")
    assert_openai_error(bad, 400, None)
    assert bad.json()["error"]["code"] == "invalid_json"


def test_the_server_keeps_serving_and_unknown_routes_are_404(served):
    server = served[0]
    r = httpx.get(server.url + "/v1/nothing")
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    for method, path in (("POST", "/v1/nothing"), ("GET", "/nothing.js"), ("PUT", "/")):
        r = httpx.request(method, server.url + path)
        assert r.status_code == 404, (method, path)
        assert r.json()["error"] == {"message": f"Invalid URL ({method} {path}): no such route",
                                     "type": "invalid_request_error", "param": None, "code": "not_found"}
    for method, path, allowed in (("GET", "/v1/completions", "POST"), ("DELETE", "/v1/models", "GET"),
                                  ("POST", "/health", "GET"), ("GET", "/infill", "POST"),
                                  ("GET", "/v1/chat/completions", "POST")):
        r = httpx.request(method, server.url + path)
        assert r.status_code == 405 and r.headers["allow"] == allowed, (method, path)
        assert r.json()["error"]["code"] == "method_not_allowed" and f"takes {allowed}" in r.json()["error"]["message"]
    page = httpx.get(server.url + "/")  # the playground stays at /, with its files beside it
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html") and "playground.js" in page.text
    assert httpx.get(server.url + "/playground.js").headers["content-type"].split(";")[0] in ("text/javascript",
                                                                                             "application/javascript")
    assert client(server).completions.create(**OK).usage.completion_tokens >= 1
    h = health(server)
    assert h["status"] == "ok" and h["active_slots"] == 0 and h["failed"] == 0


def test_the_openai_client_sees_the_error_type(served):
    with pytest.raises(openai.BadRequestError) as e:
        client(served[0]).completions.create(model="tiny", prompt=LONG_PROMPT, max_tokens=4)
    assert e.value.code == "context_length_exceeded" and "context" in e.value.message
    with pytest.raises(openai.NotFoundError):
        client(served[0]).completions.create(model="gpt-4", prompt="x", max_tokens=4)


def test_a_suffix_for_a_model_without_fim_tokens_is_a_400():
    from eval_tiny import ByteTokenizer, tiny_model

    class NoFim(ByteTokenizer):
        def special_id(self, name):
            return None if name.startswith("<|fim") else super().special_id(name)

    state = ServerState(Scheduler(tiny_model(), NoFim(), slots=1), NoFim(), "tiny")
    with pytest.raises(APIError) as e:
        prepare(CompletionRequest(prompt="def f(", suffix=")"), state)
    assert e.value.status == 400 and e.value.param == "suffix" and "<|fim_prefix|>" in e.value.message
    prepare(CompletionRequest(prompt="def f("), state)  # without a suffix the same model is fine
