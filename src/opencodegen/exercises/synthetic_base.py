"""What every synthetic family builds on: a draft program (signature, body, English), the wide pools its names
come from, and the input domains whose shared probe values make behaviours comparable across drafts."""

from __future__ import annotations

import builtins
import keyword
import random
from dataclasses import dataclass, field
from typing import Callable

WORDS = ("apple", "banana", "cherry", "dog", "egg", "fig", "grape", "house", "ice", "jam", "kiwi", "lemon", "moon",
         "night", "orange", "pear", "queen", "river", "sun", "tree", "umbrella", "violet", "water", "xray", "yellow",
         "zebra", "level", "noon", "radar", "a", "an", "the", "code", "python", "data", "list", "Hello", "World",
         "Alice", "Bob")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class Param:
    name: str
    annotation: str
    domain: str


@dataclass
class Draft:
    """A program before execution: code and English, no values yet."""
    name: str
    params: list[Param]
    returns: str
    body: list[str]  # lines, indented relative to the function body
    doc: str  # the docstring's sentence(s), without examples
    recipe: str  # the generator's recipe, for meta
    imports: list[str] = field(default_factory=list)

    def signature(self) -> str:
        args = ", ".join(f"{p.name}: {p.annotation}" for p in self.params)
        return f"def {self.name}({args}) -> {self.returns}:"

    def solution(self) -> str:
        return "".join(f"    {line}\n" for line in self.body)

    def source(self) -> str:
        """The whole function without docstring: what runs to compute expected values."""
        head = "".join(f"{imp}\n" for imp in self.imports)
        return f"{head}{self.signature()}\n{self.solution()}"


# ---------------------------------------------------------------------------------------------------- names
# Parameter names come from wide pools, so that a model trained on these exercises must read the signature to know
# what a function's inputs are called (a narrow pool teaches it to write `nums` whatever the prompt says). No pool
# holds a name that a recipe's body uses for its own locals (x, y, i, k, c, ch, w, d, p, result, total, counts, ...).
NAMES = {
    "int_list": ("nums", "numbers", "values", "lst", "arr", "xs", "data", "l", "items", "scores", "ages", "prices",
                 "readings", "marks", "votes", "heights", "weights", "sizes", "seq", "array", "vals", "elements",
                 "entries", "temperatures", "steps", "amounts"),
    "text": ("s", "text", "string", "word", "line", "message", "phrase", "name", "label", "title", "txt", "st",
             "input_str", "msg", "sentence", "code", "string_value"),
    "sentence": ("sentence", "text", "line", "phrase", "message", "txt", "paragraph", "caption", "s"),
    "word_list": ("words", "names", "items", "strings", "tokens", "tags", "labels", "fruits", "keys", "entries",
                  "terms", "titles", "animals", "cities"),
    "number": ("n", "num", "number", "value", "m", "amount", "size", "q", "num_value"),
    "int_pair": (("a", "b"), ("x", "y"), ("m", "n"), ("p", "q"), ("u", "v"), ("first", "second"), ("left", "right")),
    "list_pair": (("a", "b"), ("xs", "ys"), ("first", "second"), ("left", "right"), ("l1", "l2"), ("list1", "list2"),
                  ("nums1", "nums2"), ("arr1", "arr2"), ("lst1", "lst2")),
    "grid": ("grid", "rows", "matrix", "table", "board", "m", "data", "cells"),
    "float_list": ("numbers", "values", "xs", "measurements", "readings", "prices", "weights", "temps", "samples",
                   "amounts", "data", "distances", "grades", "floats"),
}


# Names the recipes' bodies use for their own variables (and the pairs' names): an invented name is never one.
BODY_NAMES = frozenset("a b c ch char count counts d digit distinct cleaned e groups hi i k kept limit lo m n num "
                       "ordered p result row s target total v w word x y".split())
INVENTED_SHARE = 0.3


def _invented(rng: random.Random) -> str:
    """A name no pool has (a word with a suffix), so that only the signature can tell the model what it is."""
    while True:
        name = rng.choice(WORDS).lower() + rng.choice(["", "s", "_list", "_vals", "2", "_in"])
        if name.isidentifier() and not keyword.iskeyword(name) and name not in BODY_NAMES \
                and not hasattr(builtins, name):
            return name


def pick_name(rng: random.Random, kind: str):
    """A pool name, or (INVENTED_SHARE of single names) an invented one."""
    pool = NAMES[kind]
    if isinstance(pool[0], str) and rng.random() < INVENTED_SHARE:
        return _invented(rng)
    return rng.choice(pool)


# ---------------------------------------------------------------------------------------------------- conditions
# Conditions on one element, which families filter by before doing anything else.
def int_condition(rng: random.Random) -> tuple[str, str, str]:
    """A condition on an integer: (code over {v}, adjective (which may name {v} too), tag)."""
    k = rng.randint(2, 12)
    a, b = sorted(rng.sample(range(-5, 20), 2))
    return rng.choice([
        ("{v} % 2 == 0", "even", "even"), ("{v} % 2 == 1", "odd", "odd"),
        (f"{{v}} > {k}", f"greater than {k}", f"above_{k}"), (f"{{v}} < {k}", f"less than {k}", f"below_{k}"),
        (f"{{v}} >= {k}", f"at least {k}", f"at_least_{k}"), (f"{{v}} <= {k}", f"at most {k}", f"at_most_{k}"),
        (f"{{v}} % {k} == 0", f"divisible by {k}", f"multiples_of_{k}"),
        ("{v} > 0", "positive", "positive"), ("{v} < 0", "negative", "negative"),
        (f"{{v}} != {k}", f"not equal to {k}", f"not_{k}"),
        (f"{a} <= {{v}} <= {b}", f"between {a} and {b} inclusive", f"between_{a}_{b}".replace("-", "m")),
        (f"{{v}} % {k} != 0", f"not divisible by {k}", f"non_multiples_of_{k}"),
        (f"{{v}} % 10 == {k % 10}", f"ending in the digit {k % 10} (as {{v}} % 10)", f"last_digit_{k % 10}"),
    ])


# (code over {c}, short noun, long noun, tag)
CHAR_CLASSES = [
    ("{c} in 'aeiou'", "vowels", "lowercase vowels (a, e, i, o, u)", "vowels"),
    ("{c}.lower() in 'aeiou'", "vowels", "vowels (a, e, i, o, u, in either case)", "vowels_any_case"),
    ("{c}.isdigit()", "digits", "digits", "digits"), ("{c}.isalpha()", "letters", "letters", "letters"),
    ("{c}.isupper()", "uppercase letters", "uppercase letters", "uppercase"),
    ("{c}.islower()", "lowercase letters", "lowercase letters", "lowercase"),
    ("{c} == ' '", "spaces", "spaces", "spaces"),
    ("{c}.isalpha() and {c}.lower() not in 'aeiou'", "consonants", "consonants (letters that are not vowels)",
     "consonants"),
]
# (code over {w} with {k} and {ch}, the phrase that follows a noun, tag)
WORD_CONDITIONS = [
    ("len({w}) > {k}", "longer than {k} characters", "long"), ("len({w}) <= {k}", "at most {k} characters long", "short"),
    ("{w}[0].lower() in 'aeiou'", "starting with a vowel", "vowel_start"),
    ("{w} == {w}[::-1]", "that read the same backwards", "mirror"), ("{w}[0].isupper()", "starting with an uppercase letter", "capitalised"),
    ("len({w}) % 2 == 0", "with an even number of characters", "even_length"),
    ("'{ch}' in {w}", "containing the letter '{ch}'", "with_{ch}"),
    ("{w}.startswith('{ch}')", "starting with '{ch}'", "starting_{ch}"),
    ("{w}.endswith('{ch}')", "ending with '{ch}'", "ending_{ch}"),
    ("{w}.lower().count('{ch}') >= 2", "containing the letter '{ch}' at least twice (in either case)", "two_{ch}"),
    ("len({w}) == {k}", "exactly {k} characters long", "length_{k}"),
]


# ---------------------------------------------------------------------------------------------------- inputs
def _word_list(rng: random.Random) -> list[str]:
    return [rng.choice(WORDS) for _ in range(rng.randint(0, 6))]


def _text(rng: random.Random) -> str:
    pool = LETTERS + LETTERS.upper()[:6] + "0123456789" + "  "
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))


def _run(rng: random.Random) -> list[int]:
    xs = [rng.randint(-5, 15) for _ in range(rng.randint(0, 7))]
    return rng.choice([sorted(xs), sorted(xs, reverse=True), xs])


def _mixed(rng: random.Random) -> list:
    makers = [lambda: rng.randint(-5, 20), lambda: rng.choice(WORDS), lambda: round(rng.uniform(-5, 9), 1),
              lambda: None, lambda: [rng.randint(0, 9)]]
    return [rng.choice(makers)() for _ in range(rng.randint(0, 6))]


DOMAINS: dict[str, tuple[list, Callable[[random.Random], object]]] = {
    # name: (probe values every draft of this domain is run on, a generator of further values)
    "ints": ([[1, 2, 3, 4, 5, 6], [], [-3, 0, 7, 10, -8, 15, 2], [4, 4, 9, 1, 12], [11, -2, 5, 20, 3, 3, 0, 8],
              [7], [-5, -9, 14, 6, 13, 18, -1], [2, 9, 16, 10, 19, 3, -4, 12]],
             lambda r: [r.randint(-10, 20) for _ in range(r.randint(0, 8))]),
    "nats": ([[3, 1, 4, 1, 5, 9, 2, 6], [], [0, 10, 20, 7], [12, 5, 8, 3, 18], [2, 2, 15, 30, 1], [11],
              [25, 16, 27, 6, 14, 9], [21, 4, 13, 28, 19, 10, 24]],
             lambda r: [r.randint(0, 30) for _ in range(r.randint(0, 8))]),
    "n": ([10, 0, 7, 25, 1, 16, 33, 12], lambda r: r.randint(0, 40)),
    "big": ([1234, 0, 908, 55, 70071, 8, 246813, 97531], lambda r: r.randint(0, 99999)),
    "int": ([5, -3, 0, 12, -7, 9, 18, -14], lambda r: r.randint(-20, 20)),
    "k": ([3, 1, 2, 4, 5, 3, 2, 4], lambda r: r.randint(1, 5)),
    "pos": ([12, 1, 18, 7, 30, 9, 16, 25], lambda r: r.randint(1, 60)),
    "text": (["Hello World", "", "abc123", "Python 3 is FUN", "aAbB  zz9", "x", "Mississippi 42", "road to Rome"],
             _text),
    "sentence": (["the quick brown fox", "", "Hello World", "a level radar noon", "one  two three four five",
                  "Alice ate seven green apples", "sun", "trees stand near the river bank"],
                 lambda r: " ".join(_word_list(r))),
    "words": ([["apple", "banana", "kiwi"], [], ["a", "level", "Hello", "tree"], ["sun", "moon", "sun", "noon"],
               ["zebra", "ice", "python", "Alice", "data"], ["radar"], ["egg", "Orange", "stone", "at", "water", "sea"],
               ["tent", "night", "lion", "rose", "eat", "ant"]], _word_list),
    "char": (["a", "e", "o", "l", "n", "s", "t", "i"], lambda r: r.choice("aeilnorst")),
    # a short piece of text to look for, prefix or append (never empty: '' is in every string)
    "sub": (["o", "lo", "a", "an", "World", "s", "is", "ap"],
            lambda r: r.choice(["e", "o", "an", "ar", "the", "s", "ab", "ta", "He", "x"])),
    "csv": (["3,1,4,1,5", "10,20,30", "7", "-2,5,0,8", "12,7,7,3,18,4", "0", "9,-4,6", "1,2,3,4,5,6,7,8"],
            lambda r: ",".join(str(r.randint(-9, 30)) for _ in range(r.randint(1, 7)))),
    # floats: halves and quarters (exact in binary) beside values such as 0.1 that are not
    "floats": ([[1.0, 2.0, 3.0, 4.0], [], [2.5, -1.5, 0.5, 4.25], [0.1, 0.2, 0.3, 0.4, 0.5], [10.0, 4.0, 7.5, 7.5, -3.0],
                [3.7], [-2.25, 8.0, 1.5, -0.75, 6.0, 2.0], [1.1, 2.2, 3.3, 5.0, 9.9, -2.0, 0.0]],
               lambda r: [round(r.uniform(-10, 20), r.choice([0, 1, 2])) for _ in range(r.randint(0, 7))]),
    "float": ([2.5, 0.0, -1.25, 10.0, 3.75, -4.5, 7.2, 100.0], lambda r: round(r.uniform(-50, 50), r.choice([0, 1, 2]))),
    "pos_float": ([0.5, 1.0, 2.5, 0.25, 4.0, 1.5, 3.2, 10.0], lambda r: round(r.uniform(0.1, 20), r.choice([1, 2]))),
    # short strings over a few letters, so that two of them often hold the same set of characters
    "letters": (["abc", "CAB", "aabbc", "bcA", "", "abd", "DCba", "ccc"],
                lambda r: "".join(r.choice("abcdAB") for _ in range(r.randint(0, 6)))),
    # lists over 0..5, so that two of them often hold the same set of values
    "small_ints": ([[1, 2, 3], [3, 2, 1, 1], [2, 3, 1], [4], [], [0, 4, 4], [4, 0], [5, 1]],
                   lambda r: [r.randint(0, 5) for _ in range(r.randint(0, 6))]),
    # lists that are often in order, one way or the other, with equal neighbours among them
    "runs": ([[1, 2, 3, 5, 8], [9, 7, 4, 4, 1], [], [3, 3, 3], [1, 5, 2, 6], [10, 8, 6], [2, 4, 4, 7, 7, 9], [6]],
             _run),
    # values of several types (never bools, which are ints to isinstance)
    "mixed": ([[1, "a", 2.5, None], [], ["x", "y", 3], [4, [1, 2], "hi", 7, 0.5], [None, None], [10, -3, "ten", 2.0],
               ["only", "strings"], [0, 1, 2, [3]]],
              _mixed),
    "grid": ([[[1, 2], [3, 4]], [], [[5, -1, 8], [0, 7, 2]], [[6]], [[2, 9], [4, 4], [-3, 10]],
              [[1, 1, 1], [2, 3, 5], [8, 13, 21]], [[0, 0], [12, -6]], [[7, 3, 9, 2]]],
             lambda r: [[r.randint(-5, 15) for _ in range(w)] for w in [r.randint(1, 4)] for _ in range(r.randint(0, 4))]),
}


def probe_and_extra_inputs(params: list[Param], rng: random.Random, extra: int) -> list[tuple]:
    """Argument tuples: the probes first (the same for every draft with these domains), then `extra` random ones."""
    # Parameter j takes probe (i + j): two parameters of one domain do not always get equal values.
    probes = [tuple(DOMAINS[p.domain][0][(i + j) % N_PROBES] for j, p in enumerate(params)) for i in range(N_PROBES)]
    more = [tuple(DOMAINS[p.domain][1](rng) for p in params) for _ in range(extra)]
    return probes + more


N_PROBES = 8


# ---------------------------------------------------------------------------------------------------- English
TYPE_NOUNS = {"int": "an integer", "str": "a string", "list[int]": "a list of integers", "List[int]": "a list of integers",
              "list[str]": "a list of strings", "List[str]": "a list of strings",
              "float": "a number", "list[float]": "a list of numbers", "List[float]": "a list of numbers",
              "list[list[int]]": "a list of rows of integers", "List[List[int]]": "a list of rows of integers",
              "list[Any]": "a list of values", "List[Any]": "a list of values"}
REPHRASE_SHARE = 0.35


def rephrase(doc: str, params: list[Param], rng: random.Random) -> str:
    """The same request in one of the other ways docstrings put it: "Given a list of integers nums, return ...",
    or "Check if ..." for a yes/no question, so that no one sentence frame stands for a task."""
    if rng.random() >= REPHRASE_SHARE or not doc.startswith("Return "):
        return doc
    yes_no = doc.startswith("Return True if ") and ", and False otherwise" in doc
    if yes_no and rng.random() < 0.5:
        return "Check if " + doc[len("Return True if "):].replace(", and False otherwise", "", 1)
    if not all(p.annotation in TYPE_NOUNS for p in params):
        return doc
    given = [f"{TYPE_NOUNS[p.annotation]} {p.name}" for p in params]
    listed = given[0] if len(given) == 1 else ", ".join(given[:-1]) + f" and {given[-1]}"
    return f"Given {listed}, return {doc[len('Return '):]}"
