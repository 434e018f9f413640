"""POST /v1/chat/completions, OpenAI's chat API: {model, messages, max_tokens, temperature, top_p, n, stop, seed,
stream, stream_options}. The conversation is rendered in the model's chat template (prompt_format.chat_pieces, the
form of tokenizer_config.json's chat_template) and each answer ends at <|im_end|>. The answer is
{"object": "chat.completion", "choices": [{"index", "message": {"role": "assistant", "content"}, "finish_reason"}],
"usage"}; streamed, "chat.completion.chunk" events (a first delta with the role, then content deltas, then an empty
delta with the finish_reason per choice, then the usage when stream_options.include_usage), ending `data: [DONE]`.

A model whose tokenizer has no chat template in this form gets a 400 that names /v1/completions instead. Tools,
logprobs, penalties and logit_bias are 400s rather than silently ignored."""

from __future__ import annotations

import time
import uuid

from fastapi import Request

from ..errors import UserError
from ..prompt_format import chat_format, chat_messages, chat_prompt, chat_unsupported_reason
from ..sampling import SamplingParams
from .completions import DONE, MAX_STOPS, usage
from .protocol import APIError, ChatRequest
from .scheduler import SequenceDone, TextDelta
from .state import ServerState
from .transport import JobStream, fit_prompts, result_or_cancel, sse, submit


def prepare_chat(req: ChatRequest, state: ServerState) -> tuple[list[int], SamplingParams]:
    """The prompt ids and sampling params of a chat request, after every check."""
    state.check_model(req.model)
    tok, context = state.tokenizer, state.scheduler.context
    fmt = chat_format(tok)
    if fmt is None:
        raise APIError(400, f"{chat_unsupported_reason(tok)}: it is not a chat model; use /v1/completions (plain "
                            "completion, or fill in the middle with suffix) instead", param="messages",
                       code="chat_template_missing")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(req, name):
            raise APIError(400, f"{name} is not supported (only 0)", param=name)
    if req.logit_bias:
        raise APIError(400, "logit_bias is not supported", param="logit_bias")
    if req.logprobs:
        raise APIError(400, "logprobs is not supported by /v1/chat/completions (/v1/completions has them)",
                       param="logprobs")
    if req.tools:
        raise APIError(400, "tools are not supported: the chat template renders system, user and assistant turns",
                       param="tools")
    if req.n > state.scheduler.slots:
        raise APIError(400, f"n={req.n} is too large: this server decodes at most {state.scheduler.slots} sequences "
                            "at once", param="n")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stops) > MAX_STOPS or any(s == "" for s in stops):
        raise APIError(400, f"stop: at most {MAX_STOPS} non-empty strings", param="stop")
    try:
        ids = chat_prompt(tok, fmt, chat_messages(req.messages))
    except UserError as e:
        raise APIError(400, str(e), param="messages") from None
    if req.max_tokens is not None and req.max_completion_tokens is not None \
            and req.max_tokens != req.max_completion_tokens:
        raise APIError(400, "max_tokens and max_completion_tokens disagree; give one", param="max_tokens")
    wanted = req.max_tokens or req.max_completion_tokens
    ids = fit_prompts(state, [ids], wanted, param="messages")[0].ids
    try:
        params = SamplingParams(max_new_tokens=wanted or context - len(ids), temperature=req.temperature,
                                top_p=req.top_p, stop=tuple(stops), seed=req.seed, n=req.n,
                                stop_token_ids=(fmt.im_end,),
                                speculative_tokens=state.speculation(req.speculative_tokens))
    except UserError as e:
        raise APIError(400, str(e)) from None
    return ids, params


async def create_chat(req: ChatRequest, request: Request, state: ServerState):
    ids, params = prepare_chat(req, state)
    job = submit(state.scheduler, [ids], params, stream=req.stream)
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": state.model_name}
    if not req.stream:
        completions, _ = await result_or_cancel(request, job, job.result())
        choices = [{"index": j, "message": {"role": "assistant", "content": c.text}, "logprobs": None,
                    "finish_reason": c.finish_reason} for j, c in enumerate(completions[0])]
        generated = sum(len(c.token_ids) for c in completions[0])
        return {**head, "object": "chat.completion", "choices": choices,
                "usage": usage(len(ids), generated, job.cached_tokens)}
    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    def chunk(index: int, delta: dict, finish_reason: str | None = None) -> str:
        return sse({**head, "object": "chat.completion.chunk",
                    "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]})

    async def events():
        for j in range(params.n):
            yield chunk(j, {"role": "assistant", "content": ""})
        generated = 0
        async for event in job.events():
            if isinstance(event, TextDelta):
                yield chunk(event.sample_index, {"content": event.text})
            elif isinstance(event, SequenceDone):
                generated += len(event.completion.token_ids)
                yield chunk(event.sample_index, {}, event.completion.finish_reason)
        if include_usage:
            yield sse({**head, "object": "chat.completion.chunk", "choices": [],
                       "usage": usage(len(ids), generated, job.cached_tokens)})
        yield DONE

    return JobStream(job, events(), end=DONE)
