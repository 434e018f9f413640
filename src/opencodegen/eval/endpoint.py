"""Samples from any OpenAI-compatible server (`ocg serve`, vLLM, llama.cpp's server, a hosted API), for every
`ocg eval` benchmark that samples: a text prompt goes to `/v1/completions`, a conversation (`--chat`, instruct.py) to
`/v1/chat/completions`, through the same requests, retries and journal.

- Requests run `concurrency` at a time. 429, 5xx and dropped connections are retried with exponential backoff
  (a server's Retry-After is honoured); any other 4xx is a UserError carrying the server's own message, because
  asking again cannot fix a bad request.
- Every answer is appended to a journal (`endpoint_responses.jsonl` in the output directory) as soon as it
  arrives, keyed by the request body. A rerun of the same command finds its answers there and asks the server only
  for the rest, so an interrupted run resumes where it stopped (multi-turn MTPB too: a turn's prompt holds the
  earlier turns' answers, which come back from the journal unchanged).
- A server that returns fewer choices than `n` (llama.cpp answers one) is asked again for the rest.
- Fill-in-the-middle goes through `suffix` (ocg serve and OpenAI's API take it) or, for servers that reject it
  (vLLM, llama.cpp), through the model's own FIM tokens in the prompt (FIM_TEXT_FORMATS).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import httpx

from ..errors import UserError
from ..progress import log, progress_task
from ..prompt_format import FIM_TEXT_FORMATS
from .journal import Journal

JOURNAL = "endpoint_responses.jsonl"
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class Choice:
    """One completion as the server returned it. n_tokens is known only when the request asked for one choice
    (usage counts the tokens of all choices together)."""

    text: str
    finish_reason: str | None
    n_tokens: int | None = None


@dataclass(frozen=True)
class Request:
    """A text prompt (to /v1/completions), or with `messages` ((role, content) pairs) a conversation (to
    /v1/chat/completions; `prompt` and `suffix` are then unused)."""
    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    n: int = 1
    stop: tuple[str, ...] = ()
    suffix: str | None = None
    seed: int | None = None
    messages: tuple[tuple[str, str], ...] | None = None


def api_base(url: str) -> str:
    """The API's base (.../v1) from the server's root, its /v1, or the full address of either route."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--endpoint must be an http(s) URL such as http://localhost:8000/v1, not {url!r}")
    for route in ("/chat/completions", "/completions"):
        if url.endswith(route):
            return url[:-len(route)]
    return url if url.endswith("/v1") else url + "/v1"


def completions_url(url: str) -> str:
    return api_base(url) + "/completions"


def chat_url(url: str) -> str:
    return api_base(url) + "/chat/completions"


def fim_prompt(prefix: str, suffix: str, fim_format: str) -> tuple[str, str | None]:
    """(prompt, suffix field) for an infilling request in `fim_format` ("suffix" or a FIM_TEXT_FORMATS name)."""
    if fim_format == "suffix":
        return prefix, suffix
    if fim_format not in FIM_TEXT_FORMATS:
        raise UserError(f"--fim-format must be 'suffix' or one of {', '.join(FIM_TEXT_FORMATS)}, not {fim_format!r}")
    return FIM_TEXT_FORMATS[fim_format].format(prefix=prefix, suffix=suffix), None


def error_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI and llama.cpp nest them under "error", older vLLM puts them at the top."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return json.dumps(body)[:500]


def _choice_text(choice: dict) -> str:
    """A completion's `text`, or a chat completion's `message.content` (null, as servers send for an answer that is
    only a refusal or tool calls, is an empty answer)."""
    if "message" in choice:
        content = choice["message"]["content"]
        return "" if content is None else str(content)
    return str(choice["text"])


def parse_choices(body: dict, n_requested: int) -> list[Choice]:
    """Choices in index order from a completions or chat completions response body."""
    try:
        choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
        texts = [(_choice_text(c), c.get("finish_reason")) for c in choices]
    except (KeyError, TypeError, AttributeError):
        raise UserError("the endpoint's answer is not a completions or chat completions response: "
                        f"{json.dumps(body)[:300]}") from None
    usage = body.get("usage") or {}
    n_tokens = usage.get("completion_tokens") if len(texts) == 1 and n_requested == 1 else None
    return [Choice(text, reason, n_tokens) for text, reason in texts]


class Endpoint:
    """A client for one server. `journal_dir` (the run's output directory) holds the answers for resuming;
    `backoff` is the first retry's wait in seconds (doubled each time, at most `max_backoff`); `transport` replaces
    the network (httpx's MockTransport in tests)."""

    def __init__(self, url: str, *, api_key: str | None = None, model_name: str | None = None,
                 concurrency: int = 4, retries: int = 6, backoff: float = 1.0, max_backoff: float = 60.0,
                 timeout: float = 600.0, transport: httpx.BaseTransport | None = None):
        if concurrency < 1:
            raise UserError(f"--concurrency must be >= 1, not {concurrency}")
        self.url, self.chat_url = completions_url(url), chat_url(url)
        self.model_name = model_name
        self.concurrency, self.retries, self.backoff, self.max_backoff = concurrency, retries, backoff, max_backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(headers=headers, timeout=timeout, transport=transport)
        self.journal: Journal | None = None
        self.answers: dict[str, list[Choice]] = {}  # without a journal (no resume_from), answers live here only
        self._lock = threading.Lock()

    def __enter__(self) -> "Endpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.http.close()

    # ------------------------------------------------------------------------------------------ journal
    def resume_from(self, out: Path) -> None:
        """Reads the answers a previous run of this command left in `out`; new answers are appended there."""
        self.journal = Journal(Path(out) / JOURNAL)
        self.answers = {key: [Choice(**c) for c in values] for key, values in self.journal.values.items()}
        if self.answers:
            log(f"endpoint: resuming with {len(self.journal)} completions from {self.journal.path}")

    def _record(self, key: str, choices: list[Choice]) -> None:
        with self._lock:
            self.answers.setdefault(key, []).extend(choices)
        if self.journal is not None:
            self.journal.add(key, [c.__dict__ for c in choices])

    # ------------------------------------------------------------------------------------------ requests
    def body(self, r: Request) -> dict:
        asked = {"messages": [{"role": role, "content": text} for role, text in r.messages]} \
            if r.messages is not None else {"prompt": r.prompt}
        body = {**asked, "max_tokens": r.max_tokens, "temperature": r.temperature, "top_p": r.top_p, "n": r.n}
        if self.model_name:
            body["model"] = self.model_name
        if r.stop:
            body["stop"] = list(r.stop)
        if r.suffix is not None:
            body["suffix"] = r.suffix
        if r.seed is not None:
            body["seed"] = r.seed
        return body

    def _post(self, body: dict) -> dict:
        url = self.chat_url if "messages" in body else self.url
        for attempt in range(self.retries + 1):
            try:
                response = self.http.post(url, json=body)
            except httpx.TransportError as e:
                problem, wait = f"{type(e).__name__}: {e}", None
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        problem, wait = f"200 with a body that is not JSON: {response.text[:200]!r}", None
                elif response.status_code in RETRY_STATUSES:
                    problem, wait = f"{response.status_code} {error_message(response)}", _retry_after(response)
                else:
                    hint = (" (this server does not take `suffix`: give --fim-format with the model's FIM tokens, "
                            f"one of {', '.join(FIM_TEXT_FORMATS)})" if "suffix" in body and
                            "suffix" in error_message(response).lower() else "")
                    raise UserError(f"{url} refused the request: {response.status_code} "
                                    f"{error_message(response)}{hint}")
            if attempt == self.retries:
                raise UserError(f"{url} failed {self.retries + 1} times; last: {problem}")
            wait = min(self.max_backoff, wait if wait is not None else self.backoff * 2 ** attempt)
            log(f"endpoint: {problem}; retry {attempt + 1}/{self.retries} in {wait:.1f} s")
            time.sleep(wait)
        raise AssertionError("unreachable")

    def key(self, r: Request) -> str:
        return hashlib.sha256(json.dumps(self.body(r), sort_keys=True).encode()).hexdigest()

    def _complete_one(self, r: Request) -> list[Choice]:
        body, key = self.body(r), self.key(r)
        while len(self.answers.get(key, [])) < r.n:
            missing = r.n - len(self.answers.get(key, []))
            # Ask for what is missing; a different seed per top-up keeps repeated draws independent.
            extra = {"n": missing} if missing != r.n else {}
            if extra and r.seed is not None:
                extra["seed"] = r.seed + r.n - missing
            answer = parse_choices(self._post({**body, **extra}), missing)
            if not answer:
                raise UserError(f"{self.url if r.messages is None else self.chat_url} answered with no choices")
            self._record(key, answer[:missing])
        return self.answers[key][: r.n]

    def complete(self, requests: Sequence[Request], progress: str | None = None, unit: str = "request"
                 ) -> list[list[Choice]]:
        """The choices of each request, in order; `concurrency` requests in flight at a time; with `progress`, a
        progress row of that name with rate and ETA (callers that show their own leave it out). Equal requests
        are sent once and share the answer (with a seed, or greedy, a server gives them the same one)."""
        keys = [self.key(r) for r in requests]
        unique = {k: r for k, r in zip(keys, requests)}
        copies = Counter(keys)
        answers: dict[str, list[Choice]] = {}
        bar = progress_task(progress, total=len(requests), unit=unit) if progress else contextlib.nullcontext()
        with bar as task, ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._complete_one, r): k for k, r in unique.items()}
            try:
                for future in as_completed(futures):
                    answers[futures[future]] = future.result()
                    if task is not None:
                        task.advance(copies[futures[future]])
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return [answers[k] for k in keys]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """The text before the first stop string: a server may apply only some of them (OpenAI's API takes four)."""
    cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return text[: min(cuts)] if cuts else text


def sample_rows(endpoint: Endpoint, items: Sequence[tuple[str, str | Sequence[Mapping[str, str]], str | None]], n: int,
                params, progress: str) -> list[dict]:
    """n samples for each (task_id, prompt, suffix field) as eval sample rows ({"task_id", "completion",
    "completion_id", "finish_reason", "n_tokens"}); a prompt that is a conversation ([{role, content}]) goes to the
    chat route. params: the run's SamplingParams."""
    requests = [Request(prompt, params.max_new_tokens, params.temperature, params.top_p, n, tuple(params.stop),
                        suffix, params.seed) if isinstance(prompt, str) else
                Request("", params.max_new_tokens, params.temperature, params.top_p, n, tuple(params.stop), None,
                        params.seed, tuple((m["role"], m["content"]) for m in prompt))
                for _, prompt, suffix in items]
    rows = []
    for (task_id, _, _), choices in zip(items, endpoint.complete(requests, progress, unit="task")):
        for j, c in enumerate(choices):
            rows.append({"task_id": task_id, "completion": cut_at_stops(c.text, params.stop), "completion_id": j,
                         "finish_reason": c.finish_reason, "n_tokens": c.n_tokens})
    return rows
