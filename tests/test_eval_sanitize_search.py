"""The sanitizer's code search (sanitize.extract_code) gives evalplus's answer: the longest run of at least two
lines that parses, by non-blank lines, the first such run in (start, end) order, else the first line. The reference
here is that definition searched in full, every run parsed; the search under test skips runs past an error no longer
run can repair and runs that cannot win, so it is checked against the reference on texts made to trip it (open
brackets and strings, continuations, decorators and blocks cut off, indentation errors, prose with quotes), and it
must stay fast on long replies, where the full search takes seconds."""

from __future__ import annotations

import random
import time

from opencodegen.eval.sanitize import extract_code, extract_code_every_run

PIECES = [
    "", "   ", "\t", "Here is the solution:", "It's simple: we don't need a loop.", "Step 1: sort `xs` first.",
    "```python", "```", "```py", "# a comment", "    # an indented comment", "import math", "from typing import List",
    "def f(x):", "def g(a, b) -> int:", "    return x + 1", "    return a", "        return 0", "    if x:", "    else:",
    "else:", "if x:", "    pass", "class A:", "    def m(self):", "        return self", "@decorator", "@property",
    "x = (1,", "     2)", ")", "y = [", "]", "z = {'a': 1,", "}", 's = """doc', 'end"""', "'''", "t = 'abc\\",
    "def'", "u = 1 + \\", "    2", "print(f(1))", "assert f(1) == 2", "for i in range(3):", "    print(i)",
    "try:", "    x = 1", "except ValueError:", "finally:", "  bad = 1", "lambda: (", "x = 1 if y", "return 1",
    "match x:", "    case 0:", "        pass", "async def h():", "    await g()", "with open(p) as fh:",
    "    data = fh.read()", "x = f'{1 +", "I can't write this one.", "O(n^2) time; n = len(xs).", "yield 3",
]



def test_the_search_finds_what_parsing_every_run_finds():
    rng = random.Random(0)
    texts = ["\n".join(rng.choice(PIECES) for _ in range(rng.randint(0, 22))) for _ in range(1500)]
    texts += ["a\n```python\ndef f(x):\n    return x\n\n\n```\nb", "x = (1,\n2", "def f():\n    return 1\n   ",
              "\n\nx = 1\ny = 2\n\n", "prose\n\n\n\n", "@dec\ndef f():\n    return 1\nmore prose"]
    assert [extract_code(t) for t in texts] == [extract_code_every_run(t) for t in texts]


def test_long_prose_replies_stay_fast():
    prose = "\n".join(f"Step {i}: we compare item {i} with the others, and it's fine." for i in range(300))
    reply = prose + "\n```python\ndef f(x):\n    return x + 1\n```\n" + prose
    start = time.process_time()
    assert extract_code(reply) == "def f(x):\n    return x + 1"
    assert extract_code(prose) == prose.split("\n")[0]
    assert time.process_time() - start < 2.0  # parsing every run is far slower (benchmarks/bench_sanitize.py)
