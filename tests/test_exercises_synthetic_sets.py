"""The set, key and order families: their programs run on the probe inputs and return what they declare, every
parameter is used and named in the English, and what each program computes agrees with a definition written here
from scratch (no sets, no sorted with a key) for the recipe its meta names."""

from __future__ import annotations

import random
import re
from typing import Any

from opencodegen.exercises import synthetic_sets as ss
from opencodegen.exercises.synthetic_base import DOMAINS, probe_and_extra_inputs

FAMILIES = (ss.distinct_values, ss.set_relations, ss.sort_by_key, ss.sortedness, ss.mixed_types)


def _drafts(family, n=400, seed=0):
    rng = random.Random(seed)
    return [family(rng) for _ in range(n)]


def _run(d, args):
    ns: dict = {}
    exec(d.source(), ns)  # our own generated code
    return ns[d.name](*args)


def _is(value: Any, annotation: str) -> bool:
    """Whether a value has a draft's declared type (`int | None`, `list[str]`, `list[Any]`, ...)."""
    if "|" in annotation:
        return any(_is(value, a.strip()) for a in annotation.split("|"))
    if annotation == "None":
        return value is None
    if annotation.startswith("list["):
        inner = annotation[5:-1]
        return isinstance(value, list) and all(_is(v, inner) for v in value)
    if annotation == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    kinds = {"int": int, "str": str, "bool": bool, "list": list, "Any": object}
    return isinstance(value, kinds[annotation]) and (annotation == "bool" or not isinstance(value, bool))


def test_programs_run_use_and_name_every_parameter_and_return_their_type():
    for family in FAMILIES:
        for d in _drafts(family):
            for args in probe_and_extra_inputs(d.params, random.Random(2), extra=3):
                value = _run(d, args)
                assert _is(value, d.returns), (d.source(), args, value)
            for p in d.params:
                assert re.search(rf"\b{p.name}\b", d.solution()), d.source()
                assert re.search(rf"\b{p.name}\b", d.doc), (d.signature(), d.doc)


def _unique_in_order(xs):
    out = []
    for x in xs:
        if x not in out:
            out.append(x)
    return out


def _insertion_sorted(xs, key, reverse=False):
    """A stable sort written out: each element goes after every element whose key is not beyond its own."""
    out = []
    for x in xs:
        k = key(x)
        i = len(out)
        while i > 0 and ((key(out[i - 1]) < k) if reverse else (key(out[i - 1]) > k)):
            i -= 1
        out.insert(i, x)
    return out


def _floor_mod(x, k):
    """Python's % on integers and floats, without using it: the remainder has the sign of k."""
    return x - k * (x // k)


CHAR_REFERENCE = {"vowels": lambda c: c in "aeiou", "vowels_any_case": lambda c: c in "aeiouAEIOU",
                  "digits": lambda c: "0" <= c <= "9", "letters": lambda c: c.lower() != c.upper(),
                  "uppercase": lambda c: c != c.lower(), "lowercase": lambda c: c != c.upper(),
                  "spaces": lambda c: c == " ", "consonants": lambda c: c.lower() != c.upper() and c.lower() not in "aeiou"}


def _condition(tag: str | None, solution: str):
    """The predicate a condition's tag names, written from its English: an element kept or not. Two word conditions
    do not name their length in the tag (`long`, `short`): it is read from the program."""
    if tag is None:
        return lambda v: True
    if tag in CHAR_REFERENCE:
        return CHAR_REFERENCE[tag]
    fixed = {"even": lambda x: _floor_mod(x, 2) == 0, "odd": lambda x: _floor_mod(x, 2) == 1,
             "positive": lambda x: x > 0, "negative": lambda x: x < 0,
             "vowel_start": lambda w: w[0] in "aeiouAEIOU", "mirror": lambda w: list(w) == list(reversed(w)),
             "capitalised": lambda w: "A" <= w[0] <= "Z", "even_length": lambda w: len(w) % 2 == 0}
    if tag in fixed:
        return fixed[tag]
    if tag in ("long", "short"):
        k = int(re.search(r"len\(\w+\) (?:>|<=) (\d+)", solution).group(1))
        return (lambda w: len(w) > k) if tag == "long" else (lambda w: len(w) <= k)
    m = re.fullmatch(r"between_(m?\d+)_(m?\d+)", tag)
    if m:
        lo, hi = (int(g.replace("m", "-")) for g in m.groups())
        return lambda x: lo <= x <= hi
    name, arg = re.fullmatch(r"(\w+?)_(\w)", tag).groups() if re.fullmatch(r"(with|starting|ending|two)_\w", tag) \
        else re.fullmatch(r"(\w+)_(\d+)", tag).groups()
    return {"above": lambda x: x > int(arg), "below": lambda x: x < int(arg), "at_least": lambda x: x >= int(arg),
            "at_most": lambda x: x <= int(arg), "multiples_of": lambda x: _floor_mod(x, int(arg)) == 0,
            "non_multiples_of": lambda x: _floor_mod(x, int(arg)) != 0, "not": lambda x: x != int(arg),
            "last_digit": lambda x: _floor_mod(x, 10) == int(arg), "length": lambda w: len(w) == int(arg),
            "with": lambda w: arg in w, "starting": lambda w: w[:1] == arg, "ending": lambda w: w[-1:] == arg,
            "two": lambda w: len([c for c in w if c in (arg, arg.upper())]) >= 2}[name]


def _recipe(d, fields: int) -> tuple[list[str], str | None]:
    """A draft's recipe after its family name: its `fields` parts, and the condition's tag if it has one."""
    parts = d.recipe.split("/")[1:]
    assert len(parts) in (fields, fields + 1), d.recipe
    return parts[:fields], parts[fields] if len(parts) > fields else None


MAP_REFERENCE = {"abs": abs, "last_digit": lambda x: x % 10, "lower": str.lower, "len": len,
                 "first_char": lambda w: w[0]}


def test_distinct_values_agree_with_a_definition_from_scratch():
    conditioned = 0
    for d in _drafts(ss.distinct_values):
        (what, kind, tag), cond = _recipe(d, 3)
        key, keep = MAP_REFERENCE.get(tag, lambda v: v), _condition(cond, d.solution())
        conditioned += cond is not None
        for args in probe_and_extra_inputs(d.params, random.Random(3), extra=5):
            seq = [v for v in (args[0].split() if kind == "word" else list(args[0])) if keep(v)]
            values = _unique_in_order([key(v) for v in seq])
            ordered = _insertion_sorted(values, lambda v: v)
            expected = {"count": len(values), "sorted": ordered, "sorted_desc": ordered[::-1],
                        "second_smallest": ordered[1] if len(ordered) > 1 else None, "first_seen": values,
                        "all_different": len(values) == len(seq),
                        "repeated": [v for v in ordered if seq.count(v) > 1]}[what]
            assert _run(d, args) == expected, (d.source(), args)
    assert 80 < conditioned < 240  # CONDITION_SHARE of 400


def test_set_relations_agree_with_a_definition_from_scratch():
    for d in _drafts(ss.set_relations):
        parts = d.recipe.split("/")
        name, fold = parts[1], parts[-1] == "fold"
        for args in probe_and_extra_inputs(d.params, random.Random(4), extra=5):
            a, b = (_unique_in_order(x.lower() if fold else x) for x in args)
            common = [x for x in a if x in b]
            expected = {"same": all(x in b for x in a) and all(x in a for x in b), "subset": all(x in b for x in a),
                        "disjoint": not common, "common": _insertion_sorted(common, lambda v: v),
                        "either": _insertion_sorted(a + [x for x in b if x not in a], lambda v: v),
                        "only_first": _insertion_sorted([x for x in a if x not in b], lambda v: v),
                        "exactly_one": _insertion_sorted([x for x in a if x not in b] + [x for x in b if x not in a],
                                                         lambda v: v),
                        "count_common": len(common)}[name]
            assert _run(d, args) == expected, (d.source(), args)


KEY_REFERENCE = {"abs": abs, "last_digit": lambda x: abs(x) % 10, "len": len, "last": lambda w: w[-1],
                 "lower": str.lower, "vowels": lambda w: len([c for c in w if c in "aeiou"]),
                 "distinct": lambda w: len(_unique_in_order(w)), "len_then_alpha": lambda w: (len(w), w),
                 "digit_sum": lambda x: sum(int(c) for c in str(abs(x)))}


def test_sort_by_key_agrees_with_a_stable_sort_written_out():
    for d in _drafts(ss.sort_by_key):
        (what, tag, order), cond = _recipe(d, 3)
        keep = _condition(cond, d.solution())
        if tag == "mod":
            k = int(re.search(r"(?:lambda x: |return )x % (\d+)", d.solution()).group(1))
            key = lambda x, k=k: x - k * (x // k)  # noqa: E731 - the remainder without Python's % operator
        else:
            key = KEY_REFERENCE[tag]
        for args in probe_and_extra_inputs(d.params, random.Random(5), extra=5):
            ordered = _insertion_sorted([x for x in args[0] if keep(x)], key, reverse=order == "desc")
            empty = "" if d.returns == "str" else None
            expected = ordered[:args[1]] if what == "first_k" else ordered if what == "all" else \
                ordered[0] if ordered else empty
            assert _run(d, args) == expected, (d.source(), args)


def test_sortedness_agrees_with_neighbour_comparisons_and_its_domain_is_often_in_order():
    for d in _drafts(ss.sortedness):
        (tag,), cond = _recipe(d, 1)
        strict, keep = tag.endswith("_strict"), _condition(cond, d.solution())
        for args in probe_and_extra_inputs(d.params, random.Random(6), extra=5):
            xs = [x for x in args[0] if keep(x)]
            steps = [b - a for a, b in zip(xs, xs[1:])]
            up = all(s > 0 if strict else s >= 0 for s in steps)
            down = all(s < 0 if strict else s <= 0 for s in steps)
            expected = {"ascending": up, "descending": down, "either": up or down}[tag.removesuffix("_strict")]
            assert _run(d, args) is expected, (d.source(), args)
    runs = [DOMAINS["runs"][1](random.Random(s)) for s in range(300)]
    assert sum(xs == sorted(xs) and len(set(xs)) > 2 for xs in runs) > 50  # tests see sorted lists, not just []


TYPE_REFERENCE = {"ints": lambda v: type(v) is int, "strs": lambda v: type(v) is str,
                  "floats": lambda v: type(v) is float, "numbers": lambda v: type(v) in (int, float),
                  "lists": lambda v: type(v) is list}


def test_mixed_types_agree_with_exact_type_tests_and_their_domain_has_no_bools():
    for d in _drafts(ss.mixed_types):
        (what, tag), cond = _recipe(d, 2)
        keep, meets = TYPE_REFERENCE[tag.removeprefix("non_")], _condition(cond, d.solution())
        for args in probe_and_extra_inputs(d.params, random.Random(7), extra=5):
            assert not any(type(v) is bool for v in args[0])
            picked = [v for v in args[0] if keep(v) != tag.startswith("non_") and (cond is None or meets(v))]
            expected = {"list": lambda: picked, "count": lambda: len(picked), "sum": lambda: sum(picked),
                        "join": lambda: "".join(picked),
                        "longest": lambda: next((w for w in picked if len(w) == max(map(len, picked))), "")}[what]()
            assert _run(d, args) == expected, (d.source(), args)
