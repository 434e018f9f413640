"""The prefix cache (serve/prefix_cache.py): a request served with cached keys and values gives bit for bit the tokens
and log-probabilities it gets from a server without the cache (greedy, seeded sampling, a shared prefix that ends
mid-block, a repeated prompt, echo); usage.prompt_tokens_details.cached_tokens and /health count the reuse against a
reference computed here; the LRU evicts by bytes, leaves first, and every prefill equals a fresh one."""

from __future__ import annotations

import random

import httpx
import pytest
import torch

from eval_tiny import tiny_model
from opencodegen.model.transformer import KVCache
from opencodegen.sampling import SamplingParams
from opencodegen.engine import generate
from opencodegen.prefix_cache import ROOT, PrefixCache
from serve_fixtures import (  # noqa: F401 (one_torch_thread is an autouse fixture)
    CODE, one_torch_thread, client, health, running_server, write_checkpoint)

CHUNK = 16


def expected_cached(prompt: list[int], earlier: list[list[int]]) -> int:
    """What the cache should supply: the longest whole-block prefix that an earlier prompt stored (every full block of
    every earlier prompt, nothing evicted here), leaving at least the prompt's last token to compute."""
    stored = {tuple(p[:CHUNK * j]) for p in earlier for j in range(1, len(p) // CHUNK + 1)}
    return CHUNK * max((j for j in range(1, (len(prompt) - 1) // CHUNK + 1) if tuple(prompt[:CHUNK * j]) in stored),
                       default=0)


SAMPLERS = [dict(temperature=0.0, logprobs=2), dict(temperature=1.0, top_p=0.9, n=2, seed=7, logprobs=1)]


def test_cached_prefixes_give_exactly_the_uncached_tokens_and_logprobs_and_are_counted(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "tiny")
    with running_server(checkpoint, prefix_cache_mb=0, prefill_chunk=CHUNK) as (server, model, tok):
        base = tok.encode("".join(CODE) * 3)[:100]
        other = tok.encode("".join(reversed(CODE)))[:30]
        assert len(base) == 100 and len(other) == 30 and base[64:94] != other
        # Each prompt goes twice (greedy, then seeded); the second time it repeats itself, reusing (len-1)//16 blocks.
        prompts = [
            base[:40],  # 2.5 blocks: 0, then 32 (the half block is not stored; the last token is always computed)
            base,  # shares the 40 tokens above, but only their 2 full blocks are stored: 32, then 96
            base[:64] + other,  # diverges exactly at a block boundary: 64, then 80 (its own 5 blocks)
            base,  # 96 both times, computing the last 4 tokens for their logits
            base[:50],  # shorter than what is stored: 48
        ]
        requests = [dict(model="tiny", prompt=p, max_tokens=12, **s) for p in prompts for s in SAMPLERS]
        requests.append(dict(model="tiny", prompt=base, max_tokens=4, echo=True, logprobs=1, temperature=0))
        without = [client(server).completions.create(**r) for r in requests]
        assert all(r.usage.prompt_tokens_details.cached_tokens == 0 for r in without)
        off = health(server)["prefix_cache"]
        # The chunked prefill computes what one forward pass does (to float rounding): greedy = generate().
        [[want]] = generate(model, tok, [base], SamplingParams(max_new_tokens=12, logprobs=2))
        got = without[2].choices[0]
        assert got.text == want.text and got.logprobs.token_logprobs == pytest.approx(want.logprobs, abs=1e-5)

    with running_server(checkpoint, prefill_chunk=CHUNK) as (server, _, _):
        earlier, expected = [], []
        for r, plain in zip(requests, without):
            got = client(server).completions.create(**r)
            echo = r.get("echo", False)  # echo + logprobs needs every prompt position computed: no reuse
            expected.append(0 if echo else expected_cached(r["prompt"], earlier))
            earlier.append(r["prompt"])
            assert got.usage.prompt_tokens_details.cached_tokens == expected[-1]
            assert got.usage.prompt_tokens == plain.usage.prompt_tokens
            assert [c.text for c in got.choices] == [c.text for c in plain.choices]
            assert [c.finish_reason for c in got.choices] == [c.finish_reason for c in plain.choices]
            assert [c.logprobs.model_dump() for c in got.choices] == [c.logprobs.model_dump() for c in plain.choices]
        assert expected == [0, 32, 32, 96, 64, 80, 96, 96, 48, 48, 0]  # by hand, from the comments on `prompts`
        stream = client(server).completions.create(**requests[0], stream=True, stream_options={"include_usage": True})
        assert [chunk.usage for chunk in stream if chunk.usage][0].prompt_tokens_details.cached_tokens == 32
        on = health(server)["prefix_cache"]
    assert on["cached_tokens"] == sum(expected) + 32 and on["prompts"] == len(requests) + 1
    assert on["prompts_hit"] == sum(e > 0 for e in expected) + 1
    assert on["blocks"] == len({tuple(p[:CHUNK * j]) for p in earlier for j in range(1, len(p) // CHUNK + 1)})
    assert 0 < on["bytes"] <= on["capacity_bytes"] and on["blocks_evicted"] == 0
    # Disabled: nothing kept, nothing reused, every prompt still counted.
    assert off["capacity_bytes"] == off["bytes"] == off["blocks"] == off["cached_tokens"] == 0
    assert off["prompts"] == len(requests) and off["prompt_tokens"] == on["prompt_tokens"] - len(requests[0]["prompt"])


def test_infill_reports_the_cached_tokens_as_llama_cpp_does(tmp_path):
    with running_server(write_checkpoint(tmp_path / "tiny"), prefill_chunk=CHUNK) as (server, _, _):
        body = {"input_prefix": "".join(CODE), "input_suffix": "\n", "n_predict": 4, "temperature": 0}
        first, again = (httpx.post(server.url + "/infill", json=body).json() for _ in range(2))
    assert first["tokens_cached"] == 0 and first["content"] == again["content"]
    assert again["tokens_cached"] == (first["tokens_evaluated"] - 1) // CHUNK * CHUNK > 0


# ---- the cache itself, on a tiny model -------------------------------------------------------------------------------

def fresh_prefill(model, ids: list[int], chunk: int) -> tuple[torch.Tensor, KVCache]:
    kv = KVCache(model.config, 1, 64)
    hidden, cached = PrefixCache(0, chunk).prefill(model, kv, 0, ids)
    assert cached == 0
    return hidden, kv


def block_bytes(model, chunk: int) -> int:
    c = model.config
    return 2 * c.n_layer * c.n_kv_heads * chunk * c.head_dim * 4  # keys and values, fp32


def check_invariants(cache: PrefixCache) -> None:
    blocks = list(cache._blocks.values())
    assert cache.bytes == sum(b.nbytes for b in blocks) <= cache.capacity_bytes
    ids = {b.id for b in blocks}
    assert all(b.key[0] == ROOT or b.key[0] in ids for b in blocks)  # every block reachable from the root
    assert set(cache._lru) == ids


def test_every_prefill_equals_a_fresh_one_while_the_lru_evicts():
    model, chunk = tiny_model(), 4
    cache = PrefixCache(7 * block_bytes(model, chunk), chunk)
    kv = KVCache(model.config, 3, 64)
    rng = random.Random(0)
    stems = [[rng.randrange(256) for _ in range(24)] for _ in range(3)]
    reused = 0
    with torch.inference_mode():
        for _ in range(60):
            ids = rng.choice(stems)[:rng.randint(1, 24)] + [rng.randrange(256) for _ in range(rng.randint(0, 6))]
            row = rng.randrange(3)  # rows hold the leftovers of earlier prompts
            hidden, cached = cache.prefill(model, kv, row, ids)
            want, want_kv = fresh_prefill(model, ids, chunk)
            assert torch.equal(hidden, want)
            n = len(ids)
            assert int(kv.lengths[row]) == n
            for layer in range(model.config.n_layer):
                assert torch.equal(kv.k[layer][row, :, :n], want_kv.k[layer][0, :, :n])
                assert torch.equal(kv.v[layer][row, :, :n], want_kv.v[layer][0, :, :n])
            check_invariants(cache)
            reused += cached
    assert reused > 0 and cache.counters["blocks_evicted"] > 0 and reused == cache.counters["cached_tokens"]


def test_eviction_is_least_recently_used_by_bytes_leaves_first():
    model, chunk = tiny_model(), 4
    cache = PrefixCache(5 * block_bytes(model, chunk), chunk)
    kv = KVCache(model.config, 1, 64)
    a, b, c = ([t] * 13 for t in (1, 2, 3))
    with torch.inference_mode():
        cache.prefill(model, kv, 0, a[:9])  # stores a0 a1
        cache.prefill(model, kv, 0, b)  # stores b0 b1 b2: full (5 blocks)
        assert cache.prefill(model, kv, 0, a[:9])[1] == 8  # a is now the most recently used
        cache.prefill(model, kv, 0, c[:9])  # 2 more blocks: b's leaves go (b2, then b1), not its root
        assert cache.bytes == 5 * block_bytes(model, chunk) and cache.counters["blocks_evicted"] == 2
        assert [len(cache.match(p)) for p in (a, b, c)] == [2, 1, 2]
        check_invariants(cache)
        # Less than a block of room stores nothing, and 0 disables the cache; both still prefill correctly.
        for capacity in (block_bytes(model, chunk) - 1, 0):
            small = PrefixCache(capacity, chunk)
            for _ in range(2):
                hidden, cached = small.prefill(model, kv, 0, a)
                assert cached == 0 and small.bytes == 0 and torch.equal(hidden, fresh_prefill(model, a, chunk)[0])


def test_prefills_advanced_in_turns_equal_fresh_ones_even_when_one_evicts_the_others_chain():
    """The scheduler advances a prefill one chunk at a time (PrefixCache.start, Prefill.advance); two in turns in one
    KVCache each equal a fresh prefill, and a prompt whose cached chain was evicted meanwhile stores nothing rather
    than blocks whose parent is gone."""
    model, chunk = tiny_model(), 4
    cache = PrefixCache(3 * block_bytes(model, chunk), chunk)
    kv = KVCache(model.config, 2, 64)
    a, b = [1] * 9, [2] * 13
    with torch.inference_mode():
        cache.prefill(model, kv, 0, a)  # stores a0 a1
        x = cache.start(model, kv, 0, a + [5] * 16)  # reuses a0 a1, then 5 chunks
        y = cache.start(model, kv, 1, b)  # 4 chunks; storing b0 b1 b2 evicts a1 and a0 while x is under way
        assert x.cached == 8 and y.cached == 0
        while not (x.done and y.done):
            for prefill in (x, y):
                if not prefill.done:
                    prefill.advance()
        for row, prefill in enumerate((x, y)):
            want, want_kv = fresh_prefill(model, prefill.ids, chunk)
            assert torch.equal(prefill.hidden, want)
            n = len(prefill.ids)
            for layer in range(model.config.n_layer):
                assert torch.equal(kv.k[layer][row, :, :n], want_kv.k[layer][0, :, :n])
                assert torch.equal(kv.v[layer][row, :, :n], want_kv.v[layer][0, :, :n])
        check_invariants(cache)
        assert [len(cache.match(p)) for p in (b, x.ids)] == [3, 0]
