"""A seeded generator of small typed programs over the builtins, in HumanEval's style.

Each draft is one short function (a typed signature, a body of one to a dozen lines) built by composing pieces that
each carry their code and their English: a filter ("that are even"), a map ("the squares of"), a reduction ("the sum
of"), a string or word operation, a digit loop, a branch, a dict built from a list; the families in synthetic_params,
synthetic_floats and synthetic_loops add several parameters, floats, helper functions, positions and pairs. The docstring is rendered from the same
pieces, so it says what the code does; its `>>>` examples and the tests' expected values are computed later by
running the program (validate.py), never written here. Styles vary on purpose (comprehension, loop, builtin call) so
that the same meaning is seen in the several shapes HumanEval's solutions take.

Inputs come from named domains ("ints", "words", ...). Every domain starts with the same probe values, whatever the
draft: two drafts with the same parameter domains that return the same values on the probes behave the same, and
the builder keeps only the first (deduplication by behaviour, not by text)."""

from __future__ import annotations

import random
from typing import Callable, Iterator

from .synthetic_base import (CHAR_CLASSES, N_PROBES, WORD_CONDITIONS, Draft, Param, int_condition, pick_name,
                             probe_and_extra_inputs, rephrase)
from .synthetic_params import int_arithmetic, string_ops, words_with_parameter
from .synthetic_floats import float_formula, float_list
from .synthetic_loops import integer_algorithms, number_property, pairs, positions
from .synthetic_sets import distinct_values, mixed_types, set_relations, sort_by_key, sortedness
from .validate import Candidate


# ---------------------------------------------------------------------------------------------------- int lists
def _int_filters(rng: random.Random):
    """One condition, or two joined by `and`/`or` (their English joined the same way)."""
    cond, adj, tag = int_condition(rng)
    if rng.random() < 0.3:
        cond2, adj2, tag2 = int_condition(rng)
        if tag2 != tag:
            op = rng.choice(["and", "or"])
            return f"({cond} {op} {cond2})", f"{adj} {op} {adj2}", f"{tag}_{op}_{tag2}"
    return cond, adj, tag


def _int_maps(rng: random.Random):
    k, c = rng.randint(2, 9), rng.randint(1, 9)
    return rng.choice([
        ("{v} * {v}", "the squares of {x}", "squares"), (f"{{v}} * {k}", "{x}, each multiplied by %d" % k, f"times_{k}"),
        (f"{{v}} + {k}", "{x}, each increased by %d" % k, f"plus_{k}"), ("abs({v})", "the absolute values of {x}", "abs"),
        (f"{{v}} - {c}", "{x}, each decreased by %d" % c, f"minus_{c}"),
        (f"{{v}} // {k}", "{x}, each floor-divided by %d" % k, f"div_{k}"),
        (f"{{v}} % {k}", "the remainders of {x} when divided by %d" % k, f"mod_{k}"),
        ("-{v}", "the negations of {x}", "negated"), ("{v} * {v} * {v}", "the cubes of {x}", "cubes"),
        (f"{{v}} * {k} + {c}", "{x}, each multiplied by %d and then increased by %d" % (k, c), f"times_{k}_plus_{c}"),
        (f"min({{v}}, {k})", "{x}, each capped at %d (values above %d become %d)" % (k, k, k), f"capped_{k}"),
        (f"max({{v}}, {c})", "{x}, each raised to at least %d (values below %d become %d)" % (c, c, c), f"floored_{c}"),
        ("{v} % 10", "the last digits of {x} (as {v} % 10)", "last_digits"),
    ])


def int_list_pipeline(rng: random.Random) -> Draft:
    """filter -> map -> reduce over a list of ints."""
    xs = pick_name(rng, "int_list")
    v = rng.choice(["x", "n", "v", "num"])
    domain = rng.choice(["ints", "nats"])
    use_filter, use_map = rng.random() < 0.8, rng.random() < 0.5
    cond, adj, fname = _int_filters(rng) if use_filter else ("", "", "")
    expr, mphrase, mname = _int_maps(rng) if use_map else ("{v}", "{x}", "")
    cond, expr, adj = cond.format(v=v), expr.format(v=v), adj.format(v=v)
    noun = f"the numbers in {xs}" + (f" that are {adj}" if adj else "")
    if adj and " " not in adj and rng.random() < 0.5:
        noun = f"the {adj} numbers in {xs}"
    items = mphrase.format(x=noun, v=v)
    gen = f"{expr} for {v} in {xs}" + (f" if {cond}" if cond else "")
    parts = [p for p in (mname, fname) if p]
    red = rng.choice(["list", "sum", "count", "max", "min", "any", "all", "first", "sorted", "product", "len_distinct",
                      "last", "spread"])
    if red == "count":
        if not cond:
            cond, adj, fname = _int_filters(rng)
            cond, adj = cond.format(v=v), adj.format(v=v)
        doc = f"Return how many numbers in {xs} are {adj}."
        body = rng.choice([[f"return sum(1 for {v} in {xs} if {cond})"],
                           [f"return len([{v} for {v} in {xs} if {cond}])"],
                           ["count = 0", f"for {v} in {xs}:", f"    if {cond}:", "        count += 1", "return count"]])
        return Draft(f"count_{fname}", [Param(xs, "list[int]", domain)], "int", body, doc, f"int_list/count/{fname}")
    if red in ("any", "all"):
        if not cond:
            cond, adj, fname = _int_filters(rng)
            cond, adj = cond.format(v=v), adj.format(v=v)
        doc = (f"Return True if at least one number in {xs} is {adj}, and False otherwise." if red == "any" else
               f"Return True if every number in {xs} is {adj}, and False otherwise. An empty list gives True.")
        body = rng.choice([[f"return {red}({cond} for {v} in {xs})"],
                           [f"for {v} in {xs}:", f"    if {'' if red == 'any' else 'not '}({cond}):",
                            f"        return {red == 'any'}", f"return {red != 'any'}"]])
        name = f"{'any' if red == 'any' else 'all'}_{fname}"
        return Draft(name, [Param(xs, "list[int]", domain)], "bool", body, doc, f"int_list/{red}/{fname}")
    name_tail = "_".join(parts) or "values"
    if red == "list":
        doc = f"Return a list of {items}, in their original order."
        body = rng.choice([[f"return [{gen}]"],
                           ["result = []", f"for {v} in {xs}:"] +
                           ([f"    if {cond}:", f"        result.append({expr})"] if cond else
                            [f"    result.append({expr})"]) + ["return result"]])
        if not parts:
            return int_list_pipeline(rng)
        name = f"{mname}_of_{fname}" if mname and fname else f"{mname or 'keep_' + fname}"
        return Draft(name, [Param(xs, "list[int]", domain)], "list[int]", body, doc, f"int_list/list/{name_tail}")
    if red == "sorted":
        desc = rng.random() < 0.5
        doc = f"Return {items}, sorted in {'descending' if desc else 'ascending'} order."
        body = [f"return sorted([{gen}]{', reverse=True' if desc else ''})"]
        return Draft(f"sorted_{name_tail}{'_desc' if desc else ''}", [Param(xs, "list[int]", domain)], "list[int]",
                     body, doc, f"int_list/sorted/{name_tail}")
    if red == "sum":
        doc = f"Return the sum of {items}. The sum of no numbers is 0."
        body = rng.choice([[f"return sum({gen})"],
                           ["total = 0", f"for {v} in {xs}:"] +
                           ([f"    if {cond}:", f"        total += {expr}"] if cond else [f"    total += {expr}"]) +
                           ["return total"]])
        return Draft(f"sum_{name_tail}", [Param(xs, "list[int]", domain)], "int", body, doc, f"int_list/sum/{name_tail}")
    if red == "product":
        doc = f"Return the product of {items}. The product of no numbers is 1."
        body = ["result = 1", f"for {v} in {xs}:"] + (
            [f"    if {cond}:", f"        result *= {expr}"] if cond else [f"    result *= {expr}"]) + ["return result"]
        return Draft(f"product_{name_tail}", [Param(xs, "list[int]", domain)], "int", body, doc,
                     f"int_list/product/{name_tail}")
    if red in ("max", "min"):
        word = "largest" if red == "max" else "smallest"
        default = rng.choice(["None", "0", "-1"])
        doc = f"Return the {word} of {items}, or {default} if there are none."
        body = rng.choice([[f"return {red}(({gen}), default={default})"],
                           [f"candidates = [{gen}]", "if not candidates:", f"    return {default}",
                            f"return {red}(candidates)"]])
        ret = "int | None" if default == "None" else "int"
        if default == "None" and rng.random() < 0.5:
            ret = "Optional[int]"
            imports = ["from typing import Optional"]
        else:
            imports = []
        return Draft(f"{word}_{name_tail}", [Param(xs, "list[int]", domain)], ret, body, doc,
                     f"int_list/{red}/{name_tail}", imports)
    if red == "len_distinct":
        doc = f"Return how many different values there are among {items}."
        body = [f"return len({{{gen}}})"]
        return Draft(f"distinct_{name_tail}", [Param(xs, "list[int]", domain)], "int", body, doc,
                     f"int_list/distinct/{name_tail}")
    if red == "spread":
        doc = f"Return the difference between the largest and the smallest of {items}, or 0 if there are none."
        body = [f"picked = [{gen}]", "if not picked:", "    return 0", "return max(picked) - min(picked)"]
        return Draft(f"spread_{name_tail}", [Param(xs, "list[int]", domain)], "int", body, doc,
                     f"int_list/spread/{name_tail}")
    if red == "last":
        default = rng.choice(["None", "-1", "0"])
        doc = f"Return the last of {items}, or {default} if there are none."
        bodies = [[f"picked = [{gen}]", f"return picked[-1] if picked else {default}"]]
        if cond:
            bodies.append([f"result = {default}", f"for {v} in {xs}:", f"    if {cond}:", f"        result = {expr}",
                           "return result"])
        body = rng.choice(bodies)
        return Draft(f"last_{name_tail}", [Param(xs, "list[int]", domain)],
                     "int | None" if default == "None" else "int", body, doc, f"int_list/last/{name_tail}")
    # first
    if not cond:
        cond, adj, fname = _int_filters(rng)
        cond, adj = cond.format(v=v), adj.format(v=v)
    default = rng.choice(["None", "-1", "0"])
    doc = f"Return the first number in {xs} that is {adj}, or {default} if there is no such number."
    body = rng.choice([[f"for {v} in {xs}:", f"    if {cond}:", f"        return {v}", f"return {default}"],
                       [f"return next(({v} for {v} in {xs} if {cond}), {default})"]])
    return Draft(f"first_{fname}", [Param(xs, "list[int]", domain)], "int | None" if default == "None" else "int",
                 body, doc, f"int_list/first/{fname}")


def int_list_shape(rng: random.Random) -> Draft:
    """Order and position: reversing, rotating, running sums, neighbours, duplicates, indices."""
    xs = pick_name(rng, "int_list")
    domain = rng.choice(["ints", "nats"])
    p = [Param(xs, "list[int]", domain)]
    pk = p + [Param("k", "int", "k")]
    choices = [
        ("reverse_list", p, "list[int]", [f"return {xs}[::-1]"], f"Return the elements of {xs} in reverse order."),
        ("running_sum", p, "list[int]", ["result, total = [], 0", f"for x in {xs}:", "    total += x",
                                          "    result.append(total)", "return result"],
         f"Return the running totals of {xs}: element i of the result is the sum of the first i + 1 elements."),
        ("differences", p, "list[int]", [f"return [{xs}[i + 1] - {xs}[i] for i in range(len({xs}) - 1)]"],
         f"Return the differences between consecutive elements of {xs} (each element minus the one before it)."),
        ("pair_sums", p, "list[int]", [f"return [a + b for a, b in zip({xs}, {xs}[1:])]"],
         f"Return the sums of each pair of neighbouring elements of {xs}."),
        ("unique_in_order", p, "list[int]", ["seen, result = set(), []", f"for x in {xs}:", "    if x not in seen:",
                                              "        seen.add(x)", "        result.append(x)", "return result"],
         f"Return the elements of {xs} without repeats, keeping the first occurrence of each, in order."),
        ("duplicates", p, "list[int]", [f"return sorted({{x for x in {xs} if {xs}.count(x) > 1}})"],
         f"Return the values that occur more than once in {xs}, sorted in ascending order."),
        ("index_of_largest", p, "int", [f"if not {xs}:", "    return -1", f"return {xs}.index(max({xs}))"],
         f"Return the index of the largest element of {xs} (the first one if it occurs more than once), or -1 if {xs} is empty."),
        ("index_of_smallest", p, "int", [f"if not {xs}:", "    return -1", f"return {xs}.index(min({xs}))"],
         f"Return the index of the smallest element of {xs} (the first one if it occurs more than once), or -1 if {xs} is empty."),
        ("count_increases", p, "int", [f"return sum(1 for a, b in zip({xs}, {xs}[1:]) if b > a)"],
         f"Return how many elements of {xs} are larger than the element just before them."),
        ("sum_even_positions", p, "int", [f"return sum({xs}[::2])"],
         f"Return the sum of the elements of {xs} at even indices (0, 2, 4, ...)."),
        ("sum_odd_positions", p, "int", [f"return sum({xs}[1::2])"],
         f"Return the sum of the elements of {xs} at odd indices (1, 3, 5, ...)."),
        ("range_of", p, "int", [f"if not {xs}:", "    return 0", f"return max({xs}) - min({xs})"],
         f"Return the difference between the largest and the smallest element of {xs}, or 0 if {xs} is empty."),
        ("second_largest", p, "int | None", [f"distinct = sorted(set({xs}))", "if len(distinct) < 2:", "    return None",
                                             "return distinct[-2]"],
         f"Return the second largest distinct value in {xs}, or None if there are fewer than two distinct values."),
        ("is_sorted", p, "bool", [f"return all(a <= b for a, b in zip({xs}, {xs}[1:]))"],
         f"Return True if {xs} is sorted in non-decreasing order, and False otherwise."),
        ("rotate_left", pk, "list[int]", [f"if not {xs}:", "    return []", f"k = k % len({xs})", f"return {xs}[k:] + {xs}[:k]"],
         f"Return {xs} rotated k places to the left (the first k elements move to the end)."),
        ("every_kth", pk, "list[int]", [f"return {xs}[::k]"],
         f"Return every k-th element of {xs}, starting with the first."),
        ("take_largest", pk, "list[int]", [f"return sorted({xs}, reverse=True)[:k]"],
         f"Return the k largest elements of {xs}, largest first."),
        ("positions_of", [Param(xs, "list[int]", domain), Param("target", "int", "int")], "list[int]",
         [f"return [i for i, x in enumerate({xs}) if x == target]"],
         f"Return the indices at which target occurs in {xs}, in increasing order."),
        ("count_above", [Param(xs, "list[int]", domain), Param("limit", "int", "int")], "int",
         [f"return sum(1 for x in {xs} if x > limit)"], f"Return how many elements of {xs} are greater than limit."),
        ("clip_all", [Param(xs, "list[int]", domain), Param("k", "int", "k")], "list[int]",
         [f"return [min(x, k) for x in {xs}]"], f"Return {xs} with every element larger than k replaced by k."),
        ("mean_rounded", p, "float", [f"if not {xs}:", "    return 0.0", f"return round(sum({xs}) / len({xs}), 2)"],
         f"Return the average of {xs} rounded to 2 decimal places, or 0.0 if {xs} is empty."),
        ("split_even_odd", p, "tuple[list[int], list[int]]",
         [f"return [x for x in {xs} if x % 2 == 0], [x for x in {xs} if x % 2 != 0]"],
         f"Return a tuple of two lists: the even elements of {xs} and the odd ones, each in their original order."),
    ]
    name, params, ret, body, doc = rng.choice(choices)
    return Draft(name, params, ret, body, doc, f"int_list_shape/{name}")


def two_lists(rng: random.Random) -> Draft:
    a, b = pick_name(rng, "list_pair")
    dom = rng.choice(["ints", "nats"])
    p = [Param(a, "list[int]", dom), Param(b, "list[int]", rng.choice(["ints", "nats"]))]
    choices = [
        ("add_pairwise", "list[int]", [f"return [x + y for x, y in zip({a}, {b})]"],
         f"Return the element-wise sums of {a} and {b}. If one list is longer, its extra elements are ignored."),
        ("multiply_pairwise", "list[int]", [f"return [x * y for x, y in zip({a}, {b})]"],
         f"Return the element-wise products of {a} and {b}, as long as the shorter list."),
        ("dot_product", "int", [f"return sum(x * y for x, y in zip({a}, {b}))"],
         f"Return the sum of the products of the elements of {a} and {b} at the same positions (up to the shorter length)."),
        ("count_equal_positions", "int", [f"return sum(1 for x, y in zip({a}, {b}) if x == y)"],
         f"Return how many positions hold the same value in {a} and in {b}."),
        ("common_values", "list[int]", [f"return sorted(set({a}) & set({b}))"],
         f"Return the values that occur in both {a} and {b}, without repeats, in ascending order."),
        ("only_in_first", "list[int]", [f"return [x for x in {a} if x not in {b}]"],
         f"Return the elements of {a} that do not occur in {b}, in their original order."),
        ("pairwise_max", "list[int]", [f"return [max(x, y) for x, y in zip({a}, {b})]"],
         f"Return, for each position up to the shorter length, the larger of the elements of {a} and {b} there."),
        ("interleave", "list[int]", ["result = []", f"for x, y in zip({a}, {b}):", "    result += [x, y]", "return result"],
         f"Return a list alternating elements of {a} and {b} ({a}[0], {b}[0], {a}[1], {b}[1], ...), as long as twice the shorter list."),
        ("total_of_both", "int", [f"return sum({a}) + sum({b})"], f"Return the sum of all elements of {a} and {b} together."),
    ]
    name, ret, body, doc = rng.choice(choices)
    return Draft(name, p, ret, body, doc, f"two_lists/{name}")


# ---------------------------------------------------------------------------------------------------- strings
def string_chars(rng: random.Random) -> Draft:
    s = pick_name(rng, "text")
    c = rng.choice(["c", "ch", "char"])
    if rng.random() < 0.4:  # a random set of letters: many distinct behaviours from one recipe
        chosen = "".join(sorted(rng.sample("abdehilmnorstw", rng.randint(2, 4))))
        listed = ", ".join(chosen[:-1]) + f" or {chosen[-1]}"
        cond, short, long_, tag = (f"{{c}} in '{chosen}'", f"letters {listed}", f"letters {listed}",
                                   f"letters_{chosen}")
        if rng.random() < 0.5:
            cond, long_, tag = f"{{c}}.lower() in '{chosen}'", f"letters {listed} (in either case)", f"{tag}_any_case"
    else:
        cond, short, long_, tag = rng.choice(CHAR_CLASSES)
    cond = cond.format(c=c)
    p = [Param(s, "str", "text")]
    op = rng.choice(["count", "keep", "remove", "replace", "first_index", "any", "upper_them"])
    if op == "count":
        body = rng.choice([[f"return sum(1 for {c} in {s} if {cond})"],
                           ["count = 0", f"for {c} in {s}:", f"    if {cond}:", "        count += 1", "return count"]])
        return Draft(f"count_{tag}", p, "int", body, f"Return how many {long_} {s} contains.", f"str/count/{tag}")
    if op == "keep":
        body = [f"return ''.join({c} for {c} in {s} if {cond})"]
        return Draft(f"only_{tag}", p, "str", body, f"Return the {short} of {s}, in order, as one string.",
                     f"str/keep/{tag}")
    if op == "remove":
        body = rng.choice([[f"return ''.join({c} for {c} in {s} if not ({cond}))"],
                           ["result = ''", f"for {c} in {s}:", f"    if not ({cond}):", f"        result += {c}",
                            "return result"]])
        return Draft(f"remove_{tag}", p, "str", body, f"Return {s} with all {long_} removed.", f"str/remove/{tag}")
    if op == "replace":
        mark = rng.choice(["*", "_", "#", "-"])
        body = [f"return ''.join('{mark}' if {cond} else {c} for {c} in {s})"]
        return Draft(f"mask_{tag}", p, "str", body, f"Return {s} with every one of its {long_} replaced by '{mark}'.",
                     f"str/replace/{tag}")
    if op == "first_index":
        body = [f"for i, {c} in enumerate({s}):", f"    if {cond}:", "        return i", "return -1"]
        return Draft(f"first_{tag.rstrip('s')}_index", p, "int", body,
                     f"Return the index of the first of the {long_} in {s}, or -1 if it has none.", f"str/index/{tag}")
    if op == "any":
        body = [f"return any({cond} for {c} in {s})"]
        return Draft(f"has_{tag}", p, "bool", body,
                     f"Return True if {s} contains at least one of the {long_}, and False otherwise.", f"str/any/{tag}")
    body = [f"return ''.join({c}.upper() if {cond} else {c} for {c} in {s})"]
    return Draft(f"upper_{tag}", p, "str", body, f"Return {s} with its {long_} changed to uppercase.",
                 f"str/upper/{tag}")


def string_whole(rng: random.Random) -> Draft:
    s = pick_name(rng, "text")
    p = [Param(s, "str", "text")]
    pc = p + [Param("ch", "str", "char")]
    pk = p + [Param("k", "int", "k")]
    choices = [
        ("reverse_text", p, "str", [f"return {s}[::-1]"], f"Return {s} reversed."),
        ("is_mirror", p, "bool", [f"cleaned = {s}.lower()", "return cleaned == cleaned[::-1]"],
         f"Return True if {s} reads the same forwards and backwards, ignoring case."),
        ("double_letters", p, "str", [f"return ''.join(c * 2 for c in {s})"], f"Return {s} with every character doubled."),
        ("swap_case", p, "str", [f"return {s}.swapcase()"], f"Return {s} with uppercase letters made lowercase and lowercase letters made uppercase."),
        ("alternate_case", p, "str", [f"return ''.join(c.upper() if i % 2 == 0 else c.lower() for i, c in enumerate({s}))"],
         f"Return {s} with the characters at even indices in uppercase and the others in lowercase."),
        ("count_char", pc, "int", [f"return {s}.count(ch)"], f"Return how many times the character ch occurs in {s}."),
        ("remove_char", pc, "str", [f"return {s}.replace(ch, '')"], f"Return {s} with every occurrence of ch removed."),
        ("char_positions", pc, "list[int]", [f"return [i for i, c in enumerate({s}) if c == ch]"],
         f"Return the indices at which ch occurs in {s}, in increasing order."),
        ("first_k", pk, "str", [f"return {s}[:k]"], f"Return the first k characters of {s} (all of it if it is shorter)."),
        ("last_k", pk, "str", [f"return {s}[-k:] if k <= len({s}) else {s}"], f"Return the last k characters of {s} (all of it if it is shorter)."),
        ("repeat_text", pk, "str", [f"return {s} * k"], f"Return {s} repeated k times."),
        ("shift_letters", pk, "str", ["result = ''", f"for c in {s}:", "    if c.islower():",
                                       "        c = chr((ord(c) - ord('a') + k) % 26 + ord('a'))", "    result += c",
                                       "return result"],
         f"Return {s} with every lowercase letter moved k places forward in the alphabet, wrapping from z to a. Other characters stay as they are."),
        ("squeeze_repeats", p, "str", ["result = ''", f"for c in {s}:", "    if not result or result[-1] != c:",
                                        "        result += c", "return result"],
         f"Return {s} with each run of the same character replaced by one copy of it."),
        ("distinct_chars", p, "int", [f"return len(set({s}))"], f"Return how many different characters {s} contains."),
        ("char_codes_sum", p, "int", [f"return sum(ord(c) for c in {s})"], f"Return the sum of the character codes (ord) of the characters of {s}."),
        ("digit_total", p, "int", [f"return sum(int(c) for c in {s} if c.isdigit())"],
         f"Return the sum of the digits that occur in {s}."),
        ("most_common_char", p, "str", [f"if not {s}:", "    return ''", f"return max({s}, key={s}.count)"],
         f"Return the character that occurs most often in {s} (the earliest one in a tie), or '' if {s} is empty."),
        ("middle_char", p, "str", [f"if not {s}:", "    return ''", f"return {s}[len({s}) // 2]"],
         f"Return the character in the middle of {s} (at index len({s}) // 2), or '' if {s} is empty."),
        ("starts_and_ends_same", p, "bool", [f"return len({s}) > 0 and {s}[0] == {s}[-1]"],
         f"Return True if {s} is not empty and its first and last characters are the same."),
    ]
    name, params, ret, body, doc = rng.choice(choices)
    return Draft(name, params, ret, body, doc, f"str_whole/{name}")


_WORD_MAPS = [
    ("{w}.upper()", "in uppercase", "upper"), ("{w}[::-1]", "reversed", "reversed"),
    ("{w}.capitalize()", "capitalised", "capitalised"), ("{w}[0]", "first letters", "initials"),
    ("len({w})", "lengths", "lengths"),
    ("{w}[:{k}]", "cut to their first {k} characters", "first_{k}"), ("{w}[-1]", "last letters", "finals"),
    ("{w} + '{ch}'", "each followed by '{ch}'", "plus_{ch}"), ("{w}.lower()", "in lowercase", "lower"),
    ("{w}.replace('{ch}', '')", "with every '{ch}' removed", "without_{ch}"),
]


def word_pipeline(rng: random.Random) -> Draft:
    """Words of a sentence or a list of words: filter -> map -> join/count/list."""
    from_sentence = rng.random() < 0.5
    src = pick_name(rng, "sentence" if from_sentence else "word_list")
    w = rng.choice(["w", "word"])
    k = rng.randint(2, 6)
    ch = rng.choice("aeilnorst")
    cond, fphrase, ftag = rng.choice(WORD_CONDITIONS) if rng.random() < 0.75 else ("", "", "")
    cond = cond.format(w=w, k=k, ch=ch) if cond else ""
    fphrase, ftag = fphrase.format(k=k, ch=ch), ftag.format(k=k, ch=ch)
    words_of = f"{src}.split()" if from_sentence else src
    p = [Param(src, "str", "sentence")] if from_sentence else [Param(src, "list[str]", "words")]
    where = f"the words of {src}" if from_sentence else f"the strings in {src}"
    noun = f"{where} {fphrase}" if fphrase else where
    gen_if = f" if {cond}" if cond else ""
    op = rng.choice(["list", "count", "join", "map", "longest", "total_length"])
    if op == "count" and cond:
        body = [f"return sum(1 for {w} in {words_of}{gen_if})"]
        return Draft(f"count_{ftag}_words", p, "int", body, f"Return how many of {where} are {fphrase}.".replace(
            "are that", "are words that").replace("are with", "are words with").replace(
            "are starting", "start").replace("are containing", "contain").replace("are longer", "are longer"),
            f"words/count/{ftag}")
    if op == "longest":
        body = [f"candidates = [{w} for {w} in {words_of}{gen_if}]", "if not candidates:", "    return ''",
                "return max(candidates, key=len)"]
        return Draft(f"longest_{ftag or 'word'}", p, "str", body,
                     f"Return the longest of {noun} (the first one in a tie), or '' if there are none.",
                     f"words/longest/{ftag}")
    if op == "total_length":
        body = [f"return sum(len({w}) for {w} in {words_of}{gen_if})"]
        return Draft(f"total_length_{ftag or 'words'}", p, "int", body, f"Return the total number of characters in {noun}.",
                     f"words/total_length/{ftag}")
    mexpr, mphrase, mtag = rng.choice(_WORD_MAPS) if (op == "map" or rng.random() < 0.5) else ("{w}", "", "")
    mexpr, mphrase, mtag = mexpr.format(w=w, k=k, ch=ch), mphrase.format(k=k, ch=ch), mtag.format(k=k, ch=ch)
    if mtag == "lengths":
        body = [f"return [{mexpr} for {w} in {words_of}{gen_if}]"]
        return Draft(f"{ftag + '_' if ftag else ''}word_lengths", p, "list[int]", body,
                     f"Return the lengths of {noun}, in order.", f"words/lengths/{ftag}")
    described = f"{noun}, {mphrase}," if mphrase and mtag not in ("initials", "finals") else (
        f"the first letters of {noun}" if mtag == "initials" else (
            f"the last letters of {noun}" if mtag == "finals" else noun))
    if op == "join" and from_sentence:
        sep = rng.choice([" ", "-", ",", ""])
        body = [f"return '{sep}'.join({mexpr} for {w} in {words_of}{gen_if})"]
        return Draft(f"join_{ftag or mtag or 'words'}", p, "str", body,
                     f"Return {described} joined by {sep!r}.".replace(",,", ",").replace(", joined", " joined"),
                     f"words/join/{ftag}/{mtag}")
    if not (cond or mtag):
        return word_pipeline(rng)
    body = rng.choice([[f"return [{mexpr} for {w} in {words_of}{gen_if}]"],
                       ["result = []", f"for {w} in {words_of}:"] +
                       ([f"    if {cond}:", f"        result.append({mexpr})"] if cond else
                        [f"    result.append({mexpr})"]) + ["return result"]])
    doc = f"Return a list of {described} in their original order.".replace(",, in", ", in").replace(", in their", " in their")
    return Draft(f"{'_'.join(t for t in (ftag, mtag) if t)}_words", p, "list[str]", body, doc,
                 f"words/list/{ftag}/{mtag}")


# ---------------------------------------------------------------------------------------------------- numbers
def integer_loops(rng: random.Random) -> Draft:
    n = pick_name(rng, "number")
    pn = [Param(n, "int", "n")]
    pb = [Param(n, "int", "big")]
    k = rng.randint(2, 7)
    choices = [
        ("digit_sum", pb, "int", [f"return sum(int(d) for d in str({n}))"], f"Return the sum of the decimal digits of {n} (a non-negative integer)."),
        ("digit_count", pb, "int", [f"return len(str({n}))"], f"Return how many decimal digits {n} (a non-negative integer) has."),
        ("digit_product", pb, "int", ["result = 1", f"for d in str({n}):", "    result *= int(d)", "return result"],
         f"Return the product of the decimal digits of {n} (a non-negative integer)."),
        ("reverse_digits", pb, "int", [f"return int(str({n})[::-1])"], f"Return the number whose digits are those of {n} in reverse order (leading zeros are dropped)."),
        ("count_even_digits", pb, "int", [f"return sum(1 for d in str({n}) if int(d) % 2 == 0)"],
         f"Return how many of the decimal digits of {n} are even."),
        ("largest_digit", pb, "int", [f"return max(int(d) for d in str({n}))"], f"Return the largest decimal digit of {n}."),
        ("divisor_count", [Param(n, "int", "n")], "int", [f"return sum(1 for d in range(1, {n} + 1) if {n} % d == 0)"],
         f"Return how many positive integers divide {n} exactly (0 for n = 0)."),
        ("divisors", pn, "list[int]", [f"return [d for d in range(1, {n} + 1) if {n} % d == 0]"],
         f"Return the positive divisors of {n} in increasing order."),
        ("triangle_number", pn, "int", [f"return {n} * ({n} + 1) // 2"], f"Return 1 + 2 + ... + {n} (0 for {n} = 0)."),
        ("factorial_of", pn, "int", ["result = 1", f"for i in range(2, {n} + 1):", "    result *= i", "return result"],
         f"Return {n}! (the product 1 * 2 * ... * {n}; 0! is 1)."),
        ("ones_in_binary", pb, "int", [f"return bin({n}).count('1')"], f"Return how many 1 bits the binary form of {n} has."),
        ("binary_string", pb, "str", [f"return bin({n})[2:]"], f"Return the binary form of {n} as a string of 0s and 1s, without a prefix."),
        ("steps_to_one", [Param(n, "int", "n")], "int",
         ["steps = 0", f"while {n} > 1:", f"    {n} = {n} // 2 if {n} % 2 == 0 else 3 * {n} + 1", "    steps += 1", "return steps"],
         f"Return how many steps it takes to reach 1 (or less) from {n} when each step halves an even number and turns an odd number x into 3 * x + 1."),
        ("multiples_below", pn, "list[int]", [f"return list(range(0, {n}, {k}))"],
         f"Return the multiples of {k} from 0 up to but not including {n}."),
        ("fibonacci_upto", pn, "list[int]", ["result, a, b = [], 0, 1", f"while a <= {n}:", "    result.append(a)",
                                              "    a, b = b, a + b", "return result"],
         f"Return the Fibonacci numbers (0, 1, 1, 2, 3, 5, ...) that are at most {n}, in order."),
    ]
    name, params, ret, body, doc = rng.choice(choices)
    return Draft(name, params, ret, body, doc, f"int/{name}")


def branches(rng: random.Random) -> Draft:
    """Conditions over one or two integers."""
    a, b = pick_name(rng, "int_pair")
    p1 = [Param(a, "int", "int")]
    p2 = [Param(a, "int", "int"), Param(b, "int", "int")]
    k = rng.randint(2, 9)
    w1, w2 = rng.choice([("big", "small"), ("high", "low"), ("yes", "no"), ("hot", "cold")])
    choices = [
        ("sign_of", p1, "int", [f"if {a} > 0:", "    return 1", f"if {a} < 0:", "    return -1", "return 0"],
         f"Return 1 if {a} is positive, -1 if it is negative, and 0 if it is zero."),
        ("describe_sign", p1, "str", [f"if {a} > 0:", "    return 'positive'", f"if {a} < 0:", "    return 'negative'",
                                      "return 'zero'"],
         f"Return 'positive', 'negative' or 'zero' according to the sign of {a}."),
        ("parity_word", p1, "str", [f"return 'even' if {a} % 2 == 0 else 'odd'"], f"Return 'even' if {a} is even and 'odd' otherwise."),
        (f"label_{w1}_{w2}", p1, "str", [f"return '{w1}' if {a} >= {k} else '{w2}'"],
         f"Return '{w1}' if {a} is at least {k}, and '{w2}' otherwise."),
        ("larger_of", p2, "int", [f"return {a} if {a} > {b} else {b}"], f"Return the larger of {a} and {b}."),
        ("distance", p2, "int", [f"return abs({a} - {b})"], f"Return the absolute difference between {a} and {b}."),
        ("divides", p2, "bool", [f"return {a} != 0 and {b} % {a} == 0"], f"Return True if {a} is not zero and divides {b} exactly."),
        ("same_parity", p2, "bool", [f"return {a} % 2 == {b} % 2"], f"Return True if {a} and {b} are both even or both odd."),
        ("clamp_to", [Param(a, "int", "int")], "int", [f"return max(-{k}, min({a}, {k}))"],
         f"Return {a} limited to the range from -{k} to {k}: values below -{k} become -{k} and values above {k} become {k}."),
        ("halve_or_triple", p1, "int", [f"if {a} % 2 == 0:", f"    return {a} // 2", f"return 3 * {a} + 1"],
         f"Return {a} // 2 if {a} is even, and 3 * {a} + 1 if it is odd."),
        ("compare", p2, "str", [f"if {a} < {b}:", "    return 'less'", f"if {a} > {b}:", "    return 'greater'",
                                "return 'equal'"],
         f"Return 'less', 'greater' or 'equal' according to how {a} compares with {b}."),
        (f"fizz_{k}", p1, "str", [f"if {a} % {k} == 0:", "    return 'fizz'", f"return str({a})"],
         f"Return 'fizz' if {a} is divisible by {k}, and {a} as a string otherwise."),
        ("sum_or_product", p2, "int", [f"if {a} > {b}:", f"    return {a} + {b}", f"return {a} * {b}"],
         f"Return the sum of {a} and {b} if {a} is greater than {b}, and their product otherwise."),
        ("between_inclusive", [Param(a, "int", "int"), Param("low", "int", "int"), Param("high", "int", "int")], "bool",
         [f"return low <= {a} <= high"], f"Return True if {a} lies between low and high, both included."),
    ]
    name, params, ret, body, doc = rng.choice(choices)
    return Draft(name, params, ret, body, doc, f"branch/{name}")


_REDUCERS = {
    # name: (code from a generator expression `gen`, English from the items' noun phrase, return type)
    "sum": ("sum({gen})", "the sum of {items} (0 if there are none)", "int"),
    "list": ("[{gen}]", "a list of {items}, in order", "list[int]"),
    "max": ("max(({gen}), default=0)", "the largest of {items}, or 0 if there are none", "int"),
    "min": ("min(({gen}), default=0)", "the smallest of {items}, or 0 if there are none", "int"),
    "product": ("math.prod({gen})", "the product of {items} (1 if there are none)", "int"),
}


def _pipeline(rng: random.Random, v: str, source: str, noun: str, reducers: list[str]):
    """(code, English, return type, name parts) of reduce(map(filter(source))) with optional filter and map."""
    cond, adj, ftag = _int_filters(rng) if rng.random() < 0.85 else ("", "", "")
    expr, mphrase, mtag = _int_maps(rng) if rng.random() < 0.5 else ("{v}", "{x}", "")
    cond, adj, expr = cond.format(v=v), adj.format(v=v), expr.format(v=v)
    plain = f"{noun} that are {adj}" if adj else noun
    items = mphrase.format(x=plain, v=v)
    red = rng.choice(reducers)
    if red in ("count", "any"):
        if not cond:
            return None
        if red == "any":  # the condition alone decides: no map
            return (f"any({cond} for {v} in {source})",
                    f"True if at least one of {noun} is {adj}, and False otherwise", "bool", ["any", ftag])
        return (f"sum(1 for {v} in {source} if {cond})", f"how many of {noun} are {adj}", "int", ["count", ftag])
    code, english, ret = _REDUCERS[red]
    gen = f"{expr} for {v} in {source}" + (f" if {cond}" if cond else "")
    return (code.format(gen=gen), english.format(items=items), ret,
            [t for t in (red, mtag, ftag) if t])


def digit_pipeline(rng: random.Random) -> Draft:
    """The decimal digits of a number: filter -> map -> reduce (HumanEval's digit problems are of this kind)."""
    n = pick_name(rng, "number")
    v = rng.choice(["d", "digit"])
    made = _pipeline(rng, v, f"map(int, str({n}))", f"the decimal digits of {n}",
                     ["sum", "count", "list", "max", "min", "product", "any"])
    if made is None:
        return digit_pipeline(rng)
    code, english, ret, tags = made
    imports = ["import math"] if "math.prod" in code else []
    return Draft("_".join(tags) + "_digits", [Param(n, "int", "big")], ret, [f"return {code}"],
                 f"Return {english}. {n} is not negative.", f"digits/{'/'.join(tags)}", imports)


def range_pipeline(rng: random.Random) -> Draft:
    """The numbers 1..n (or lo..hi): filter -> map -> reduce."""
    v = rng.choice(["i", "k", "x"])
    if rng.random() < 0.6:
        n = rng.choice(["n", "limit", "m"])
        params, source, noun = [Param(n, "int", "n")], f"range(1, {n} + 1)", f"the numbers from 1 to {n}"
    else:
        params, source, noun = ([Param("lo", "int", "int"), Param("hi", "int", "n")], "range(lo, hi + 1)",
                                "the numbers from lo to hi (both included)")
    made = _pipeline(rng, v, source, noun, ["sum", "count", "list", "max", "product", "any"])
    if made is None:
        return range_pipeline(rng)
    code, english, ret, tags = made
    imports = ["import math"] if "math.prod" in code else []
    return Draft("_".join(tags) + "_in_range", params, ret, [f"return {code}"], f"Return {english}.",
                 f"range/{'/'.join(tags)}", imports)


def list_with_parameter(rng: random.Random) -> Draft:
    """A list of ints and an int parameter that the condition or the map uses."""
    xs = pick_name(rng, "int_list")
    k = rng.choice(["k", "n", "limit", "target", "m"])
    v = rng.choice(["x", "v", "num"])
    cond, adj, ctag = rng.choice([
        (f"{v} > {k}", f"greater than {k}", "above"), (f"{v} < {k}", f"less than {k}", "below"),
        (f"{v} >= {k}", f"at least {k}", "at_least"), (f"{v} <= {k}", f"at most {k}", "at_most"),
        (f"{v} != {k}", f"different from {k}", "other_than"), (f"{v} == {k}", f"equal to {k}", "equal"),
        (f"{k} != 0 and {v} % {k} == 0", f"divisible by {k} ({k} is not 0)", "divisible_by"),
        (f"abs({v} - {k}) <= 2", f"at most 2 away from {k}", "near"),
    ])
    expr, mphrase, mtag = rng.choice([(v, "{x}", ""), (f"{v} + {k}", "{x}, each increased by %s" % k, "plus"),
                                      (f"{v} * {k}", "{x}, each multiplied by %s" % k, "times"),
                                      (f"{v} - {k}", "{x}, each decreased by %s" % k, "minus"),
                                      (f"{v} * {v}", "the squares of {x}", "squares")])
    plain = f"the numbers in {xs} that are {adj}"
    items = mphrase.format(x=plain)
    red = rng.choice(["sum", "count", "list", "max", "min", "any", "all"])
    if red == "count":
        code, english, ret = f"sum(1 for {v} in {xs} if {cond})", f"how many numbers in {xs} are {adj}", "int"
        mtag = ""
    elif red in ("any", "all"):
        which = "at least one number" if red == "any" else "every number"
        code, ret, mtag = f"{red}({cond} for {v} in {xs})", "bool", ""
        english = f"True if {which} in {xs} is {adj}, and False otherwise" + ("" if red == "any" else
                                                                            ". An empty list gives True")
    else:
        code, english, ret = _REDUCERS[red]
        code, english = code.format(gen=f"{expr} for {v} in {xs} if {cond}"), english.format(items=items)
    name = "_".join(t for t in (red, mtag, ctag) if t)
    domain = rng.choice(["ints", "nats"])
    return Draft(name, [Param(xs, "list[int]", domain), Param(k, "int", "k" if ctag == "divisible_by" else "int")],
                 ret, [f"return {code}"], f"Return {english}.", f"list_param/{red}/{mtag}/{ctag}")


def parse_pipeline(rng: random.Random) -> Draft:
    """Numbers written in a string: parse, then filter -> map -> reduce."""
    s = rng.choice(["s", "text", "csv", "line", "row", "record", "numbers_text", "data"])
    v = rng.choice(["x", "n", "v"])
    made = _pipeline(rng, v, f"map(int, {s}.split(','))", f"the numbers in {s} (integers separated by commas)",
                     ["sum", "count", "list", "max", "min", "any"])
    if made is None:
        return parse_pipeline(rng)
    code, english, ret, tags = made
    return Draft("_".join(tags) + "_parsed", [Param(s, "str", "csv")], ret, [f"return {code}"], f"Return {english}.",
                 f"parse/{'/'.join(tags)}")


def grid_rows(rng: random.Random) -> Draft:
    """A list of rows of ints: a pipeline per row, or a whole-grid operation."""
    g = pick_name(rng, "grid")
    p = [Param(g, "list[list[int]]", "grid")]
    if rng.random() < 0.7:
        made = _pipeline(rng, "x", "row", "the numbers in the row", ["sum", "count", "max", "min", "any", "list"])
        if made is None:
            return grid_rows(rng)
        code, english, ret, tags = made
        return Draft("row_" + "_".join(tags), p, f"list[{ret}]", [f"return [{code} for row in {g}]"],
                     f"Return a list with, for each row of {g} in order, {english}.", f"grid/row/{'/'.join(tags)}")
    name, ret, body, doc = rng.choice([
        ("flatten", "list[int]", [f"return [x for row in {g} for x in row]"],
         f"Return the numbers of {g} in one list, row after row."),
        ("grid_total", "int", [f"return sum(sum(row) for row in {g})"], f"Return the sum of all the numbers in {g}."),
        ("transpose", "list[list[int]]", [f"if not {g}:", "    return []", f"return [list(col) for col in zip(*{g})]"],
         f"Return the columns of {g} as rows (its transpose); {g}'s rows all have the same length."),
        ("widest_row", "int", [f"return max((len(row) for row in {g}), default=0)"],
         f"Return the length of the longest row of {g}, or 0 if {g} has no rows."),
        ("row_with_largest_sum", "int", [f"if not {g}:", "    return -1",
                                         f"sums = [sum(row) for row in {g}]", "return sums.index(max(sums))"],
         f"Return the index of the row of {g} with the largest sum (the first one in a tie), or -1 if {g} is empty."),
        ("column_sums", "list[int]", [f"return [sum(col) for col in zip(*{g})]"],
         f"Return the sum of each column of {g} (as long as its shortest row; [] if {g} is empty)."),
        ("first_column", "list[int]", [f"return [row[0] for row in {g} if row]"],
         f"Return the first number of each non-empty row of {g}, in order."),
    ])
    return Draft(name, p, ret, body, doc, f"grid/{name}")


# ---------------------------------------------------------------------------------------------------- dicts
def dict_building(rng: random.Random) -> Draft:
    src = pick_name(rng, "word_list")
    xs = pick_name(rng, "int_list")
    s = rng.choice(["s", "text"])
    pw = [Param(src, "list[str]", "words")]
    pn = [Param(xs, "list[int]", rng.choice(["ints", "nats"]))]
    ps = [Param(s, "str", "text")]
    choices = [
        ("word_lengths_map", pw, "dict[str, int]", [f"return {{w: len(w) for w in {src}}}"],
         f"Return a dictionary mapping each string in {src} to its length."),
        ("count_each", pw, "dict[str, int]", ["counts = {}", f"for w in {src}:", "    counts[w] = counts.get(w, 0) + 1",
                                              "return counts"],
         f"Return a dictionary mapping each distinct string in {src} to how many times it occurs."),
        ("count_numbers", pn, "dict[int, int]", ["counts = {}", f"for x in {xs}:", "    counts[x] = counts.get(x, 0) + 1",
                                                 "return counts"],
         f"Return a dictionary mapping each distinct number in {xs} to how many times it occurs."),
        ("letter_counts", ps, "dict[str, int]", ["counts = {}", f"for c in {s}:", "    if c.isalpha():",
                                                 "        counts[c] = counts.get(c, 0) + 1", "return counts"],
         f"Return a dictionary mapping each letter of {s} to how many times it occurs (digits and spaces are not counted)."),
        ("group_by_initial", pw, "dict[str, list[str]]", ["groups = {}", f"for w in {src}:",
                                                          "    groups.setdefault(w[0], []).append(w)", "return groups"],
         f"Return a dictionary mapping each first letter to the strings of {src} that start with it, in their original order."),
        ("squares_map", pn, "dict[int, int]", [f"return {{x: x * x for x in {xs}}}"],
         f"Return a dictionary mapping each number in {xs} to its square."),
        ("group_by_parity", pn, "dict[str, list[int]]",
         [f"return {{'even': [x for x in {xs} if x % 2 == 0], 'odd': [x for x in {xs} if x % 2 != 0]}}"],
         f"Return a dictionary with the key 'even' for the even numbers of {xs} and 'odd' for the odd ones, each list in the original order."),
        ("index_map", pw, "dict[str, int]", [f"return {{w: i for i, w in enumerate({src})}}"],
         f"Return a dictionary mapping each string in {src} to the index of its last occurrence."),
        ("most_frequent_word", pw, "str", [f"if not {src}:", "    return ''", f"return max({src}, key={src}.count)"],
         f"Return the string that occurs most often in {src} (the earliest one in a tie), or '' if {src} is empty."),
        ("lengths_to_words", pw, "dict[int, list[str]]", ["groups = {}", f"for w in {src}:",
                                                          "    groups.setdefault(len(w), []).append(w)", "return groups"],
         f"Return a dictionary mapping each length to the strings of {src} that have that length, in their original order."),
    ]
    name, params, ret, body, doc = rng.choice(choices)
    return Draft(name, params, ret, body, doc, f"dict/{name}")


def sorting(rng: random.Random) -> Draft:
    src = pick_name(rng, "word_list")
    xs = pick_name(rng, "int_list")
    pw = [Param(src, "list[str]", "words")]
    pn = [Param(xs, "list[int]", "ints")]
    choices = [
        ("sort_by_length", pw, "list[str]", [f"return sorted({src}, key=len)"],
         f"Return the strings of {src} sorted by length, shortest first; strings of equal length keep their order."),
        ("sort_by_last_letter", pw, "list[str]", [f"return sorted({src}, key=lambda w: w[-1])"],
         f"Return the strings of {src} sorted by their last character; ties keep their order."),
        ("sort_alphabetically", pw, "list[str]", [f"return sorted({src}, key=str.lower)"],
         f"Return the strings of {src} in alphabetical order, ignoring case."),
        ("sort_by_abs", pn, "list[int]", [f"return sorted({xs}, key=abs)"],
         f"Return the numbers of {xs} sorted by absolute value, smallest first; ties keep their order."),
        ("sort_descending", pn, "list[int]", [f"return sorted({xs}, reverse=True)"], f"Return {xs} sorted from largest to smallest."),
        ("evens_then_odds", pn, "list[int]", [f"return sorted({xs}, key=lambda x: x % 2)"],
         f"Return {xs} with all even numbers first and then all odd numbers, each group in its original order."),
        ("median_low", pn, "int | None", [f"if not {xs}:", "    return None", f"ordered = sorted({xs})",
                                         "return ordered[(len(ordered) - 1) // 2]"],
         f"Return the lower median of {xs} (the middle element of the sorted list, the lower of the two middle ones for an even length), or None if {xs} is empty."),
        ("shortest_string", pw, "str", [f"if not {src}:", "    return ''", f"return min({src}, key=len)"],
         f"Return the shortest string in {src} (the first one in a tie), or '' if {src} is empty."),
    ]
    name, params, ret, body, doc = rng.choice(choices)
    return Draft(name, params, ret, body, doc, f"sort/{name}")


# Families and how often each is drawn: the list/string/arithmetic skills HumanEval asks for, weighted towards the
# compositional families that make the most distinct programs (the fixed-form ones, a few dozen programs each, are
# used up within the first thousands and their later draws are rejected as duplicate behaviour).
FAMILIES: list[tuple[Callable[[random.Random], Draft], float]] = [
    (int_list_pipeline, 8), (word_pipeline, 6), (range_pipeline, 4), (string_chars, 3), (digit_pipeline, 3),
    (parse_pipeline, 2), (grid_rows, 2), (list_with_parameter, 1), (int_list_shape, 1), (string_whole, 1), (integer_loops, 1), (branches, 1),
    (two_lists, 0.5), (dict_building, 0.5), (sorting, 0.5),
    (int_arithmetic, 3), (string_ops, 3), (words_with_parameter, 2), (float_list, 2), (float_formula, 0.5),
    (number_property, 2), (positions, 1.5), (integer_algorithms, 0.5), (pairs, 0.5),
    (distinct_values, 1.5), (set_relations, 1), (sort_by_key, 1.5), (sortedness, 0.5), (mixed_types, 1),
]


def draft(rng: random.Random) -> Draft:
    family = rng.choices([f for f, _ in FAMILIES], weights=[w for _, w in FAMILIES])[0]
    d = family(rng)
    # The same meaning under several names and annotation styles, as in real code and in HumanEval.
    if rng.random() < 0.3 and "list[" in d.signature():
        d.params = [Param(p.name, p.annotation.replace("list[", "List["), p.domain) for p in d.params]
        d.returns = d.returns.replace("list[", "List[")
        names = sorted({"List"} | {name for name in ("Any", "Optional") if name in d.signature()})
        d.imports = [f"from typing import {', '.join(names)}"] + [i for i in d.imports if "typing" not in i]
    d.doc = rephrase(d.doc, d.params, rng)
    return d


def candidates(seed: int, start: int = 0) -> Iterator[Candidate]:
    """An endless, seeded stream of candidates; the same seed gives the same stream. `start` skips that many."""
    rng = random.Random(seed)
    index = 0
    while True:
        d = draft(rng)
        calls = probe_and_extra_inputs(d.params, rng, extra=3)
        if index >= start:
            header = "".join(f"{imp}\n" for imp in d.imports) + d.signature()
            yield Candidate(id=f"synthetic/{seed}/{index}", source="synthetic", entry_point=d.name,
                            params=[p.name for p in d.params], header=header, solution=d.solution(), calls=calls,
                            doc=d.doc, n_probes=N_PROBES,
                            meta={"recipe": d.recipe, "seed": seed, "index": index,
                                  "domains": [p.domain for p in d.params]})
        index += 1
