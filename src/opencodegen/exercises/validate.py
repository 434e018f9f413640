"""From candidate functions to exercises, by execution: every candidate ends kept or rejected with a reason.

1. Values: the candidate's own body runs on its argument tuples in the sandbox (many candidates per program; a
   program that fails is split until the culprit runs alone). Each call is made twice on fresh copies of its
   arguments: the answers must agree (deterministic) and must be plain literals that `repr` round-trips, since they
   become the tests' expected values.
2. Behaviour: candidates whose answers on the shared probe inputs equal those of one already kept are duplicates
   (the same behaviour under another text); a function that answers the same on every input is rejected too.
3. Tests: `def check(candidate):` with one assert per call; synthetic docstrings get one or two examples taken from
   the same answers, laid out as docstring_layout draws.
4. Judge: the solution must pass its tests in HumanEval's program (run by the judge), and every trivial body
   (`return None`, `pass`, returning the first argument) must fail them. Every test is `assert candidate(<literals>)
   == <literal>` (floats: within 1e-6 of it, see render_assert), so what a trivial body does to it is known exactly
   without running it: `return None` and `pass` pass an assert only when None would, `return x` only when the first
   argument would. That is decided here by the same comparison on the same values (assert_holds), which saves three
   sandbox programs per exercise."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .docstring_layout import render_prompt
from .judge import CheckJob, Judge
from .records import Exercise

MAX_ASSERTS = 11
VALUES_BATCH = 32  # candidates per sandbox program in step 1
MAX_REPR = 300  # longer expected values make unreadable tests; such calls are dropped

_PROBE_PROGRAM = '''import ast as __ast, copy as __copy

def __probe(__src, __name, __calls):
    __ns = {"__name__": "__exercise__"}
    try:
        exec(__src, __ns)
        __f = __ns[__name]
    except BaseException as __e:
        return ["definition", type(__e).__name__ + ": " + str(__e)[:200]]
    __out = []
    for __args in __calls:
        try:
            __r1 = __f(*__copy.deepcopy(__args))
            __r2 = __f(*__copy.deepcopy(__args))
        except Exception as __e:
            __out.append(["raises", type(__e).__name__])
            continue
        __s = repr(__r1)
        try:
            __ok = __ast.literal_eval(__s) == __r1 and type(__ast.literal_eval(__s)) is type(__r1)
        except Exception:
            __ok = False
        if not __ok:
            __out.append(["unrepresentable", __s[:200]])
        elif __s != repr(__r2):
            __out.append(["nondeterministic", __s[:200]])
        else:
            __out.append(["ok", __s])
    return __out

print([%s])
'''


@dataclass
class Candidate:
    """A function that may become an exercise. `prompt` is given verbatim (mined code keeps its own docstring) or,
    when None, rendered from `header` + `doc` + examples computed from the answers (synthetic)."""
    id: str
    source: str
    entry_point: str
    params: list[str]
    header: str  # imports and the `def` line (what comes before the docstring)
    solution: str  # the body, indented
    calls: list[tuple]  # argument tuples; their answers become the tests
    doc: str = ""
    prompt: str | None = None
    n_probes: int = 0  # the first n_probes calls are the shared behaviour probes (0: no behaviour dedup)
    strict: bool = True  # a call that raises rejects the candidate (else the call is dropped)
    meta: dict[str, Any] = field(default_factory=dict)

    def source_code(self) -> str:
        return f"{self.header}\n{self.solution}"


@dataclass
class Outcome:
    kept: list[Exercise] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {"id", "source", "reason", "detail", "prompt", "solution"}

    def reject(self, c: Candidate, reason: str, detail: str = "") -> None:
        self.rejected.append({"id": c.id, "source": c.source, "reason": reason, "detail": detail,
                              "entry_point": c.entry_point, "prompt": c.prompt or f"{c.header}\n", "solution": c.solution,
                              "meta": c.meta})


def probe_program(cands: list[Candidate]) -> str:
    return _PROBE_PROGRAM % ", ".join(f"__probe({c.source_code()!r}, {c.entry_point!r}, {c.calls!r})" for c in cands)


def run_calls(judge: Judge, cands: list[Candidate], progress: Callable[[int], None] | None = None
              ) -> list[list | tuple[str, str]]:
    """Per candidate: a list of [status, repr] per call, or (reason, detail) when its code could not be run."""
    results: list[list | tuple[str, str] | None] = [None] * len(cands)
    pending = [list(range(i, min(i + VALUES_BATCH, len(cands)))) for i in range(0, len(cands), VALUES_BATCH)]
    while pending:
        runs = judge.values([probe_program([cands[i] for i in group]) for group in pending])
        retry = []
        for group, run in zip(pending, runs):
            if run.ok and isinstance(run.value, list) and len(run.value) == len(group):
                for i, answers in zip(group, run.value):
                    results[i] = (("does_not_run", answers[1]) if answers and answers[0] == "definition" else answers)
                if progress:
                    progress(len(group))
            elif len(group) > 1:  # one of them hung or killed the program: find it
                retry += [group[:len(group) // 2], group[len(group) // 2:]]
            else:
                reason = "timeout" if run.status == "timeout" else "does_not_run"
                results[group[0]] = (reason, (run.reason or run.status)[:300])
                if progress:
                    progress(1)
        pending = retry
    return results  # type: ignore[return-value]


def _float_kind(value: Any) -> str | None:
    """How an expected value is compared: "scalar" (a float) or "list" (a list of numbers with a float in it) within
    FLOAT_TOLERANCE, else None (with ==). Floats are compared within a tolerance, as HumanEval's float problems are,
    since a correct program that adds in another order (or divides where the reference multiplies) differs in the
    last bits."""
    if isinstance(value, float):
        return "scalar"
    numbers = isinstance(value, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
    return "list" if numbers and any(isinstance(x, float) for x in value) else None


FLOAT_TOLERANCE = "1e-6"


def render_assert(args: str, answer: str) -> str:
    kind = _float_kind(ast.literal_eval(answer))
    if kind == "scalar":
        return f"assert abs(candidate({args}) - {answer}) < {FLOAT_TOLERANCE}"
    if kind == "list":  # zip(strict=True) raises on a list of another length: the check fails
        return (f"assert all(abs(a - b) < {FLOAT_TOLERANCE} for a, b in zip(candidate({args}), {answer}, "
                f"strict=True))")
    return f"assert candidate({args}) == {answer}"


def assert_holds(expected: Any, got: Any) -> bool:
    """What render_assert's assert decides for a return value `got`, computed here on plain values."""
    kind = _float_kind(expected)
    try:
        if kind == "scalar":
            return abs(got - expected) < float(FLOAT_TOLERANCE)
        if kind == "list":
            return all(abs(a - b) < float(FLOAT_TOLERANCE) for a, b in zip(got, expected, strict=True))
    except (TypeError, ValueError):
        return False
    return bool(got == expected)


def render_tests(calls: list[tuple[str, str]]) -> str:
    asserts = "".join(f"    {render_assert(args, answer)}\n" for args, answer in calls)
    return f"\n\ndef check(candidate):\n{asserts}"


def _args(call: tuple) -> str:
    return ", ".join(repr(a) for a in call)


def _example_order(pair: tuple[str, str]) -> tuple:
    """Examples a reader learns from: the answer is not a trivial value nor the input itself, and the call is of
    a readable length (about 30 characters)."""
    args, answer = pair
    trivial = answer in ("0", "''", "[]", "{}", "None", "False", "()") or args in ("[]", "''", "0")
    long_float = re.search(r"\.\d{7}", answer) is not None  # 2.2220309810671255 reads worse than 2.5
    return (trivial, answer == args, long_float, len(args) + len(answer) > 70, abs(len(args) + len(answer) - 30))


def choose_examples(pairs: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """Up to n examples with different answers. An interpreter prints nothing for None: never shown."""
    out: list[tuple[str, str]] = []
    for pair in sorted((p for p in pairs if p[1] != "None"), key=_example_order):
        if len(out) < n and all(pair[1] != o[1] for o in out):
            out.append(pair)
    return out


def trivial_body_passing(c: Candidate, chosen: list[tuple[tuple, str]]) -> str | None:
    """The trivial body that passes all the tests, if one does (see step 4)."""
    answers = [ast.literal_eval(answer) for _, answer in chosen]
    if all(assert_holds(a, None) for a in answers):
        return "return None"
    if c.params and all(call and assert_holds(a, call[0]) for (call, _), a in zip(chosen, answers)):
        return f"return {c.params[0]}"
    return None


def validate(judge: Judge, cands: list[Candidate], seen_behaviour: dict[tuple, str] | None = None,
             progress: Callable[[int], None] | None = None) -> Outcome:
    out = Outcome()
    seen_behaviour = {} if seen_behaviour is None else seen_behaviour
    answers_of = run_calls(judge, cands, progress)
    ready: list[tuple[Candidate, str, str, int]] = []
    for c, answers in zip(cands, answers_of):
        if isinstance(answers, tuple):
            out.reject(c, *answers)
            continue
        bad = next((a for a in answers if a[0] in ("nondeterministic", "unrepresentable")), None)
        if bad:
            out.reject(c, bad[0], bad[1])
            continue
        raised = [a[1] for a in answers if a[0] == "raises"]
        if raised and c.strict:
            out.reject(c, "raises", raised[0])
            continue
        calls = list({_args(call): (call, a[1]) for call, a in zip(c.calls, answers)
                      if a[0] == "ok" and len(a[1]) <= MAX_REPR}.values())  # the same call twice is one test
        if not calls:
            out.reject(c, "no_runnable_call", f"{len(raised)} of {len(answers)} calls raised" if raised else "")
            continue
        if c.n_probes:
            key = (tuple(c.meta.get("domains", ())), tuple(a[1] if a[0] == "ok" else a[0] for a in answers[:c.n_probes]))
            if key in seen_behaviour:
                out.reject(c, "duplicate_behaviour", seen_behaviour[key])
                continue
        if c.n_probes and len({answer for _, answer in calls}) < 2:  # generated programs only
            out.reject(c, "constant_output", calls[0][1])
            continue
        if c.n_probes:
            seen_behaviour[key] = c.id
        chosen = calls[:MAX_ASSERTS]
        trivial = trivial_body_passing(c, chosen)
        if trivial:
            out.reject(c, "trivial_body_passes", trivial)
            continue
        pairs = [(_args(call), answer) for call, answer in chosen]
        prompt = c.prompt
        if prompt is None:
            examples = choose_examples(pairs, 1 if len(c.doc) > 120 else 2)
            prompt = render_prompt(c.id, c.header, c.entry_point, c.doc, examples)
        ready.append((c, prompt, render_tests(pairs), len(pairs)))
    verdicts = judge.check([CheckJob(prompt, c.solution, tests, c.entry_point) for c, prompt, tests, _ in ready])
    for (c, prompt, tests, n_asserts), verdict in zip(ready, verdicts):
        if not verdict.passed:
            out.reject(c, "fails_own_tests", verdict.reason or verdict.status)
            continue
        out.kept.append(Exercise(c.id, c.source, prompt, c.entry_point, c.solution, tests,
                                 {**c.meta, "n_asserts": n_asserts, "sft_only": False}))
    return out


def check_exercises(judge: Judge, exercises: list[Exercise]) -> Outcome:
    """Re-judges finished exercises, whatever their tests look like: each solution must pass and every trivial body
    must fail, all by execution (here nothing is assumed about the form of the tests). SFT-only ones are kept as
    they are. Used by `ocg exercises check` (e.g. after changing the judge) and for exercises from elsewhere."""
    out = Outcome()
    judged = [e for e in exercises if not e.sft_only]
    jobs = [CheckJob(e.prompt, completion, e.tests, e.entry_point)
            for e in judged for completion in [e.solution] + trivial_completions_of(e)]
    verdicts = iter(judge.check(jobs, progress="check exercises"))
    for e in exercises:
        if e.sft_only:
            out.kept.append(e)
            continue
        solution, *trivial = [next(verdicts) for _ in range(1 + len(trivial_completions_of(e)))]
        as_candidate = Candidate(e.id, e.source, e.entry_point, [], "", e.solution, [], prompt=e.prompt, meta=e.meta)
        if not solution.passed:
            out.reject(as_candidate, "fails_own_tests", solution.reason or solution.status)
        elif any(v.passed for v in trivial):
            body = next(b for b, v in zip(trivial_completions_of(e), trivial) if v.passed)
            out.reject(as_candidate, "trivial_body_passes", body.strip())
        else:
            out.kept.append(e)
    return out


def trivial_completions_of(e: Exercise) -> list[str]:
    """`return None`, `pass` and returning the first parameter, as completions of the exercise's prompt."""
    from .decontaminate import function_signatures

    params = next((p for name, p in function_signatures(e.prompt + "    pass\n") if name == e.entry_point), ())
    return ["    return None\n", "    pass\n"] + ([f"    return {params[0]}\n"] if params else [])
