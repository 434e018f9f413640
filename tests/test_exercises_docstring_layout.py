"""Exercise docstrings in every layout real prompts use: each parses, keeps its text and its examples, and each
example is true of the function it documents (doctest runs the `>>>` ones; the others are evaluated side by side)."""

from __future__ import annotations

import ast
import collections
import re

from exercise_fixtures import docstring_examples

from opencodegen.exercises.docstring_layout import EXAMPLE_ARROWS, SINGLE_QUOTE_SHARE, render_prompt

HEADER = "from typing import Any\ndef pick(xs: list[Any], k: int) -> list[Any]:"
DOC = ("Return the first k elements of xs, in their order, which this sentence says at a length that wraps onto a "
       "second line of the docstring.")
SOLUTION = "    return xs[:k]\n"
EXAMPLES = [("[1, 'a', 2.5], 2", "[1, 'a']"), ("['\"x\"', \"'''\"], 9", "['\"x\"', \"'''\"]")]


def _layout(prompt: str) -> tuple[str, str, str]:
    """(quotes, what follows them on the def's next line, how examples read) of a rendered prompt."""
    lines = prompt.splitlines()
    opening = next(lines[i + 1] for i, line in enumerate(lines) if line.startswith("def "))
    quotes = opening.strip()[:3]
    first = "newline" if opening.strip() == quotes else "space" if opening.strip()[3] == " " else "none"
    arrow = ">>>" if ">>> pick(" in prompt else re.search(r"^ +pick\(.*\) (\S+) ", prompt, re.M).group(1)
    return quotes, first, arrow


def test_every_layout_parses_keeps_its_text_and_its_examples_hold():
    seen = collections.Counter()
    for i in range(400):
        ident = f"synthetic/3/{i}"
        examples = EXAMPLES[: 1 + i % 2]
        prompt = render_prompt(ident, HEADER, "pick", DOC, examples)
        assert prompt == render_prompt(ident, HEADER, "pick", DOC, examples)  # drawn from the id: rebuilds agree
        assert prompt.startswith("from typing import Any\n\n\ndef pick(") and prompt.endswith("\n")
        fn = ast.parse(prompt + SOLUTION).body[1]
        doc = ast.get_docstring(fn)
        assert " ".join(doc.split()).startswith(DOC)
        quotes, first, arrow = _layout(prompt)
        seen[quotes, len(examples)] += 1
        seen[first] += 1
        seen[arrow] += 1
        namespace: dict = {}
        exec(prompt + SOLUTION, namespace)  # our own fixture's code
        assert docstring_examples(doc, namespace, "pick") == (len(examples), [])
    # single quotes for about SINGLE_QUOTE_SHARE of the prompts, but never where an answer holds them (two examples)
    assert abs(seen["'''", 1] / 200 - SINGLE_QUOTE_SHARE) < 0.1 and seen["'''", 2] == 0
    assert all(seen[a] > 0 for a in EXAMPLE_ARROWS) and all(seen[f] > 0 for f in ("newline", "space", "none"))


def test_an_answer_holding_the_drawn_quotes_gets_the_other_ones():
    for i in range(60):
        prompt = render_prompt(f"x/{i}", "def pick(xs, k):", "pick", "Return it.", [EXAMPLES[1]])
        quotes = prompt.splitlines()[1].strip()[:3]
        assert quotes == '"""', prompt  # the answer holds ''', so the docstring never opens with it
        assert "'''" in ast.get_docstring(ast.parse(prompt + SOLUTION).body[0])
