"""Chunked prefill interleaved with decoding (serve/scheduler.py): while a long prompt is prefilled, the running
streams get a decode step between any two of its chunks; every request still gives exactly what it gives alone
(tokens, and prompt log-probabilities bit for bit); the row being prefilled always sits right after the live rows,
also when rows finish or leave under it; a request cancelled or timed out mid-prefill frees its slots for the next."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
import torch

from eval_tiny import ByteTokenizer, tiny_model
from opencodegen.model.transformer import KVCache
from opencodegen.sampling import SamplingParams
from opencodegen.prefix_cache import PrefixCache
from opencodegen.serve.scheduler import RequestTimeout, Scheduler
from serve_fixtures import one_torch_thread  # noqa: F401 (an autouse fixture)

CHUNK = 16
RNG = random.Random(0)
LONG = [RNG.randrange(256) for _ in range(150)]  # 10 chunks (the last of 6 tokens)
ECHO = [RNG.randrange(256) for _ in range(70)]  # 5 chunks


def short(seed: int) -> list[int]:
    return [random.Random(seed).randrange(256) for _ in range(5)]


@pytest.fixture(scope="module")
def model():
    return tiny_model()


class Served:
    """Runs requests (prompt, params, prompt_logprobs) through one scheduler, all queued before its model thread
    starts, so that they are admitted in order, `prefill_budget` tokens between decode steps (default 1: one prefill
    pass per iteration, whatever its length).
    Keeps what each job's result() gave (or raised), the trace of model calls (("prefill", row) or ("decode",
    batch)), the tokens of each call, and the final stats. on_forward(self) runs on the model thread after each
    call."""

    def __init__(self, model, requests: list[dict], *, slots: int = 8, on_forward=None, prefill_budget: int = 1):
        self.trace: list[tuple[str, int]] = []
        self.tokens: list[int] = []
        self.scheduler = Scheduler(model, ByteTokenizer(), slots=slots, prefill_chunk=CHUNK,
                                   prefill_budget=prefill_budget)
        self.jobs, self.tasks = [], []
        original = model.forward

        def forward(idx, **kw):
            out = original(idx, **kw)
            rows = kw.get("rows")  # only a prefill names its row
            self.trace.append(("decode", idx.shape[0]) if rows is None else ("prefill", int(rows[0])))
            self.tokens.append(idx.shape[1])
            if on_forward:
                on_forward(self)
            return out

        model.forward = forward
        try:
            self.results = asyncio.run(self._run(requests))
        finally:
            del model.forward
            self.scheduler.close()
        self.stats = self.scheduler.stats()

    async def _run(self, requests: list[dict]) -> list:
        async def consume(job):
            try:
                return await job.result()
            finally:
                job.cancel()  # as the server does when its caller goes away (a no-op once the job is done)

        self.loop = asyncio.get_running_loop()
        for r in requests:
            self.jobs.append(self.scheduler.submit([r["prompt"]], r["params"],
                                                   prompt_logprobs=r.get("prompt_logprobs", False)))
            self.tasks.append(asyncio.ensure_future(consume(self.jobs[-1])))
        self.scheduler.start()
        # (bounded, so that a scheduler that loses a job fails the test instead of hanging it)
        return await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 30)

    def disconnect(self, i: int) -> None:
        """From the model thread: the caller of request i goes away; returns once the scheduler can see it."""
        self.loop.call_soon_threadsafe(self.tasks[i].cancel)
        while not self.jobs[i].cancelled:
            time.sleep(0.001)

    def prefills(self) -> int:
        return [kind for kind, _ in self.trace].count("prefill")


def alone(model, request: dict):
    return Served(model, [request]).results[0]


def assert_same(got, want) -> None:
    """Same tokens, text and finish reasons, and bit for bit the same prompt log-probabilities and log-probability
    of the first token: those come from the prefill alone. Later tokens' log-probabilities come from decode steps
    over however many rows are live, whose matrix products round differently with the batch size (~1e-7)."""
    (got_completions, got_prompt), (want_completions, want_prompt) = got, want
    assert got_prompt == want_prompt
    for g, w in zip(got_completions[0], want_completions[0], strict=True):
        assert (g.token_ids, g.text, g.finish_reason) == (w.token_ids, w.text, w.finish_reason)
        if w.logprobs is not None:
            assert g.logprobs[0] == w.logprobs[0] and g.logprobs == pytest.approx(w.logprobs, abs=1e-5)


def check_rows(trace: list[tuple[str, int]]) -> None:
    """The row being prefilled is the one right after the live rows: the batch of the decode step just before."""
    for previous, (kind, row) in zip(trace, trace[1:]):
        if kind == "prefill" and previous[0] == "decode":
            assert row == previous[1]


def longest_prefill_run(trace: list[tuple[str, int]]) -> int:
    run = longest = 0
    for kind, _ in trace:
        run = run + 1 if kind == "prefill" else 0
        longest = max(longest, run)
    return longest


STREAM = SamplingParams(max_new_tokens=60, ignore_eos=True, logprobs=1)  # outlives every prefill below
REQUESTS = [
    dict(prompt=short(1), params=SamplingParams(max_new_tokens=4, temperature=1.0, seed=1)),  # ends mid-prefill
    dict(prompt=short(2), params=STREAM),
    dict(prompt=LONG, params=SamplingParams(max_new_tokens=20, temperature=0.8, seed=3, n=2, logprobs=2)),
    dict(prompt=ECHO, params=SamplingParams(max_new_tokens=3, logprobs=2), prompt_logprobs=True),
    dict(prompt=short(5), params=SamplingParams(max_new_tokens=10, temperature=1.0, seed=5)),
]


def test_running_streams_decode_between_the_chunks_of_a_long_prefill_and_every_request_equals_its_run_alone(model):
    served = Served(model, REQUESTS)
    results, trace, stats = served.results, served.trace, served.stats
    for got, request in zip(results, REQUESTS, strict=True):
        assert_same(got, alone(model, request))
    assert stats["active_slots"] == 0 and stats["completed"] == len(REQUESTS)

    kinds = [kind for kind, _ in trace]
    # Rows are decoding from the first iteration on, so no two prefill passes ever run back to back ...
    assert longest_prefill_run(trace) == 1
    assert kinds[:6] == ["prefill", "decode"] * 3
    # ... and each prompt still takes one pass per grid chunk, as alone.
    assert kinds.count("prefill") == 1 + 1 + 10 + 5 + 1
    # The first request finishes during the long prefill: the streaming row moves down to row 0 and the row being
    # prefilled follows it (from row 2 to row 1), so the live rows stay 0..live-1.
    long_rows = [row for kind, row in trace[4:4 + 2 * 10] if kind == "prefill"]
    assert long_rows[0] == 2 and long_rows[-1] == 1
    check_rows(trace)


def test_a_larger_prefill_budget_runs_chunks_back_to_back_up_to_the_budget(model):
    budget = 3 * CHUNK
    served = Served(model, REQUESTS, prefill_budget=budget)
    for got, request in zip(served.results, REQUESTS, strict=True):
        assert_same(got, alone(model, request))
    # The prefill passes between two decode steps, as token counts: each run stops at the first pass that reaches
    # the budget (so without its last pass it is below it), and a run may go on into the next waiting prompt.
    runs, run = [], []
    for (kind, _), tokens in zip(served.trace, served.tokens):
        if kind == "prefill":
            run.append(tokens)
        elif run:
            runs, run = runs + [run], []
    assert all(sum(r[:-1]) < budget for r in runs)
    assert runs[0] == [5, 5, CHUNK, CHUNK, CHUNK]  # both short prompts, then the long one's first three chunks
    assert max(sum(r) for r in runs) >= budget and max(len(r) for r in runs) >= 3
    assert served.prefills() == 18  # the same passes as one chunk per step, in fewer iterations
    assert [kind for kind, _ in served.trace].count("decode") < [kind for kind, _ in Served(model, REQUESTS).trace
                                                                 ].count("decode")
    check_rows(served.trace)


def test_echo_logprobs_collected_over_interleaved_chunks_equal_a_prefill_run_to_completion(model):
    served = Served(model, REQUESTS)
    got = served.results[3][1][0]
    hidden, _ = PrefixCache(0, CHUNK).prefill(model, KVCache(model.config, 1, 256), 0, ECHO, keep_hidden=True)
    with torch.inference_mode():
        logp = torch.log_softmax(model.lm_head(hidden[0, :-1]).float(), dim=-1)  # predicts ECHO[1:]
        one_pass = torch.log_softmax(model(torch.tensor([ECHO]))[0, :-1], dim=-1)
    want = logp.gather(1, torch.tensor(ECHO[1:])[:, None]).squeeze(1).tolist()
    assert got.logprobs == [None] + want  # bit for bit
    values, indices = logp.topk(2, dim=-1)
    assert got.top_logprobs[1:] == [dict(zip(i, v)) for i, v in zip(indices.tolist(), values.tolist())]
    # And the chunks were put together in order: the one-pass forward agrees to float rounding.
    assert got.logprobs[1:] == pytest.approx(one_pass.gather(1, torch.tensor(ECHO[1:])[:, None]).squeeze(1).tolist(),
                                             abs=1e-5)
    assert served.prefills() == 18 and longest_prefill_run(served.trace) == 1


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_a_request_dropped_mid_prefill_frees_its_slots_for_the_next(model, how):
    requests = [
        dict(prompt=short(2), params=STREAM),
        dict(prompt=LONG, params=SamplingParams(max_new_tokens=20, n=2)),
        dict(prompt=short(5), params=SamplingParams(max_new_tokens=10, temperature=1.0, seed=5, n=2)),
    ]
    seen = {}

    def drop_after_three_chunks(served):
        if served.prefills() == 1 + 3 and "slots" not in seen:
            seen["slots"] = served.scheduler.stats()["active_slots"]  # the stream's row and the long prompt's two
            if how == "cancel":
                served.disconnect(1)
            else:
                served.jobs[1].deadline = 0.0

    # 3 slots: the last request (n=2) can only start once the long one's two slots are free again.
    served = Served(model, requests, slots=3, on_forward=drop_after_three_chunks)
    results, trace, stats = served.results, served.trace, served.stats
    assert seen["slots"] == 3
    if how == "timeout":
        assert isinstance(results[1], RequestTimeout) and stats["timed_out"] == 1
    else:
        assert isinstance(results[1], asyncio.CancelledError) and stats["cancelled"] == 1
    # The long prompt's other chunks never ran; the next request took its rows and gives what it gives alone.
    assert served.prefills() == 1 + 3 + 1
    for i in (0, 2):
        assert_same(results[i], alone(model, requests[i]))
    assert stats["active_slots"] == 0 and stats["waiting"] == 0 and stats["completed"] == 2
    assert longest_prefill_run(trace) == 1
    check_rows(trace)
