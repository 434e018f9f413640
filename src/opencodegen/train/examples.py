"""Post-training data: JSONL rows read from a stage's `data` paths (files, or directories of *.jsonl).

Three row shapes are understood, so exercises (`ocg exercises build`) and any other prompt/completion data serve:
- an exercise, in HumanEval's shape: {prompt, solution, tests, entry_point, ...}; its completion is the solution;
- a pair: {prompt, completion};
- a preference pair: {prompt, chosen, rejected}.
A row's prompt and completion are tokenized apart and concatenated, exactly as a sampler sees them: the prompt as it
is sent, the completion as the model must write it after that prompt."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..exercises.records import numbered_rows


@dataclass
class Example:
    id: str
    prompt: str
    completion: str | None = None  # the target (pairs, and exercises' solutions)
    tests: str = ""  # `def check(candidate): ...` (exercises)
    entry_point: str = ""
    chosen: str | None = None
    rejected: str | None = None
    source: str = ""  # the file it came from
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def judgeable(self) -> bool:
        return bool(self.tests and self.entry_point)


def jsonl_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.jsonl") if "rejects" not in p.relative_to(path).parts)
        if not files:
            raise UserError(f"{path}: no *.jsonl files in this directory")
        return files
    if not path.is_file():
        raise UserError(f"{path}: no such file or directory")
    return [path]


def read_examples(path: str | Path) -> list[Example]:
    """Every row of a file or directory, checked: a row that is not one of the three shapes is an error naming the
    file and line."""
    out = []
    for file in jsonl_files(Path(path)):
        out += [_example(row, where, str(file)) for where, row in numbered_rows(file)]
    return out


def _example(row: Any, where: str, source: str) -> Example:
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
        raise UserError(f"{where}: a row needs a string 'prompt'")
    strings = {k: row[k] for k in ("solution", "completion", "chosen", "rejected", "tests", "entry_point")
               if k in row}
    bad = [k for k, v in strings.items() if not isinstance(v, str)]
    if bad:
        raise UserError(f"{where}: {', '.join(bad)} must be strings")
    completion = strings.get("completion", strings.get("solution"))
    if completion is None and not ("chosen" in strings and "rejected" in strings) and not strings.get("tests"):
        raise UserError(f"{where}: a row needs 'solution' or 'completion', 'chosen' and 'rejected', or 'tests'")
    ident = str(row.get("id") or row.get("task_id") or hashlib.blake2b(row["prompt"].encode(),
                                                                         digest_size=8).hexdigest())
    return Example(ident, row["prompt"], completion, strings.get("tests", ""), strings.get("entry_point", ""),
                   strings.get("chosen"), strings.get("rejected"), source,
                   row.get("meta") if isinstance(row.get("meta"), dict) else {})


def read_mixture(data: dict[str, float], seed: int) -> list[Example]:
    """The examples of every path, each path's rows taken `weight` times (a fractional part draws that share of the
    rows, seeded), so weights mix sources as they mix token directories in pretraining."""
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for path, weight in data.items():
        rows = read_examples(path)
        whole, part = int(weight), weight - int(weight)
        out += rows * whole
        if part > 0:
            pick = rng.permutation(len(rows))[: round(part * len(rows))]
            out += [rows[k] for k in sorted(pick)]
    return out


def held_out(example: Example, fraction: float) -> bool:
    """Whether an example belongs to the validation share: decided by its id alone, so it never moves between runs."""
    h = int.from_bytes(hashlib.blake2b(example.id.encode(), digest_size=8).digest(), "little")
    return h / 2**64 < fraction
