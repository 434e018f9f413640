"""Evaluation of instruct (chat) models (`ocg eval humaneval|mbpp|evalplus --chat`), as evalplus and
bigcode-evaluation-harness evaluate them: the problem goes to the model as a conversation, the program is cut from
its reply, and that program is scored whole by the same judge as any completion.

- The conversation: an optional system message (default: none, so the chat template's own default applies) and one
  user message, the instruction and then the benchmark's own prompt in a fenced code block:
      {INSTRUCTION}
      ```python
      {the problem's prompt, stripped}
      ```
  This is the shape of evalplus's instruct prompt. evalplus also starts the assistant's answer for models it loads
  itself (a sentence and an open fence); we do not, because a chat API cannot be told to, and a model should score
  the same loaded here (`--model`) as served (`--endpoint`, /v1/chat/completions).
- The reply: locally, what the model writes after the template's assistant header until <|im_end|>; from a server,
  the message content. The benchmark's completion stop strings (HumanEval's "\\ndef", "\\n```"; MBPP's "[DONE]")
  would cut a whole program or its fence, so only the user's --stop strings apply.
- The program: sanitize.py (evalplus's sanitizer on `ast`) keeps the code that defines the functions the tests call
  and what they use, dropping prose, fences, example calls and test harnesses. A reply with no such code fails with
  that reason and is not run.
- Scoring: the program is the whole candidate (the sample's "whole"), in the sandbox; the tests stay in the trusted
  judge, so a reply that forges a verdict (redefining `check`, exiting early, returning an object equal to
  everything) fails as any completion would.

Sample rows keep the reply ("reply") beside the program scored ("completion"), so samples.jsonl shows both and
scores again with `--samples`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from ..errors import UserError
from ..prompt_format import chat_format, chat_prompt, chat_unsupported_reason
from .judge import JudgeCase
from .sandbox import ExecResult, Sandbox
from .sanitize import sanitize

INSTRUCTION = ("Write a complete, self-contained Python function that solves the following problem. Give the whole "
               "program, with every import it needs, in one markdown code block:")
NO_PROGRAM = "no program: the reply holds no Python code that defines the function the tests call"


def user_message(task_prompt: str) -> str:
    return f"{INSTRUCTION}\n```python\n{task_prompt.strip()}\n```\n"


def conversation(task_prompt: str, system: str | None = None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": user_message(task_prompt)}]


def require_chat(tokenizer):
    """The tokenizer's chat format, or one error that says why this model cannot be evaluated with --chat."""
    fmt = chat_format(tokenizer)
    if fmt is None:
        raise UserError(f"--chat: {chat_unsupported_reason(tokenizer)}; evaluate it without --chat (plain "
                        "completion of the problem's prompt)")
    return fmt


def sample(tasks: Sequence[tuple[str, str, tuple[str, ...]]], n: int, params, *, model=None, tokenizer=None,
           endpoint=None, system: str | None = None, compile: bool = False, what: str = "humaneval") -> list[dict]:
    """n sample rows per (task_id, task prompt, functions the tests call): the reply and the program cut from it
    ("completion", "whole": True), from the local model or from `endpoint`'s /v1/chat/completions. params: the run's
    SamplingParams, whose stop strings are the user's own."""
    from .endpoint import sample_rows
    from .humaneval import sample_completions
    if endpoint is not None:
        rows = sample_rows(endpoint, [(t, conversation(x, system), None) for t, x, _ in tasks], n, params,
                           f"sample {what} (chat)")
    else:
        fmt = require_chat(tokenizer)
        chat_params = replace(params, stop_token_ids=tuple(params.stop_token_ids) + (fmt.im_end,))
        rows = sample_completions(model, tokenizer, [
            {"task_id": t, "prompt": chat_prompt(tokenizer, fmt, conversation(x, system))} for t, x, _ in tasks],
            n, chat_params, compile=compile, what=f"{what} (chat)")
    functions = {t: f for t, _, f in tasks}
    return [{**row, "reply": row["completion"], "completion": sanitize(row["completion"], functions[row["task_id"]]),
             "whole": True} for row in rows]


def no_program(sample: dict) -> bool:
    return "reply" in sample and not sample["completion"].strip()


def judge(sandbox: Sandbox, samples: Sequence[dict], case: Callable[[dict], JudgeCase],
          timeout: float | Sequence[float], progress: str) -> list[ExecResult]:
    """The verdict of each sample (`case` makes its judge case; timeout: one, or one per sample); a chat reply
    without a program fails with NO_PROGRAM and is not run."""
    run = [i for i, s in enumerate(samples) if not no_program(s)]
    limits = timeout if isinstance(timeout, (int, float)) else [timeout[i] for i in run]
    verdicts = dict(zip(run, sandbox.judge([case(samples[i]) for i in run], timeout=limits, progress=progress)))
    return [verdicts.get(i) or ExecResult("failed", reason=NO_PROGRAM) for i in range(len(samples))]


def prompting(samples: Sequence[dict], stop: Sequence[str], chat: bool, system: str | None = None) -> dict:
    """How a sampled run asked the model (a summary's "prompting"): completion of the problem's prompt, or chat
    with what came back; `stop`: the stop strings the samples were cut at."""
    if not chat:
        return {"mode": "completion", "stop": list(stop)}
    replies = [s for s in samples if "reply" in s]
    return {"mode": "chat", "instruction": INSTRUCTION, "system": system, "stop": list(stop),
            "replies": len(replies), "without_program": sum(map(no_program, replies)),
            "cut_by_sanitizer": sum(s["completion"] != s["reply"] for s in replies)}


def prompting_text(prompting: dict) -> str:
    """How the model was asked, in a sentence for report.md."""
    stops = ", ".join(repr(s) for s in prompting["stop"]) or "none"
    if prompting["mode"] != "chat":
        return f"Prompting: completion of the problem's prompt; stop strings {stops}."
    system = "" if prompting["system"] is None else " after a system message"
    return (f"Prompting: chat (the problem in a user message{system}, the program cut from the reply by the "
            f"sanitizer); stop strings {stops}. {prompting['without_program']} of {prompting['replies']} replies "
            f"held no program; {prompting['cut_by_sanitizer']} were cut.")
