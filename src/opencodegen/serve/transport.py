"""What every generating route shares between the scheduler and HTTP: submitting (503 when the queue is full),
waiting for a result while watching for the client to go away (which cancels the job and frees its slots), streaming
server-sent events with the same guarantee, and the HTTP form of a failed job."""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Awaitable, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse

from ..engine import Prompt, PromptTooLong, prepare_prompts
from ..errors import UserError
from ..healing import HealedPrompt
from ..sampling import SamplingParams
from .protocol import APIError, error_body
from .scheduler import Job, QueueFull, RequestTimeout, Scheduler, SchedulerClosed

T = TypeVar("T")


def fit_prompts(state, prompts: list[Prompt], max_tokens: int | None, param: str = "prompt") -> list[HealedPrompt]:
    """engine.prepare_prompts (an empty prompt becomes EOS; a prompt plus max_tokens must fit the context) with its
    errors as 400s: context_length_exceeded names max_tokens when the prompt fits alone, else `param`."""
    scheduler = state.scheduler
    try:
        return prepare_prompts(state.tokenizer, scheduler.model, prompts, scheduler.context, max_tokens)
    except PromptTooLong as e:
        raise APIError(400, str(e), param="max_tokens" if e.by_request else param,
                       code="context_length_exceeded") from None
    except UserError as e:
        raise APIError(400, str(e), param=param) from None


def submit(scheduler: Scheduler, prompts: list, params: SamplingParams, *, stream: bool,
           prompt_logprobs: bool = False) -> Job:
    try:
        return scheduler.submit(prompts, params, stream=stream, prompt_logprobs=prompt_logprobs)
    except QueueFull as e:
        raise APIError(503, f"the server is busy: {e}; retry later", type="server_error", code="queue_full") from None
    except SchedulerClosed as e:
        raise APIError(503, str(e), type="server_error", code="shutting_down") from None


def job_error(error: Exception) -> APIError:
    if isinstance(error, RequestTimeout):
        # 408 rather than a 5xx: the server is healthy, this request asked for more than its time allows.
        return APIError(408, str(error), type="timeout_error", code="request_timeout")
    if isinstance(error, SchedulerClosed):
        return APIError(503, str(error), type="server_error", code="shutting_down")
    return APIError(500, f"generation failed: {error!r}", type="server_error", code="internal_error")


async def until_disconnect(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read, so receive() only reports that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Awaits `work`; if the client disconnects first, `work` is cancelled (whatever it awaits, such as a job's
    result, is cancelled with it) and a 499 APIError is raised. Read the request body before calling this: the watcher
    consumes the request's messages."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            # Nobody is left to read the answer (499: nginx's "client closed request").
            raise APIError(499, "the client closed the connection", code="client_closed_request")
        return task.result()
    finally:
        for t in (task, watcher):
            t.cancel()


async def result_or_cancel(request: Request, job: Job, work: Awaitable[T]) -> T:
    """Awaits `work` (the job's result); if the client disconnects first, the job is cancelled (its slots are
    freed at the next step). A failed job becomes its APIError."""
    try:
        return await cancel_on_disconnect(request, work)
    except APIError:
        raise
    except Exception as e:  # the job failed in the model thread
        raise job_error(e) from None
    finally:
        job.cancel()


def sse(data: Any) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


class JobStream(StreamingResponse):
    """Server-sent events of one job. However the response ends (finished, the client gone, cancelled before the
    first chunk), the job is cancelled afterwards, which frees its slots (a no-op once it has finished). A failure
    after the headers went out (the status is already 200) becomes an OpenAI-shaped error event followed by `end`
    (the stream's usual last event, e.g. `data: [DONE]`), so a client reading up to that event stops cleanly: the
    openai package raises APIError with the error body instead of waiting or reporting a broken connection."""

    def __init__(self, job: Job, chunks: AsyncIterator[str], end: str | None = None):
        super().__init__(self._guarded(chunks, end), media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache"})
        self.job = job

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()

    @staticmethod
    async def _guarded(chunks: AsyncIterator[str], end: str | None) -> AsyncIterator[str]:
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as e:  # the job failed in the model thread, or building a chunk failed
            err = job_error(e)
            yield sse(error_body(err.message, type=err.type, code=err.code))
            if end is not None:
                yield end
