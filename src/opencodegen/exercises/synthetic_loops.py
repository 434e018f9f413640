"""Synthetic families whose programs need more than one pass of a comprehension: number properties that take a loop
of their own (prime, perfect square, palindrome, power of two), written as a helper function inside the solution and
used to filter a list or the numbers up to n; the classic loops over integers (greatest common divisor, least common
multiple, the n-th Fibonacci number, digits in another base); elements chosen by their position as well as their
value; and the pairs i < j of a list. These are the shapes short programs take beyond filter-map-reduce."""

from __future__ import annotations

import random

from .synthetic_base import Draft, Param, pick_name

# A property of one integer that needs its own code: (helper name, helper body over `x`, English adjective, tag)
PROPERTIES = [
    ("is_prime", ["if x < 2:", "    return False", "for d in range(2, int(x ** 0.5) + 1):", "    if x % d == 0:",
                  "        return False", "return True"], "prime", "primes"),
    ("is_square", ["if x < 0:", "    return False", "r = int(x ** 0.5)", "return r * r == x"],
     "perfect squares", "squares"),
    ("is_palindrome", ["return str(x) == str(x)[::-1]"], "palindromes (the same read backwards, sign included)",
     "palindromes"),
    ("is_power_of_two", ["if x < 1:", "    return False", "while x % 2 == 0:", "    x //= 2", "return x == 1"],
     "powers of two (1, 2, 4, 8, ...)", "powers_of_two"),
    ("digit_sum_even", ["return sum(int(d) for d in str(abs(x))) % 2 == 0"], "numbers whose digit sum is even",
     "even_digit_sum"),
]

# reducer: (code over a generator `gen`, English from the items' noun phrase, return type)
REDUCERS = {
    "count": ("sum(1 for {gen})", "how many of {items} there are", "int"),
    "sum": ("sum({gen})", "the sum of {items} (0 if there are none)", "int"),
    "list": ("[{gen}]", "a list of {items}, in order", "list[int]"),
    "max": ("max(({gen}), default=-1)", "the largest of {items}, or -1 if there are none", "int"),
}


def _imports_apart(lines: list[str]) -> tuple[list[str], list[str]]:
    """(body, imports): a recipe writes its imports among its lines; they go at the top of the program."""
    imports = [line for line in lines if line.startswith(("import ", "from "))]
    return [line for line in lines if line not in imports], imports


def _helper(name: str, lines: list[str]) -> list[str]:
    return [f"def {name}(x):"] + [f"    {line}" for line in lines]


def number_property(rng: random.Random) -> Draft:
    """The elements of a list, or the numbers from 1 to n, that have a property a helper function decides."""
    helper, lines, adjective, tag = rng.choice(PROPERTIES)
    v = rng.choice(["v", "num", "item", "value"])
    if rng.random() < 0.5:
        xs = pick_name(rng, "int_list")
        params, source, noun, dom = [Param(xs, "list[int]", "nats")], xs, f"the numbers in {xs}", "list"
    else:
        n = rng.choice(["n", "limit", "m", "upper"])
        params, source, noun, dom = [Param(n, "int", "n")], f"range(1, {n} + 1)", f"the numbers from 1 to {n}", "range"
    cond, items = f"{helper}({v})", f"{noun} that are {adjective}"
    if rng.random() < 0.3:
        cond, items, tag = f"not {helper}({v})", f"{noun} that are not {adjective}", f"non_{tag}"
    if rng.random() < 0.4:
        vcond, vadj, vtag = rng.choice(VALUE_TESTS)
        cond, items, tag = f"{cond} and {vcond.format(v=v)}", f"{items}, among those that are {vadj}", f"{tag}_{vtag}"
    red = rng.choice(list(REDUCERS))
    code, english, ret = REDUCERS[red]
    gen = f"{v} in {source} if {cond}" if red == "count" else f"{v} for {v} in {source} if {cond}"
    body = _helper(helper, lines) + [f"return {code.format(gen=gen)}"]
    if rng.random() < 0.4 and red in ("sum", "list"):  # the same with a loop
        acc = "[]" if red == "list" else "0"
        add = f"result.append({v})" if red == "list" else f"result += {v}"
        body = _helper(helper, lines) + [f"result = {acc}", f"for {v} in {source}:", f"    if {cond}:",
                                         f"        {add}", "return result"]
    return Draft(f"{red}_{tag}_in_{dom}", params, ret, body, f"Return {english.format(items=items)}.",
                 f"property/{red}/{tag}/{dom}")


def integer_algorithms(rng: random.Random) -> Draft:
    """The loops every course teaches, each in a few forms."""
    a, b = rng.choice([("a", "b"), ("x", "y"), ("m", "n"), ("first", "second")])
    n = rng.choice(["n", "k", "count", "index"])
    base = rng.randint(2, 9)
    two = [Param(a, "int", "pos"), Param(b, "int", "pos")]
    gcd_loop = [f"while {b}:", f"    {a}, {b} = {b}, {a} % {b}", f"return {a}"]
    choices = [
        ("gcd", two, "int", rng.choice([gcd_loop, ["import math", f"return math.gcd({a}, {b})"]]),
         f"Return the greatest common divisor of {a} and {b} (both positive)."),
        ("lcm", two, "int", rng.choice([[f"g, r = {a}, {b}", "while r:", "    g, r = r, g % r", f"return {a} * {b} // g"],
                                        ["import math", f"return {a} * {b} // math.gcd({a}, {b})"]]),
         f"Return the least common multiple of {a} and {b} (both positive): the smallest positive number both divide."),
        ("coprime", two, "bool", ["import math", f"return math.gcd({a}, {b}) == 1"],
         f"Return True if {a} and {b} (both positive) have no common divisor other than 1, and False otherwise."),
        ("fibonacci", [Param(n, "int", "n")], "int",
         rng.choice([["a, b = 0, 1", f"for _ in range({n}):", "    a, b = b, a + b", "return a"],
                     [f"if {n} < 2:", f"    return {n}", "a, b = 0, 1", f"for _ in range({n} - 1):",
                      "    a, b = b, a + b", "return b"]]),
         f"Return the {n}-th Fibonacci number, where the sequence starts 0, 1, 1, 2, 3, 5 (so fibonacci(0) is 0)."),
        (f"base_{base}_digits", [Param(n, "int", "big")], "list[int]",
         [f"if {n} == 0:", "    return [0]", "digits = []", f"while {n} > 0:", f"    digits.append({n} % {base})",
          f"    {n} //= {base}", "return digits[::-1]"],
         f"Return the digits of {n} (not negative) written in base {base}, most significant first."),
        (f"in_base_{base}", [Param(n, "int", "big")], "str",
         ["result = ''", f"while {n} > 0:", f"    result = str({n} % {base}) + result", f"    {n} //= {base}",
          "return result or '0'"],
         f"Return {n} (not negative) written in base {base}, as a string of digits."),
        ("smallest_factor", [Param(n, "int", "pos")], "int",
         [f"for d in range(2, {n} + 1):", f"    if {n} % d == 0:", "        return d", f"return {n}"],
         f"Return the smallest divisor of {n} that is greater than 1 ({n} itself when it is 1 or prime)."),
        ("proper_divisor_sum", [Param(n, "int", "pos")], "int",
         [f"return sum(d for d in range(1, {n}) if {n} % d == 0)"],
         f"Return the sum of the divisors of {n} that are smaller than {n}."),
        ("nth_prime", [Param(n, "int", "pos")], "int",
         ["found, candidate = 0, 1", f"while found < {n}:", "    candidate += 1",
          "    if all(candidate % d for d in range(2, int(candidate ** 0.5) + 1)):", "        found += 1",
          "return candidate"],
         f"Return the {n}-th prime number (the first is 2)."),
        ("triangular_upto", [Param(n, "int", "n")], "list[int]",
         ["result, total, i = [], 0, 1", f"while total + i <= {n}:", "    total += i", "    result.append(total)",
          "    i += 1", "return result"],
         f"Return the triangular numbers 1, 3, 6, 10, ... that are at most {n}, in order."),
    ]
    name, params, ret, body, doc = rng.choice(choices)
    body, imports = _imports_apart(body)
    return Draft(name, params, ret, body, doc, f"algorithm/{name}", imports)


def _position_rule(rng: random.Random) -> tuple[str, str, str]:
    """(code over the index `i`, English, tag)"""
    k, r = rng.randint(3, 4), rng.randint(1, 2)
    first = rng.randint(2, 4)
    return rng.choice([
        ("i % 2 == 0", "at even positions (indices 0, 2, 4, ...)", "even_positions"),
        ("i % 2 == 1", "at odd positions (indices 1, 3, 5, ...)", "odd_positions"),
        (f"i % {k} == 0", f"at positions divisible by {k} (indices 0, {k}, {2 * k}, ...)", f"every_{k}th"),
        (f"i % {k} == {r}", f"at the positions i with i % {k} == {r}", f"position_mod_{k}_{r}"),
        (f"i < {first}", f"among the first {first}", f"first_{first}"),
        (f"i >= {first}", f"after the first {first}", f"after_first_{first}"),
        ("i > 0", "after the first one", "after_first"),
        (f"i % 2 == 0 and i >= {first}", f"at even positions from index {first} on", f"even_positions_from_{first}"),
    ])


VALUE_TESTS = [("{v} % 2 == 0", "even", "even"), ("{v} % 2 == 1", "odd", "odd"), ("{v} > 0", "positive", "positive"),
               ("{v} < 10", "less than 10", "below_10"), ("{v} > 5", "greater than 5", "above_5")]


def positions(rng: random.Random) -> Draft:
    """Elements chosen by their index, perhaps also by their value, then summed, listed, counted or maxed."""
    xs = pick_name(rng, "int_list")
    v = rng.choice(["x", "v", "num"])
    where, at, ptag = _position_rule(rng)
    cond, tag = where, ptag
    adj = ""
    if rng.random() < 0.5:
        vcond, adj, vtag = rng.choice(VALUE_TESTS)
        cond, tag = f"{where} and {vcond.format(v=v)}", f"{vtag}_{ptag}"
    red = rng.choice(list(REDUCERS))
    code, english, ret = REDUCERS[red]
    noun = f"the {adj + ' ' if adj else ''}elements of {xs} {at}"
    gen = f"{v} for i, {v} in enumerate({xs}) if {cond}"
    if red == "count":
        gen = f"i, {v} in enumerate({xs}) if {cond}"
    body = [f"return {code.format(gen=gen)}"]
    if red == "list" and cond == "i % 2 == 0" and rng.random() < 0.5:
        body = [f"return {xs}[::2]"]
    elif red == "sum" and rng.random() < 0.4:
        body = ["total = 0", f"for i in range(len({xs})):", f"    {v} = {xs}[i]", f"    if {cond}:",
                f"        total += {v}", "return total"]
    return Draft(f"{red}_{tag}", [Param(xs, "list[int]", "ints")], ret, body,
                 f"Return {english.format(items=noun)}.", f"positions/{red}/{tag}")


def pairs(rng: random.Random) -> Draft:
    """The pairs of elements at two different positions i < j: counted, tested or maximised."""
    xs = pick_name(rng, "int_list")
    target = rng.choice(["target", "k", "goal", "wanted"])
    pt = [Param(xs, "list[int]", "ints"), Param(target, "int", "int")]
    p = [Param(xs, "list[int]", "ints")]
    # each pair once, as `for i, a in enumerate(xs): for b in xs[i + 1:]` (HumanEval's canonical solutions use
    # the index double loop, and the decontamination's 10-token windows reject every program written with it)
    loops = [f"for i, a in enumerate({xs}):", f"    for b in {xs}[i + 1:]:"]
    choices = [
        ("count_pairs_with_sum", pt, "int",
         ["count = 0"] + loops + [f"        if a + b == {target}:", "            count += 1",
                                  "return count"],
         f"Return how many pairs of positions i < j in {xs} hold two numbers that add up to {target}."),
        ("has_pair_with_sum", pt, "bool",
         loops + [f"        if a + b == {target}:", "            return True", "return False"],
         f"Return True if two numbers at different positions of {xs} add up to {target}, and False otherwise."),
        ("has_close_pair", pt, "bool",
         loops + [f"        if abs(a - b) <= {target}:", "            return True", "return False"],
         f"Return True if two numbers at different positions of {xs} differ by at most {target}, and False "
         "otherwise."),
        ("has_duplicate", p, "bool",
         loops + ["        if a == b:", "            return True", "return False"],
         f"Return True if some number occurs at two different positions of {xs}, and False otherwise."),
        ("largest_pair_product", p, "int",
         ["best = None"] + loops + ["        product = a * b",
                                    "        if best is None or product > best:", "            best = product",
                                    "return best if best is not None else 0"],
         f"Return the largest product of two numbers at different positions of {xs}, or 0 if {xs} has fewer than "
         "two numbers."),
        ("smallest_gap", p, "int",
         ["from itertools import combinations", f"if len({xs}) < 2:", "    return 0",
          f"return min(abs(a - b) for a, b in combinations({xs}, 2))"],
         f"Return the smallest absolute difference between two numbers at different positions of {xs}, or 0 if "
         f"it has fewer than two."),
        ("count_inversions", p, "int",
         ["from itertools import combinations", f"return sum(1 for a, b in combinations({xs}, 2) if a > b)"],
         f"Return how many pairs of positions i < j in {xs} hold a larger number before a smaller one."),
        ("pairs_with_sum", pt, "list[tuple[int, int]]",
         ["result = []"] + loops + [f"        if a + b == {target}:",
                                    "            result.append((a, b))", "return result"],
         f"Return the pairs (a, b) of numbers at positions i < j of {xs} that add up to {target}, ordered by i "
         "and then j."),
    ]
    name, params, ret, body, doc = rng.choice(choices)
    body, imports = _imports_apart(body)
    return Draft(name, params, ret, body, doc, f"pairs/{name}", imports)
