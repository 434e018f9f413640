"""POST /v1/completions, OpenAI's legacy completions API: prompts as text or token ids, `suffix` for fill-in-the-
middle (which vLLM and llama.cpp reject), n samples, stop strings, seed, echo, logprobs, and streaming as server-sent
events ending with `data: [DONE]`.

Deviations, all in the direction of saying no rather than silently ignoring: best_of other than n, non-zero penalties
and logit_bias are 400s; a prompt plus max_tokens must fit the context (as OpenAI, no silent clamp). Streamed
responses carry each choice's logprobs (completion tokens only) in its last chunk, the one with finish_reason.

Token healing (healing.py) backs up the end of each text prompt (of the prefix, with suffix) unless the request
says "token_healing": false; prompts given as token ids are taken as they are. The re-spelled text is not part of a
choice's text; its tokens are in the logprobs, where the first one's text_offset lies that many characters before
the choice's text (the prompt tokens' logprobs, with echo, cover the backed-up prompt)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from fastapi import Request

from ..errors import UserError
from ..sampling import Completion, SamplingParams
from ..healing import HealedPrompt, heal_tail
from ..prompt_format import fim_end_ids
from .prompts import healed_fim
from .protocol import APIError, CompletionRequest
from ..engine import PromptLogprobs
from .scheduler import SequenceDone, TextDelta
from .state import ServerState
from .transport import JobStream, fit_prompts, result_or_cancel, sse, submit

MAX_STOPS = 16
DONE = "data: [DONE]\n\n"  # the last event of every stream, also after an error event


@dataclass
class Prepared:
    texts: list[str]  # each prompt as text (what echo returns)
    ids: list[list[int]]  # what the model reads: backed up by token healing
    removed: list[bytes]  # what token healing removed from each prompt's end (b"": nothing)
    params: SamplingParams

    def prompts(self) -> list[HealedPrompt]:
        return [HealedPrompt(x, r) for x, r in zip(self.ids, self.removed)]

    def respelled_chars(self, i: int) -> int:
        return len(self.removed[i].decode("utf-8"))


def prepare(req: CompletionRequest, state: ServerState) -> Prepared:
    """Checks what the request model cannot (server limits, the context) and renders the prompts to token ids."""
    state.check_model(req.model)
    tok, slots = state.tokenizer, state.scheduler.slots
    if req.best_of is not None and req.best_of != req.n:
        raise APIError(400, f"best_of={req.best_of} is not supported (only best_of == n)", param="best_of")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(req, name):
            raise APIError(400, f"{name} is not supported (only 0)", param=name)
    if req.logit_bias:
        raise APIError(400, "logit_bias is not supported", param="logit_bias")
    if req.n > slots:
        raise APIError(400, f"n={req.n} is too large: this server decodes at most {slots} sequences at once",
                       param="n")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stops) > MAX_STOPS or any(s == "" for s in stops):
        raise APIError(400, f"stop: at most {MAX_STOPS} non-empty strings", param="stop")

    if isinstance(req.prompt, str):
        prompts = [req.prompt]
    elif not req.prompt:
        raise APIError(400, "prompt: an empty list has no prompt to complete", param="prompt")
    elif isinstance(req.prompt[0], int):
        prompts = [req.prompt]  # one prompt given as token ids
    else:
        prompts = list(req.prompt)
    texts, ids = [], []
    for p in prompts:
        if isinstance(p, list):
            bad = [t for t in p if not 0 <= t < state.vocab_size]
            if bad:
                raise APIError(400, f"prompt: token id {bad[0]} is outside the vocabulary (0..{state.vocab_size - 1})",
                               param="prompt")
            texts.append(tok.decode(p))
            ids.append(list(p))
        else:
            texts.append(p)
            ids.append(tok.encode(p))
    stop_token_ids: tuple[int, ...] = ()
    if req.suffix is not None:
        if any(isinstance(p, list) for p in prompts):
            raise APIError(400, "suffix: fill-in-the-middle needs text prompts, not token ids", param="suffix")
        if req.echo:
            raise APIError(400, "echo cannot be combined with suffix", param="echo")
        suffix = tok.encode(req.suffix)
        healed = [healed_fim(tok, x, suffix, heal=req.token_healing) for x in ids]
        ids, removed = [h.ids for h in healed], [h.removed for h in healed]
        stop_token_ids = fim_end_ids(tok)
    elif req.token_healing:
        healed = [heal_tail(tok, x) if isinstance(p, str) else (x, b"") for p, x in zip(prompts, ids)]
        ids, removed = [list(x) for x, _ in healed], [r for _, r in healed]
    else:
        removed = [b""] * len(ids)
    prompts = fit_prompts(state, [HealedPrompt(x, r) for x, r in zip(ids, removed)], req.max_tokens)
    ids, removed = [p.ids for p in prompts], [p.removed for p in prompts]
    try:
        params = SamplingParams(max_new_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                                stop=tuple(stops), seed=req.seed, n=req.n, logprobs=req.logprobs,
                                stop_token_ids=stop_token_ids,
                                speculative_tokens=state.speculation(req.speculative_tokens))
    except UserError as e:
        raise APIError(400, str(e)) from None
    return Prepared(texts, ids, removed, params)


async def create_completion(req: CompletionRequest, request: Request, state: ServerState):
    prep = prepare(req, state)
    want_prompt_logprobs = req.echo and req.logprobs is not None and not req.stream
    job = submit(state.scheduler, prep.prompts(), prep.params, stream=req.stream,
                 prompt_logprobs=want_prompt_logprobs)
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": state.model_name}
    n = prep.params.n
    prompt_tokens = sum(map(len, prep.ids))
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return JobStream(job, _chunks(state, req, prep, job, head, include_usage), end=DONE)
    completions, prompt_logprobs = await result_or_cancel(request, job, job.result())
    choices = []
    for i, samples in enumerate(completions):
        for j, c in enumerate(samples):
            echo = prep.texts[i] if req.echo else ""
            logprobs = None
            if req.logprobs is not None:
                logprobs = logprobs_block(state.tokenizer, c, prompt_logprobs.get(i), prep.ids[i],
                                          len(echo) - prep.respelled_chars(i))
            choices.append({"index": i * n + j, "text": echo + c.text, "logprobs": logprobs,
                            "finish_reason": c.finish_reason})
    generated = sum(len(c.token_ids) for samples in completions for c in samples)
    return {**head, "choices": choices, "usage": usage(prompt_tokens, generated, job.cached_tokens)}


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict:
    """OpenAI's usage object; prompt_tokens_details.cached_tokens counts prompt tokens the prefix cache supplied."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens}}


async def _chunks(state: ServerState, req: CompletionRequest, prep: Prepared, job, head: dict, include_usage: bool):
    n = prep.params.n

    def chunk(index: int, text: str, finish_reason: str | None = None, logprobs: dict | None = None) -> str:
        return sse({**head, "choices": [{"index": index, "text": text, "logprobs": logprobs,
                                         "finish_reason": finish_reason}]})

    if req.echo:
        for i, text in enumerate(prep.texts):
            for j in range(n):
                yield chunk(i * n + j, text)
    generated = 0
    async for event in job.events():
        if isinstance(event, TextDelta):
            yield chunk(event.prompt_index * n + event.sample_index, event.text)
        elif isinstance(event, SequenceDone):
            c = event.completion
            generated += len(c.token_ids)
            logprobs = None
            if req.logprobs is not None:
                i = event.prompt_index
                logprobs = logprobs_block(state.tokenizer, c, None, prep.ids[i], -prep.respelled_chars(i))
            yield chunk(event.prompt_index * n + event.sample_index, "", c.finish_reason, logprobs)
    if include_usage:
        yield sse({**head, "choices": [], "usage": usage(sum(map(len, prep.ids)), generated, job.cached_tokens)})
    yield DONE


def logprobs_block(tok, c: Completion, prompt: PromptLogprobs | None, prompt_ids: list[int], offset: int) -> dict:
    """OpenAI's logprobs object: tokens as text, their log-probabilities, the top alternatives by token text, and
    each token's character offset in the choice's text. With echo, the prompt's tokens come first (the first one has
    no log-probability). Alternatives that decode to the same text (bytes of a split character) keep the likeliest."""
    ids, lps = list(c.token_ids), list(c.logprobs or [])
    tops = list(c.top_logprobs) if c.top_logprobs is not None else None
    start = offset
    if prompt is not None:
        ids, lps = prompt_ids + ids, prompt.logprobs + lps
        tops = None if tops is None else prompt.top_logprobs + tops
        start = 0
    tokens = [tok.decode([t]) for t in ids]
    offsets = []
    for text in tokens:
        offsets.append(start)
        start += len(text)
    top = None if tops is None else [None if d is None else _by_text(tok, d) for d in tops]
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": top, "text_offset": offsets}


def _by_text(tok, top: dict[int, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t, v in sorted(top.items(), key=lambda kv: -kv[1]):
        out.setdefault(tok.decode([t]), v)
    return out
