"""How a generated exercise's prompt lays out its docstring: quotes, where the first line starts, and how its
examples read. Real prompts vary in all three, and a model trained on one layout treats the others as foreign.

HumanEval's 164 prompts: 147 docstrings in double quotes and 17 in single ones; 61 start the text on the line after
the quotes, 35 after a space, the rest right after them; 76 show doctest `>>>` examples, 34 `f(x) == y` lines under
"Example:" or "For example:", 7 `f(x) ➞ y`, others `==>` or prose. The quickstart's model, trained on doctest
examples in double quotes alone, wrote nothing for 663 of its 1,700 samples on the 17 single-quoted prompts, and for
5 of the 14,700 on the rest. Each exercise's layout is drawn from its id, so a rebuild renders the same prompt."""

from __future__ import annotations

import random
import textwrap
import zlib

# Shares above HumanEval's, so that no layout is rare in the exercises
SINGLE_QUOTE_SHARE = 0.25
FIRST_LINE = ("newline", "space", "none")  # what follows the opening quotes before the text
EXAMPLE_ARROWS = {">>>": 0.5, "==": 0.3, "➞": 0.1, "==>": 0.1}  # ">>>": doctest; else `f(x) <arrow> y` lines
HEADERS = {1: ("Example:", "For example:"), 2: ("Examples:", "For example:")}


def render_prompt(ident: str, header: str, entry_point: str, doc: str, examples: list[tuple[str, str]]) -> str:
    """Imports, two blank lines, the def line (both in `header`), then a docstring of `doc` wrapped at 96 columns and
    `examples` ((arguments, answer) as code), in the layout `ident` draws."""
    rng = random.Random(zlib.crc32(ident.encode()))
    lines = textwrap.wrap(doc, width=96)
    arrow = rng.choices(list(EXAMPLE_ARROWS), weights=list(EXAMPLE_ARROWS.values()))[0]
    if examples and arrow == ">>>":
        for args, answer in examples:
            lines += [f">>> {entry_point}({args})", answer]
    elif examples:
        lines.append(rng.choice(HEADERS[min(len(examples), 2)]))
        lines += [f"    {entry_point}({args}) {arrow} {answer}" for args, answer in examples]
    body = "\n".join(lines)
    quotes = "'''" if rng.random() < SINGLE_QUOTE_SHARE else '"""'
    if quotes in body:  # an answer that would close the docstring early
        quotes = '"""' if quotes == "'''" else "'''"
    first = rng.choice(FIRST_LINE)
    if first == "none" and body.startswith(quotes[0]):
        first = "space"
    opening = f"    {quotes}\n    " if first == "newline" else f"    {quotes} " if first == "space" else f"    {quotes}"
    text = opening + "\n".join(f"    {line}" if i else line for i, line in enumerate(lines))
    head, _, defline = header.rpartition("\n")
    head = f"{head}\n\n\n" if head else ""
    return f"{head}{defline}\n{text}\n    {quotes}\n"
