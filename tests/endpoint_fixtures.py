"""Completions and chat completions response bodies in the shapes vLLM's and llama.cpp's OpenAI-compatible servers
send, written for these tests from their documented and observed wire formats (field sets and error shapes as each
server returns them), and a fake server (httpx.MockTransport) that answers with them."""

from __future__ import annotations

import json
from typing import Callable

import httpx


def vllm_body(texts: list[str], finish_reasons: list[str] | None = None, prompt_tokens: int = 12) -> dict:
    """vLLM's /v1/completions: one choice per sample, `stop_reason` beside `finish_reason`, usage over all choices."""
    finish_reasons = finish_reasons or ["stop"] * len(texts)
    return {"id": "cmpl-5f0c9c1a8a3e4c5c9b1c7e2b0a7d1e11", "object": "text_completion", "created": 1733400000,
            "model": "Qwen/Qwen2.5-Coder-0.5B",
            "choices": [{"index": i, "text": t, "logprobs": None, "finish_reason": f,
                         "stop_reason": "\ndef" if f == "stop" else None, "prompt_logprobs": None}
                        for i, (t, f) in enumerate(zip(texts, finish_reasons))],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + 7 * len(texts),
                      "completion_tokens": 7 * len(texts), "prompt_tokens_details": None}}


def vllm_error(message: str, status: int = 400) -> dict:
    """vLLM's ErrorResponse (before 0.9): the fields at the top level, not under "error"."""
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": status}


def llamacpp_body(text: str, finish_reason: str = "stop") -> dict:
    """llama.cpp server's /v1/completions: always one choice (it ignores `n`), its own `timings` block."""
    return {"choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
            "created": 1733400000, "model": "gpt-3.5-turbo", "system_fingerprint": "b4273-6a2bf08c",
            "object": "text_completion",
            "usage": {"completion_tokens": 9, "prompt_tokens": 31, "total_tokens": 40},
            "id": "chatcmpl-Xq3uA0mQ0bPzG7T1kIYcQz5Q7d0r1b8w",
            "timings": {"prompt_n": 31, "prompt_ms": 40.1, "predicted_n": 9, "predicted_ms": 180.3}}


def vllm_chat_body(contents: list[str | None], finish_reasons: list[str] | None = None) -> dict:
    """vLLM's /v1/chat/completions: a message per choice (content null when the answer is only tool calls), its
    `reasoning_content` and `tool_calls` beside the content, `stop_reason` beside `finish_reason`."""
    finish_reasons = finish_reasons or ["stop"] * len(contents)
    return {"id": "chatcmpl-2b9f1e0a6c7d4e3f8a5b1c0d9e8f7a6b", "object": "chat.completion", "created": 1733400000,
            "model": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
            "choices": [{"index": i, "message": {"role": "assistant", "reasoning_content": None, "content": c,
                                                 "tool_calls": []},
                         "logprobs": None, "finish_reason": f, "stop_reason": None}
                        for i, (c, f) in enumerate(zip(contents, finish_reasons))],
            "usage": {"prompt_tokens": 96, "total_tokens": 96 + 40 * len(contents),
                      "completion_tokens": 40 * len(contents), "prompt_tokens_details": None},
            "prompt_logprobs": None}


def llamacpp_chat_body(content: str, finish_reason: str = "stop") -> dict:
    """llama.cpp server's /v1/chat/completions: one choice whatever `n` asked, its own `timings` block."""
    return {"choices": [{"finish_reason": finish_reason, "index": 0,
                         "message": {"role": "assistant", "content": content}}],
            "created": 1733400000, "model": "gpt-3.5-turbo", "system_fingerprint": "b4273-6a2bf08c",
            "object": "chat.completion", "usage": {"completion_tokens": 31, "prompt_tokens": 88, "total_tokens": 119},
            "id": "chatcmpl-Ve1kq0a8y5cT3pH2sW7nR4mB6dF9gJ1x",
            "timings": {"prompt_n": 88, "prompt_ms": 95.2, "predicted_n": 31, "predicted_ms": 610.7}}


def llamacpp_error(message: str, status: int = 400) -> dict:
    return {"error": {"code": status, "message": message, "type": "invalid_request_error"}}


class FakeServer:
    """Answers each POST with `respond(body) -> (status, json body[, headers])` and keeps the bodies it got and the
    routes they went to."""

    def __init__(self, respond: Callable[[dict], tuple]):
        self.respond = respond
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path in ("/v1/completions", "/v1/chat/completions")
        body = json.loads(request.content)
        self.bodies.append(body)
        self.paths.append(request.url.path)
        status, payload, *headers = self.respond(body)
        return httpx.Response(status, json=payload, headers=headers[0] if headers else None)
