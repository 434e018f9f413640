"""The completion APIs editors call, replayed with the request bodies the editors send (Continue's FIM request to
/v1/fim/completions; llama.vscode's cache-warming and completion requests to /infill), checked against
engine.generate on the same prompt ids and seed, and against the openai client's /v1/completions with suffix.
The time budget (t_max_predict_ms, SamplingParams.max_time_ms) stops after a line break with stop_type "time", and
what it returns is the start of the unbounded run's completion."""

from __future__ import annotations

import json

import httpx
import pytest

from opencodegen.healing import HealedPrompt, heal_tail
from opencodegen.sampling import SamplingParams
from opencodegen.engine import generate
from opencodegen.serve.prompts import healed_fim
from serve_fixtures import (  # noqa: F401 (one_torch_thread is an autouse fixture)
    one_torch_thread, SlowForward, client, running_server, write_checkpoint)

PREFIX = "import os\n\n\ndef read(path):\n    with open(path) as f:\n"
SUFFIX = "\n\n\ndef write(path, text):\n    pass\n"

# As Continue's OpenAI-compatible provider sends it (fimStream: JSON.stringify drops the options left undefined).
CONTINUE_FIM = {"model": "tiny", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 24, "temperature": 0.01,
                "stop": ["\n\n", "\n\r\n", "```", "/src/", "#- coding: utf-8"], "stream": True}
# As llama.vscode sends them: first a cache-warming request (n_predict 0), then the completion with the ring buffer of
# chunks from other files ({text, time, filename}) and its sampler settings.
LLAMA_VSCODE_EXTRA = [{"text": "def helper(x):\n    return x + 1\n\n\n" * 6, "time": 1733400000.1, "filename": "util.py"}]
LLAMA_VSCODE_WARM = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "input_extra": LLAMA_VSCODE_EXTRA, "prompt": "",
                     "n_predict": 0, "samplers": [], "cache_prompt": True, "t_max_prompt_ms": 500,
                     "t_max_predict_ms": 1}
LLAMA_VSCODE_INFILL = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "input_extra": LLAMA_VSCODE_EXTRA,
                       "prompt": "        ", "n_predict": 40, "top_k": 40, "top_p": 0.99, "stream": False,
                       "samplers": ["top_k", "top_p", "infill"], "cache_prompt": True, "t_max_prompt_ms": 500,
                       "t_max_predict_ms": 60000, "seed": 3}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with running_server(write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")) as s:
        yield s


def fim_stops(tok) -> tuple[int, ...]:
    return tuple(tok.special_id(t) for t in ("<|fim_pad|>", "<|file_sep|>"))


def sse_events(response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines() if line]


def test_continue_fim_request_streams_what_generate_gives_and_matches_v1_completions(served):
    server, model, tok = served
    with httpx.stream("POST", server.url + "/v1/fim/completions", json=CONTINUE_FIM) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "tiny" for c in chunks)
    streamed = "".join(c["choices"][0]["delta"]["content"] for c in chunks)  # what Continue reads
    finish = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finish[:-1] == [None] * (len(chunks) - 1) and finish[-1] in ("stop", "length")

    prompt = healed_fim(tok, tok.encode(PREFIX), tok.encode(SUFFIX))
    want = generate(model, tok, [prompt], SamplingParams(
        max_new_tokens=24, temperature=0.01, seed=7, stop=tuple(CONTINUE_FIM["stop"]),
        stop_token_ids=fim_stops(tok)))[0][0]
    plain = httpx.post(server.url + "/v1/fim/completions", json={**CONTINUE_FIM, "stream": False, "random_seed": 7})
    assert plain.status_code == 200, plain.text
    body = plain.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"] == want.text
    assert body["choices"][0]["finish_reason"] == want.finish_reason
    assert body["usage"]["prompt_tokens"] == len(prompt.ids)
    assert body["usage"]["completion_tokens"] == len(want.token_ids)
    # The same request through the openai client's /v1/completions with suffix: the same middle.
    legacy = client(server).completions.create(model="tiny", prompt=PREFIX, suffix=SUFFIX, max_tokens=24,
                                               temperature=0.01, seed=7, stop=CONTINUE_FIM["stop"])
    assert legacy.choices[0].text == want.text
    # Streaming with a seed gives what the plain request gives.
    with httpx.stream("POST", server.url + "/v1/fim/completions", json={**CONTINUE_FIM, "random_seed": 7}) as r:
        again = [json.loads(e) for e in sse_events(r)[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in again) == want.text


def test_fim_route_refuses_what_it_cannot_do(served):
    server, _, _ = served
    for body, param in (({"prompt": "x", "min_tokens": 3}, "min_tokens"),
                        ({"prompt": "x", "random_seed": 1, "seed": 2}, "random_seed"),
                        ({"prompt": "x", "max_tokens": 10_000}, "max_tokens"),
                        ({"prompt": "x", "model": "other"}, "model")):
        r = httpx.post(server.url + "/v1/fim/completions", json=body)
        assert r.status_code in (400, 404) and r.json()["error"]["param"] == param, (body, r.text)
    r = httpx.post(server.url + "/v1/fim/completions", json={"prompt": "x"})  # max_tokens left out: up to context
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_llama_vscode_warms_the_cache_then_completes_from_it(served):
    server, model, tok = served
    warm = httpx.post(server.url + "/infill", json=LLAMA_VSCODE_WARM)
    assert warm.status_code == 200, warm.text
    w = warm.json()
    assert w["content"] == "" and w["tokens_predicted"] == 0 and w["stop_type"] == "limit" and w["stopped_limit"]
    r = httpx.post(server.url + "/infill", json=LLAMA_VSCODE_INFILL)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["tokens_cached"] > 0  # the warm-up's prompt blocks were reused
    sp = {n: tok.special_id(f"<|{n}|>") for n in ("repo_name", "file_sep", "fim_prefix", "fim_suffix", "fim_middle")}
    typed, removed = heal_tail(tok, tok.encode(LLAMA_VSCODE_INFILL["prompt"]))
    ids = [sp["repo_name"], *tok.encode("repo\n"),
           sp["file_sep"], *tok.encode("util.py\n"), *tok.encode(LLAMA_VSCODE_EXTRA[0]["text"]), *tok.encode("\n"),
           sp["file_sep"], *tok.encode("main.py\n"),
           sp["fim_prefix"], *tok.encode(PREFIX), sp["fim_suffix"], *tok.encode(SUFFIX), sp["fim_middle"], *typed]
    want = generate(model, tok, [HealedPrompt(ids, removed)], SamplingParams(
        max_new_tokens=40, temperature=0.8, top_k=40, top_p=0.99, seed=3, stop_token_ids=fim_stops(tok),
        max_time_ms=60000))[0][0]
    assert got["content"] == want.text and got["tokens_evaluated"] == len(ids)
    assert got["tokens_predicted"] == len(want.token_ids)
    stop_type = {"length": "limit"}.get(want.finish_reason, "eos")
    assert got["stop_type"] == stop_type and got[f"stopped_{stop_type}"]


def test_time_budget_stops_after_a_line_break_with_the_same_tokens(served):
    server, model, tok = served
    body = {"input_prefix": "for i in range(10):\n", "input_suffix": "", "n_predict": 120, "temperature": 1.0,
            "seed": 15, "token_healing": False}
    full = httpx.post(server.url + "/infill", json=body).json()
    assert "\n" in full["content"][:-1], "this seed should write a line break before its end"
    with SlowForward(model, delay=0.02):
        timed = httpx.post(server.url + "/infill", json={**body, "t_max_predict_ms": 50}).json()
    assert timed["stop_type"] == "time" and not timed["stopped_limit"]
    assert timed["tokens_predicted"] < full["tokens_predicted"]
    assert "\n" in timed["content"] and full["content"].startswith(timed["content"])


def test_generate_honours_the_time_budget_without_changing_tokens(served):
    _, model, tok = served
    prompt = [tok.encode("def f(x):\n")]
    params = SamplingParams(max_new_tokens=80, temperature=1.0, seed=9)
    full = generate(model, tok, prompt, params)[0][0]
    assert "\n" in full.text
    with SlowForward(model, delay=0.01):
        timed = generate(model, tok, prompt, SamplingParams(max_new_tokens=80, temperature=1.0, seed=9,
                                                            max_time_ms=1))[0][0]
    assert timed.finish_reason == "time" and "\n" in timed.text
    assert timed.token_ids == full.token_ids[: len(timed.token_ids)] and len(timed.token_ids) < len(full.token_ids)
    # It ends at the first token after the budget that has a line break before or in it.
    first_break = next(i for i in range(1, len(full.token_ids) + 1) if "\n" in tok.decode(full.token_ids[:i]))
    assert len(timed.token_ids) == max(first_break, 2)
