"""POST /infill in llama.cpp's shape, the request editor plugins (llama.vscode, llama.vim, Continue's llama.cpp
provider) send: input_prefix / input_suffix around the cursor, input_extra [{filename, text}] for context from other
files, rendered as a repository-level FIM prompt. The answer is llama.cpp's: {"content", "stop", "stop_type",
"stopped_eos", "stopped_word", "stopped_limit", "tokens_predicted", "tokens_evaluated", "tokens_cached",
"truncated"} (tokens_cached: prompt tokens the prefix cache supplied). stop_type is "eos" (an end token), "word" (a
stop string), "limit" (n_predict) or "time" (t_max_predict_ms ran out after a line break; llama.cpp reports that as
"limit"). n_predict 0 reads the prompt into the prefix cache and answers an empty "content", as llama.vscode's
cache-warming requests expect. Streamed, one `data: {"content": ..., "stop": false}` event per piece and a last one
with "stop": true (llama.cpp sends no [DONE] here). Token healing (healing.py) is on unless the request says
"token_healing": false; the text it re-spells before the cursor is not part of "content".

A prompt too long for the context is cut rather than refused, as editors expect from llama.cpp: the oldest extra
files go first, then the far ends of prefix and suffix; "truncated" says so."""

from __future__ import annotations

from fastapi import Request

from ..errors import UserError
from ..sampling import Completion, SamplingParams
from ..prompt_format import fim_end_ids
from .prompts import repo_infill_ids
from .protocol import APIError, InfillRequest
from .scheduler import SequenceDone, TextDelta
from .state import ServerState
from .transport import JobStream, result_or_cancel, sse, submit


async def create_infill(req: InfillRequest, request: Request, state: ServerState):
    state.check_model(req.model)
    tok, context = state.tokenizer, state.scheduler.context
    warm_only = req.n_predict == 0
    budget = req.n_predict if req.n_predict > 0 else 1 if warm_only else context // 4
    if budget >= context:
        raise APIError(400, f"n_predict={budget} is beyond the model's context of {context} tokens", param="n_predict",
                       code="context_length_exceeded")
    if any(s == "" for s in req.stop):
        raise APIError(400, "stop: strings must not be empty", param="stop")
    prompt, truncated = repo_infill_ids(tok, repo=req.repo_name, files=[(f.filename, f.text) for f in req.input_extra],
                                        path=req.filename, prefix=req.input_prefix, suffix=req.input_suffix,
                                        typed=req.prompt, room=context - budget, heal=req.token_healing)
    ends = fim_end_ids(tok)
    try:
        params = SamplingParams(max_new_tokens=budget, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                                stop=tuple(req.stop), seed=None if req.seed in (None, -1) else req.seed,
                                stop_token_ids=ends,
                                max_time_ms=req.t_max_predict_ms if req.t_max_predict_ms > 0 else None,
                                speculative_tokens=state.speculation(req.speculative_tokens))
    except UserError as e:
        raise APIError(400, str(e)) from None
    job = submit(state.scheduler, [prompt], params, stream=req.stream)
    end_ids = set(ends) | {state.scheduler.eos_id}

    def summary(c: Completion) -> dict:
        predicted = 0 if warm_only else len(c.token_ids)
        stop_type = ("limit" if c.finish_reason == "length" or warm_only else "time" if c.finish_reason == "time"
                     else "eos" if c.token_ids[-1] in end_ids else "word")
        return {"stop": True, "stop_type": stop_type, "stopped_eos": stop_type == "eos",
                "stopped_word": stop_type == "word", "stopped_limit": stop_type == "limit",
                "model": state.model_name,
                "tokens_predicted": predicted, "tokens_evaluated": len(prompt.ids), "tokens_cached": job.cached_tokens,
                "truncated": truncated}

    if not req.stream:
        completions, _ = await result_or_cancel(request, job, job.result())
        c = completions[0][0]
        return {"content": "" if warm_only else c.text, **summary(c)}

    async def events():
        async for event in job.events():
            if isinstance(event, TextDelta) and not warm_only:
                yield sse({"content": event.text, "stop": False})
            elif isinstance(event, SequenceDone):
                yield sse({"content": "", **summary(event.completion)})

    return JobStream(job, events())
