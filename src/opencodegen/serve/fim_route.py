"""POST /v1/fim/completions in Mistral's (Codestral's) shape, the request Continue's autocomplete sends:
{model, prompt (the code before the cursor), suffix (after it), max_tokens, temperature, top_p, stop, stream,
random_seed}. The answer is a chat completion, {"id", "object": "chat.completion", "model", "created",
"choices": [{"index": 0, "message": {"role": "assistant", "content": middle}, "finish_reason"}], "usage"};
streamed, "chat.completion.chunk" events with choices[0].delta.content, ending with `data: [DONE]`.

The request is checked and rendered exactly as a /v1/completions request with the same prompt and suffix (the same
PSM prompt, token healing, end tokens and context checks: completions.prepare), so both routes give the same middle
for a seed."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

from fastapi import Request

from .completions import DONE, prepare, usage
from .protocol import APIError, CompletionRequest, FimRequest
from .scheduler import SequenceDone, TextDelta
from .state import ServerState
from .transport import JobStream, result_or_cancel, sse, submit


async def create_fim(req: FimRequest, request: Request, state: ServerState):
    if req.min_tokens:
        raise APIError(400, f"min_tokens={req.min_tokens} is not supported (only 0)", param="min_tokens")
    if req.random_seed is not None and req.seed is not None and req.random_seed != req.seed:
        raise APIError(400, "random_seed and seed disagree; give one", param="random_seed")
    context = state.scheduler.context
    completion = CompletionRequest(
        model=req.model, prompt=req.prompt, suffix=req.suffix, max_tokens=req.max_tokens or 1,
        temperature=req.temperature, top_p=req.top_p, stop=req.stop,
        seed=req.random_seed if req.random_seed is not None else req.seed, token_healing=req.token_healing,
        speculative_tokens=req.speculative_tokens, frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty)
    prep = prepare(completion, state)
    prompt_tokens = len(prep.ids[0])
    if req.max_tokens is None:  # Mistral's default: as many as the context leaves
        prep.params = replace(prep.params, max_new_tokens=context - prompt_tokens)
    job = submit(state.scheduler, prep.prompts(), prep.params, stream=req.stream)
    head = {"id": f"fim-{uuid.uuid4().hex}", "created": int(time.time()), "model": state.model_name}
    if not req.stream:
        completions, _ = await result_or_cancel(request, job, job.result())
        c = completions[0][0]
        return {**head, "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text, "tool_calls": None},
                             "finish_reason": c.finish_reason}],
                "usage": usage(prompt_tokens, len(c.token_ids), job.cached_tokens)}

    def chunk(delta: dict, finish_reason: str | None = None, **extra) -> str:
        return sse({**head, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra})

    async def events():
        yield chunk({"role": "assistant", "content": ""})
        async for event in job.events():
            if isinstance(event, TextDelta):
                yield chunk({"content": event.text})
            elif isinstance(event, SequenceDone):
                c = event.completion
                yield chunk({"content": ""}, c.finish_reason,
                            usage=usage(prompt_tokens, len(c.token_ids), job.cached_tokens))
        yield DONE

    return JobStream(job, events(), end=DONE)
