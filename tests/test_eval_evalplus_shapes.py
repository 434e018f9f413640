"""evalplus parity beyond the judge: MBPP+ inputs converted back to the shapes their functions take (tuples, sets,
complex numbers: evalplus's mbpp_deserialize_inputs), and evalplus's sanitizer cutting a chat-style answer down to
the program that defines the entry point. Fixtures of our own in evalplus's shapes; expected values worked out by
hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opencodegen.errors import UserError
from opencodegen.eval import evalplus
from opencodegen.eval.evalplus_inputs import deserialize_inputs
from opencodegen.eval.sanitize import extract_code, sanitize

SHAPES = Path(__file__).parent / "data" / "mbppplus_shapes.jsonl"


def test_inputs_back_in_their_shapes():
    assert deserialize_inputs("Mbpp/124", [[0, "1j"], [2.5, "-3j"]]) == [[0.0, 1j], [2.5, -3j]]
    assert isinstance(deserialize_inputs("Mbpp/124", [[1, "1j"]])[0][0], float)
    # Mbpp/115: each list a set; an empty one becomes {} as in evalplus
    assert deserialize_inputs("Mbpp/115", [[[[1, 2], []]]]) == [[[{1, 2}, {}]]]
    assert type(deserialize_inputs("Mbpp/115", [[[[], [1]]]])[0][0][0]) is dict
    # every argument a tuple; every argument a list of tuples
    assert deserialize_inputs("Mbpp/2", [[[3, 4], [4, 5]]]) == [[(3, 4), (4, 5)]]
    assert deserialize_inputs("Mbpp/63", [[[[1, 2], [3, 4]]]]) == [[[(1, 2), (3, 4)]]]
    # the first argument a list of tuples, the second kept; the second a tuple, the first kept
    assert deserialize_inputs("Mbpp/75", [[[[6, 24], [7, 9]], 6]]) == [[[(6, 24), (7, 9)], 6]]
    assert deserialize_inputs("Mbpp/106", [[[5, 6], [9, 10]]]) == [[[5, 6], (9, 10)]]
    # the first argument a tuple, the others kept
    assert deserialize_inputs("Mbpp/307", [[["H", 5, []], 2, 50]]) == [[("H", 5, []), 2, 50]]
    # each argument a tuple of tuples; the items that are lists tuples, inside a tuple
    assert deserialize_inputs("Mbpp/259", [[[[1, 3]], [[6, 7]]]]) == [[((1, 3),), ((6, 7),)]]
    assert deserialize_inputs("Mbpp/278", [[[1, 5, [4, 6], 10]]]) == [[(1, 5, (4, 6), 10)]]
    assert deserialize_inputs("Mbpp/722", [[{"a": [6.2, 70]}, 6, 70]]) == [[{"a": (6.2, 70)}, 6, 70]]
    assert deserialize_inputs("Mbpp/252", [["1+2j"]]) == [[1 + 2j]]
    # every list at any depth a tuple
    assert deserialize_inputs("Mbpp/580", [[[4, 5, [7, 6, [2, 4]], 6]]]) == [[(4, 5, (7, 6, (2, 4)), 6)]]
    # tasks without a conversion, and HumanEval+, as stored
    assert deserialize_inputs("Mbpp/3", [[2], [[1, 2]]]) == [[2], [[1, 2]]]
    assert deserialize_inputs("HumanEval/0", [[[1.0, 2.0], 0.5]]) == [[[1.0, 2.0], 0.5]]


def test_a_malformed_stored_input_is_a_clear_error(tmp_path):
    row = json.loads(SHAPES.read_text().splitlines()[0])
    row["plus_input"] = [[0, "not a number"]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match="Mbpp/124: plus_input is not in the shape MBPP[+] stores"):
        evalplus.load_problems(bad)


CHAT = '''Sure! Here is the solution:

```python
import math
from typing import List

def helper(x):
    return x * 2

def unused(y):
    return y

LIMIT = 10

def solve(xs: List[int]) -> int:
    return sum(helper(x) for x in xs if x < LIMIT)

def helper(x):
    return 0

print(solve([1, 2]))
assert solve([]) == 0
```

This works because `helper` doubles each item.
'''


def test_sanitizer_keeps_the_entry_point_and_what_it_reaches():
    code = extract_code(CHAT)
    assert code.startswith("import math\n") and code.endswith("assert solve([]) == 0")  # prose and fences cut
    # imports first; the first helper only (the redefinition is dropped); unused, print and assert dropped
    assert sanitize(CHAT, "solve") == (
        "import math\nfrom typing import List\ndef helper(x):\n    return x * 2\nLIMIT = 10\n"
        "def solve(xs: List[int]) -> int:\n    return sum(helper(x) for x in xs if x < LIMIT)")
    # without an entry point every definition stays
    assert "def unused(y)" in sanitize(CHAT) and "print(" not in sanitize(CHAT)


def test_sanitizer_cases():
    text = ("def main():\n    print(area(2))\n\n\n@cached\ndef area(side):\n    return Square(side).side ** 2\n\n\n"
            "class Square:\n    def __init__(self, side):\n        self.side = side\n\n\n"
            "if __name__ == \"__main__\":\n    main()\n")
    # main has no return (dropped, as evalplus drops it); area reaches Square through its body; the decorator stays
    assert sanitize(text, "area") == ("@cached\ndef area(side):\n    return Square(side).side ** 2\nclass Square:\n"
                                      "    def __init__(self, side):\n        self.side = side")
    # a transitive chain: f -> g -> h, and a constant that only h uses
    chain = "K = 3\ndef h():\n    return K\ndef g():\n    return h()\ndef f():\n    return g()\ndef z():\n    return 1\n"
    assert sanitize(chain, "f") == "K = 3\ndef h():\n    return K\ndef g():\n    return h()\ndef f():\n    return g()"
    # nothing parses: evalplus's extraction gives the first line, which does not parse either
    assert extract_code("no code here\nnor here") == "no code here" and sanitize("no code here\nnor here", "f") == ""
    # an entry point the answer does not define: only the imports remain
    assert sanitize("import os\ndef g():\n    return 1\n", "f") == "import os"


def test_mbpp_plus_shapes_end_to_end_with_sanitized_chat_answers(tmp_path):
    # the references pass only on converted inputs (0 + "1j" and a list taken for a number would raise)
    summary = evalplus.evaluate(tmp_path / "ref", data=SHAPES, reference=True, ks=(1,), workers=2, floor=2.0)
    assert summary["pass_at_k"] == {"base": {"pass@1": 1.0}, "plus": {"pass@1": 1.0}}
    answer = ("Here you go:\n```python\ndef extract_even(t):\n    return tuple(extract_even(x) if isinstance(x, tuple) "
              "else x for x in t if isinstance(x, tuple) or x % 2 == 0)\n\nprint(extract_even((1, 2)))\n```\nDone.")
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "Mbpp/580", "solution": answer}) + "\n")
    raw = evalplus.evaluate(tmp_path / "raw", data=SHAPES, samples_path=samples, ks=(1,), workers=2, floor=2.0)
    assert raw["per_task"]["Mbpp/580"]["base_correct"] == 0  # prose is a syntax error
    cut = evalplus.evaluate(tmp_path / "cut", data=SHAPES, samples_path=samples, ks=(1,), workers=2, floor=2.0,
                            sanitize=True)
    assert cut["per_task"]["Mbpp/580"] == {"n": 1, "base_correct": 1, "plus_correct": 1} and cut["sanitized"] == 1
    scored = json.loads((tmp_path / "cut" / "samples.jsonl").read_text().splitlines()[0])
    assert scored["completion"].startswith("def extract_even(t):") and "print(" not in scored["completion"]
