"""Validation by execution: solutions that fail their own tests and tests a trivial body passes are rejected; a
hang, a crash, randomness or an unprintable answer rejects only its own candidate."""

from __future__ import annotations

import ast

import pytest

from opencodegen.exercises.judge import Judge
from opencodegen.exercises.records import Exercise
from opencodegen.exercises.validate import Candidate, check_exercises, validate

PROMPT = 'def total(xs: list) -> int:\n    """ Return the sum of xs.\n    >>> total([1, 2])\n    3\n    """\n'
TESTS = "\n\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"


@pytest.fixture(scope="module")
def judge():
    with Judge(workers=1, timeout=2.0) as j:
        yield j


def ex(id: str, solution: str, tests: str = TESTS, prompt: str = PROMPT) -> Exercise:
    return Exercise(id, "mined", prompt, "total", solution, tests, {})


def test_check_rejects_a_failing_solution_and_a_passing_trivial_body(judge):
    identity_tests = "\n\ndef check(candidate):\n    assert candidate([1]) == [1]\n    assert candidate([]) == []\n"
    none_tests = "\n\ndef check(candidate):\n    assert candidate([3, 1]) is None\n"
    exercises = [ex("good", "    return sum(xs)\n"),
                 ex("wrong", "    return len(xs)\n"),
                 ex("identity", "    return list(xs)\n", identity_tests),
                 ex("none", "    xs.sort()\n", none_tests),
                 Exercise("sft", "mined", PROMPT, "total", "    return sum(xs)\n", "", {"sft_only": True})]
    out = check_exercises(judge, exercises)
    assert [e.id for e in out.kept] == ["good", "sft"]
    reasons = {r["id"]: (r["reason"], r["detail"]) for r in out.rejected}
    assert reasons["wrong"][0] == "fails_own_tests" and "AssertionError" in reasons["wrong"][1]
    assert reasons["identity"] == ("trivial_body_passes", "return xs")
    assert reasons["none"] == ("trivial_body_passes", "return None")


def cand(id: str, body: str, calls: list[tuple], strict: bool = True, prompt: str | None = None) -> Candidate:
    return Candidate(id, "mined", "f", ["xs"], "def f(xs):", body, calls, doc="Does something with xs.",
                     prompt=prompt, strict=strict)


def test_validate_keeps_real_functions_and_rejects_each_bad_one_alone(judge):
    calls = [([3, 1, 2],), ([],), ([5, 5],)]
    cands = [cand("sum", "    return sum(xs)\n", calls),
             cand("hang", "    while True:\n        pass\n", calls),
             cand("random", "    import random\n    return random.random()\n", calls),
             cand("object", "    return object()\n", calls),
             cand("sorts_in_place", "    xs.sort()\n", calls),  # returns None: `return None` passes its tests
             cand("sorted", "    return sorted(xs)\n", [([1, 2],), ([],), ([4],)]),  # inputs already sorted
             cand("raises", "    return xs[0]\n", calls),
             cand("raises_lenient", "    return xs[0]\n", calls, strict=False),
             cand("exits", "    raise SystemExit(0)\n", calls),
             cand("broken", "    return (\n", calls),
             cand("max", "    return max(xs, default=-1)\n", calls)]
    out = validate(judge, cands)
    assert [e.id for e in out.kept] == ["sum", "raises_lenient", "max"]
    reasons = {r["id"]: r["reason"] for r in out.rejected}
    assert reasons == {"hang": "timeout", "random": "nondeterministic", "object": "unrepresentable",
                       "sorts_in_place": "trivial_body_passes", "sorted": "trivial_body_passes",
                       "raises": "raises", "exits": "does_not_run", "broken": "does_not_run"}
    lenient = next(e for e in out.kept if e.id == "raises_lenient")
    assert lenient.meta["n_asserts"] == 2 and "candidate([]) " not in lenient.tests  # the raising call is dropped
    kept_sum = out.kept[0]
    assert "assert candidate([3, 1, 2]) == 6" in kept_sum.tests and "assert candidate([]) == 0" in kept_sum.tests
    assert kept_sum.prompt.startswith("def f(xs):\n    ")
    doc = ast.get_docstring(ast.parse(kept_sum.prompt + "    pass\n").body[0])
    assert doc.startswith("Does something with xs.") and "f([" in doc  # its examples, in the layout its id drew


def test_duplicate_behaviour_is_found_whatever_the_text(judge):
    calls = [([3, 1, 2],), ([],), ([5, 5],), ([7],)]
    a = Candidate("a", "synthetic", "f", ["xs"], "def f(xs):", "    return sum(xs)\n", calls, doc="Sum.", n_probes=3,
                  meta={"domains": ["ints"]})
    b = Candidate("b", "synthetic", "g", ["ys"], "def g(ys):", "    t = 0\n    for y in ys:\n        t += y\n    return t\n",
                  calls[:3] + [([9],)], doc="Total.", n_probes=3, meta={"domains": ["ints"]})
    c = Candidate("c", "synthetic", "h", ["xs"], "def h(xs):", "    return len(xs)\n", calls, doc="Count.", n_probes=3,
                  meta={"domains": ["ints"]})
    out = validate(judge, [a, b, c], seen_behaviour={})
    assert [e.id for e in out.kept] == ["a", "c"]
    assert out.rejected[0]["id"] == "b" and out.rejected[0]["reason"] == "duplicate_behaviour" \
        and out.rejected[0]["detail"] == "a"
