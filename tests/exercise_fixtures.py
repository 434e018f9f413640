"""Small source trees for the exercise miner: one repository of ordinary functions (doctests, hints, a call site,
methods, module constants) and, built at test time from the benchmarks' own data, planted contamination."""

from __future__ import annotations

import doctest
import gzip
import json
from pathlib import Path

from opencodegen.eval.humaneval import load_problems, read_jsonl
from opencodegen.eval.mtpb import mini_path
from opencodegen.exercises.decontaminate import docstrings
from opencodegen.exercises.docstring_layout import EXAMPLE_ARROWS
from opencodegen.exercises.validate import assert_holds

UTILS = '''"""Utilities."""
import math
from typing import List

LIMIT = 10


def clamp_all(values: List[int], low: int, high: int) -> List[int]:
    """Limit every value to the range [low, high].

    >>> clamp_all([1, 20, -5], 0, 10)
    [1, 10, 0]
    >>> clamp_all([7], 8, 9)
    [8]
    """
    return [min(max(v, low), high) for v in values]


def hypot_floor(a: int, b: int) -> int:
    """The integer part of the length of the hypotenuse of a right triangle with sides a and b."""
    return int(math.hypot(a, b))


def over_limit(x):
    """True if x exceeds LIMIT."""
    return x > LIMIT


def shout_all(words):
    """Each word in upper case, joined by spaces."""
    return " ".join(w.upper() for w in words)


def initials(name):
    """The first letter of each word of name, in upper case."""
    return "".join(w[0] for w in name.split()).upper()


def describe(thing):
    """A word for the kind of thing."""
    return type(thing).__name__.upper()


class Helpers:
    @staticmethod
    def twice(value: int) -> int:
        """Two times value."""
        return value * 2

    def exclaim(self, word: str) -> str:
        """The word in upper case, with an exclamation mark (needs no instance)."""
        return word.upper() + "!"

    def size(self):
        """How big this helper is."""
        return len(self.items)
'''

MAIN = '''from utils import shout_all

print(shout_all(["ab", "cd"]))
print(shout_all(["x"]))
'''


def write_repo(root: Path) -> Path:
    (root / "repo_a").mkdir(parents=True, exist_ok=True)
    (root / "repo_a" / "utils.py").write_text(UTILS)
    (root / "repo_a" / "main.py").write_text(MAIN)
    return root


def planted(root: Path) -> dict[str, str]:
    """repo_b/planted.py: functions that overlap benchmarks, each in a different way; returns name -> the item it
    copies. The copied text is read from the benchmarks' shipped data when the test runs."""
    he = load_problems()
    close = he["HumanEval/0"]
    prefixes_doc = docstrings(he["HumanEval/14"]["prompt"])[0]
    mtpb_prompt = max(read_jsonl(mini_path())[0]["prompts"], key=len)
    src = ["from typing import List\n\n",
           # HumanEval/0's canonical solution under another name and docstring
           "def close_pair_exists(numbers: List[float], threshold: float) -> bool:\n"
           '    """Tell whether two of the numbers are nearer to each other than threshold."""\n'
           + close["canonical_solution"] + "\n\n",
           # HumanEval/2's name and parameters, another body
           "def truncate_number(number: float) -> float:\n"
           '    """The part after the decimal point.\n\n    >>> truncate_number(2.5)\n    0.5\n    """\n'
           "    return number - int(number)\n\n\n",
           # HumanEval/14's docstring, another name and body
           f"def every_start(text: str) -> List[str]:\n    \"\"\"{prefixes_doc}\"\"\"\n"
           "    return [text[:i + 1] for i in range(len(text))]\n\n\n",
           # a shipped MTPB prompt as the docstring
           f"def odd_places(nums: List[int]) -> List[int]:\n    \"\"\"{mtpb_prompt}\"\"\"\n    return nums[1::2]\n\n\n",
           # the code of the MBPP-shaped benchmark record below, renamed
           "def shared_items(a: List[int], b: List[int]) -> List[int]:\n"
           '    """The items a and b have in common, in order."""\n'
           "    return sorted(set(a) & set(b))\n\n\n",
           # clean: must be kept
           "def count_spaces(text: str) -> int:\n"
           '    """How many spaces text holds.\n\n    >>> count_spaces("a b c")\n    2\n    """\n'
           "    return text.count(' ')\n"]
    (root / "repo_b").mkdir(parents=True, exist_ok=True)
    (root / "repo_b" / "planted.py").write_text("".join(src))
    return {"close_pair_exists": "HumanEval/0", "truncate_number": "HumanEval/2", "every_start": "HumanEval/14",
            "odd_places": "mtpb", "shared_items": "tiny_mbpp"}


def mbpp_file(path: Path) -> Path:
    """A benchmark file in MBPP's shape (`text`, `code`), written for the test."""
    path.write_text(json.dumps({"task_id": 901, "text": "Write a function returning the common items of two lists.",
                                "code": "def common(x, y):\n    return sorted(set(x) & set(y))\n"}) + "\n")
    return path


def write_corpus(root: Path, repos: dict[str, dict[str, str]]) -> Path:
    """A corpus directory in `ocg corpus build`'s layout: data/*.jsonl.gz repository documents and repos.jsonl."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    docs, index = [], []
    for repo, files in sorted(repos.items()):
        text = "".join(files.values())
        docs.append({"text": text, "id": repo, "metadata": {
            "repo": repo, "files": [[path, "python", len(t)] for path, t in files.items()]}})
        index.append({"repo": repo, "bytes": len(text.encode()), "files": len(files)})
    with gzip.open(root / "data" / "00000.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    (root / "repos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in index))
    return root


def docstring_examples(doc: str, namespace: dict, entry_point: str) -> tuple[int, list[str]]:
    """(how many examples a docstring shows, those not true of namespace[entry_point]). Python's doctest runs the
    `>>>` ones; an `entry(args) <arrow> answer` line is evaluated and compared as the exercise's tests compare."""
    test = doctest.DocTestParser().get_doctest(doc, namespace, entry_point, None, 0)
    if test.examples:
        failed = []
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test, out=failed.append)
        return len(test.examples), failed
    shown, failed = 0, []
    for line in (line.strip() for line in doc.splitlines()):
        arrow = next((a for a in EXAMPLE_ARROWS if line.startswith(f"{entry_point}(") and f") {a} " in line), None)
        if arrow:
            shown += 1
            call, answer = line.split(f" {arrow} ", 1)
            if not assert_holds(eval(answer), eval(call, namespace)):  # our own generated code
                failed.append(line)
    return shown, failed
