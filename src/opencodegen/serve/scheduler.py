"""Continuous batching for the server: one background thread owns the model and a KV cache with one row per slot;
requests join and leave the running batch between decode steps. Each iteration drops cancelled and expired
requests, prefills at most `prefill_budget` prompt tokens (through the prefix cache, one grid chunk at a time), then
samples every live row's next token (and, for a request that speculates, its draft's tokens as far as they agree)
and runs one shared forward pass for all rows, with generate()'s own draft and verify steps. So a long prompt stalls
the running streams for at most the budget at a time, as vLLM's chunked prefill does (its max_num_batched_tokens is
this budget); the README says how the default budget was chosen, and `ocg serve --prefill-budget` moves it.

Every sequence is sampling.generate's own per-sequence state, fed the same logits rows, so a request gives token for
token what generate() alone gives it, whatever else shares the batch (for a prompt longer than one prefill chunk, to
float rounding: generate() prefills in one pass). The HTTP side (asyncio) hands jobs to the thread through a locked
deque and gets tokens back through each job's asyncio.Queue."""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Sequence

import torch

from ..healing import HealedPrompt
from ..model.transformer import KVCache
from ..progress import log
from ..sampling import (
    Completion,
    SamplingParams,
    SequenceState,
    compact_rows,
    draft_tokens,
    end_token_set,
    eos_id_of,
    forward_drafts,
    random_seed,
    verify_drafts,
)
from .prefix_cache import DEFAULT_BLOCK, Prefill, PrefixCache

DEFAULT_PREFILL_BUDGET = 512  # prompt tokens between two decode steps; why 512: the module docstring


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
class PromptLogprobs:
    """Log-probability of each prompt token given the ones before (None for the first), for echo + logprobs."""
    prompt_index: int
    logprobs: list[float | None]
    top_logprobs: list[dict[int, float] | None] | None


@dataclass
class JobFailed:
    error: Exception


class Job:
    """One request: prompts (token ids, each with the text token healing removed from its end) x params.n samples.
    Created by Scheduler.submit on the event loop; the model thread only posts events to it and reads `cancelled`."""

    def __init__(self, prompts: list[HealedPrompt], params: SamplingParams, stream: bool, prompt_logprobs: bool,
                 deadline: float, loop: asyncio.AbstractEventLoop):
        self.prompts, self.params, self.stream = prompts, params, stream
        self.prompt_logprobs, self.deadline, self.loop = prompt_logprobs, deadline, loop
        self.total = len(prompts) * params.n
        self.cancelled = False  # a plain flag: written by the event loop, polled by the model thread each step
        self.next_prompt = 0  # prompts admitted so far (model thread only)
        self.sequences_done = 0  # model thread only
        # Prompt tokens taken from the prefix cache (written by the model thread before it posts the prompt's first
        # event, so complete once every event has been read).
        self.cached_tokens = 0
        self._events: asyncio.Queue = asyncio.Queue()

    def cancel(self) -> None:
        """Frees the job's slots at the next step (a no-op once it has finished)."""
        self.cancelled = True

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
    """slots: sequences decoded at once (a request with n samples takes n slots); queue_size: requests that may
    wait for slots before submit raises QueueFull; timeout: seconds from submit to the end of a request;
    max_len: positions per slot (default the model's block_size), which is the context requests must fit;
    prefix_cache_bytes: memory for the keys and values of earlier prompts (0: none); prefill_chunk: the prefill grid
    and cache block, in tokens; prefill_budget: prompt tokens prefilled between two decode steps (the pass that
    reaches it still finishes, so up to one chunk more; vLLM's max_num_batched_tokens plays this part)."""

    def __init__(self, model, tokenizer, *, slots: int = 16, queue_size: int = 64, timeout: float = 120.0,
                 max_len: int | None = None, prefix_cache_bytes: int = 0, prefill_chunk: int = DEFAULT_BLOCK,
                 prefill_budget: int = DEFAULT_PREFILL_BUDGET):
        if slots < 1 or queue_size < 1 or timeout <= 0 or prefill_budget < 1:
            raise ValueError(f"slots={slots}, queue_size={queue_size} and prefill_budget={prefill_budget} must be "
                             f">= 1, timeout={timeout} > 0")
        self.model, self.tokenizer = model, tokenizer
        self.slots, self.queue_size, self.timeout, self.prefill_budget = slots, queue_size, timeout, prefill_budget
        self.context = min(model.config.block_size, max_len or model.config.block_size)
        self.device = model.lm_head.weight.device
        dtype = next(model.parameters()).dtype
        self.cache = KVCache(model.config, slots, self.context, device=self.device, dtype=dtype)
        self.prefix_cache = PrefixCache(prefix_cache_bytes, prefill_chunk)
        self.eos_id = eos_id_of(tokenizer, model)
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._closed = False
        # Model thread only: live sequences (cache row r holds _active[r]) and the job of each; their next logits,
        # row r's at positions _first[r] .. _first[r] + len(_drafts[r]) (its last token, then its speculative draft).
        self._active: list[SequenceState] = []
        self._owners: list[Job] = []
        self._logits: torch.Tensor | None = None
        self._first: list[int] = []
        self._drafts: list[list[int]] = []
        # Model thread only: the prompt being prefilled (one at a time, into row len(_active)) and its job.
        self._prefill: Prefill | None = None
        self._prefill_job: Job | None = None
        self.counters = {"submitted": 0, "completed": 0, "cancelled": 0, "timed_out": 0, "failed": 0}
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
        if params.seed is None:  # resolved once, so every sample of every prompt derives its RNG from one seed
            params = replace(params, seed=random_seed())
        job = Job(prompts, params, stream, prompt_logprobs, time.monotonic() + self.timeout,
                  asyncio.get_running_loop())
        with self._cond:
            if self._closed:
                raise SchedulerClosed("the server is shutting down")
            if len(self._waiting) >= self.queue_size:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting for the {self.slots} slots")
            self._waiting.append(job)
            self.counters["submitted"] += 1
            self._cond.notify()
        return job

    def stats(self) -> dict:
        with self._cond:
            # Slots in use: decoding rows, and the rows of the prompt being prefilled (held from its first chunk).
            prefilling = self._prefill_job  # (read once: the model thread does not take the lock to clear it)
            return {"slots": self.slots, "active_slots": len(self._active) + (prefilling.params.n if prefilling else 0),
                    "waiting": len(self._waiting), "context": self.context, **self.counters,
                    "prefix_cache": self.prefix_cache.stats()}

    # ---- the model thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._waiting and not self._active:
                    self._cond.wait()
                if self._closed:
                    break
            try:
                with torch.inference_mode():
                    self._drop_finished_jobs()
                    self._prefill_some()
                    if self._active:
                        self._step()
            except Exception as e:  # a bug or out-of-memory must not take the server down: fail what is in flight
                log(f"serve: model step failed: {e!r}\n{traceback.format_exc()}")
                self._fail_all(e)
        self._fail_all(SchedulerClosed("the server is shutting down"))

    def _drop_finished_jobs(self) -> None:
        """Expired jobs fail with RequestTimeout; cancelled and expired jobs leave the queue and their rows leave
        the batch."""
        now = time.monotonic()
        with self._cond:
            in_flight = list(dict.fromkeys([*self._waiting, *self._owners]))
        for job in in_flight:
            if not job.cancelled and now > job.deadline:
                job.post(JobFailed(RequestTimeout(f"the request did not finish within {self.timeout:g} s")))
                job.cancel()
                self.counters["timed_out"] += 1
            elif job.cancelled:
                self.counters["cancelled"] += 1
        if not any(job.cancelled for job in in_flight):
            return
        with self._cond:
            self._waiting = deque(j for j in self._waiting if not j.cancelled)
        if self._prefill_job is not None and self._prefill_job.cancelled:
            self._prefill = self._prefill_job = None  # abandoned: its row is simply free again
        self._keep_logits(self._remove([job.cancelled for job in self._owners]))

    def _prefill_some(self) -> None:
        """Prefills up to `prefill_budget` prompt tokens, one grid chunk at a time, between two decode steps: the
        prompt being prefilled goes on, and when it is done the next waiting prompt starts if its n samples fit in
        the free slots. Each prompt's rows join the batch once its last chunk is done."""
        spent = 0
        while spent < self.prefill_budget:
            if self._prefill is None:
                with self._cond:
                    job = self._waiting[0] if self._waiting else None
                if job is None or len(self._active) + job.params.n > self.slots:
                    return
                # Row len(_active): right after the live rows, so that decode steps (rows 0..live-1) never touch it.
                self._prefill = self.prefix_cache.start(self.model, self.cache, len(self._active),
                                                        job.prompts[job.next_prompt].ids,
                                                        keep_hidden=job.prompt_logprobs)
                self._prefill_job = job
            before = self._prefill.position
            self._prefill.advance()
            spent += self._prefill.position - before
            if self._prefill.done:
                self._join(self._prefill, self._prefill_job)

    def _join(self, prefill: Prefill, job: Job) -> None:
        """The prefilled prompt's n samples join the batch: its row is copied to the n-1 rows after it (as
        sampling.generate shares one prefill) and each sample starts its own sequence state."""
        p, n, ids, row = job.next_prompt, job.params.n, prefill.ids, prefill.row
        job.cached_tokens += prefill.cached
        hidden = prefill.hidden
        if job.prompt_logprobs:
            job.post(self._prompt_logprobs(p, ids, hidden[0], job.params.logprobs))
        logits = self.model.lm_head(hidden[:, -1]).float()  # (1, V): only the last position is sampled from
        if n > 1:
            self.cache.copy_rows(row, list(range(row + 1, row + n)))
        params = job.params
        end_ids = end_token_set(params, self.eos_id)
        on_token = (lambda i, j, text, job=job: job.post(TextDelta(i, j, text))) if job.stream else None
        for j in range(n):
            self._active.append(SequenceState(p, j, ids, params.max_new_tokens, params, params.seed, self.tokenizer,
                                              end_ids, on_token, job.prompts[p].removed))
            self._owners.append(job)
        self._prefill = self._prefill_job = None  # (after the append: /health never sees the rows as free)
        start = 0 if self._logits is None else self._logits.shape[0]
        self._first += range(start, start + n)
        self._drafts += [[] for _ in range(n)]
        new = logits.expand(n, -1)
        self._logits = new if self._logits is None else torch.cat([self._logits, new])
        job.next_prompt += 1
        if job.next_prompt == len(job.prompts):
            with self._cond:
                self._waiting.popleft()

    def _prompt_logprobs(self, p: int, ids: list[int], hidden: torch.Tensor, k: int | None) -> PromptLogprobs:
        logp = torch.log_softmax(self.model.lm_head(hidden[:-1]).float(), dim=-1)  # (T-1, V): predicts ids[1:]
        chosen = logp.gather(1, torch.tensor(ids[1:], device=logp.device)[:, None]).squeeze(1).tolist()
        top = None
        if k:
            values, indices = logp.topk(k, dim=-1)
            top = [None] + [dict(zip(i, v)) for i, v in zip(indices.tolist(), values.tolist())]
        return PromptLogprobs(p, [None] + chosen, top)

    def _step(self) -> None:
        """Samples every live row's next tokens (its draft's, as far as they agree: sampling.verify_drafts), then
        runs one forward pass for all rows still going, each fed its last token and, when its request speculates,
        a new draft (sampling.forward_drafts, as generate() does)."""
        active, owners = self._active, self._owners
        finished = verify_drafts(active, self._logits, self._first, self._drafts)
        if any(self._drafts):  # forget the keys of rejected drafts: each row's cache holds all its tokens but the last
            self.cache.truncate([len(s.prompt_ids) + len(s.token_ids) - 1 for s in active])
        for s, job, done in zip(active, owners, finished):
            if done:
                job.post(SequenceDone(s.prompt_index, s.sample_index, s.completion))
                job.sequences_done += 1
                self.counters["completed"] += job.sequences_done == job.total
        self._remove(finished)
        if not self._active:
            self._logits, self._first, self._drafts = None, [], []
            return
        k = max(s.params.speculative_tokens for s in self._active)
        drafts = draft_tokens(self._active, k, self.cache.max_len) if k else [[] for _ in self._active]
        self._logits, self._first = forward_drafts(self.model, self.cache, self._active, drafts)
        self._drafts = drafts

    def _remove(self, gone: list[bool]) -> list[int]:
        """Drops the rows flagged in `gone`, packing the rest into cache rows 0..live-1, and moves the row of a
        prompt being prefilled down to row live (right after them) too. Returns, per remaining row, the old row it
        came from. Live rows stay contiguous from row 0 so that the decode forward reads the cache through views
        instead of gathering rows."""
        if not any(gone):
            return list(range(len(gone)))
        order = compact_rows(self.cache, gone)
        self._active = [self._active[r] for r in order]
        self._owners = [self._owners[r] for r in order]
        if self._prefill is not None:
            self.cache.copy_rows(self._prefill.row, [len(self._active)])
            self._prefill.row = len(self._active)
        return order

    def _keep_logits(self, order: list[int]) -> None:
        """The pending logits of the rows that remain, after _remove returned `order`."""
        if not order:
            self._logits, self._first, self._drafts = None, [], []
        else:
            self._logits, self._first, self._drafts = keep_rows(self._logits, self._first, self._drafts, order)

    def _fail_all(self, error: Exception) -> None:
        with self._cond:
            jobs = set(self._waiting) | set(self._owners)
            self._waiting.clear()
        for job in jobs:
            job.post(JobFailed(error))
            job.cancel()
        self.counters["failed"] += len(jobs)
        self._active, self._owners, self._logits, self._first, self._drafts = [], [], None, [], []
        self._prefill = self._prefill_job = None


def keep_rows(logits: torch.Tensor, first: list[int], drafts: list[list[int]],
              order: list[int]) -> tuple[torch.Tensor, list[int], list[list[int]]]:
    """Pending logits for the rows `order` (old row per new row): each row's positions, first[r] ..
    first[r] + len(drafts[r]), gathered in the new order, with their new first indices and drafts."""
    spans = [range(first[r], first[r] + 1 + len(drafts[r])) for r in order]
    index = torch.tensor([i for span in spans for i in span], device=logits.device)
    return (logits[index], list(accumulate((len(span) for span in spans[:-1]), initial=0)),
            [drafts[r] for r in order])
