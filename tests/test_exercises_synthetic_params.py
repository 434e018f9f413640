"""The families that combine several parameters: the English names every parameter the code uses, divisors are
declared positive exactly when they divide, operator English is bracketed where it nests, and chained string code
binds as it reads."""

from __future__ import annotations

import random
import re

from opencodegen.exercises import synthetic_params as sp
from opencodegen.exercises.synthetic_base import DOMAINS, Param, probe_and_extra_inputs, rephrase

FAMILIES = (sp.int_arithmetic, sp.string_ops, sp.words_with_parameter)


def _drafts(family, n=400, seed=0):
    rng = random.Random(seed)
    return [family(rng) for _ in range(n)]


def _function(d):
    ns: dict = {}
    exec("from typing import List, Optional\n" + d.source(), ns)  # our own generated code
    return ns[d.name]


def test_every_parameter_is_used_by_the_code_and_named_by_the_english():
    for family in FAMILIES:
        for d in _drafts(family):
            body = d.solution()
            for p in d.params:
                assert re.search(rf"\b{p.name}\b", body), (d.signature(), body)
                assert re.search(rf"\b{p.name}\b", d.doc), (d.signature(), d.doc)


def test_programs_run_on_their_probe_inputs_and_return_the_declared_type():
    kinds = {"int": int, "bool": bool, "str": str, "list[str]": list}
    for family in FAMILIES:
        for d in _drafts(family, 300, seed=1):
            f = _function(d)
            for args in probe_and_extra_inputs(d.params, random.Random(0), extra=2):
                value = f(*args)  # a divisor is positive, so nothing here may raise
                assert type(value) is kinds[d.returns], (d.signature(), d.solution(), args, value)


def test_a_parameter_is_declared_positive_exactly_when_it_divides():
    seen_divisor = False
    for d in _drafts(sp.int_arithmetic, 1500, seed=2):
        body = d.solution()
        for p in d.params:
            divides = re.search(rf"(//|%) {p.name}\b", body) is not None
            assert (p.domain == "k") == divides, (d.signature(), body)
            assert (re.search(rf"\b{p.name} is a positive integer\.", d.doc) is not None) == divides, d.doc
            seen_divisor |= divides
    assert seen_divisor
    assert DOMAINS["k"][0] and min(DOMAINS["k"][0]) > 0


def test_nested_operator_english_is_bracketed():
    inner = sp.Expr("a - b", "a minus b", 1, ("minus",))
    c = sp.Expr("c", "c", 4, leaf=True)
    rng, made = random.Random(0), {}
    while len(made) < 5:  # each operator once, whatever the seed draws first
        e, op = sp._binary(rng, inner, c, divisor_ok=False)
        made[op] = e
    assert made["mul"].english == "the product of (a minus b) and c" and made["mul"].code == "(a - b) * c"
    assert made["add"].english == "the sum of (a minus b) and c" and made["add"].code == "a - b + c"
    assert made["sub"].english == "the result of subtracting c from (a minus b)" and made["sub"].code == "a - b - c"
    assert made["max"].english == "the larger of (a minus b) and c" and made["max"].code == "max(a - b, c)"
    right, _ = sp._binary(random.Random(1), c, inner, divisor_ok=False)
    assert right.code in ("c + (a - b)", "c - (a - b)", "c * (a - b)", "max(c, a - b)", "min(c, a - b)")


def test_chained_string_code_brackets_what_a_method_or_an_index_would_split():
    names = {"t": "t", "k": "k"}
    assert sp._fill("{x}.upper()", "t + s", names) == "(t + s).upper()"
    assert sp._fill("{x} == {x}[::-1]", "s * k", names) == "s * k == (s * k)[::-1]"  # == binds after *
    assert sp._fill("{x} * {k}", "s + t", names) == "(s + t) * k"
    assert sp._fill("len({x})", "s + t", names) == "len(s + t)"
    assert sp._fill("{t} in {x}", "s.lower()", names) == "t in s.lower()"
    values = {"s": "ab c", "t": "Xy", "k": 2}
    assert eval(sp._fill("{x}.upper()", "t + s", names), values) == "XYAB C"
    assert eval(sp._fill("{x} * {k}", "s + t", names), values) == "ab cXyab cXy"


def test_rephrasing_keeps_the_request():
    params = [Param("nums", "list[int]", "ints"), Param("k", "int", "k")]
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        doc = rephrase("Return True if some number in nums is above k, and False otherwise.", params, rng)
        seen.add(doc)
    assert seen == {"Return True if some number in nums is above k, and False otherwise.",
                    "Check if some number in nums is above k.",
                    "Given a list of integers nums and an integer k, return True if some number in nums is above k, "
                    "and False otherwise."}
    grid = [Param("g", "dict[str, int]", "grid")]  # no noun for this type: the sentence stays as written
    assert {rephrase("Return the sum of g.", grid, random.Random(i)) for i in range(50)} == {"Return the sum of g."}
