"""The loop families: their programs run on the probe inputs and return what they declare, the English names every
parameter, the property helpers agree with definitions written here from scratch, and the pairs are written in an
idiom the decontamination does not confuse with HumanEval's canonical solutions."""

from __future__ import annotations

import math
import random
import re

from opencodegen.exercises import synthetic_loops as sl
from opencodegen.exercises.synthetic_base import probe_and_extra_inputs

FAMILIES = (sl.number_property, sl.integer_algorithms, sl.positions, sl.pairs)
KINDS = {"int": int, "bool": bool, "str": str, "list[int]": list, "list[tuple[int, int]]": list}


def _drafts(family, n=400, seed=0):
    rng = random.Random(seed)
    return [family(rng) for _ in range(n)]


def test_programs_run_on_their_inputs_use_and_name_every_parameter():
    for family in FAMILIES:
        for d in _drafts(family):
            ns: dict = {}
            exec(d.source(), ns)  # our own generated code
            for args in probe_and_extra_inputs(d.params, random.Random(2), extra=3):
                value = ns[d.name](*args)
                assert type(value) is KINDS[d.returns], (d.source(), args, value)
            for p in d.params:
                assert re.search(rf"\b{p.name}\b", d.solution()), d.source()
                assert re.search(rf"\b{p.name}\b", d.doc), (d.signature(), d.doc)


def _reference(tag: str, x: int) -> bool:
    if tag == "primes":
        return x > 1 and all(x % d for d in range(2, x))
    if tag == "squares":
        return x >= 0 and any(r * r == x for r in range(x + 1))
    if tag == "palindromes":
        return str(x) == "".join(reversed(str(x)))
    if tag == "powers_of_two":
        return x in {2 ** e for e in range(12)}
    return sum(map(int, str(abs(x)))) % 2 == 0


def test_property_helpers_agree_with_definitions_from_scratch():
    for helper, lines, _, tag in sl.PROPERTIES:
        ns: dict = {}
        exec("\n".join(sl._helper(helper, lines)), ns)  # our own generated code
        assert [x for x in range(-20, 1100) if ns[helper](x)] == [x for x in range(-20, 1100) if _reference(tag, x)]


def test_integer_algorithms_compute_what_they_say():
    checks = {"gcd": lambda f: all(f(a, b) == math.gcd(a, b) for a in range(1, 40) for b in range(1, 40)),
              "lcm": lambda f: all(f(a, b) == a * b // math.gcd(a, b) for a in range(1, 30) for b in range(1, 30)),
              "fibonacci": lambda f: [f(n) for n in range(10)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34],
              "nth_prime": lambda f: [f(n) for n in range(1, 9)] == [2, 3, 5, 7, 11, 13, 17, 19],
              "smallest_factor": lambda f: [f(n) for n in (1, 2, 9, 35, 49, 97)] == [1, 2, 3, 5, 7, 97]}
    seen = set()
    for d in _drafts(sl.integer_algorithms, 600, seed=3):
        if d.name in checks:
            ns: dict = {}
            exec(d.source(), ns)  # our own generated code
            assert checks[d.name](ns[d.name]), d.source()
            seen.add((d.name, d.solution()))
        elif d.name.startswith("in_base_"):
            ns = {}
            exec(d.source(), ns)
            base = int(d.name.rsplit("_", 1)[1])
            assert all(int(ns[d.name](n), base) == n for n in range(200))
    assert {name for name, _ in seen} == set(checks) and len(seen) > len(checks)  # every check, in several forms


def test_pairs_use_each_pair_of_positions_once_without_the_index_double_loop():
    for d in _drafts(sl.pairs, 300, seed=4):
        assert "range(i + 1" not in d.solution(), d.source()
        if d.name == "count_pairs_with_sum":
            ns: dict = {}
            exec(d.source(), ns)
            assert ns[d.name]([1, 2, 3, 4, 2], 4) == 2  # (1, 3) and (2, 2): positions, not values, make a pair
