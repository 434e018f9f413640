"""The wire formats: request bodies as strict pydantic models (a string where a number belongs is an error, not a
coercion), and errors in OpenAI's shape, {"error": {"message", "type", "param", "code"}}, for every 4xx and 5xx."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field


class APIError(Exception):
    """An error answered to the client. Raised anywhere under a route (also from the synth routes' calls to
    `complete`); the app's handler renders it."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code


def error_response(status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(message, type=type, param=param, code=code),
                        headers=headers)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class _Strict(BaseModel):
    # Unknown fields are ignored, as vLLM does: clients send extras (user, stream_options of other versions, ...).
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampled(_Strict):
    """The sampling fields /v1/completions and /v1/chat/completions share, with OpenAI's defaults."""

    model: str | None = None
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None


class CompletionRequest(_Sampled):
    """POST /v1/completions. Defaults are OpenAI's. Ranges that depend on the server (n, the context) are checked
    by the route."""

    prompt: str | list[str] | list[int] | list[list[int]]
    suffix: str | None = None
    max_tokens: int = Field(16, ge=1)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)
    # Ours: token healing (healing.py) of a text prompt's end, or of the FIM prefix's with suffix; false turns it off.
    token_healing: bool = True
    # Ours: speculative decoding with prompt-lookup drafts of up to this many tokens (same tokens, fewer forward
    # passes: sampling.SamplingParams); None takes the server's --speculative, 0 turns it off.
    speculative_tokens: int | None = Field(None, ge=0)
    # Accepted only at the values that mean "off", so a client relying on them hears that they are not supported.
    best_of: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None


class ChatRequest(_Sampled):
    """POST /v1/chat/completions. Defaults are OpenAI's; max_tokens None (or max_completion_tokens, OpenAI's newer
    name) is as many as the context leaves. Messages are checked by prompt_format.chat_messages."""

    messages: list[dict[str, Any]]
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    speculative_tokens: int | None = Field(None, ge=0)  # ours, as in CompletionRequest
    # Accepted only at the values that mean "off", as in CompletionRequest.
    logprobs: bool = False
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    tools: list[Any] | None = None


class ExtraFile(_Strict):
    filename: str
    text: str


class InfillRequest(_Strict):
    """POST /infill, llama.cpp's shape. n_predict -1 (llama.cpp's default) means a quarter of the context, 0 only
    reads the prompt (editors send it to warm the prefix cache); the sampling defaults are llama.cpp's too."""

    model: str | None = None
    input_prefix: str = ""
    input_suffix: str = ""
    input_extra: list[ExtraFile] = []
    prompt: str = ""  # llama.cpp: text placed after the middle token (what is typed so far on the current line)
    filename: str = "main.py"  # path of the current file in the repository-level prompt
    repo_name: str = "repo"
    n_predict: int = Field(-1, ge=-1)
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0)
    stop: list[str] = []
    seed: int | None = Field(None, ge=-1)  # llama.cpp sends -1 for "random"
    stream: bool = False
    # llama.cpp's time budget for generation, from the first generated token; it applies once a line break has been
    # generated. <= 0: none.
    t_max_predict_ms: float = 0
    # Accepted for llama.cpp clients: the prefix cache is always used, and its output does not depend on it.
    cache_prompt: bool = True
    token_healing: bool = True  # ours: heal the end of the prefix (of `prompt` when given); false turns it off
    speculative_tokens: int | None = Field(None, ge=0)  # ours, as in CompletionRequest


class FimRequest(_Strict):
    """POST /v1/fim/completions, Mistral's (Codestral's) shape, which Continue sends. max_tokens None: up to the
    context; random_seed is Mistral's name for seed. min_tokens is accepted only at 0 (not supported)."""

    model: str | None = None
    prompt: str
    suffix: str = ""
    max_tokens: int | None = Field(None, ge=1)
    min_tokens: int = Field(0, ge=0)
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    random_seed: int | None = None
    seed: int | None = None
    stream: bool = False
    token_healing: bool = True  # ours, as in CompletionRequest
    speculative_tokens: int | None = Field(None, ge=0)  # ours, as in CompletionRequest
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
