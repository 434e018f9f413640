"""The server through the official openai client (and raw HTTP where the client hides the wire): plain, streamed and
FIM completions equal sampling.generate on the same prompt ids and seed (token healing as healing.heal does it, or
off); usage, echo and logprobs against the model's own full forward pass, also with healing; llama.cpp's /infill
against a repository prompt built by hand; models, health, synth hook."""

from __future__ import annotations

import json

import httpx
import pytest
import torch

from opencodegen.healing import HealedPrompt, heal, heal_tail
from opencodegen.sampling import SamplingParams
from opencodegen.engine import generate
from opencodegen.serve.prompts import healed_fim
from serve_fixtures import (  # noqa: F401 (one_torch_thread is an autouse fixture)
    one_torch_thread, client, health, running_server, write_checkpoint)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with running_server(write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")) as s:
        yield s


def alone(model, tok, prompt, **params):
    return generate(model, tok, [prompt], SamplingParams(**params))[0]


def test_plain_completion_equals_generate_and_counts_usage(served):
    server, model, tok = served
    prompt = "def fib(n):\n"
    r = client(server).completions.create(model="tiny", prompt=prompt, max_tokens=24, temperature=0.8, top_p=0.9,
                                          n=3, seed=11, stop=["\n\n"])
    want = alone(model, tok, heal(tok, tok.encode(prompt)), max_new_tokens=24, temperature=0.8, top_p=0.9, n=3,
                 seed=11, stop=("\n\n",))
    assert [c.text for c in r.choices] == [c.text for c in want]
    assert [c.finish_reason for c in r.choices] == [c.finish_reason for c in want]
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert len({c.text for c in r.choices}) > 1  # three different samples
    assert r.usage.prompt_tokens == len(heal(tok, tok.encode(prompt)).ids)
    assert r.usage.completion_tokens == sum(len(c.token_ids) for c in want)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.model == "tiny" and r.object == "text_completion"


def test_stream_deltas_concatenate_to_the_plain_answer_and_end_with_done(served):
    server, model, tok = served
    args = dict(model="tiny", prompt=["import os\n", "class A:\n"], max_tokens=30, temperature=1.0, n=2, seed=5)
    plain = client(server).completions.create(**args)
    texts, finish = {}, {}
    for chunk in client(server).completions.create(**args, stream=True):
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
            if c.finish_reason is not None:
                finish[c.index] = c.finish_reason
    assert texts == {c.index: c.text for c in plain.choices}
    assert finish == {c.index: c.finish_reason for c in plain.choices}
    # The wire format itself: server-sent events, the last one [DONE], usage when asked for.
    with httpx.stream("POST", server.url + "/v1/completions", json={**args, "stream": True,
                                                                    "stream_options": {"include_usage": True}}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["usage"] == plain.usage.model_dump(exclude_none=True)


def test_fim_suffix_is_rendered_with_the_models_fim_tokens(served):
    server, model, tok = served
    prefix, suffix = "def add(a, b):\n    ", "\n    return c\n"
    r = client(server).completions.create(model="tiny", prompt=prefix, suffix=suffix, max_tokens=20,
                                          temperature=0.7, seed=2)
    special = {name: tok.special_id(f"<|{name}|>") for name in
               ("fim_prefix", "fim_suffix", "fim_middle", "endoftext", "fim_pad", "file_sep")}
    ids = [special["fim_prefix"], *tok.encode(prefix), special["fim_suffix"], *tok.encode(suffix),
           special["fim_middle"]]
    stops = (special["fim_pad"], special["file_sep"])
    # The prefix ends in spaces: healing backs them up, and the middle starts by spelling them again (not returned).
    healed = healed_fim(tok, tok.encode(prefix), tok.encode(suffix))
    kept, removed = heal_tail(tok, tok.encode(prefix))
    assert removed == b"    " and healed.ids == [special["fim_prefix"], *kept, *ids[1 + len(tok.encode(prefix)):]]
    want = alone(model, tok, healed, max_new_tokens=20, temperature=0.7, seed=2, stop_token_ids=stops)
    assert r.choices[0].text == want[0].text
    assert r.usage.prompt_tokens == len(healed.ids)
    off = client(server).completions.create(model="tiny", prompt=prefix, suffix=suffix, max_tokens=20, temperature=0.7,
                                            seed=2, extra_body={"token_healing": False})
    assert off.choices[0].text == alone(model, tok, ids, max_new_tokens=20, temperature=0.7, seed=2,
                                        stop_token_ids=stops)[0].text
    assert off.usage.prompt_tokens == len(ids)


def test_token_id_prompts_equal_their_text(served):
    server, _, tok = served
    prompt = "for i in range(3):\n"
    # Token ids are taken as they are; a text prompt is healed unless the request turns healing off.
    as_text = client(server).completions.create(model="tiny", prompt=prompt, max_tokens=10, temperature=0,
                                                extra_body={"token_healing": False})
    as_ids = client(server).completions.create(model="tiny", prompt=tok.encode(prompt), max_tokens=10, temperature=0)
    as_id_lists = client(server).completions.create(model="tiny", prompt=[tok.encode(prompt)] * 2, max_tokens=10,
                                                    temperature=0)
    assert as_ids.choices[0].text == as_text.choices[0].text
    assert [c.text for c in as_id_lists.choices] == [as_text.choices[0].text] * 2


def test_echo_and_logprobs_are_the_models_log_probabilities(served):
    server, model, tok = served
    prompt = "def fib(n):\n    return"
    r = client(server).completions.create(model="tiny", prompt=prompt, max_tokens=6, temperature=0, echo=True,
                                          logprobs=2, extra_body={"token_healing": False})
    c = r.choices[0]
    assert c.text.startswith(prompt)
    lp = c.logprobs
    prompt_ids = tok.encode(prompt)
    completion_ids = alone(model, tok, prompt_ids, max_new_tokens=6)[0].token_ids
    ids = prompt_ids + completion_ids
    with torch.no_grad():  # reference: one full forward pass, no cache
        ref = torch.log_softmax(model(torch.tensor([ids]))[0].float(), dim=-1)
    expected = [ref[i - 1, t].item() for i, t in enumerate(ids) if i > 0]
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert lp.token_logprobs[1:] == pytest.approx(expected, abs=1e-4)
    assert lp.tokens == [tok.decode([t]) for t in ids]
    assert "".join(lp.tokens) == c.text
    assert lp.text_offset == [len("".join(lp.tokens[:i])) for i in range(len(ids))]
    for i in range(1, len(ids)):  # the 2 likeliest tokens by text (ids decoding to the same text keep the likeliest)
        best = ref[i - 1].topk(2)
        want = {}
        for t, v in zip(best.indices.tolist(), best.values.tolist()):
            want.setdefault(tok.decode([t]), v)
        assert lp.top_logprobs[i] == pytest.approx(want, abs=1e-4)
    without_echo = client(server).completions.create(model="tiny", prompt=prompt, max_tokens=6, temperature=0,
                                                     logprobs=0, extra_body={"token_healing": False})
    assert without_echo.choices[0].logprobs.token_logprobs == pytest.approx(expected[len(prompt_ids) - 1:], abs=1e-4)


def test_healed_completion_hides_the_respelled_text_and_its_logprobs_line_up(served):
    server, model, tok = served
    prompt = "def add(a, b):\n        "  # eight spaces: a longer run token exists, so the end is backed up
    h = heal(tok, tok.encode(prompt))
    assert h.removed == b"        "
    want = alone(model, tok, h, max_new_tokens=6, logprobs=1)[0]
    r = client(server).completions.create(model="tiny", prompt=prompt, max_tokens=6, temperature=0, echo=True,
                                          logprobs=1)
    c = r.choices[0]
    assert c.text == prompt + want.text
    # With echo: the backed-up prompt's tokens, then the completion's, whose first ones re-spell the spaces.
    assert c.logprobs.tokens == [tok.decode([t]) for t in h.ids + want.token_ids]
    assert "".join(c.logprobs.tokens) == c.text
    assert c.logprobs.token_logprobs[len(h.ids):] == pytest.approx(want.logprobs, abs=1e-4)
    plain = client(server).completions.create(model="tiny", prompt=prompt, max_tokens=6, temperature=0,
                                              logprobs=0).choices[0]
    assert plain.text == want.text
    # Without echo the re-spelling tokens start before the choice's text: offsets count from its start.
    assert plain.logprobs.text_offset[0] == -len(prompt) + len(tok.decode(h.ids))
    assert "".join(plain.logprobs.tokens)[len(h.removed):] == plain.text


def test_infill_renders_a_repository_level_prompt(served):
    server, model, tok = served
    body = {"input_prefix": "def area(r):\n    return ", "input_suffix": "\n", "n_predict": 16, "temperature": 0,
            "input_extra": [{"filename": "util/consts.py", "text": "PI = 3.14159\n"}], "repo_name": "geo",
            "filename": "geo/area.py"}
    r = httpx.post(server.url + "/infill", json=body).json()
    sp = {name: tok.special_id(f"<|{name}|>") for name in
          ("repo_name", "file_sep", "fim_prefix", "fim_suffix", "fim_middle", "fim_pad")}
    prefix, removed = heal_tail(tok, tok.encode(body["input_prefix"]))  # it ends in a space, which healing backs up
    assert removed == b" "
    ids = ([sp["repo_name"], *tok.encode("geo\n"),
            sp["file_sep"], *tok.encode("util/consts.py\n"), *tok.encode("PI = 3.14159\n"), *tok.encode("\n"),
            sp["file_sep"], *tok.encode("geo/area.py\n"),
            sp["fim_prefix"], *prefix, sp["fim_suffix"], *tok.encode("\n"),
            sp["fim_middle"]])
    want = alone(model, tok, HealedPrompt(ids, removed), max_new_tokens=16,
                 stop_token_ids=(sp["fim_pad"], sp["file_sep"]))[0]
    assert r["content"] == want.text
    assert r["tokens_evaluated"] == len(ids) and r["tokens_predicted"] == len(want.token_ids)
    assert r["stop"] is True and r["truncated"] is False
    with httpx.stream("POST", server.url + "/infill", json={**body, "stream": True}) as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line]
    assert "".join(e["content"] for e in events) == want.text
    assert [e["stop"] for e in events] == [False] * (len(events) - 1) + [True]


def test_infill_cuts_a_prompt_too_long_for_the_context(served):
    server, _, _ = served
    body = {"input_prefix": "x = 1\n" * 200, "input_suffix": "y = 2\n" * 200, "n_predict": 8,
            "input_extra": [{"filename": f"f{i}.py", "text": "z = 3\n" * 50} for i in range(3)]}
    r = httpx.post(server.url + "/infill", json=body)
    assert r.status_code == 200 and r.json()["truncated"] is True
    assert r.json()["tokens_evaluated"] <= health(server)["context"] - 8


def test_models_health_and_the_synth_routes_are_served(served):
    server, _, _ = served
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["tiny"]
    h = health(server)
    assert h["status"] == "ok" and h["slots"] == 4 and h["active_slots"] == 0
    # The synthesis routes sample through the same scheduler.
    before = health(server)["completed"]
    session = httpx.post(server.url + "/v1/synth/sessions", json={})
    assert session.status_code == 201, session.text
    turn = httpx.post(f"{server.url}/v1/synth/sessions/{session.json()['id']}/turns",
                      json={"intent": "print hello"}, timeout=60)
    assert turn.status_code == 200, turn.text
    assert health(server)["completed"] == before + 1
