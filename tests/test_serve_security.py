"""Who may use the server, and whether it runs code: --api-key is checked on every API route (OpenAI-style Bearer),
code execution is opt-in, and opting in on a non-loopback address without a key is refused before anything starts."""

from __future__ import annotations

import argparse

import pytest
from fastapi.testclient import TestClient

from opencodegen.commands import serve as serve_command
from opencodegen.errors import UserError
from opencodegen.model.io import load_checkpoint
from opencodegen.serve.app import create_app

from serve_fixtures import one_torch_thread, write_checkpoint  # noqa: F401 - fixture

KEY = "sk-test-0123456789"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"))


def test_every_api_route_needs_the_key(checkpoint):
    model, tok = load_checkpoint(checkpoint)
    app = create_app(model, tok, model_name="tiny", slots=2, api_key=KEY)
    with TestClient(app) as client:
        requests = [("get", "/v1/models", {}), ("get", "/health", {}), ("post", "/v1/synth/sessions", {}),
                    ("post", "/v1/completions", {"json": {"model": "tiny", "prompt": "x", "max_tokens": 1}}),
                    ("post", "/infill", {"json": {"input_prefix": "a", "input_suffix": "b", "n_predict": 1}}),
                    ("get", "/no-such-route", {})]
        for method, path, kwargs in requests:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
                response = getattr(client, method)(path, headers=headers, **kwargs)
                assert response.status_code == 401, (path, headers, response.text)
                assert response.json()["error"]["code"] == "invalid_api_key"
            ok = getattr(client, method)(path, headers={"Authorization": f"Bearer {KEY}"}, **kwargs)
            assert ok.status_code != 401, (path, ok.text)
        # the playground page itself holds nothing: a browser opens it, then the page sends the key
        assert client.get("/").status_code == 200 and client.get("/playground.js").status_code == 200
        sid = client.post("/v1/synth/sessions", headers={"Authorization": f"Bearer {KEY}"}).json()["id"]
        run = client.post(f"/v1/synth/sessions/{sid}/run", headers={"Authorization": f"Bearer {KEY}"})
        assert run.status_code == 403  # a key is not permission to run code: that is --allow-code-execution
        models = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()
        assert models["data"][0]["code_execution"] is False


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_command.add_arguments(parser)
    return parser.parse_args(["--model", "/nonexistent", *argv])


@pytest.mark.parametrize("argv,refused", [
    (("--allow-code-execution", "--host", "0.0.0.0"), True),
    (("--allow-code-execution", "--host", "192.168.1.5"), True),
    (("--allow-code-execution", "--host", "myhost.example"), True),
    (("--allow-code-execution", "--host", "::1"), False),
    (("--allow-code-execution", "--host", "127.0.0.2"), False),
    (("--allow-code-execution", "--host", "0.0.0.0", "--api-key", KEY), False),
    (("--host", "0.0.0.0"), False),
])
def test_code_execution_on_a_public_address_needs_a_key(argv, refused, monkeypatch):
    monkeypatch.delenv("OCG_API_KEY", raising=False)
    args = _args(*argv)
    with pytest.raises(UserError) as e:
        serve_command.run(args)
    # Accepted flags get as far as loading the (missing) checkpoint; refused ones stop before, naming the fix.
    assert ("--api-key" in str(e.value)) == refused, str(e.value)
