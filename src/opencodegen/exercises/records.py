"""The exercise record: the file format post-training reads (one JSON object per line of `exercises*.jsonl`).

    {"id", "source": "mined" | "synthetic" | "multi_turn" | "self", "prompt", "entry_point", "solution", "tests", "meta"}

in HumanEval's shape: `prompt` is imports + signature + docstring and ends with a newline, `solution` is the body
that completes it (like `canonical_solution`), `tests` is a `def check(candidate): ...` program of asserts (like
HumanEval's `test`), or "" for an SFT-only pair (then `meta["sft_only"]` is true). The program a judge runs is
HumanEval's: prompt + completion + "\\n" + tests + "\\n" + f"check({entry_point})"."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import UserError

SOURCES = ("mined", "synthetic", "multi_turn", "self")
FIELDS = ("id", "source", "prompt", "entry_point", "solution", "tests", "meta")


@dataclass
class Exercise:
    id: str
    source: str
    prompt: str
    entry_point: str
    solution: str
    tests: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: Any, where: str = "exercise") -> Exercise:
        """A record read from a file; a malformed one is a UserError naming the record and what is wrong."""
        if not isinstance(row, dict):
            raise UserError(f"{where}: not a JSON object")
        missing = [k for k in FIELDS if k not in row]
        if missing:
            raise UserError(f"{where}: lacks {', '.join(missing)}")
        wrong = [k for k in FIELDS[:-1] if not isinstance(row[k], str)]
        if wrong or not isinstance(row["meta"], dict):
            raise UserError(f"{where}: {', '.join(wrong) or 'meta'} must be "
                            f"{'strings' if wrong else 'an object'}")
        if row["source"] not in SOURCES:
            raise UserError(f"{where}: source {row['source']!r} is not one of {', '.join(SOURCES)}")
        if not row["prompt"].endswith("\n"):
            raise UserError(f"{where}: the prompt must end with a newline (HumanEval's shape)")
        return cls(**{k: row[k] for k in FIELDS})

    @property
    def sft_only(self) -> bool:
        return not self.tests


def exercise_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("exercises*.jsonl") if p.is_file())


def read_exercises(path: str | Path) -> list[Exercise]:
    """Every exercise of a directory written by `ocg exercises build` (all its `exercises*.jsonl` shards) or of
    one JSONL file."""
    path = Path(path)
    files = exercise_files(path) if path.is_dir() else [path]
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if not files:
        raise UserError(f"{path}: holds no exercises*.jsonl")
    return [Exercise.from_dict(row, where) for f in files for where, row in numbered_rows(f)]


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> int:
    """Writes all rows or nothing (temporary file, then rename); returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def numbered_rows(file: Path) -> Iterator[tuple[str, Any]]:
    """("file:line", parsed row) of every non-blank line of a JSONL file; unreadable text and bad JSON are one
    UserError naming the file (and line)."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{file}: cannot read ({e})") from None
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield f"{file}:{number}", json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{file}:{number}: not valid JSON ({e.msg})") from None
