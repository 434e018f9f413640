"""The one decode engine: a KV cache with one row per slot, requests that join and leave the running batch between
decode steps, prompts prefilled on the prefix cache's grid (reusing earlier prompts' blocks when it has room), a
prefill budget between decode steps (chunked prefill), then one sampling step and one shared forward pass for all
live rows, speculative prompt-lookup drafts included. Every entry point decodes through it: the HTTP server's
scheduler (serve/scheduler.py) drives it from its model thread, and `generate()` below is its synchronous client, as
vLLM's offline `LLM` runs the engine its server runs. So a request gives the same tokens alone, batched with others
or served, and there is one place where decoding can be made faster.

Each sample is a SequenceState (sequence.py) with its own RNG (sampling.sequence_generator), fed the logits row of
its own cache row: its tokens do not depend on which other rows share the batch. The engine is not thread-safe
except for `add`, which another thread may call while the owner steps (the server's event loop does)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Callable, Sequence

import torch

from .errors import UserError
from .healing import HealedPrompt, constrain
from .model.transformer import KVCache
from .prefix_cache import DEFAULT_BLOCK, Prefill, PrefixCache
from .sampling import Completion, SamplingParams, ban, random_seed, sample_tokens
from .sequence import OnToken, SequenceState, end_token_set, eos_id_of

OnDone = Callable[[int, int, Completion], None]  # (prompt index, sample index, its completion)

DEFAULT_PREFILL_BUDGET = 512  # prompt tokens between two decode steps; why 512: the README (serving, prefill budget)

# Memory the KV cache of one generate() call may take when max_batch_size is not given; more sequences wait for
# slots (same results: every sequence has its own RNG).
DEFAULT_KV_BUDGET_BYTES = 4 * 2**30
# Rows decoded at once beyond which a step gets slower per token rather than faster: each step attends over its
# longest row, and a bigger batch holds longer ones (and a bigger cache to zero). On the quickstart model (2-core AVX2
# host, the README's benchmark table) 128-256 rows did best and 750-1024 worst: HumanEval sampling 3,000-3,570
# tokens/s against 2,390-2,510, MTPB's sessions 32 s against 40.
DEFAULT_MAX_ROWS = 256

Prompt = str | Sequence[int] | HealedPrompt


@dataclass
class PromptLogprobs:
    """Log-probability of each prompt token given the ones before (None for the first), for echo + logprobs."""
    prompt_index: int
    logprobs: list[float | None]
    top_logprobs: list[dict[int, float] | None] | None


class Request:
    """Prompts (token ids, each with the text token healing removed from its end) x params.n samples, params.seed
    resolved. The engine reports to its hooks, on the thread that steps it: `text` (streamed text that can no longer
    become part of a stop string; only when `stream`), `prompt_logprobs_ready` (when `prompt_logprobs`) and `done`
    for each sequence. This base class keeps the completions; the server's Job posts events instead."""

    def __init__(self, prompts: list[HealedPrompt], params: SamplingParams, *, stream: bool = False,
                 prompt_logprobs: bool = False):
        if params.seed is None:  # resolved once, so every sample of every prompt derives its RNG from one seed
            params = replace(params, seed=random_seed())
        self.prompts, self.params, self.stream, self.prompt_logprobs = prompts, params, stream, prompt_logprobs
        self.total = len(prompts) * params.n
        self.cancelled = False  # a plain flag: another thread may set it; the engine polls it (drop_cancelled)
        # Admission progress (the engine's thread only): the next prompt and sample to prefill.
        self.next_prompt = self.next_sample = 0
        self.sequences_done = 0
        self.cached_tokens = 0  # prompt tokens taken from the prefix cache
        self.completions: list[list[Completion | None]] = [[None] * params.n for _ in prompts]

    def cancel(self) -> None:
        """Frees the request's slots at the engine's next drop_cancelled (a no-op once it has finished)."""
        self.cancelled = True

    def text(self, prompt_index: int, sample_index: int, text: str) -> None:
        pass

    def prompt_logprobs_ready(self, event: PromptLogprobs) -> None:
        pass

    def done(self, prompt_index: int, sample_index: int, completion: Completion) -> None:
        self.completions[prompt_index][sample_index] = completion


class Engine:
    """slots: sequences decoded at once (a prompt's n samples are prefilled once and take n slots; with n > slots
    they are admitted in groups, each prefilled again); max_len: positions per slot (default the model's
    block_size), the context every sequence fits in (max_new_tokens is clamped to it; a completion cut there ends
    with "length"); prefix_cache_bytes: memory for the keys and values of earlier prompts (0: none); prefill_chunk:
    the prefill grid and cache block, in tokens; prefill_budget: prompt tokens prefilled between two decode steps
    (the pass that reaches it still finishes, so up to one chunk more; vLLM's max_num_batched_tokens plays this
    part); lock: guards the waiting queue (the server passes its own condition); compile: decode steps run the
    model's torch.compile'd decode step (model/compiled.py: the same tokens, fewer operators per token; the first steps
    at one row and at several rows each pay the compile, and compiling falls back to eager where it cannot run)."""

    def __init__(self, model, tokenizer, *, slots: int, max_len: int | None = None, prefix_cache_bytes: int = 0,
                 prefill_chunk: int = DEFAULT_BLOCK, prefill_budget: int = DEFAULT_PREFILL_BUDGET, lock=None,
                 compile: bool = False):
        if slots < 1 or prefill_budget < 1:
            raise ValueError(f"slots={slots} and prefill_budget={prefill_budget} must be >= 1")
        self.model, self.tokenizer, self.slots, self.prefill_budget = model, tokenizer, slots, prefill_budget
        self.compile = compile
        self.context = min(model.config.block_size, max_len or model.config.block_size)
        device = model.lm_head.weight.device
        self.cache = KVCache(model.config, slots, self.context, device=device, dtype=next(model.parameters()).dtype)
        self.prefix_cache = PrefixCache(prefix_cache_bytes, prefill_chunk)
        self.eos_id = eos_id_of(tokenizer, model)
        self.lock = threading.Lock() if lock is None else lock
        self.waiting: deque[Request] = deque()  # under self.lock
        # Live sequences (cache row r holds _active[r]) and the request of each; their next logits, row r's at
        # positions _first[r] .. _first[r] + len(_drafts[r]) (its last token, then its speculative draft).
        self._active: list[SequenceState] = []
        self._owners: list[Request] = []
        self._logits: torch.Tensor | None = None
        self._first: list[int] = []
        self._drafts: list[list[int]] = []
        # The prompt being prefilled (one at a time, into row len(_active)), its request and its number of samples.
        self._prefill: Prefill | None = None
        self._prefill_request: Request | None = None
        self._prefill_samples = 0
        self.completed = 0  # requests whose every sequence has finished

    # ---- any thread ----------------------------------------------------------------------------------------------

    def add(self, request: Request) -> None:
        with self.lock:
            self.waiting.append(request)

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self._active or self._prefill)

    @property
    def compiled(self) -> bool:
        """Whether decode steps run compiled code (asked for, and compiling has not failed)."""
        return self.compile and self.model.compiled_decode().failed is None

    @property
    def slots_in_use(self) -> int:
        """Decoding rows, and the rows of the prompt being prefilled (held from its first chunk). Another thread may
        ask while the rows join: the prefill is read first, so rows are never seen free while they move."""
        prefilling = self._prefill_samples if self._prefill_request is not None else 0
        return len(self._active) + prefilling

    # ---- the thread that steps ---------------------------------------------------------------------------------

    def in_flight(self) -> list[Request]:
        """Requests waiting for slots or decoding, in order."""
        with self.lock:
            return list(dict.fromkeys([*self.waiting, *self._owners]))

    def step(self) -> None:
        """Prefills up to the budget, then one decode step for every live row."""
        with torch.inference_mode():
            self._prefill_some()
            if self._active:
                self._decode()

    def drop_cancelled(self) -> list[Request]:
        """Cancelled requests leave the queue and their rows leave the batch; returns them."""
        gone = [r for r in self.in_flight() if r.cancelled]
        if not gone:
            return []
        with self.lock:
            self.waiting = deque(r for r in self.waiting if not r.cancelled)
        if self._prefill_request is not None and self._prefill_request.cancelled:
            self._prefill = self._prefill_request = None  # abandoned: its row is simply free again
        with torch.inference_mode():
            order = self._remove([r.cancelled for r in self._owners])
            if not order:
                self._logits, self._first, self._drafts = None, [], []
            else:
                self._logits, self._first, self._drafts = keep_rows(self._logits, self._first, self._drafts, order)
        return gone

    def clear(self) -> list[Request]:
        """Forgets everything in flight (after a failed step, or at shutdown); returns those requests."""
        gone = self.in_flight()
        with self.lock:
            self.waiting.clear()
        self._active, self._owners, self._logits, self._first, self._drafts = [], [], None, [], []
        self._prefill = self._prefill_request = None
        return gone

    def _prefill_some(self) -> None:
        """Prefills up to `prefill_budget` prompt tokens, one grid chunk at a time: the prompt being prefilled goes
        on, and when it is done the next waiting prompt starts if its samples fit in the free slots. A prompt's rows
        join the batch once its last chunk is done."""
        spent = 0
        while spent < self.prefill_budget:
            if self._prefill is None:
                with self.lock:
                    request = self.waiting[0] if self.waiting else None
                if request is None:
                    return
                samples = min(request.params.n - request.next_sample, self.slots)
                if len(self._active) + samples > self.slots:
                    return
                # Row len(_active): right after the live rows, so that decode steps (rows 0..live-1) never touch it.
                first_group = request.next_sample == 0
                self._prefill = self.prefix_cache.start(
                    self.model, self.cache, len(self._active), request.prompts[request.next_prompt].ids,
                    keep_hidden=request.prompt_logprobs and first_group)
                self._prefill_request, self._prefill_samples = request, samples
            before = self._prefill.position
            self._prefill.advance()
            spent += self._prefill.position - before
            if self._prefill.done:
                self._join()

    def _join(self) -> None:
        """The prefilled prompt's samples join the batch: its row is copied to the rows after it (the samples share
        one prefill) and each sample starts its own sequence state."""
        prefill, request, n = self._prefill, self._prefill_request, self._prefill_samples
        p, first_sample, ids, row, params = request.next_prompt, request.next_sample, prefill.ids, prefill.row, \
            request.params
        request.cached_tokens += prefill.cached
        hidden = prefill.hidden
        if request.prompt_logprobs and first_sample == 0:
            request.prompt_logprobs_ready(self._prompt_logprobs(p, ids, hidden[0], params.logprobs))
        logits = self.model.lm_head(hidden[:, -1]).float()  # (1, V): only the last position is sampled from
        if n > 1:
            self.cache.copy_rows(row, list(range(row + 1, row + n)))
        end_ids = end_token_set(params, self.eos_id)
        on_token = request.text if request.stream else None
        max_new = min(params.max_new_tokens, self.context - len(ids))
        for j in range(first_sample, first_sample + n):
            self._active.append(SequenceState(p, j, ids, max_new, params, params.seed, self.tokenizer, end_ids,
                                              on_token, request.prompts[p].removed))
            self._owners.append(request)
        self._prefill = self._prefill_request = None  # (after the append: slots_in_use never sees the rows free)
        start = 0 if self._logits is None else self._logits.shape[0]
        self._first += range(start, start + n)
        self._drafts += [[] for _ in range(n)]
        new = logits.expand(n, -1)
        self._logits = new if self._logits is None else torch.cat([self._logits, new])
        request.next_sample += n
        if request.next_sample == params.n:
            request.next_prompt, request.next_sample = request.next_prompt + 1, 0
            if request.next_prompt == len(request.prompts):
                with self.lock:
                    self.waiting.popleft()

    def _prompt_logprobs(self, p: int, ids: list[int], hidden: torch.Tensor, k: int | None) -> PromptLogprobs:
        logp = torch.log_softmax(self.model.lm_head(hidden[:-1]).float(), dim=-1)  # (T-1, V): predicts ids[1:]
        chosen = logp.gather(1, torch.tensor(ids[1:], device=logp.device)[:, None]).squeeze(1).tolist()
        top = None
        if k:
            values, indices = logp.topk(k, dim=-1)
            top = [None] + [dict(zip(i, v)) for i, v in zip(indices.tolist(), values.tolist())]
        return PromptLogprobs(p, [None] + chosen, top)

    def _decode(self) -> None:
        """Samples every live row's next tokens (its draft's, as far as they agree: verify_drafts), then runs one
        forward pass for all rows still going, each fed its last token and, when its request speculates, a new
        draft (forward_drafts).

        With speculative_tokens k > 0, a row is fed its last token plus up to k drafted ones (rows padded to the
        longest draft) and samples position by position exactly as without drafts, going on to the next position
        only while the sampled token equals the draft there; the KV cache forgets the rest. For a point-mass draft
        this is exact speculative sampling: the draft survives with probability p(draft), otherwise the token is
        drawn from p restricted to the other tokens, which is what the textbook accept/resample rule gives. Each
        emitted token also consumes one draw from its row's generator, as without drafts, so greedy and seeded
        outputs are the same tokens with or without speculation, up to float rounding: the verify pass multiplies
        several positions at once, which can round the logits differently (~1e-6) and flip a near-tie."""
        active = self._active
        finished = verify_drafts(active, self._logits, self._first, self._drafts)
        if any(self._drafts):  # forget the keys of rejected drafts: each row's cache holds all its tokens but the last
            self.cache.truncate([len(s.prompt_ids) + len(s.token_ids) - 1 for s in active])
        for s, request, done in zip(active, self._owners, finished):
            if done:
                request.sequences_done += 1
                self.completed += request.sequences_done == request.total
                request.done(s.prompt_index, s.sample_index, s.completion)
        self._remove(finished)
        if not self._active:
            self._logits, self._first, self._drafts = None, [], []
            return
        k = max(s.params.speculative_tokens for s in self._active)
        drafts = draft_tokens(self._active, k, self.cache.max_len) if k else [[] for _ in self._active]
        self._logits, self._first = forward_drafts(self.model, self.cache, self._active, drafts, self.compile)
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


# ---- the synchronous client ------------------------------------------------------------------------------------

class PromptTooLong(UserError):
    """A prompt that does not fit the context (the server's `context_length_exceeded`). by_request: it fits alone,
    but not with the tokens the caller insisted on generating after it (prepare_prompts' max_new_tokens)."""

    def __init__(self, message: str, by_request: bool):
        super().__init__(message)
        self.by_request = by_request


def prepare_prompts(tokenizer, model, prompts: Sequence[Prompt], context: int,
                    max_new_tokens: int | None = None) -> list[HealedPrompt]:
    """Text, token ids or HealedPrompts as HealedPrompts; an empty prompt becomes EOS (it starts a new document, as
    after the EOS separator in training data). A prompt that leaves no room to generate is a PromptTooLong, and so,
    when max_new_tokens is given (the OpenAI APIs: no silent clamp), is one that leaves fewer than max_new_tokens
    positions; without it the engine clamps each sequence to the context. The one home of these rules: generate()
    and every server route call it."""
    if isinstance(prompts, str):
        raise UserError("generate() takes a list of prompts, got a single string")
    out = []
    for i, p in enumerate(prompts):
        if not isinstance(p, HealedPrompt):
            p = HealedPrompt(tokenizer.encode(p) if isinstance(p, str) else [int(t) for t in p])
        if not p.ids:
            eos = eos_id_of(tokenizer, model)
            if eos is None:
                raise UserError(f"prompt {i} is empty and the model has no end-of-text token to start from")
            p = HealedPrompt([eos], p.removed)
        n = len(p.ids)
        if n >= context:
            raise PromptTooLong(f"prompt {i} is {n} tokens; the model's context is {context} tokens, which leaves "
                                "no room to generate", by_request=False)
        if max_new_tokens is not None and n + max_new_tokens > context:
            raise PromptTooLong(f"the model's context is {context} tokens, but {n + max_new_tokens} were requested "
                                f"({n} in prompt {i}, {max_new_tokens} to generate); shorten the prompt or ask "
                                "for fewer tokens", by_request=True)
        out.append(p)
    return out


class _Hooked(Request):
    """A request whose streamed text and finished sequences are also handed to the caller's hooks."""

    def __init__(self, prompts, params, on_token: OnToken | None = None, on_done: OnDone | None = None):
        super().__init__(prompts, params, stream=on_token is not None)
        self.on_token, self.on_done = on_token, on_done

    def text(self, prompt_index: int, sample_index: int, text: str) -> None:
        self.on_token(prompt_index, sample_index, text)

    def done(self, prompt_index: int, sample_index: int, completion: Completion) -> None:
        super().done(prompt_index, sample_index, completion)
        if self.on_done is not None:
            self.on_done(prompt_index, sample_index, completion)


def generate(model, tokenizer, prompts: Sequence[Prompt], params: SamplingParams | None = None,
             on_token: OnToken | None = None, max_batch_size: int | None = None,
             compile: bool = False, on_done: OnDone | None = None) -> list[list[Completion]]:
    """Samples params.n completions for each prompt (text, token ids, or a HealedPrompt: token healing, healing.py,
    then constrains the first tokens to re-spell its removed text, which the completion's text leaves out).
    Returns completions[prompt][sample].

    One Engine runs the request to completion: each prompt is prefilled once and shared by its n samples; all rows
    decode together, each continuing from its own length (no padding); a finished row's slot goes to the next
    waiting prompt. on_token(prompt_index, sample_index, text_delta) streams text that can no longer become part of
    a stop string; the deltas of a sample concatenate to its final text. on_done(prompt_index, sample_index,
    completion) is called as each sample finishes (progress for long calls). max_batch_size bounds the rows decoded
    at once (default: DEFAULT_MAX_ROWS, fewer if a 4 GiB KV cache cannot hold them); results don't depend on it.
    Speculative decoding (params.speculative_tokens) changes the speed, not the tokens: see Engine._decode. compile:
    decode steps run the model's compiled decode step (Engine), which the model keeps for later calls."""
    params = params or SamplingParams()
    healed = prepare_prompts(tokenizer, model, prompts, model.config.block_size)
    if not healed:
        return []
    request = _Hooked(healed, params, on_token, on_done)
    # The cache only needs the longest sequence (drafts may write up to k positions past a row's end), and no more
    # slots than sequences.
    longest = max(len(p.ids) + params.max_new_tokens for p in healed)
    engine = _engine_for(model, tokenizer, request.total, longest + params.speculative_tokens, max_batch_size,
                         compile)
    engine.add(request)
    while engine.busy:
        engine.step()
    return request.completions


def each_prompt_done(n: int, prompts: int, callback: Callable[[int], None]) -> OnDone:
    """An on_done hook that calls callback(prompt_index) once all n samples of that prompt have finished: progress
    bars that count prompts."""
    left = [n] * prompts

    def done(prompt_index: int, _sample_index: int, _completion: Completion) -> None:
        left[prompt_index] -= 1
        if not left[prompt_index]:
            callback(prompt_index)
    return done


def generate_sessions(model, tokenizer, first: Sequence[Prompt], params: Sequence[SamplingParams],
                      next_prompt: Callable[[int, Completion], Prompt | None], max_len: int | None = None,
                      compile: bool = False) -> None:
    """Multi-turn sampling on one engine: session i starts from prompt first[i] with params[i] (n = 1), and each time
    one of its turns finishes, next_prompt(i, completion) gives its next prompt (None: the session has ended), which
    joins the running batch at once. So the sessions' turns keep the batch full, instead of each turn waiting for
    the slowest sequence of a lockstep batch, and a turn gets the tokens it would get alone (each sequence's RNG
    derives from its seed and prompt). max_len: the positions a session can need (default the model's context; a
    long-context model's would leave room for few slots). Prompts must leave room in it for their max_new_tokens
    (eval.context.PromptFitter cuts them to fit), else a sequence is clamped to it."""
    if any(p.n != 1 for p in params):
        raise ValueError("generate_sessions samples one completion per turn (params.n = 1)")
    if not first:
        return
    engine = _engine_for(model, tokenizer, len(first), max_len or model.config.block_size, None, compile)

    def start(i: int, prompt: Prompt) -> None:
        healed = prepare_prompts(tokenizer, model, [prompt], engine.context)
        engine.add(_Hooked(healed, params[i], on_done=lambda _p, _s, completion: advance(i, completion)))

    def advance(i: int, completion: Completion) -> None:
        prompt = next_prompt(i, completion)
        if prompt is not None:
            start(i, prompt)

    for i, prompt in enumerate(first):
        start(i, prompt)
    while engine.busy:
        engine.step()


def _engine_for(model, tokenizer, sequences: int, longest: int, max_batch_size: int | None, compile: bool) -> Engine:
    """An engine for one synchronous call: positions for its longest sequence, slots for all of its sequences up to
    max_batch_size (default: DEFAULT_MAX_ROWS, fewer if the KV budget cannot hold them). No prefill budget: nobody
    waits on a stream here, so every prompt that fits is prefilled before decoding goes on."""
    max_len = min(longest, model.config.block_size)
    dtype = next(model.parameters()).dtype
    slots = min(sequences, max_batch_size or _default_batch_size(model, max_len, dtype))
    return Engine(model, tokenizer, slots=slots, max_len=max_len, prefill_budget=2**62, compile=compile)


def _default_batch_size(model, max_len: int, dtype: torch.dtype) -> int:
    c = model.config
    per_row = 2 * c.n_layer * c.n_kv_heads * c.head_dim * max_len * torch.finfo(dtype).bits // 8
    return max(1, min(DEFAULT_MAX_ROWS, DEFAULT_KV_BUDGET_BYTES // per_row))


# ---- the steps -------------------------------------------------------------------------------------------------

def forward_drafts(model, cache, active: list[SequenceState], drafts: list[list[int]],
                   compiled: bool = False) -> tuple[torch.Tensor, list[int]]:
    """One forward pass for cache rows 0..len(active)-1: each row's last sampled token, then its draft, rows padded
    to the longest draft. Returns the logits of the real positions, (sum of 1 + len(draft), V), and the index of
    each row's first position in them. A pass without drafts is a decode step (GPT.decode: one call of compiled
    code when `compiled`)."""
    device = cache.lengths.device
    width = 1 + max(len(d) for d in drafts)
    last = [s.token_ids[-1] for s in active]
    fed = torch.tensor([[t, *d] + [t] * (width - 1 - len(d)) for t, d in zip(last, drafts)], device=device)
    if width == 1:
        return model(fed, cache=cache, compiled=compiled).flatten(0, 1), list(range(len(active)))
    hidden = model(fed, cache=cache, hidden_only=True)  # (B, width, C)
    if all(len(d) == width - 1 for d in drafts):
        first = list(range(0, len(active) * width, width))
        hidden = hidden.flatten(0, 1)
    else:  # only real positions go through the vocabulary projection, not the padding
        real = torch.tensor([1 + len(d) for d in drafts], device=device)
        hidden = hidden[torch.arange(width, device=device)[None, :] < real[:, None]]
        first = [0, *torch.cumsum(real, 0)[:-1].tolist()]
    return model.lm_head(hidden).float(), first


def verify_drafts(active: list[SequenceState], logits: torch.Tensor, first: list[int],
            drafts: list[list[int]]) -> list[bool]:
    """Samples each row's tokens from its positions' logits, in order, accepting them into the sequence; a row moves
    on to its next position only while the token it sampled equals its draft there (the next position's logits
    assumed that token). One sample_tokens call per position over the rows still going, so every emitted token
    draws from its row's generator exactly once. Returns which rows finished."""
    finished = [False] * len(active)
    going = list(range(len(active)))
    i = 0
    while going:
        if i == 0 and len(going) == logits.shape[0]:
            rows = logits  # every row at its first position, one logits row each: the plain decode step
        else:
            rows = logits[torch.tensor([first[r] + i for r in going], device=logits.device)]
        states = [active[r] for r in going]
        # token healing (rows still re-spelling), then each row's banned control tokens
        allowed = ban(constrain(rows, [s.respeller for s in states]), [s.banned for s in states])
        tokens = sample_tokens(allowed, [s.params for s in states], [s.generator for s in states])
        record_all_logprobs(states, rows, tokens)
        still = []
        for r, s, t in zip(going, states, tokens.tolist()):
            if s.accept(t):
                finished[r] = True
            elif i < len(drafts[r]) and drafts[r][i] == t:
                still.append(r)
            if i > 0 and s.speculation is not None:
                s.speculation.accepted += 1  # position i was reached because draft i-1 was right
        going = still
        i += 1
    return finished


def draft_tokens(active: list[SequenceState], k: int, cache_len: int) -> list[list[int]]:
    """Each row's draft: at most k tokens, none past the row's max_new_tokens (the model's own token comes on top),
    and short enough that padding every row to the longest draft stays within the cache."""
    room = cache_len - max(len(s.prompt_ids) + len(s.token_ids) for s in active)  # positions past the longest row
    out = []
    for s in active:
        if s.drafter is None:  # a row that does not speculate (the server batches requests that differ)
            out.append([])
            continue
        d = s.drafter.draft(min(k, s.params.speculative_tokens, s.max_new - len(s.token_ids) - 1, room))
        s.speculation.passes += 1
        s.speculation.drafted += len(d)
        out.append(d)
    return out


def record_all_logprobs(states: list[SequenceState], logits: torch.Tensor, tokens: torch.Tensor) -> None:
    """record_logprobs for every row that asks, one call per group of rows asking for the same number of
    alternatives (rows of different requests may differ)."""
    for k in {s.params.logprobs for s in states} - {None}:
        rows = [r for r, s in enumerate(states) if s.params.logprobs == k]
        if len(rows) == len(states):
            record_logprobs(states, logits, tokens)
        else:
            index = torch.tensor(rows, device=logits.device)
            record_logprobs([states[r] for r in rows], logits[index], tokens[index])


def record_logprobs(active: list[SequenceState], logits: torch.Tensor, tokens: torch.Tensor) -> None:
    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(1, tokens[:, None]).squeeze(1).tolist()
    k = active[0].params.logprobs
    top = logp.topk(k, dim=-1) if k else None
    for r, s in enumerate(active):
        s.logprobs.append(chosen[r])
        if top is not None:
            s.top_logprobs.append(dict(zip(top.indices[r].tolist(), top.values[r].tolist())))


def compact_rows(cache, finished: list[bool]) -> list[int]:
    """Packs the live rows into cache rows 0..n_live-1 and returns, for each new row, the old row it came from.
    Holes left by finished rows are filled from the end (not by shifting everything down), so each finished row
    costs at most one row copy; that is cheaper than gathering scattered rows at every later step."""
    n_live = finished.count(False)
    holes = [r for r in range(n_live) if finished[r]]
    movers = [r for r in range(n_live, len(finished)) if not finished[r]]
    order = list(range(n_live))
    for hole, mover in zip(holes, movers):
        cache.copy_rows(mover, [hole])
        order[hole] = mover
    return order


def keep_rows(logits: torch.Tensor, first: list[int], drafts: list[list[int]],
              order: list[int]) -> tuple[torch.Tensor, list[int], list[list[int]]]:
    """Pending logits for the rows `order` (old row per new row): each row's positions, first[r] ..
    first[r] + len(drafts[r]), gathered in the new order, with their new first indices and drafts."""
    spans = [range(first[r], first[r] + 1 + len(drafts[r])) for r in order]
    index = torch.tensor([i for span in spans for i in span], device=logits.device)
    return (logits[index], list(accumulate((len(span) for span in spans[:-1]), initial=0)),
            [drafts[r] for r in order])
