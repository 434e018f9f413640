"""Sampling: KV-cache decoding against full recomputation, the filters against hand-computed distributions, seeding
and batch independence, n-sample prefill sharing, stop strings and streaming, and greedy parity with transformers."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
import torch

from opencodegen.errors import UserError
from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT, KVCache
from opencodegen.sampling import (
    HUMANEVAL_STOP,
    IncrementalDecoder,
    SamplingParams,
    StopChecker,
    _filtered_probs,
    next_token,
    sample_tokens,
    sampling_distribution,
)
from opencodegen.engine import PromptTooLong, generate, generate_sessions, prepare_prompts


class ByteTokenizer:
    """A byte-level tokenizer with a few multi-byte tokens: like byte-level BPE, a token can end in the middle of a
    UTF-8 character and one string can span several tokens. Decoding replaces broken bytes with U+FFFD."""

    EXTRA = ["\ndef", "def", "    ", "return", "\n", "é", "(n", "):"]

    def __init__(self) -> None:
        self.pieces = [bytes([i]) for i in range(256)] + [e.encode() for e in self.EXTRA]
        self.eos_id = len(self.pieces)
        self.vocab_size = self.eos_id + 1

    def encode(self, text: str) -> list[int]:
        data, out, i = text.encode(), [], 0
        while i < len(data):  # longest match first
            matches = [t for t, p in enumerate(self.pieces) if data.startswith(p, i)]
            best = max(matches, key=lambda t: len(self.pieces[t]))
            out.append(best)
            i += len(self.pieces[best])
        return out

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.pieces[i] for i in ids if i != self.eos_id).decode("utf-8", errors="replace")


TOK = ByteTokenizer()


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    config = ModelConfig.from_preset("tiny-1m", vocab_size=TOK.vocab_size, block_size=128, **overrides)
    return GPT(config).eval()


@pytest.fixture(scope="module")
def model() -> GPT:
    return tiny_model()


# ---- the cache ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["codegen", "qwen", "qwen3"])
def test_cached_decoding_matches_full_recomputation(family):
    # Qwen-style: sequential block, RMSNorm, SwiGLU, GQA, half rotation (Qwen3: with q/k norms); tiny-1m is the
    # CodeGen block. Rows are prefilled one at a time (the one-row cache path), then decode together (the scatter).
    extra = dict(parallel_residual=False, norm="rmsnorm", mlp="swiglu", n_kv_heads=2, qkv_bias=True,
                 rope_interleaved=False) if family != "codegen" else {}
    if family == "qwen3":
        extra["qk_norm"] = True
    m = tiny_model(1, **extra)
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, TOK.vocab_size, (n,), generator=g) for n in (5, 11, 8)]
    cache = KVCache(m.config, 3, 32)
    with torch.inference_mode():
        for r, s in enumerate(seqs):  # prefill rows of different lengths, each into its own row
            m(s[:-4][None], cache=cache, rows=torch.tensor([r]))
        for step in range(4, 0, -1):  # then feed one token per row, all rows together, at their own positions
            got = m(torch.stack([s[-step] for s in seqs])[:, None], cache=cache)[:, -1]
            for r, s in enumerate(seqs):
                full = m(s[: len(s) - step + 1][None])[0, -1]
                torch.testing.assert_close(got[r], full, atol=1e-5, rtol=1e-5)


def test_greedy_is_argmax_of_full_recomputation(model):
    prompt = TOK.encode("def fib(n):\n")
    out = generate(model, TOK, [prompt], SamplingParams(max_new_tokens=24, ignore_eos=True))[0][0]
    assert len(out.token_ids) == 24 and out.finish_reason == "length"
    ids = list(prompt)
    with torch.inference_mode():
        for t in out.token_ids:
            assert int(model(torch.tensor([ids]))[0, -1].argmax()) == t
            ids.append(t)


# ---- filters ----------------------------------------------------------------------------------------------------

def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.125, 0.5, 0.125, 0.25])  # sorted: 0.5 (1), 0.25 (3), 0.125 (0), 0.125 (2)
    logits = probs.log()[None]

    def dist(p):
        return sampling_distribution(logits, SamplingParams(temperature=1.0, top_p=p))[0]

    torch.testing.assert_close(dist(0.5), torch.tensor([0, 1.0, 0, 0]))  # 0.5 alone reaches 0.5
    torch.testing.assert_close(dist(0.6), torch.tensor([0, 2 / 3, 0, 1 / 3]))
    torch.testing.assert_close(dist(0.75), torch.tensor([0, 2 / 3, 0, 1 / 3]))  # 0.5 + 0.25 reaches 0.75 exactly
    torch.testing.assert_close(dist(0.8), torch.tensor([1 / 7, 4 / 7, 0, 2 / 7]))  # tie: the lower id comes first
    torch.testing.assert_close(dist(1.0), probs)
    # Temperature applies before top-p: at T=2 the probabilities are ∝ sqrt(p) = (1, 2, 1, √2)·c.
    sq = torch.tensor([1, 2, 1, math.sqrt(2)]) / (4 + math.sqrt(2))
    got = sampling_distribution(logits, SamplingParams(temperature=2.0, top_p=0.5))[0]
    kept = torch.tensor([0, sq[1], 0, sq[3]])  # sq[1] = 0.369 < 0.5, sq[1] + sq[3] = 0.63 >= 0.5
    torch.testing.assert_close(got, kept / kept.sum())


def test_top_k_keeps_the_k_most_likely():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    got = sampling_distribution(logits, SamplingParams(temperature=1.0, top_k=2))[0]
    e = math.e
    torch.testing.assert_close(got, torch.tensor([0, e / (e + 1), 1 / (e + 1), 0]))
    # top-k then top-p, renormalised in between (transformers' order): of {3.0, 2.0} the first has 0.73 >= 0.7.
    got = sampling_distribution(logits, SamplingParams(temperature=1.0, top_k=2, top_p=0.7))[0]
    torch.testing.assert_close(got, torch.tensor([0, 1.0, 0, 0]))


def reference_distribution(logits: list[float], p: SamplingParams) -> list[float]:
    """Temperature, top-k, top-p straight from their definitions, over the whole vocabulary, in float64."""
    z = [x / p.temperature for x in logits]
    order = sorted(range(len(z)), key=lambda i: (-z[i], i))
    keep = order[: p.top_k] if p.top_k else order
    m = max(z)
    w = {i: math.exp(z[i] - m) for i in keep}
    total = sum(w.values())
    kept, mass = [], 0.0
    for i in keep:
        if mass >= p.top_p:
            break
        kept.append(i)
        mass += w[i] / total
    out = [0.0] * len(z)
    for i in kept:
        out[i] = w[i] / sum(w[j] for j in kept)
    return out


def test_filters_match_their_definitions_on_a_large_vocabulary():
    # Peaked rows resolve within the first candidates, flat ones force wider searches; rows mix filters, and the
    # unfiltered row shares the batch with filtered ones.
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3000, generator=g) * torch.tensor([[8.0], [0.3], [3.0], [1.0], [5.0], [1.0]])
    params = [SamplingParams(temperature=t, top_p=p, top_k=k) for t, p, k in
              [(1.0, 0.9, 0), (1.0, 0.95, 0), (0.7, 0.5, 100), (1.3, 1.0, 700), (0.2, 0.99, 0), (1.0, 1.0, 0)]]
    got = sampling_distribution(logits, params)
    for b, p in enumerate(params):
        expected = torch.tensor(reference_distribution(logits[b].double().tolist(), p), dtype=torch.float32)
        torch.testing.assert_close(got[b], expected, atol=1e-6, rtol=1e-4)
    # sample_tokens draws batch rows from exactly these supports.
    gens = [torch.Generator().manual_seed(i) for i in range(6)]
    for _ in range(20):
        tokens = sample_tokens(logits, params, gens)
        assert all(got[b, t] > 0 for b, t in enumerate(tokens.tolist()))


def test_a_row_s_filtered_distribution_does_not_depend_on_its_batch():
    # A flat row needs a full sort to reach its top-p mass; a peaked row resolves within the first candidates. Batched
    # together, the peaked row must still get exactly (bit for bit) what it gets alone, so its tokens never depend on
    # which requests share the batch.
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4096, generator=g) * torch.tensor([[5.0], [0.05], [5.0]])
    params = [SamplingParams(temperature=0.8, top_p=0.95)] * 2 + [
        SamplingParams(temperature=0.8, top_p=0.95, top_k=200)]

    def dense(probs, ids):
        return torch.zeros(probs.shape[0], 4096).scatter(1, ids, probs)
    batched = dense(*_filtered_probs(logits, params))
    for b in range(3):
        alone = dense(*_filtered_probs(logits[b : b + 1], params[b : b + 1]))
        assert torch.equal(batched[b], alone[0]), b
    assert int((batched[1] > 0).sum()) > 512  # the flat row did need more than the widened candidates


def test_next_token_draws_from_the_filtered_distribution():
    logits = torch.tensor([0.125, 0.5, 0.125, 0.25]).log()
    params = SamplingParams(temperature=1.0, top_p=0.75)
    g = torch.Generator().manual_seed(0)
    counts = [0] * 4
    for _ in range(3000):
        token, logprob = next_token(logits, params, g)
        counts[token] += 1
        assert logprob == pytest.approx(math.log([0.125, 0.5, 0.125, 0.25][token]), abs=1e-6)
    assert counts[0] == counts[2] == 0
    assert counts[1] / 3000 == pytest.approx(2 / 3, abs=0.03)


def test_top_k_1_equals_greedy(model):
    prompts = ["def f(x):", "import os\n"]
    greedy = generate(model, TOK, prompts, SamplingParams(max_new_tokens=16, ignore_eos=True))
    top1 = generate(model, TOK, prompts, SamplingParams(max_new_tokens=16, temperature=1.3, top_k=1, seed=3,
                                                         ignore_eos=True))
    assert [[c.token_ids for c in r] for r in top1] == [[c.token_ids for c in r] for r in greedy]


# ---- seeds, batching and n samples -----------------------------------------------------------------------------

SAMPLED = SamplingParams(max_new_tokens=20, temperature=0.9, top_p=0.95, seed=1234, ignore_eos=True)


def token_ids(results):
    return [[c.token_ids for c in r] for r in results]


def test_seeded_sampling_is_deterministic(model):
    a = generate(model, TOK, ["def fib(n):"], SAMPLED)
    b = generate(model, TOK, ["def fib(n):"], SAMPLED)
    c = generate(model, TOK, ["def fib(n):"], replace(SAMPLED, seed=1235))
    assert token_ids(a) == token_ids(b)
    assert token_ids(a) != token_ids(c)


def test_output_does_not_depend_on_batch_composition(model):
    params = replace(SAMPLED, n=3)
    alone = generate(model, TOK, ["def fib(n):"], params)[0]
    others = ["x", "import numpy as np\nimport os\n\n\nclass A:\n", "def fib(n):", "print("]
    batched = generate(model, TOK, others, params)
    assert token_ids([batched[2]]) == token_ids([alone])
    one_row_at_a_time = generate(model, TOK, others, params, max_batch_size=1)
    assert token_ids(one_row_at_a_time) == token_ids(batched)
    # The n samples differ from each other, and the same seed on a different prompt gives another stream.
    assert len({tuple(c.token_ids) for c in alone}) == 3
    assert batched[0][0].token_ids != alone[0].token_ids


def test_rows_finishing_at_different_steps_keep_their_own_cache(model):
    # Stops on any lowercase letter end rows at scattered steps, so the batch is compacted many times (rows move
    # between cache slots); every row must still match the same sequence decoded alone.
    params = SamplingParams(max_new_tokens=30, temperature=1.0, n=4, seed=7, stop=tuple("abcdefghijklmnopqrstuvwxyz"))
    prompts = ["def fib(n):", "import os\n", "x = [", "class A:\n    "]
    batched = generate(model, TOK, prompts, params)
    alone = generate(model, TOK, prompts, params, max_batch_size=1)
    assert [[(c.text, c.token_ids, c.finish_reason) for c in r] for r in batched] == \
        [[(c.text, c.token_ids, c.finish_reason) for c in r] for r in alone]
    lengths = {len(c.token_ids) for r in batched for c in r}
    assert len(lengths) >= 5


def test_n_samples_share_one_prompt_prefill(model):
    calls = []
    original = model.forward

    def recording_forward(idx, **kw):
        calls.append(tuple(idx.shape))
        return original(idx, **kw)

    model.forward = recording_forward
    try:
        prompts = ["def fib(n):", "import os\n"]
        out = generate(model, TOK, prompts, SamplingParams(max_new_tokens=6, n=4, ignore_eos=True))
    finally:
        del model.forward
    lengths = [len(TOK.encode(p)) for p in prompts]
    assert calls[:2] == [(1, lengths[0]), (1, lengths[1])]  # one prefill per prompt, not per sample
    assert calls[2:] == [(8, 1)] * 5  # all 8 rows decode in one forward per step
    single = generate(model, TOK, prompts, SamplingParams(max_new_tokens=6, ignore_eos=True))
    for p in range(2):  # at temperature 0 every sample is the greedy one
        assert [c.token_ids for c in out[p]] == [single[p][0].token_ids] * 4


def test_finished_rows_leave_the_batch(model):
    greedy = generate(model, TOK, ["a"], SamplingParams(max_new_tokens=12, ignore_eos=True))[0][0]
    stop = TOK.decode(greedy.token_ids[2:4])  # stops after the 4th token
    calls = []
    original = model.forward
    model.forward = lambda idx, **kw: calls.append(idx.shape[0]) or original(idx, **kw)
    try:
        out = generate(model, TOK, ["a", "b"], SamplingParams(max_new_tokens=12, stop=(stop,), ignore_eos=True))
    finally:
        del model.forward
    assert len(out[0][0].token_ids) <= 4 and out[0][0].finish_reason == "stop"
    decode_batches = calls[2:]
    assert decode_batches[0] == 2 and decode_batches[-1] == 1 and len(decode_batches) == 11



def test_a_finished_row_s_slot_goes_to_the_next_waiting_prompt(model):
    # generate() is a client of the engine: with fewer slots than sequences, a prompt waits for a free slot and is
    # prefilled while the others go on decoding (continuous batching), instead of after the whole batch has drained.
    # Outputs are those of the unbounded batch.
    params = SamplingParams(max_new_tokens=20, temperature=1.0, n=2, seed=3, stop=tuple("aeiou"))
    prompts = ["def fib(n):", "import os\n", "x = [", "class A:\n    "]
    calls = []
    original = model.forward
    model.forward = lambda idx, **kw: calls.append(("prefill" if "rows" in kw and kw["rows"] is not None
                                                    else "decode", idx.shape[0])) or original(idx, **kw)
    try:
        bounded = generate(model, TOK, prompts, params, max_batch_size=3)
    finally:
        del model.forward
    unbounded = generate(model, TOK, prompts, params)
    assert [[(c.text, c.token_ids, c.finish_reason) for c in r] for r in bounded] == \
        [[(c.text, c.token_ids, c.finish_reason) for c in r] for r in unbounded]
    kinds = [kind for kind, _ in calls]
    assert kinds.count("prefill") == 4 and max(batch for kind, batch in calls if kind == "decode") <= 3
    # Some prompt was prefilled between two decode steps, joining rows that were still decoding.
    joined = [i for i in range(1, len(calls) - 1) if kinds[i] == "prefill" and kinds[i - 1] == "decode"]
    assert any(calls[i + 1][1] > params.n for i in joined if kinds[i + 1] == "decode")

def test_on_done_reports_every_sample_as_it_finishes(model):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, n=3, seed=5)
    seen = []
    out = generate(model, TOK, ["def f(", "x ="], params, on_done=lambda p, j, c: seen.append((p, j, c)))
    assert sorted((p, j) for p, j, _ in seen) == [(p, j) for p in range(2) for j in range(3)]
    assert all(c is out[p][j] for p, j, c in seen)


def test_sessions_give_each_turn_the_tokens_it_gets_alone(model):
    # Multi-turn sessions on one engine (a session's next turn joins the batch when its last ends, while other
    # sessions are mid-turn) give exactly what sampling each session alone, turn by turn, gives.
    firsts = ["# a\n", "def f(x):\n", "x = [", "import os\n"]
    params = [SamplingParams(max_new_tokens=6 + 3 * i, temperature=0.9, seed=i % 2, stop=("e",)) for i in range(4)]
    turns = [3, 1, 2, 3]

    def follow(history: str, text: str, turn: int) -> str:
        return f"{history}{text}\n# turn {turn}\n"

    alone = []
    for i in range(4):
        prompt, texts = firsts[i], []
        for turn in range(turns[i]):
            [[c]] = generate(model, TOK, [prompt], params[i])
            texts.append((c.text, c.token_ids, c.finish_reason))
            prompt = follow(prompt, c.text, turn)
        alone.append(texts)

    prompts, together = list(firsts), [[] for _ in range(4)]

    def next_prompt(i, c):
        together[i].append((c.text, c.token_ids, c.finish_reason))
        prompts[i] = follow(prompts[i], c.text, len(together[i]) - 1)
        return prompts[i] if len(together[i]) < turns[i] else None
    generate_sessions(model, TOK, firsts, params, next_prompt)
    assert together == alone
    with pytest.raises(ValueError, match="one completion per turn"):
        generate_sessions(model, TOK, ["a"], [SamplingParams(n=2)], lambda i, c: None)


# ---- stop strings and streaming --------------------------------------------------------------------------------

def test_stop_checker_multi_piece_split_and_earliest():
    s = StopChecker(["\ndef", "ef"])
    assert s.push("x = 1") == "x = 1"
    assert s.push("\nd") == ""  # "\nd" may begin "\ndef": held back
    assert not s.stopped
    assert s.push("ef rest") == ""  # both stops complete here; "\ndef" starts first
    assert s.stopped and s.text == "x = 1"

    s = StopChecker(["b", "abc"])
    assert s.push("xa") == "x"  # "a" may begin "abc"
    assert s.push("bc") == "" and s.text == "x"  # both complete in one piece: "abc" (at 1) starts before "b" (at 2)
    s = StopChecker(["b", "abc"])
    s.push("xa")
    s.push("b")
    assert s.text == "xa"  # "b" completes first: stopping does not wait for a longer stop that might still come

    s = StopChecker(HUMANEVAL_STOP)
    out = s.push("    return 1\n") + s.push("\n") + s.push("x")  # "\n\nx": no stop begins here
    assert out + s.flush() == "    return 1\n\nx" and not s.stopped


def test_incremental_decoder_concatenates_to_full_decode():
    rng = random.Random(0)
    for _ in range(50):
        prompt = [rng.randrange(TOK.eos_id) for _ in range(rng.randrange(0, 6))]
        ids = [rng.choice([rng.randrange(TOK.eos_id), *TOK.encode("é€")]) for _ in range(rng.randrange(1, 20))]
        d = IncrementalDecoder(TOK, prompt)
        text = "".join(d.push(t) for t in ids) + d.flush()
        assert text == TOK.decode(ids)
    # A character split over tokens is released only once complete.
    d = IncrementalDecoder(TOK, TOK.encode("x"))
    euro = "€".encode()
    assert [d.push(b) for b in euro] == ["", "", "€"]


def test_stop_string_spanning_tokens_truncates_at_earliest(model):
    prompt = "def fib(n):"
    free = generate(model, TOK, [prompt], SamplingParams(max_new_tokens=30, ignore_eos=True))[0][0]
    # A stop string made of the text of tokens 5..7 (several tokens, starting mid-token) and a later one.
    pieces = [TOK.decode([t]) for t in free.token_ids]
    start = len("".join(pieces[:5])) + 1
    stop = free.text[start : start + 4]
    late = free.text[start + 2 : start + 9]
    out = generate(model, TOK, [prompt], SamplingParams(max_new_tokens=30, stop=(late, stop), ignore_eos=True))[0][0]
    first = free.text.find(stop)
    assert out.finish_reason == "stop"
    assert out.text == free.text[:first] and first <= start
    # token_ids run up to the token that completed the stop string.
    done = next(i for i in range(len(pieces)) if stop in "".join(pieces[: i + 1]))
    assert out.token_ids == free.token_ids[: done + 1]


def test_streaming_deltas_concatenate_to_the_final_text(model):
    stream: dict[tuple[int, int], str] = {}

    def on_token(p, s, delta):
        assert delta
        stream[(p, s)] = stream.get((p, s), "") + delta

    params = SamplingParams(max_new_tokens=40, temperature=1.0, n=3, seed=5, stop=HUMANEVAL_STOP + ("q", "\x00"))
    out = generate(model, TOK, ["def fib(n):", "é"], params, on_token=on_token)
    for p, row in enumerate(out):
        for s, c in enumerate(row):
            assert stream.get((p, s), "") == c.text
            assert not any(stop in c.text for stop in params.stop)
    # The same text as without streaming: the callback only observes.
    assert token_ids(generate(model, TOK, ["def fib(n):", "é"], params)) == token_ids(out)


# ---- ends and limits -----------------------------------------------------------------------------------------------

def test_eos_ends_with_stop_and_length_is_clamped_to_context():
    m = tiny_model(2)
    with torch.no_grad():
        m.lm_head.bias[TOK.eos_id] = 100.0  # EOS is always the most likely token
    out = generate(m, TOK, ["abc"], SamplingParams(max_new_tokens=5))[0][0]
    assert (out.token_ids, out.text, out.finish_reason) == ([TOK.eos_id], "", "stop")
    streamed = []
    out = generate(m, TOK, ["abc"], SamplingParams(max_new_tokens=5, ignore_eos=True, stop=("zz",)),
                   on_token=lambda p, s, t: streamed.append(t))[0][0]
    assert out.finish_reason == "length" and len(out.token_ids) == 5 and out.text == "" and streamed == []

    context = m.config.block_size
    prompt = [65] * (context - 3)
    out = generate(m, TOK, [prompt], SamplingParams(max_new_tokens=50, ignore_eos=True))[0][0]
    assert len(out.token_ids) == 3 and out.finish_reason == "length"
    with pytest.raises(UserError, match=rf"prompt 1 is {context} tokens.*context is {context}"):
        generate(m, TOK, [prompt, [65] * context], SamplingParams())


def test_prepare_prompts_is_the_one_home_of_empty_prompts_and_the_context():
    m = tiny_model(2)
    context = m.config.block_size
    empty, fits = prepare_prompts(TOK, m, ["", [65] * 10], context, max_new_tokens=context - 10)
    assert (empty.ids, fits.ids) == ([TOK.eos_id], [65] * 10)
    with pytest.raises(PromptTooLong, match=rf"context is {context} tokens, but {context + 1} were requested") as e:
        prepare_prompts(TOK, m, [[65] * 10], context, max_new_tokens=context - 9)
    assert e.value.by_request  # the prompt fits alone: the tokens asked for are what does not
    with pytest.raises(PromptTooLong, match="no room to generate") as e:
        prepare_prompts(TOK, m, [[65] * context], context)
    assert not e.value.by_request and isinstance(e.value, UserError)

    no_eos = ByteTokenizer()
    no_eos.eos_id = None  # and the model's config has none either
    with pytest.raises(UserError, match="prompt 1 is empty and the model has no end-of-text token"):
        prepare_prompts(no_eos, m, ["a", ""], context)


def test_logprobs_are_the_model_log_probabilities(model):
    params = SamplingParams(max_new_tokens=5, temperature=0.7, seed=0, logprobs=2, ignore_eos=True)
    out = generate(model, TOK, ["def"], params)[0][0]
    ids = TOK.encode("def")
    with torch.inference_mode():
        for i, t in enumerate(out.token_ids):
            logp = torch.log_softmax(model(torch.tensor([ids]))[0, -1], -1)
            assert out.logprobs[i] == pytest.approx(float(logp[t]), abs=1e-4)
            top = logp.topk(2)
            assert list(out.top_logprobs[i]) == top.indices.tolist()
            ids.append(t)


def test_bad_params_are_user_errors():
    for bad in (dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(top_k=-1), dict(n=0),
                dict(max_new_tokens=0), dict(stop=("",))):
        with pytest.raises(UserError, match="sampling parameters"):
            SamplingParams(**bad)
    assert SamplingParams(stop="\n").stop == ("\n",)


# ---- parity with transformers ----------------------------------------------------------------------------------

def codegen_state_dict_to_ours(sd: dict[str, torch.Tensor], n_head: int) -> dict[str, torch.Tensor]:
    """HF CodeGen names -> ours; the fused qkv is stored as mp_num=4 blocks of (q, v, k) (transformers' CodeGen)."""
    out = {}
    for k, v in sd.items():
        if k.endswith("attn.qkv_proj.weight"):
            E = v.shape[1]
            w = v.view(4, 3, n_head // 4, E // n_head, E)
            q, vv, kk = (w[:, i].reshape(E, E) for i in range(3))
            v = torch.cat([q, kk, vv])
        if k.endswith("attn.causal_mask") or k.endswith("attn.masked_bias"):
            continue
        name = (k.replace("transformer.h.", "blocks.").replace("transformer.", "").replace("ln_1", "norm_1")
                .replace("ln_f", "norm_f").replace("qkv_proj", "qkv").replace("out_proj", "proj")
                .replace("fc_in", "fc").replace("fc_out", "proj"))
        out[name] = v
    return out


def test_greedy_matches_transformers_codegen():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.CodeGenConfig(
        vocab_size=TOK.vocab_size, n_positions=128, n_ctx=128, n_embd=64, n_layer=2, n_head=4, rotary_dim=8,
        activation_function="gelu_new", bos_token_id=TOK.eos_id, eos_token_id=TOK.eos_id,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    hf = transformers.CodeGenForCausalLM(hf_config).eval()
    ours = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=TOK.vocab_size, block_size=128, rotary_dim=8,
                                       eos_token_id=TOK.eos_id)).eval()
    ours.load_state_dict(codegen_state_dict_to_ours(hf.state_dict(), 4))
    prompt = TOK.encode("def fib(n):\n    ")
    with torch.inference_mode():
        expected = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                               max_new_tokens=32, do_sample=False, pad_token_id=TOK.eos_id)[0, len(prompt):]
    got = generate(ours, TOK, [prompt], SamplingParams(max_new_tokens=32, control_tokens=True))[0][0]
    assert got.token_ids == expected.tolist()
