"""Continuous batching under load: concurrent requests share decode forward passes yet each equals what
sampling.generate gives it alone; a client that goes away frees its slot; a full queue answers 503; a request past
its timeout answers 408; a failing model step fails its requests (500), not the server."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from opencodegen.healing import heal
from opencodegen.engine import generate
from opencodegen.sampling import SamplingParams
from opencodegen.sequence import SequenceState
from serve_fixtures import (  # noqa: F401 (one_torch_thread is an autouse fixture)
    one_torch_thread, SlowForward, client, health, running_server, wait_for, write_checkpoint)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


REQUESTS = [  # different lengths, samplers, n, stops, so rows join and leave the batch at different steps
    dict(prompt="def fib(n):\n", max_tokens=40, temperature=0.0),
    dict(prompt="import os\nimport sys\n\n\nclass Reader:\n", max_tokens=25, temperature=1.0, seed=1, n=2),
    dict(prompt="for i in range(10):\n", max_tokens=50, temperature=0.7, top_p=0.8, seed=2, stop=["e", "\n"]),
    dict(prompt="x", max_tokens=12, temperature=1.3, seed=3),
    dict(prompt="def add(a, b):\n    return", max_tokens=33, temperature=0.9, seed=4, stop=["a"]),
    dict(prompt="print(", max_tokens=8, temperature=0.5, seed=5, n=2),
]


def test_concurrent_requests_share_forward_passes_and_equal_their_runs_alone(checkpoint):
    with running_server(checkpoint, slots=8) as (server, model, tok):
        expected = []
        for r in REQUESTS:
            params = SamplingParams(max_new_tokens=r["max_tokens"], temperature=r["temperature"],
                                    top_p=r.get("top_p", 1.0), n=r.get("n", 1), seed=r.get("seed"),
                                    stop=tuple(r.get("stop", ())))
            prompt = heal(tok, tok.encode(r["prompt"]))  # as the server does by default (token healing)
            expected.append([(c.text, c.finish_reason) for c in generate(model, tok, [prompt], params)[0]])
        # Hold the model thread on its first forward until every request is queued, so all of them overlap.
        with SlowForward(model, gate=True) as slow, ThreadPoolExecutor(len(REQUESTS)) as pool:
            futures = [pool.submit(client(server).completions.create, model="tiny", **r) for r in REQUESTS]
            wait_for(lambda: health(server)["submitted"] == len(REQUESTS), "all requests queued")
            slow.gate.set()
            got = [[(c.text, c.finish_reason) for c in f.result().choices] for f in futures]
        assert got == expected
        assert max(slow.decode_batches) == sum(r.get("n", 1) for r in REQUESTS)  # all 8 rows in one forward
        assert len(slow.decode_batches) < sum(r["max_tokens"] for r in REQUESTS) / 3
        h = health(server)
        assert h["active_slots"] == 0 and h["waiting"] == 0 and h["completed"] == len(REQUESTS)


def test_healed_prompts_batched_with_others_equal_their_runs_alone(checkpoint):
    """Token healing in the scheduler: prompts ending inside a token, decoded in one batch with a prompt that is
    not healed, give what generate() gives each alone (the constraint is per row, the RNG per sequence)."""
    requests = [dict(prompt="class Reader:\n    def __in", max_tokens=12, temperature=0.9, seed=7, n=2),
                dict(prompt="def add(a, b):\n        ", max_tokens=10, temperature=0.0),
                dict(prompt="for i in range(10):\n", max_tokens=16, temperature=0.8, seed=8)]
    with running_server(checkpoint, slots=8) as (server, model, tok):
        healed = [heal(tok, tok.encode(r["prompt"])) for r in requests]
        assert [bool(h.removed) for h in healed] == [True, True, False]
        expected = []
        for r, h in zip(requests, healed):
            params = SamplingParams(max_new_tokens=r["max_tokens"], temperature=r["temperature"], n=r.get("n", 1),
                                    seed=r.get("seed"))
            expected.append([(c.text, c.finish_reason) for c in generate(model, tok, [h], params)[0]])
        with SlowForward(model, gate=True) as slow, ThreadPoolExecutor(len(requests)) as pool:
            futures = [pool.submit(client(server).completions.create, model="tiny", **r) for r in requests]
            wait_for(lambda: health(server)["submitted"] == len(requests), "all requests queued")
            slow.gate.set()
            got = [[(c.text, c.finish_reason) for c in f.result().choices] for f in futures]
        assert got == expected
        assert max(slow.decode_batches) == 4  # every row in one forward


def test_a_client_that_disconnects_frees_its_slot(checkpoint):
    with running_server(checkpoint, slots=1) as (server, model, tok):
        # Greedy on this model runs 180 tokens before EOS, so only the disconnect can end it within 100 steps.
        body = {"model": "tiny", "prompt": "def fib(n):\n", "max_tokens": 200, "temperature": 0}
        with SlowForward(model, delay=0.02) as slow:
            with httpx.stream("POST", server.url + "/v1/completions", json={**body, "stream": True}) as r:
                lines = r.iter_lines()  # (kept: a dropped iterator closes the connection)
                next(lines)  # the first token has arrived: the request holds the slot
                assert health(server)["active_slots"] == 1
            wait_for(lambda: health(server)["active_slots"] == 0, "the streamed request's slot to be freed", 3)
            assert slow.calls < 100 and health(server)["cancelled"] == 1
            # Not streamed: the client gives up waiting for the whole answer.
            calls = slow.calls
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(server.url + "/v1/completions", json=body, timeout=0.5)
            wait_for(lambda: health(server)["active_slots"] == 0, "the plain request's slot to be freed", 3)
            assert slow.calls - calls < 100 and health(server)["cancelled"] == 2
        # The freed slot serves the next request in full.
        r = client(server).completions.create(**body)
        alone = generate(model, tok, [heal(tok, tok.encode(body["prompt"]))], SamplingParams(max_new_tokens=200))[0][0]
        assert r.choices[0].text == alone.text and r.usage.completion_tokens == len(alone.token_ids) > 100


def test_a_full_queue_answers_503(checkpoint):
    with running_server(checkpoint, slots=1, queue_size=1) as (server, model, _):
        body = {"model": "tiny", "prompt": "def fib(n):\n", "max_tokens": 100, "temperature": 0}
        with SlowForward(model, delay=0.02):
            with httpx.stream("POST", server.url + "/v1/completions", json={**body, "stream": True}) as running:
                lines = running.iter_lines()
                next(lines)  # holds the only slot
                waiting = threading.Thread(target=httpx.post, args=(server.url + "/v1/completions",),
                                           kwargs={"json": body, "timeout": 60})
                waiting.start()
                wait_for(lambda: health(server)["waiting"] == 1, "the second request to queue")
                with pytest.raises(openai.APIStatusError) as e:
                    client(server).completions.create(**body)
                assert e.value.status_code == 503
                assert e.value.body["code"] == "queue_full" and e.value.body["type"] == "server_error"
        waiting.join()  # leaving the stream cancelled the first request; the queued one runs
        wait_for(lambda: health(server)["active_slots"] == 0 and health(server)["waiting"] == 0, "an idle server")


def test_a_request_past_its_timeout_answers_408_and_frees_its_slot(checkpoint):
    with running_server(checkpoint, timeout=0.5) as (server, model, _):
        with SlowForward(model, delay=0.05):
            r = httpx.post(server.url + "/v1/completions",
                           json={"prompt": "def fib(n):\n", "max_tokens": 100, "temperature": 0})
            assert r.status_code == 408 and r.json()["error"]["code"] == "request_timeout"
            with httpx.stream("POST", server.url + "/v1/completions",
                              json={"prompt": "x", "max_tokens": 100, "temperature": 0, "stream": True}) as s:
                events = [line for line in s.iter_lines() if line]
            # After a 200 has gone out, the error comes as an event, and the stream still ends with [DONE].
            assert s.status_code == 200 and events[-1] == "data: [DONE]"
            assert json.loads(events[-2][6:])["error"]["code"] == "request_timeout"
            # The official client raises the error from the stream instead of hanging or reporting a broken stream.
            stream = client(server).completions.create(prompt="x", max_tokens=100, temperature=0, model="tiny",
                                                       stream=True)
            with pytest.raises(openai.APIError) as e:
                for _ in stream:
                    pass
            assert e.value.code == "request_timeout" and "did not finish" in e.value.message
        h = health(server)
        assert h["timed_out"] == 3 and h["active_slots"] == 0


def test_a_failing_model_step_fails_its_request_not_the_server(checkpoint):
    with running_server(checkpoint) as (server, model, _):
        original = model.forward
        model.forward = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("simulated out of memory"))
        try:
            r = httpx.post(server.url + "/v1/completions", json={"prompt": "x", "max_tokens": 5})
        finally:
            model.forward = original
        assert r.status_code == 500 and "simulated out of memory" in r.json()["error"]["message"]
        ok = client(server).completions.create(model="tiny", prompt="x", max_tokens=5, temperature=0)
        assert ok.usage.completion_tokens >= 1 and health(server)["active_slots"] == 0


def test_a_stream_whose_model_step_fails_ends_with_an_error_event_then_done(checkpoint):
    with running_server(checkpoint) as (server, model, tok):
        original = model.forward
        calls = 0
        # The text deltas the first three tokens stream (a token ending inside a character streams nothing yet).
        prompt = heal(tok, tok.encode("def fib(n):\n"))
        params = SamplingParams(max_new_tokens=50)
        [[full]] = generate(model, tok, [prompt], params)
        streamed = []
        state = SequenceState(0, 0, prompt.ids, 50, params, 0, tok, frozenset({tok.eos_id}),
                              lambda i, j, text: streamed.append(text), prompt.removed)
        for t in full.token_ids[:3]:
            state.accept(t)
        assert streamed

        def fails_after_three(*a, **k):  # the prefill and two decode steps work: tokens have been streamed
            nonlocal calls
            calls += 1
            if calls > 3:
                raise RuntimeError("simulated device lost")
            return original(*a, **k)

        body = {"model": "tiny", "prompt": "def fib(n):\n", "max_tokens": 50, "temperature": 0}
        model.forward = fails_after_three
        try:
            texts = []
            with pytest.raises(openai.APIError) as e:
                for chunk in client(server).completions.create(**body, stream=True):
                    texts.append(chunk.choices[0].text)
            calls = 0
            with httpx.stream("POST", server.url + "/v1/completions", json={**body, "stream": True}) as s:
                events = [line for line in s.iter_lines() if line]
        finally:
            model.forward = original
        assert texts == streamed and e.value.code == "internal_error" and "simulated device lost" in e.value.message
        assert s.status_code == 200 and events[-1] == "data: [DONE]" and len(events) == len(streamed) + 2
        error = json.loads(events[-2][6:])["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "server_error"
        ok = client(server).completions.create(**body)  # the server keeps serving
        assert ok.usage.completion_tokens == 50 and health(server)["active_slots"] == 0
