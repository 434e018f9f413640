"""Continuous batching for the server: one background thread owns the decode engine (engine.py: slots, prefix
cache, chunked prefill, sampling, speculative drafts) and steps it; requests join and leave the running batch
between decode steps. Each iteration fails expired requests, drops cancelled ones, then lets the engine prefill at
most `prefill_budget` prompt tokens and run one decode step. So a long prompt stalls the running streams for at most
the budget at a time, as vLLM's chunked prefill does (its max_num_batched_tokens is this budget); the README says
how the default budget was chosen, and `ocg serve --prefill-budget` moves it.

generate() runs the same engine, so a request gives token for token what generate() gives it, whatever else shares
the batch. The HTTP side (asyncio) hands jobs to the thread through the engine's locked queue and gets tokens back
through each job's asyncio.Queue."""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Sequence

from ..engine import DEFAULT_PREFILL_BUDGET, Engine, PromptLogprobs, Request
from ..healing import HealedPrompt
from ..prefix_cache import DEFAULT_BLOCK
from ..progress import log
from ..sampling import Completion, SamplingParams

class QueueFull(Exception):
    """The bounded queue of waiting requests is full (the server answers 503)."""


class RequestTimeout(Exception):
    """A request did not finish within the scheduler's timeout."""


class SchedulerClosed(Exception):
    """The server is shutting down."""


# ---- events a job's consumer receives (in order, per sequence) --------------------------------------------------

@dataclass
class TextDelta:
    prompt_index: int
    sample_index: int
    text: str  # streamed jobs only: text that can no longer become part of a stop string


@dataclass
class SequenceDone:
    prompt_index: int
    sample_index: int
    completion: Completion


@dataclass
class JobFailed:
    error: Exception


class Job(Request):
    """One request, created by Scheduler.submit on the event loop; the model thread posts the engine's reports to
    it as events, which the event loop reads (`events`, `result`)."""

    def __init__(self, prompts: list[HealedPrompt], params: SamplingParams, stream: bool, prompt_logprobs: bool,
                 deadline: float, loop: asyncio.AbstractEventLoop):
        super().__init__(prompts, params, stream=stream, prompt_logprobs=prompt_logprobs)
        self.deadline, self.loop = deadline, loop
        self.timed_out = False
        self._events: asyncio.Queue = asyncio.Queue()

    def text(self, prompt_index: int, sample_index: int, text: str) -> None:
        self.post(TextDelta(prompt_index, sample_index, text))

    def prompt_logprobs_ready(self, event: PromptLogprobs) -> None:
        self.post(event)

    def done(self, prompt_index: int, sample_index: int, completion: Completion) -> None:
        self.post(SequenceDone(prompt_index, sample_index, completion))

    def post(self, event) -> None:
        """From the model thread."""
        try:
            self.loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the event loop has closed (server shutdown): nobody is listening any more
            pass

    async def events(self):
        """TextDelta / PromptLogprobs / SequenceDone events until every sequence is done; raises the error of a
        failed job (RequestTimeout, SchedulerClosed, or what the model raised)."""
        done = 0
        while done < self.total:
            event = await self._events.get()
            if isinstance(event, JobFailed):
                raise event.error
            done += isinstance(event, SequenceDone)
            yield event

    async def result(self) -> tuple[list[list[Completion]], dict[int, PromptLogprobs]]:
        """completions[prompt][sample] and the prompt log-probabilities by prompt index (when asked for)."""
        completions: list[list[Completion | None]] = [[None] * self.params.n for _ in self.prompts]
        prompt_logprobs = {}
        async for event in self.events():
            if isinstance(event, SequenceDone):
                completions[event.prompt_index][event.sample_index] = event.completion
            elif isinstance(event, PromptLogprobs):
                prompt_logprobs[event.prompt_index] = event
        return completions, prompt_logprobs


class Scheduler:
    """The engine's options (Engine), and: queue_size, requests that may wait for slots before submit raises
    QueueFull; timeout, seconds from submit to the end of a request. max_len (default the model's block_size) is the
    context requests must fit."""

    def __init__(self, model, tokenizer, *, slots: int = 16, queue_size: int = 64, timeout: float = 120.0,
                 max_len: int | None = None, prefix_cache_bytes: int = 0, prefill_chunk: int = DEFAULT_BLOCK,
                 prefill_budget: int = DEFAULT_PREFILL_BUDGET, compile: bool = False):
        if queue_size < 1 or timeout <= 0:
            raise ValueError(f"queue_size={queue_size} must be >= 1, timeout={timeout} > 0")
        self._cond = threading.Condition()
        self.engine = Engine(model, tokenizer, slots=slots, max_len=max_len, prefix_cache_bytes=prefix_cache_bytes,
                             prefill_chunk=prefill_chunk, prefill_budget=prefill_budget, lock=self._cond,
                             compile=compile)
        self.model, self.slots, self.context, self.eos_id = model, slots, self.engine.context, self.engine.eos_id
        self.queue_size, self.timeout = queue_size, timeout
        self._closed = False
        self.counters = {"submitted": 0, "cancelled": 0, "timed_out": 0, "failed": 0}
        self._thread = threading.Thread(target=self._run, name="ocg-model", daemon=True)

    # ---- the event-loop side ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def submit(self, prompts: Sequence[Sequence[int] | HealedPrompt], params: SamplingParams, *,
               stream: bool = False, prompt_logprobs: bool = False) -> Job:
        """Queues a request (call on the event loop). Prompts are token ids, or HealedPrompts whose first tokens are
        constrained to re-spell the text healing removed (healing.py). They must already fit: len + max_new_tokens
        <= context."""
        if params.n > self.slots:
            raise ValueError(f"n={params.n} samples need more than the {self.slots} slots")
        prompts = [p if isinstance(p, HealedPrompt) else HealedPrompt(list(p)) for p in prompts]
        for ids in (p.ids for p in prompts):
            if not ids or len(ids) + params.max_new_tokens > self.context:
                raise ValueError(f"a prompt of {len(ids)} tokens + {params.max_new_tokens} new tokens does not fit "
                                 f"the context of {self.context}")
        job = Job(prompts, params, stream, prompt_logprobs, time.monotonic() + self.timeout,
                  asyncio.get_running_loop())
        with self._cond:
            if self._closed:
                raise SchedulerClosed("the server is shutting down")
            if len(self.engine.waiting) >= self.queue_size:
                raise QueueFull(f"{len(self.engine.waiting)} requests are already waiting for the {self.slots} "
                                "slots")
            self.engine.waiting.append(job)
            self.counters["submitted"] += 1
            self._cond.notify()
        return job

    def stats(self) -> dict:
        with self._cond:
            return {"slots": self.slots, "active_slots": self.engine.slots_in_use,
                    "waiting": len(self.engine.waiting), "context": self.context, **self.counters,
                    "completed": self.engine.completed,
                    "prefix_cache": self.engine.prefix_cache.stats()}

    # ---- the model thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self.engine.busy:
                    self._cond.wait()
                if self._closed:
                    break
            try:
                self._expire()
                self.engine.step()
            except Exception as e:  # a bug or out-of-memory must not take the server down: fail what is in flight
                log(f"serve: model step failed: {e!r}\n{traceback.format_exc()}")
                self._fail_all(e)
        self._fail_all(SchedulerClosed("the server is shutting down"))

    def _expire(self) -> None:
        """Expired jobs fail with RequestTimeout; they and cancelled jobs leave the engine; finished jobs count."""
        now = time.monotonic()
        for job in self.engine.in_flight():
            if not job.cancelled and now > job.deadline:
                job.post(JobFailed(RequestTimeout(f"the request did not finish within {self.timeout:g} s")))
                job.cancel()
                job.timed_out = True
                self.counters["timed_out"] += 1
        self.counters["cancelled"] += sum(not j.timed_out for j in self.engine.drop_cancelled())

    def _fail_all(self, error: Exception) -> None:
        jobs = self.engine.clear()
        for job in jobs:
            job.post(JobFailed(error))
            job.cancel()
        self.counters["failed"] += len(jobs)
