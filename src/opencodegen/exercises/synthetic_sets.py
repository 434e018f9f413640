"""Synthetic families over sets, keys and order: the distinct values of a sequence, how two collections relate as
sets, sorting by a key that a lambda computes, whether a sequence is in order, and the values of a list of mixed
types picked by their type. Short programs ask for each of these (unique values, the same characters, sort by a
key, monotonic, keep the integers); the fixed-form sorting and two-list recipes make a few dozen programs in all,
and these families compose their parts into thousands. Each may first keep only the elements that meet a condition (the
even numbers, the words longer than 3 characters, the vowels): without one, most of their draws repeat a behaviour
already drawn, which the deduplication drops (198 of 9,000 synthetic exercises came from them)."""

from __future__ import annotations

import random

from .synthetic_base import CHAR_CLASSES, WORD_CONDITIONS, Draft, Param, int_condition, pick_name

# A sequence to take values from: (kind, annotation, domain, the iterable's code over the parameter, English noun)
SOURCES = [
    ("int", "list[int]", "ints", "{p}", "the numbers in {p}"),
    ("str", "list[str]", "words", "{p}", "the strings in {p}"),
    ("char", "str", "text", "{p}", "the characters of {p}"),
    ("word", "str", "sentence", "{p}.split()", "the words of {p} (split at whitespace)"),
]
# A value's key before comparing: (code over `v`, English, kinds it applies to, result kind, tag)
MAPS = [
    ("abs({v})", "taking absolute values", ("int",), "int", "abs"),
    ("{v} % 10", "taking each number's last digit ({v} % 10)", ("int",), "int", "last_digit"),
    ("{v}.lower()", "ignoring case", ("str", "char", "word"), "str", "lower"),
    ("len({v})", "taking their lengths", ("str", "word"), "int", "len"),
    ("{v}[0]", "taking their first characters", ("str", "word"), "str", "first_char"),
]


# The share of drafts that keep only the elements meeting a condition before the rest of the program.
CONDITION_SHARE = 0.4


def _condition(rng: random.Random, kind: str, v: str) -> tuple[str, str, str] | None:
    """None, or (CONDITION_SHARE of the time) a condition on an element `v` of a source of `kind`: (its code, the
    clause that follows a plural noun for the elements, a tag)."""
    if rng.random() >= CONDITION_SHARE:
        return None
    if kind == "int":
        code, adj, tag = int_condition(rng)
        return code.format(v=v), f"that are {adj.format(v=v)}", tag
    if kind == "char":
        code, _, long_noun, tag = rng.choice(CHAR_CLASSES)
        return code.format(c=v), f"that are {long_noun}", tag
    code, phrase, tag = rng.choice(WORD_CONDITIONS)
    k, ch = rng.randint(2, 6), rng.choice("aeilnorst")
    return code.format(w=v, k=k, ch=ch), phrase.format(k=k, ch=ch), tag.format(k=k, ch=ch)


def _joined(sep: str, *parts: str) -> str:
    """The non-empty parts joined by `sep`: a draft's name or recipe, with its condition's tag where it has one."""
    return sep.join(p for p in parts if p)


def _kept(v: str, it: str, cond: str) -> str:
    """A line that lists the elements of `it` meeting `cond` as `kept`."""
    return f"kept = [{v} for {v} in {it} if {cond}]"


def _source(rng: random.Random, kinds=("int", "str", "char", "word")):
    kind, ann, dom, code, noun = rng.choice([s for s in SOURCES if s[0] in kinds])
    name = pick_name(rng, {"int": "int_list", "str": "word_list", "char": "text", "word": "sentence"}[kind])
    return kind, Param(name, ann, dom), code.format(p=name), noun.format(p=name)


def distinct_values(rng: random.Random) -> Draft:
    """The different values of a sequence (perhaps of those meeting a condition, perhaps after a key): counted,
    listed in order, checked, or the second smallest."""
    kind, param, it, noun = _source(rng)
    v = {"int": "x", "char": "ch"}.get(kind, "w")
    prelude, guard, ftag = [], "", ""
    cond = _condition(rng, kind, v)
    if cond:
        code, clause, ftag = cond
        noun = f"{noun} {clause}"
        if rng.random() < 0.5:  # kept in a list first, or tested where the values are taken
            prelude, it = [_kept(v, it, code)], "kept"
        else:
            guard = code
    if_guard = f" if {guard}" if guard else ""
    key, elem, vtag = v, kind, f"{kind}s"
    mapped = rng.random() < 0.5
    if mapped:
        code, english, _, elem, vtag = rng.choice([m for m in MAPS if kind in m[2]])
        key = code.format(v=v)
        noun = f"{noun}, {english}"
    as_set = f"set({it})" if key == v and not guard else rng.choice(
        [f"set({key} for {v} in {it}{if_guard})", f"{{{key} for {v} in {it}{if_guard}}}"])
    ret_elem = "int" if elem == "int" else "str"
    new_value = f"{guard} and {key} not in seen" if guard else f"{key} not in seen"
    choices = [
        ("count", "int", [f"return len({as_set})"], f"Return how many different values there are among {noun}."),
        ("sorted", f"list[{ret_elem}]", [f"return sorted({as_set})"],
         f"Return the different values among {noun}, each once, in ascending order."),
        ("sorted_desc", f"list[{ret_elem}]", [f"return sorted({as_set}, reverse=True)"],
         f"Return the different values among {noun}, each once, from largest to smallest."),
        ("second_smallest", f"{ret_elem} | None", [f"ordered = sorted({as_set})",
                                                   "return ordered[1] if len(ordered) > 1 else None"],
         f"Return the second smallest of the different values among {noun}, or None if there are fewer than two."),
        ("first_seen", f"list[{ret_elem}]", ["seen = []", f"for {v} in {it}:",
                                             f"    if {new_value}:", f"        seen.append({key})",
                                             "return seen"],
         f"Return the different values among {noun}, each once, in the order they first appear."),
    ]
    if not (mapped or guard):
        choices.append(("all_different", "bool", [f"return len(set({it})) == len({it})"],
                        f"Return True if no two of {noun} are equal, and False otherwise."))
        if kind in ("int", "str"):
            repeated = f"{{{v} for {v} in {it} if {it}.count({v}) > 1}}"
            choices.append(("repeated", f"list[{ret_elem}]", [f"return sorted({repeated})"],
                            f"Return the values that occur more than once among {noun}, each once, in ascending "
                            "order."))
    what, ret, body, doc = rng.choice(choices)
    return Draft(_joined("_", what, ftag, vtag), [param], ret, prelude + body, doc,
                 _joined("/", "distinct", what, kind, vtag, ftag))


# Two collections of one kind: (annotation, domain, pair names, iterable code, English noun for one of them)
PAIRS = [
    ("str", "letters", (("s0", "s1"), ("a", "b"), ("first", "second"), ("word1", "word2"), ("s", "t"),
                        ("text1", "text2")), "{p}", "characters"),
    ("list[int]", "small_ints", (("a", "b"), ("xs", "ys"), ("first", "second"), ("l1", "l2"), ("list1", "list2"),
                                 ("nums1", "nums2")), "{p}", "numbers"),
    ("list[str]", "words", (("a", "b"), ("first", "second"), ("words1", "words2"), ("left", "right"),
                            ("tags1", "tags2")), "{p}", "strings"),
]
RELATIONS = [
    # (name, return type, code over the two sets {A} and {B}, English; {case}: where "ignoring case" goes)
    ("same", "bool", "{A} == {B}", "Return True if {a} and {b} contain the same {noun} (however often each occurs)"
                                   "{case}, and False otherwise."),
    ("subset", "bool", "{A} <= {B}", "Return True if every one of the {noun} in {a} also occurs in {b}{case}, and "
                                     "False otherwise."),
    ("disjoint", "bool", "not ({A} & {B})", "Return True if {a} and {b} have none of their {noun} in common{case}, "
                                            "and False otherwise."),
    ("common", "list", "sorted({A} & {B})", "Return the {noun} that occur in both {a} and {b}, each once, in "
                                            "ascending order{case}."),
    ("either", "list", "sorted({A} | {B})", "Return the {noun} that occur in {a} or in {b}, each once, in ascending "
                                            "order{case}."),
    ("only_first", "list", "sorted({A} - {B})", "Return the {noun} of {a} that do not occur in {b}, each once, in "
                                                "ascending order{case}."),
    ("exactly_one", "list", "sorted({A} ^ {B})", "Return the {noun} that occur in exactly one of {a} and {b}, each "
                                                 "once, in ascending order{case}."),
    ("count_common", "int", "len({A} & {B})", "Return how many different {noun} occur in both {a} and {b}{case}."),
]


def set_relations(rng: random.Random) -> Draft:
    """How two strings or lists relate as sets: equal, contained, disjoint; or their common, joint or distinct
    values."""
    ann, dom, names, it, noun = rng.choice(PAIRS)
    a, b = rng.choice(names)
    fold = ann == "str" and rng.random() < 0.4
    sa, sb = (f"set({p}.lower())" if fold else f"set({p})" for p in (a, b))
    name, ret, code, english = rng.choice(RELATIONS)
    if ret == "list":
        ret = "list[str]" if ann in ("str", "list[str]") else "list[int]"
    doc = english.format(a=a, b=b, noun=noun, case=", ignoring case" if fold else "")
    body = [f"return {code.format(A=sa, B=sb)}"]
    if name == "subset" and rng.random() < 0.4:
        body = [f"return all(x in {sb if fold else b} for x in {sa if fold else a})"]
    kind = {"str": "chars", "list[int]": "ints", "list[str]": "strings"}[ann]
    return Draft(f"{name}_{kind}", [Param(a, ann, dom), Param(b, ann, dom)], ret, body, doc,
                 f"sets/{name}/{kind}{'/fold' if fold else ''}")


# Keys a sort can take: (code over `x`, English, element kind, tag)
INT_KEYS = [
    ("abs(x)", "absolute value", "abs"),
    ("x % {k}", "remainder when divided by {k}", "mod"),
    ("sum(int(d) for d in str(abs(x)))", "digit sum (of the absolute value)", "digit_sum"),
    ("abs(x) % 10", "last digit (of the absolute value)", "last_digit"),
]
WORD_KEYS = [
    ("len(x)", "length", "len"),
    ("x[-1]", "last character", "last"),
    ("x.lower()", "lowercase form (alphabetical, ignoring case)", "lower"),
    ("sum(c in 'aeiou' for c in x)", "number of lowercase vowels", "vowels"),
    ("len(set(x))", "number of different characters", "distinct"),
    ("(len(x), x)", "length, and strings of equal length alphabetically", "len_then_alpha"),
]


def sort_by_key(rng: random.Random) -> Draft:
    """A list (perhaps only its elements meeting a condition) sorted by a computed key, ascending or descending, then
    all of it, its first element or its first k."""
    words = rng.random() < 0.5
    xs = pick_name(rng, "word_list" if words else "int_list")
    key, english, tag = rng.choice(WORD_KEYS if words else INT_KEYS)
    kconst = rng.randint(2, 7)
    key, english = key.format(k=kconst), english.format(k=kconst)
    desc = rng.random() < 0.3
    rev = ", reverse=True" if desc else ""
    order = "largest first" if desc else "smallest first"
    # (length, then the string) leaves no ties; every other key keeps equal elements in their order
    ties, earliest = ("", "") if tag == "len_then_alpha" else ("; ties keep their original order",
                                                                " (the earliest of equals)")
    if rng.random() < 0.25:  # the key as a named helper rather than a lambda
        head, keyarg = ["def key(x):", f"    return {key}"], "key"
    else:
        head, keyarg = [], f"lambda x: {key}"
    what = rng.choice(["all", "all", "first", "first_k"])
    source, noun, ftag = xs, None, ""
    cond = _condition(rng, "str" if words else "int", "x")
    if cond:
        code, clause, ftag = cond
        noun = f"the elements of {xs} {clause}"
        if what == "first" or rng.random() < 0.5:
            head, source = head + [_kept("x", xs, code)], "kept"
        else:
            source = f"[x for x in {xs} if {code}]"
    ordered = f"sorted({source}, key={keyarg}{rev})"
    elem = "str" if words else "int"
    # remainders and digit sums of negative numbers read ambiguously in English: those keys sort naturals
    param = Param(xs, f"list[{elem}]", "words" if words else "ints" if tag == "abs" else "nats")
    params = [param]
    if what == "all":
        ret, body = f"list[{elem}]", head + [f"return {ordered}"]
        doc = f"Return {noun or f'the elements of {xs}'} sorted by their {english}, {order}{ties}."
    elif what == "first":
        empty = "''" if words else "None"
        ret = "str" if words else "int | None"
        body = head + [f"if not {source}:", f"    return {empty}", f"return {ordered}[0]"]
        doc = (f"Of {noun}, return the one that comes first when they are sorted by {english}, {order}{earliest}, or "
               f"{empty} if there are none." if noun else
               f"Return the element of {xs} that comes first when it is sorted by {english}, {order}{earliest}, "
               f"or {empty} if {xs} is empty.")
    else:
        k = rng.choice(["k", "count", "n", "top"])
        ret, body = f"list[{elem}]", head + [f"return {ordered}[:{k}]"]
        doc = (f"Return the first {k} of {noun} when they are sorted by {english}, {order}{ties}." if noun else
               f"Return the first {k} elements of {xs} when it is sorted by {english}, {order}{ties}.")
        params = [param, Param(k, "int", "k")]
    return Draft(_joined("_", what, ftag, "by", tag, "desc" if desc else ""), params, ret, body, doc,
                 _joined("/", "sort_key", what, tag, "desc" if desc else "asc", ftag))


def sortedness(rng: random.Random) -> Draft:
    """Whether a list (perhaps only its elements meeting a condition) is in order: ascending, descending or either
    way, strictly or not."""
    xs = pick_name(rng, "int_list")
    strict = rng.random() < 0.4
    direction = rng.choice(["ascending", "descending", "either"])
    cond = _condition(rng, "int", "x")
    seq, prelude = (xs, []) if cond is None else ("kept", [_kept("x", xs, cond[0])])
    le, ge = ("<", ">") if strict else ("<=", ">=")
    up = rng.choice([f"all(a {le} b for a, b in zip({seq}, {seq}[1:]))",
                     f"all({seq}[i] {le} {seq}[i + 1] for i in range(len({seq}) - 1))"])
    down = up.replace(f" {le} ", f" {ge} ")
    if not strict and rng.random() < 0.5:
        up, down = f"{seq} == sorted({seq})", f"{seq} == sorted({seq}, reverse=True)"
    code = {"ascending": up, "descending": down, "either": f"{up} or {down}"}[direction]
    word = {"ascending": "increasing" if strict else "non-decreasing (each element at least the one before)",
            "descending": "decreasing" if strict else "non-increasing (each element at most the one before)",
            "either": ("strictly increasing or strictly decreasing" if strict
                       else "entirely non-decreasing or entirely non-increasing")}[direction]
    if strict and direction != "either":
        word = f"strictly {word}"
    tag = f"{direction}{'_strict' if strict else ''}"
    if cond is None:
        name, ftag = f"is_{tag}", ""
        doc = (f"Return True if the elements of {xs} are {word}, and False otherwise. An empty list counts as in "
               "order.")
    else:
        name, ftag = f"{cond[2]}_are_{tag}", cond[2]
        doc = (f"Return True if the elements of {xs} {cond[1]}, taken in their order, are {word}, and False "
               "otherwise (True if there are fewer than two of them).")
    return Draft(name, [Param(xs, "list[int]", "runs")], "bool", prelude + [f"return {code}"], doc,
                 _joined("/", "sorted", tag, ftag))


# Types to pick from a list of mixed values: (isinstance's second argument, English, tag, element annotation)
TYPES = [
    ("int", "integers", "ints", "int"),
    ("str", "strings", "strs", "str"),
    ("float", "floats", "floats", "float"),
    ("(int, float)", "numbers (integers and floats)", "numbers", "float"),
    ("list", "lists", "lists", "list"),
]


def mixed_types(rng: random.Random) -> Draft:
    """The values of a mixed list that have a type (bools never occur in it), and perhaps meet a condition as
    numbers: listed, counted, summed, joined."""
    values = pick_name(rng, "int_list") if rng.random() < 0.3 else rng.choice(["values", "items", "things", "mixed",
                                                                               "objects", "data"])
    t, noun, tag, elem = rng.choice(TYPES)
    v = rng.choice(["v", "x", "item"])
    test, adj = f"isinstance({v}, {t})", noun
    cond, ftag = None, ""
    if rng.random() < 0.3:
        test, adj, tag, elem = f"not {test}", f"not {noun}", f"non_{tag}", "Any"
    elif tag in ("ints", "numbers"):
        cond = _condition(rng, "int", v)
    which, how_many = f"the elements of {values} that are {adj}", f"how many elements of {values} are {adj}"
    if cond:  # the numbers among them that meet a condition too: the type test first, so that it applies
        code, clause, ftag = cond
        test = f"{test} and {code}"
        which = f"the {noun} in {values} {clause}"
        how_many = f"how many of the {noun} in {values} {clause.removeprefix('that ')}"
    choices = [("list", f"list[{elem}]", f"[{v} for {v} in {values} if {test}]", f"Return {which}, in their order."),
               ("count", "int", f"sum(1 for {v} in {values} if {test})", f"Return {how_many}.")]
    if tag in ("ints", "floats", "numbers"):
        choices.append(("sum", elem, f"sum({v} for {v} in {values} if {test})",
                        f"Return the sum of {which} (0 if there are none)."))
    if tag == "strs":
        choices.append(("join", "str", f"''.join({v} for {v} in {values} if {test})",
                        f"Return {which} joined together, in their order."))
        choices.append(("longest", "str", f"max(({v} for {v} in {values} if {test}), key=len, default='')",
                        f"Return the longest of {which} (the first in a tie), or '' if there are none."))
    what, ret, code, doc = rng.choice(choices)
    body = [f"return {code}"]
    if what == "list" and rng.random() < 0.3:
        body = ["result = []", f"for {v} in {values}:", f"    if {test}:", f"        result.append({v})",
                "return result"]
    return Draft(_joined("_", what, tag, ftag), [Param(values, "list[Any]", "mixed")], ret, body, doc,
                 _joined("/", "types", what, tag, ftag),
                 imports=["from typing import Any"])
