"""Surface variation of synthetic drafts: the same program under another name and in other English.

The recipes render each meaning one way: a name that spells the recipe out (`sum_squares_of_even`) and a docstring
that always opens with "Return ...". A small model trained on that learns to read the name, or one sentence shape,
instead of the request: prompts written by people ("Check if ...", "Given a list of integers, ...", "Write a function
to ...", a terse "Return length of given string", a name like `solve` that says nothing) are then outside what it has
seen. Instruction-tuning sets vary their templates for the same reason. Every rewrite here keeps the meaning: only the
wording of the docstring and the function's name change, never the code or the values its tests check."""

from __future__ import annotations

import builtins
import keyword
import random
import re
from typing import Callable

# How often each rewrite is applied to a draft (independently, except where noted).
RENAME_SHARE = 0.4
VERB_SHARE = 0.5
GIVEN_SHARE = 0.2  # "Given a list of integers xs, return ..."
DEFINITE_SHARE = 0.25  # the parameter's name replaced by "the given list" (when the signature alone names it)
MBPP_SHARE = 0.1  # "Write a function to ..."
TERSE_SHARE = 0.12  # "the" dropped, as in terse docstrings

GENERIC_NAMES = ("solve", "compute", "calc", "func", "f", "process", "transform", "helper", "answer", "my_function",
                 "get_result", "task", "run", "calculate", "evaluate", "do_task", "solution", "problem", "main_logic")

# Openings the recipes use, each with wordings of the same request; the first group of each is what follows.
VERBS: list[tuple[re.Pattern, tuple[str, ...]]] = [
    (re.compile(r"^Return the (?=(sum|product|largest|smallest|difference|total|index|longest|shortest|number|first|"
                r"last|count|length|average|mean)\b)"),
     ("Return the ", "Compute the ", "Calculate the ", "Find the ", "Get the ", "Determine the ",
      "Compute and return the ")),
    (re.compile(r"^Return how many "), ("Return how many ", "Count how many ", "Find out how many ")),
    (re.compile(r"^Return a list of "), ("Return a list of ", "Build a list of ", "Create a list of ",
                                         "Make a list of ", "Return the list of ")),
]
TRUE_FALSE = re.compile(r"^Return True if (.+?),? and False otherwise\.")
TRUE_FALSE_WORDINGS = ("Check if {}.", "Return whether {}.", "Determine whether {}.", "Check whether {}.",
                       "Return True if {}, and False otherwise.")
IMPERATIVE = re.compile(r"^(Return|Compute|Calculate|Find|Get|Determine|Count|Build|Create|Make|Check)\b")

# How a parameter's annotation is described: as a new thing ("a list of integers") and as the one given ("the list").
KINDS = {
    "list[int]": ("a list of integers", ("the given list", "the input list", "the list")),
    "list[str]": ("a list of strings", ("the given list", "the input list", "the given list of strings")),
    "str": ("a string", ("the given string", "the input string", "the string")),
    "int": ("an integer", ("the given number", "the input number", "the number")),
    "list[list[int]]": ("a list of lists of integers", ("the given grid", "the input grid")),
}


def _kind(annotation: str) -> tuple[str, tuple[str, ...]] | None:
    return KINDS.get(annotation.replace("List[", "list["))


def outside_quotes(text: str, edit: Callable[[str], str]) -> str:
    """Apply `edit` to the parts of `text` outside quoted literals ('...' or "..."), which stay as they are."""
    parts = re.split(r"('[^']*'|\"[^\"]*\")", text)
    return "".join(p if i % 2 else edit(p) for i, p in enumerate(parts))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _name_is_free(name: str, taken: set[str]) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not hasattr(builtins, name) and name not in taken


def rename(name: str, taken: set[str], rng: random.Random) -> str:
    """A shorter name (the recipe name's first two words) or one that says nothing; `name` when neither is free."""
    words = name.split("_")
    options = [rng.choice(GENERIC_NAMES)]
    if len(words) > 2:
        options.append("_".join(words[:2]))
    choice = rng.choice(options)
    return choice if _name_is_free(choice, taken) else name


def reword(doc: str, params: list[tuple[str, str]], rng: random.Random) -> str:
    """The docstring in another wording. `params`: (name, annotation) in signature order."""
    match = TRUE_FALSE.match(doc)
    if match and rng.random() < VERB_SHARE:
        doc = rng.choice(TRUE_FALSE_WORDINGS).format(match.group(1)) + doc[match.end():]
    for pattern, wordings in VERBS:
        if pattern.match(doc) and rng.random() < VERB_SHARE:
            doc = pattern.sub(rng.choice(wordings), doc, count=1)
    kinds = [_kind(a) for _, a in params]
    lead = IMPERATIVE.match(doc)
    roll = rng.random()
    if roll < GIVEN_SHARE:
        if lead and all(kinds):
            described = " and ".join(f"{k[0]} {n}" for (n, _), k in zip(params, kinds))
            doc = f"Given {described}, {_lower_first(doc)}"
    elif lead and roll < GIVEN_SHARE + MBPP_SHARE:
        doc = f"Write a {rng.choice(['', 'python '])}function to {_lower_first(doc)}"
    elif len(params) == 1 and kinds[0] and rng.random() < DEFINITE_SHARE:
        doc = _definite(doc, params[0][0], rng.choice(kinds[0][1]))
    if rng.random() < TERSE_SHARE and "the" not in {n for n, _ in params}:  # (a parameter may be called `a`)
        doc = outside_quotes(doc, lambda part: re.sub(r"\bthe (?!same\b)", "", part))
    return doc


def _definite(doc: str, name: str, phrase: str) -> str:
    """`name` replaced by `phrase` when it occurs once, outside quotes (elsewhere it could be part of a literal)."""
    word = re.compile(rf"(?<![\w.]){re.escape(name)}(?![\w(])")
    outside = [0]

    def count(part: str) -> str:
        outside[0] += len(word.findall(part))
        return part
    outside_quotes(doc, count)
    if outside[0] != 1 or len(word.findall(doc)) != 1:
        return doc
    return outside_quotes(doc, lambda part: word.sub(phrase, part))
