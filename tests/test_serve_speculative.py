"""Speculative decoding in the server, per request (`speculative_tokens`) and server-wide (`ocg serve --speculative`):
requests that speculate, batched with requests that do not, give the tokens generate() gives each alone without
speculation (greedy, seeded, n > 1, logprobs), in fewer forward passes; a speculating client that goes away while its
draft's logits are pending leaves the others' output unchanged, and the pending logits of the rows that remain are
gathered by position (keep_rows, against hand-computed indices)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from opencodegen.healing import heal
from opencodegen.sampling import SamplingParams
from opencodegen.engine import generate
from opencodegen.engine import keep_rows
from serve_fixtures import (  # noqa: F401 (one_torch_thread is an autouse fixture)
    one_torch_thread, SlowForward, client, health, running_server, wait_for, write_checkpoint)

# The tiny random model repeats itself on these, so prompt-lookup drafts get accepted.
REPEATING = "def fib(n):\n" * 4
REQUESTS = [
    dict(prompt=REPEATING, max_tokens=60, temperature=0.0, logprobs=2, extra_body={"speculative_tokens": 6}),
    dict(prompt="for i in range(10):\n", max_tokens=40, temperature=0.9, seed=2),  # does not speculate
    dict(prompt="import os\nimport os\n", max_tokens=30, temperature=0.8, seed=3, n=2,
         extra_body={"speculative_tokens": 3}),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    # seed 2: a model whose greedy text falls into a loop soon (drafts get accepted), with control tokens banned
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", seed=2)


def alone(model, tok, r: dict) -> list:
    params = SamplingParams(max_new_tokens=r["max_tokens"], temperature=r["temperature"], seed=r.get("seed"),
                            n=r.get("n", 1), logprobs=r.get("logprobs"))
    return generate(model, tok, [heal(tok, tok.encode(r["prompt"]))], params)[0]


def test_speculating_requests_batched_with_others_equal_their_runs_without_speculation(checkpoint):
    with running_server(checkpoint, slots=8) as (server, model, tok):
        expected = [alone(model, tok, r) for r in REQUESTS]
        with SlowForward(model, gate=True) as slow, ThreadPoolExecutor(len(REQUESTS)) as pool:
            futures = [pool.submit(client(server).completions.create, model="tiny", **r) for r in REQUESTS]
            wait_for(lambda: health(server)["submitted"] == len(REQUESTS), "all requests queued")
            slow.gate.set()
            got = [f.result() for f in futures]
        for r, want in zip(got, expected):
            assert [(c.text, c.finish_reason) for c in r.choices] == [(c.text, c.finish_reason) for c in want]
        # Log-probabilities equal up to the rounding of a multi-position forward pass.
        assert got[0].choices[0].logprobs.token_logprobs == pytest.approx(expected[0][0].logprobs, abs=1e-5)
        assert health(server)["active_slots"] == 0

        # Drafts are accepted: fewer forward passes than tokens for the speculating request alone.
        for speculative in (0, 6):
            with SlowForward(model) as counted:
                r = client(server).completions.create(model="tiny", **{**REQUESTS[0], "extra_body": {
                    "speculative_tokens": speculative}})
            assert r.choices[0].text == expected[0][0].text
            if speculative:
                assert counted.calls < len(expected[0][0].token_ids) * 0.7
            else:
                assert counted.calls >= len(expected[0][0].token_ids)


def test_server_wide_speculation_is_the_default_and_a_request_can_turn_it_off(checkpoint):
    with running_server(checkpoint, speculative_tokens=6) as (server, model, tok):
        want = alone(model, tok, REQUESTS[0])[0]
        body = {"model": "tiny", "prompt": REPEATING, "max_tokens": 60, "temperature": 0}
        with SlowForward(model) as counted:
            default = httpx.post(server.url + "/v1/completions", json=body).json()
        assert default["choices"][0]["text"] == want.text and counted.calls < len(want.token_ids) * 0.7
        with SlowForward(model) as counted:
            off = httpx.post(server.url + "/v1/completions", json={**body, "speculative_tokens": 0}).json()
        assert off["choices"][0]["text"] == want.text and counted.calls >= len(want.token_ids)
        # The editor routes take the same field.
        infill = httpx.post(server.url + "/infill", json={"input_prefix": REPEATING, "n_predict": 20,
                                                          "temperature": 0, "speculative_tokens": 4})
        assert infill.status_code == 200, infill.text


def test_a_speculating_client_that_leaves_does_not_change_the_others(checkpoint):
    with running_server(checkpoint, slots=4) as (server, model, tok):
        # Two rows that draft: after the leaving row goes, the second one's pending logits start past the first's
        # draft, so they must be found by position, not by row.
        # The prompt already holds the loop the model falls into, so they draft from their first step on.
        looped = tok.encode(REPEATING)
        looped += generate(model, tok, [looped], SamplingParams(max_new_tokens=30))[0][0].token_ids
        stay = dict(prompt=looped, max_tokens=60, temperature=0.0, n=2, extra_body={"speculative_tokens": 4})
        want = generate(model, tok, [looped], SamplingParams(max_new_tokens=60, n=2))[0]
        leave = {"model": "tiny", "prompt": REPEATING, "max_tokens": 200, "temperature": 0, "stream": True,
                 "speculative_tokens": 6}
        with SlowForward(model, delay=0.01), ThreadPoolExecutor(1) as pool:
            with httpx.stream("POST", server.url + "/v1/completions", json=leave) as r:
                lines = r.iter_lines()
                next(lines)  # the leaving request is decoding
                future = pool.submit(client(server).completions.create, model="tiny", **stay)
                wait_for(lambda: health(server)["active_slots"] == 3, "both requests decoding")
            got = future.result()
        assert [c.text for c in got.choices] == [c.text for c in want]
        wait_for(lambda: health(server)["active_slots"] == 0, "every slot freed", 5)
        assert health(server)["cancelled"] == 1


def test_keep_rows_gathers_each_remaining_rows_positions():
    # Rows 0, 1, 2 with drafts of 2, 0 and 1 tokens: positions [0, 1, 2], [3], [4, 5]. Row 1 leaves and row 2
    # moves into its place (compact_rows fills holes from the end): order [0, 2].
    logits = torch.arange(6.0)[:, None].expand(6, 3)
    kept, first, drafts = keep_rows(logits, [0, 3, 4], [[7, 8], [], [9]], [0, 2])
    assert kept[:, 0].tolist() == [0.0, 1.0, 2.0, 4.0, 5.0]
    assert first == [0, 3] and drafts == [[7, 8], [9]]
    kept, first, drafts = keep_rows(logits, [0, 3, 4], [[7, 8], [], [9]], [2, 1])
    assert kept[:, 0].tolist() == [4.0, 5.0, 3.0] and first == [0, 2] and drafts == [[9], []]
