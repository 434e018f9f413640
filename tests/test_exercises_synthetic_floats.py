"""The float families: their programs run on the probe inputs and return what they declare, the English names every
parameter, and the tests they get compare floats within a tolerance, so a correct program that adds in another
order passes and a wrong one (or one with a missing item) fails, in the judge as in validate's own reckoning."""

from __future__ import annotations

import random
import re

import pytest

from opencodegen.exercises import synthetic_floats as sf
from opencodegen.exercises.judge import CheckJob, Judge
from opencodegen.exercises.synthetic import FAMILIES
from opencodegen.exercises.synthetic_base import probe_and_extra_inputs
from opencodegen.exercises.validate import Candidate, assert_holds, render_assert, render_tests, validate

KINDS = {"float": (float, int), "int": (int,), "bool": (bool,), "list[float]": (list,), "list[int]": (list,)}


def _drafts(family, n=400, seed=0):
    rng = random.Random(seed)
    return [family(rng) for _ in range(n)]


def test_the_float_families_are_drawn():
    assert {sf.float_list, sf.float_formula} <= {f for f, _ in FAMILIES}


def test_programs_run_on_their_inputs_use_and_name_every_parameter():
    recipes = set()
    for family in (sf.float_list, sf.float_formula):
        for d in _drafts(family):
            ns: dict = {}
            exec(d.source(), ns)  # our own generated code
            for args in probe_and_extra_inputs(d.params, random.Random(1), extra=2):
                value = ns[d.name](*args)  # the probes keep divisors positive and lists may be empty
                assert isinstance(value, KINDS[d.returns]), (d.source(), args, value)
                if d.returns.startswith("list"):
                    inner = float if d.returns == "list[float]" else int
                    assert all(isinstance(v, inner) for v in value), (d.source(), args, value)
            for p in d.params:
                assert re.search(rf"\b{p.name}\b", d.solution()), d.source()
                assert re.search(rf"\b{p.name}\b", d.doc), (d.signature(), d.doc)
            recipes.add(d.recipe.split("/")[1])
    # every reducer, map and formula is reachable
    assert {"mean", "spread", "map", "mean_absolute_deviation", "to_celsius", "circle_area"} <= recipes


def test_float_asserts_tolerate_rounding_and_nothing_else():
    scalar, listed = render_assert("[0.1, 0.2, 0.3]", "0.6000000000000001"), render_assert("[1.5]", "[0.5, 1.0]")
    assert scalar == "assert abs(candidate([0.1, 0.2, 0.3]) - 0.6000000000000001) < 1e-6"
    assert "strict=True" in listed
    assert render_assert("[1]", "[1, 2]") == "assert candidate([1]) == [1, 2]"  # ints stay exact
    assert render_assert("[1]", "True") == "assert candidate([1]) == True"
    assert assert_holds(0.6000000000000001, 0.6) and not assert_holds(0.6, 0.61)
    assert assert_holds([0.5, 1.0], [0.5, 1.0000000001]) and not assert_holds([0.5, 1.0], [0.5])
    assert not assert_holds(0.5, None) and not assert_holds([0.5], "a") and assert_holds(2, 2.0)


@pytest.fixture(scope="module")
def judge():
    with Judge(workers=1, timeout=3.0) as j:
        yield j


def test_the_judge_decides_float_tests_as_assert_holds_does(judge):
    prompt = 'def mean(xs: list[float]) -> float:\n    """ Return the mean of xs. """\n'
    calls = [("[0.1, 0.2, 0.3]", repr(sum([0.1, 0.2, 0.3]) / 3)), ("[2.5]", "2.5")]
    scaled_prompt = 'def scaled(xs: list[float]) -> list[float]:\n    """ Return xs, each divided by 10. """\n'
    scaled_calls = [("[0.1, 0.7]", repr([0.1 / 10, 0.7 / 10]))]
    cases = [  # (prompt, entry point, calls, completion, passes)
        (prompt, "mean", calls, "    return sum(reversed(xs)) / len(xs)\n", True),  # another order: other last bits
        (prompt, "mean", calls, "    return sum(xs) / (len(xs) + 1)\n", False),
        (prompt, "mean", calls, "    return None\n", False),
        (scaled_prompt, "scaled", scaled_calls, "    return [x * 0.1 for x in xs]\n", True),
        (scaled_prompt, "scaled", scaled_calls, "    return [x / 10 for x in xs][:1]\n", False),
        (scaled_prompt, "scaled", scaled_calls, "    return [x / 10 for x in xs] + [0.0]\n", False),
    ]
    assert sum(reversed([0.1, 0.2, 0.3])) != sum([0.1, 0.2, 0.3])  # the premise: exact == would fail the first
    verdicts = judge.check([CheckJob(p, completion, render_tests(c), entry) for p, entry, c, completion, _ in cases])
    for (p, entry, c, completion, passes), verdict in zip(cases, verdicts):
        assert verdict.passed is passes, (completion, verdict)
        ns: dict = {}
        exec(p + completion, ns)  # our own fixture code
        assert all(assert_holds(eval(answer), ns[entry](eval(args))) for args, answer in c) is passes


def test_validate_keeps_a_float_program_with_tolerant_tests(judge):
    rng = random.Random(3)
    d = next(d for d in _drafts(sf.float_list, 200) if d.recipe.startswith("floats/mean/"))
    calls = probe_and_extra_inputs(d.params, rng, extra=3)
    c = Candidate("f", "synthetic", d.name, [p.name for p in d.params], d.signature(), d.solution(), calls,
                  doc=d.doc, n_probes=8, meta={"domains": [p.domain for p in d.params]})
    out = validate(judge, [c], seen_behaviour={})
    assert [e.id for e in out.kept] == ["f"], out.rejected
    assert "< 1e-6" in out.kept[0].tests and f"{d.name}(" in out.kept[0].prompt.split(d.signature())[1]  # an example
