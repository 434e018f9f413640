"""Synthetic families whose programs combine their parameters: arithmetic over several integers, a string taken
through a few transformations with a second string, a count or a character, and a list of strings filtered by a
parameter. The pipelines of synthetic.py mostly apply fixed constants to one list; here the English names every
parameter's role ("the remainder of a divided by k", "append suffix to it", "the strings that start with prefix"),
so a model must read the whole signature and sentence, not only recognise a recipe.

Each family composes small pieces that carry their code and their English, as synthetic.py's do; the expected
values come from running the program (validate.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from .synthetic_base import Draft, Param, pick_name


# ---------------------------------------------------------------------------------------------------- arithmetic
@dataclass
class Expr:
    code: str
    english: str  # a noun phrase that stands alone inside a larger phrase ("the sum of a and b")
    precedence: int  # 1: + -, 2: * // %, 3: unary minus, 4: a name, a number or a call
    tags: tuple[str, ...] = ()
    leaf: bool = False


INT_NAMES = (("a", "b", "c"), ("x", "y", "z"), ("m", "n", "p"), ("first", "second", "third"),
             ("width", "height", "depth"), ("base", "height", "offset"), ("price", "count", "discount"),
             ("start", "stop", "step_size"), ("hours", "minutes", "extra"), ("left", "right", "bonus"))


def _operand(e: Expr, outer: int, right: bool) -> str:
    """e's code as an operand of an operator of precedence `outer`: parenthesised when Python would group it
    otherwise (a right operand of equal precedence too, since - // % are not associative)."""
    return f"({e.code})" if e.precedence < outer or (right and e.precedence == outer and not e.leaf) else e.code


def _grouped(english: str) -> str:
    """A phrase with its own "and" or operator word inside another "X of A and B" is bracketed, so that the
    pairing is clear: "the product of (a minus b) and c"."""
    return f"({english})" if any(w in english for w in (" and ", " plus ", " minus ", " times ")) else english


def _binary(rng: random.Random, a: Expr, b: Expr, divisor_ok: bool) -> tuple[Expr, str]:
    """One operator over two sub-expressions. Infix English ("a plus b") only between names and numbers: nested,
    the prefix forms ("the sum of ...") are the ones that cannot be misread."""
    both_leaves = a.leaf and b.leaf
    a, b = replace(a, english=_grouped(a.english)), replace(b, english=_grouped(b.english))
    ops = ["add", "sub", "mul", "max", "min"] + (["floordiv", "mod"] if divisor_ok else [])
    op = rng.choice(ops)
    if op == "add":
        code = f"{_operand(a, 1, False)} + {_operand(b, 1, True)}"
        english = f"{a.english} plus {b.english}" if both_leaves and rng.random() < 0.5 else \
            f"the sum of {a.english} and {b.english}"
        return Expr(code, english, 1, a.tags + ("sum",) + b.tags), op
    if op == "sub":
        code = f"{_operand(a, 1, False)} - {_operand(b, 1, True)}"
        english = f"{a.english} minus {b.english}" if both_leaves else \
            f"the result of subtracting {b.english} from {a.english}"
        return Expr(code, english, 1, a.tags + ("minus",) + b.tags), op
    if op == "mul":
        code = f"{_operand(a, 2, False)} * {_operand(b, 2, True)}"
        english = f"{a.english} times {b.english}" if both_leaves and rng.random() < 0.5 else \
            f"the product of {a.english} and {b.english}"
        return Expr(code, english, 2, a.tags + ("times",) + b.tags), op
    if op in ("max", "min"):
        word = "larger" if op == "max" else "smaller"
        return Expr(f"{op}({a.code}, {b.code})", f"the {word} of {a.english} and {b.english}", 4,
                    (word,) + a.tags + b.tags), op
    if op == "floordiv":
        return Expr(f"{_operand(a, 2, False)} // {_operand(b, 2, True)}",
                    f"{a.english} divided by {b.english}, rounded down" if a.leaf else
                    f"the whole number of times {b.english} fits into {a.english} (rounded down)", 2,
                    a.tags + ("div",) + b.tags), op
    return Expr(f"{_operand(a, 2, False)} % {_operand(b, 2, True)}",
                f"the remainder of {a.english} divided by {b.english}", 2, a.tags + ("mod",) + b.tags), op


def _unary(rng: random.Random, a: Expr) -> Expr:
    op = rng.choice(["abs", "square", "double", "neg"])
    if op == "abs":
        return Expr(f"abs({a.code})", f"the absolute value of {a.english}", 4, ("abs",) + a.tags)
    if op == "square":
        code = f"{a.code} * {a.code}" if a.leaf else f"({a.code}) ** 2"
        return Expr(code, f"the square of {a.english}", 2 if a.leaf else 4, ("square",) + a.tags)
    if op == "double":
        return Expr(f"2 * {_operand(a, 2, True)}", f"twice {a.english}", 2, ("twice",) + a.tags)
    return Expr(f"-{_operand(a, 3, True)}", f"the negative of {a.english}", 3, ("neg",) + a.tags)


def _tree(rng: random.Random, leaves: list[Expr], divisors: set[str], used: set[str]) -> Expr:
    """A random expression over `leaves` in order. `used` collects the parameters that ended up as divisors."""
    if len(leaves) == 1:
        leaf = leaves[0]
        return _unary(rng, leaf) if not leaf.code.isdigit() and rng.random() < 0.15 else leaf
    cut = rng.randint(1, len(leaves) - 1)
    left, right = _tree(rng, leaves[:cut], divisors, used), _tree(rng, leaves[cut:], divisors, used)
    # a divisor is a positive number or a parameter declared positive, never an expression that could be 0
    divisor_ok = right.leaf and (right.code.isdigit() or right.code in divisors)
    e, op = _binary(rng, left, right, divisor_ok)
    if op in ("floordiv", "mod") and right.code in divisors:
        used.add(right.code)
    return e


def int_arithmetic(rng: random.Random) -> Draft:
    """An expression over one to three integer parameters (and perhaps a constant); an int, or a comparison."""
    names = list(rng.choice(INT_NAMES))[:rng.choices([1, 2, 3], weights=[2, 4, 1])[0]]
    rng.shuffle(names)
    divisors = {names[-1]} if len(names) > 1 and rng.random() < 0.4 else set()
    leaves = [Expr(n, n, 4, leaf=True) for n in names]
    if rng.random() < 0.3 or len(leaves) == 1:
        k = rng.randint(2, 10)
        leaves.insert(rng.randint(0, len(leaves)), Expr(str(k), str(k), 4, leaf=True))
    used: set[str] = set()
    e = _tree(rng, leaves, divisors, used)  # at least two leaves, so at least one operator, and every name in it
    params = [Param(n, "int", "k" if n in used else rng.choice(["int", "n"])) for n in names]
    note = "".join(f" {n} is a positive integer." for n in names if n in used)
    tags = list(dict.fromkeys(e.tags))
    name = "_".join(tags) if len(tags) > 1 else f"{tags[0]}_{'_'.join(names)}"  # never a bare `sum`, `abs`, ...
    if rng.random() < 0.3:  # a comparison of the expression with a parameter or with a number
        rhs = rng.choice(names + [str(rng.randint(0, 12))])
        op, words, tag = rng.choice([(">", "greater than", "gt"), ("<", "less than", "lt"), ("==", "equal to", "eq"),
                                     (">=", "at least", "ge"), ("<=", "at most", "le")])
        return Draft(f"is_{name}_{tag}", params, "bool", [f"return {_operand(e, 0, False)} {op} {rhs}"],
                     f"Return True if {e.english} is {words} {rhs}, and False otherwise.{note}",
                     f"arith/compare/{tag}")
    if rng.random() < 0.2:  # parity of the result, as HumanEval's small predicates ask
        parity = rng.choice(["even", "odd"])
        return Draft(f"is_{name}_{parity}", params, "bool",
                     [f"return {_operand(e, 2, False)} % 2 == {0 if parity == 'even' else 1}"],
                     f"Return True if {e.english} is {parity}, and False otherwise.{note}", f"arith/parity/{parity}")
    body = [f"return {e.code}"]
    if rng.random() < 0.3:
        body = [f"result = {e.code}", "return result"]
    return Draft(name, params, "int", body, f"Return {e.english}.{note}", f"arith/{len(names)}/{len(e.tags)}")


# ---------------------------------------------------------------------------------------------------- strings
@dataclass
class Step:
    code: str  # with {x} for the string so far
    verb: str  # imperative, with {x} for the string so far ("convert {x} to uppercase")
    needs: str = ""  # the parameter it uses: "t", "k", "ch" or ""


STRING_STEPS = {
    "upper": Step("{x}.upper()", "convert {x} to uppercase"),
    "lower": Step("{x}.lower()", "convert {x} to lowercase"),
    "reverse": Step("{x}[::-1]", "reverse {x}"),
    "strip": Step("{x}.strip()", "remove the spaces at both ends of {x}"),
    "nospace": Step("{x}.replace(' ', '')", "remove every space from {x}"),
    "swapcase": Step("{x}.swapcase()", "swap the case of every letter of {x}"),
    "sorted": Step("''.join(sorted({x}))", "sort the characters of {x} by their character codes"),
    "first_k": Step("{x}[:{k}]", "keep only the first {k} characters of {x}", "k"),
    "drop_k": Step("{x}[{k}:]", "drop the first {k} characters of {x}", "k"),
    "repeat": Step("{x} * {k}", "repeat {x} {k} times", "k"),
    "append": Step("{x} + {t}", "append {t} to the end of {x}", "t"),
    "prepend": Step("{t} + {x}", "put {t} in front of {x}", "t"),
    "remove_t": Step("{x}.replace({t}, '')", "remove every occurrence of {t} from {x}", "t"),
    "mask_ch": Step("{x}.replace({ch}, '*')", "replace every occurrence of the character {ch} in {x} with '*'", "ch"),
}

# What the program returns about the string it built: (code, return type, English after "return ", what it needs)
STRING_ENDS = {
    "itself": ("{x}", "str", "{x}", ""),
    "length": ("len({x})", "int", "the length of {x}", ""),
    "count_t": ("{x}.count({t})", "int", "how many times {t} occurs in {x} (without overlaps)", "t"),
    "starts": ("{x}.startswith({t})", "bool", "True if {x} starts with {t}, and False otherwise", "t"),
    "ends": ("{x}.endswith({t})", "bool", "True if {x} ends with {t}, and False otherwise", "t"),
    "contains": ("{t} in {x}", "bool", "True if {t} occurs in {x}, and False otherwise", "t"),
    "find": ("{x}.find({t})", "int", "the index where {t} first occurs in {x}, or -1 if it does not", "t"),
    "words": ("{x}.split()", "list[str]", "the words of {x} (split at whitespace) as a list", ""),
    "n_words": ("len({x}.split())", "int", "how many words {x} has (split at whitespace)", ""),
    "mirror": ("{x} == {x}[::-1]", "bool", "True if {x} reads the same forwards and backwards, and False otherwise",
               ""),
    "count_ch": ("{x}.count({ch})", "int", "how many times the character {ch} occurs in {x}", "ch"),
    "distinct": ("len(set({x}))", "int", "how many different characters {x} has", ""),
}

PARAM_NAMES = {"t": ("t", "sub", "part", "pattern", "other", "extra", "piece"), "k": ("k", "n", "count", "amount"),
               "ch": ("ch", "letter", "char", "symbol")}
PARAM_DOMAINS = {"t": ("str", "sub"), "k": ("int", "k"), "ch": ("str", "char")}


def _fill(template: str, x: str, names: dict[str, str]) -> str:
    """The template with the string so far as {x}: bracketed where a method, an index or `*` would bind to only
    part of it (`(t + s).upper()`)."""
    compound = " + " in x or " * " in x
    out, rest = "", template
    while "{x}" in rest:
        before, _, rest = rest.partition("{x}")
        out += before.format(**names) + (f"({x})" if compound and rest.startswith((".", "[", " *")) else x)
    return out + rest.format(**names)


def string_ops(rng: random.Random) -> Draft:
    """A string taken through zero to two transformations, then returned or measured."""
    s = pick_name(rng, "text")
    steps = rng.sample(list(STRING_STEPS), rng.choices([0, 1, 2], weights=[2, 3, 2])[0])
    end = rng.choice(list(STRING_ENDS))
    if not steps and end == "itself":
        return string_ops(rng)
    needs = [n for n in dict.fromkeys([STRING_STEPS[k].needs for k in steps] + [STRING_ENDS[end][3]]) if n]
    names = {need: rng.choice([n for n in PARAM_NAMES[need] if n != s]) for need in needs}
    params = [Param(s, "str", "text")] + [Param(names[need], *PARAM_DOMAINS[need]) for need in needs]
    code = s
    for k in steps:
        code = _fill(STRING_STEPS[k].code, code, names)
    end_code, returns, end_words, _ = STRING_ENDS[end]
    if not steps:
        body = [f"return {_fill(end_code, s, names)}"]
        doc = f"Return {end_words.format(x=s, **names)}."
    else:
        verbs = [STRING_STEPS[k].verb.format(x=s if i == 0 else "it", **names) for i, k in enumerate(steps)]
        result = "the result" if end != "itself" else "it"
        tail = f"return {end_words.format(x=result, **names)}" if end != "itself" else "return the result"
        doc = (", then ".join(verbs) + f", and {tail}.")
        doc = doc[0].upper() + doc[1:]
        if rng.random() < 0.5:
            body = [f"return {_fill(end_code, code, names)}"]
        else:  # one step a line, as a longer solution would be written
            body = [f"result = {_fill(STRING_STEPS[steps[0]].code, s, names)}"]
            body += [f"result = {_fill(STRING_STEPS[k].code, 'result', names)}" for k in steps[1:]]
            body.append(f"return {_fill(end_code, 'result', names)}")
    name = "_".join(steps + ([end] if end != "itself" else []))
    return Draft(name, params, returns, body, doc, f"str_ops/{'/'.join(steps) or '-'}/{end}")


# ---------------------------------------------------------------------------------------------------- word lists
# (condition with {w} for the string and {p} for the parameter; English after "the strings that" and after "a
#  string that"; the name's tag; the parameter's domain; names for the parameter)
WORD_TESTS = [
    ("{w}.startswith({p})", "start with {p}", "starts with {p}", "starting", "sub", ("prefix", "start", "beginning")),
    ("{w}.endswith({p})", "end with {p}", "ends with {p}", "ending", "sub", ("suffix", "ending", "tail")),
    ("{p} in {w}", "contain {p}", "contains {p}", "containing", "sub", ("substring", "sub", "part", "needle")),
    ("{w}.lower().startswith({p}.lower())", "start with {p}, ignoring case", "starts with {p}, ignoring case",
     "starting_any_case", "sub", ("prefix", "start", "beginning")),
    ("len({w}) > {p}", "are longer than {p} characters", "is longer than {p} characters", "longer", "k",
     ("k", "length", "min_length", "size")),
    ("len({w}) < {p}", "are shorter than {p} characters", "is shorter than {p} characters", "shorter", "k",
     ("k", "length", "limit", "size")),
    ("len({w}) == {p}", "have exactly {p} characters", "has exactly {p} characters", "of_length", "k",
     ("k", "length", "size")),
    ("{w} != {p}", "are not equal to {p}", "is not equal to {p}", "other_than", "sub", ("target", "unwanted", "skip")),
]


def words_with_parameter(rng: random.Random) -> Draft:
    """A list of strings filtered by a condition on a parameter (a prefix, a substring, a length), then listed,
    counted, tested, joined or searched."""
    xs = pick_name(rng, "word_list")
    cond, phrase, singular, tag, kind, names = rng.choice(WORD_TESTS)
    p = rng.choice([n for n in names if n != xs])
    w = rng.choice(["w", "word", "s", "item"])
    cond, phrase, singular = cond.format(w=w, p=p), phrase.format(p=p), singular.format(p=p)
    params = [Param(xs, "list[str]", "words"), Param(p, "int" if kind == "k" else "str", kind)]
    op = rng.choice(["list", "list", "count", "any", "all", "first", "join", "sorted"])
    if op == "list":
        body = rng.choice([[f"return [{w} for {w} in {xs} if {cond}]"],
                           ["result = []", f"for {w} in {xs}:", f"    if {cond}:", f"        result.append({w})",
                            "return result"],
                           [f"return list(filter(lambda {w}: {cond}, {xs}))"]])
        return Draft(f"strings_that_{tag}", params, "list[str]", body,
                     f"Return the strings in {xs} that {phrase}, in their original order.", f"words_param/list/{tag}")
    if op == "count":
        body = rng.choice([[f"return sum(1 for {w} in {xs} if {cond})"],
                           [f"return len([{w} for {w} in {xs} if {cond}])"]])
        return Draft(f"count_that_{tag}", params, "int", body, f"Return how many strings in {xs} {phrase}.",
                     f"words_param/count/{tag}")
    if op in ("any", "all"):
        which = "at least one string" if op == "any" else "every string"
        empty = "" if op == "any" else " An empty list gives True."
        return Draft(f"{op}_{tag}", params, "bool", [f"return {op}({cond} for {w} in {xs})"],
                     f"Return True if {which} in {xs} {singular}, and False otherwise.{empty}",
                     f"words_param/{op}/{tag}")
    if op == "first":
        body = rng.choice([[f"for {w} in {xs}:", f"    if {cond}:", f"        return {w}", "return ''"],
                           [f"return next(({w} for {w} in {xs} if {cond}), '')"]])
        return Draft(f"first_that_{tag}", params, "str", body,
                     f"Return the first string in {xs} that {singular}, or '' if there is none.",
                     f"words_param/first/{tag}")
    if op == "join":
        sep = rng.choice([" ", ",", "-", ""])
        return Draft(f"join_that_{tag}", params, "str", [f"return {sep!r}.join({w} for {w} in {xs} if {cond})"],
                     f"Return the strings in {xs} that {phrase}, joined by {sep!r}.", f"words_param/join/{tag}")
    return Draft(f"sorted_that_{tag}", params, "list[str]", [f"return sorted({w} for {w} in {xs} if {cond})"],
                 f"Return the strings in {xs} that {phrase}, sorted in ascending order.", f"words_param/sorted/{tag}")
