"""MTPB, the Multi-Turn Programming Benchmark of the CodeGen paper: a problem is solved over several turns, each a
natural-language instruction the model answers with code, and the whole program is judged by the value it prints.

The official problem file (115 problems) is not on PyPI: pass it by path. This package ships `data/mtpb_mini.jsonl`,
15 problems in the same format written for this project (each with a reference `solution` per turn, an extra field
the official file lacks), for tests and the quickstart.

Scoring follows the official mtpb_exec.py so numbers are comparable:
- if the program's last statement is not a print, its value is wrapped in one (`x = f()` becomes `x = print(f())`);
- the answer is the first argument of the last `print` the program called, even if it crashed or ran out of time
  afterwards;
- the answer is cast to the expected output's type (int truncates floats, list('ab') == ['a', 'b'], booleans are
  compared as text); floats match within 1e-6 at the top level only; a pandas Series is compared with allclose;
  expected outputs of other types (None, dict) can never match.
"""

from __future__ import annotations

import ast
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..progress import progress_task
from ..prompt_format import SYNTH_PREAMBLE as PREAMBLE  # the format is prompt_format's; these names are MTPB's
from ..prompt_format import synth_history, turn_prompt
from ..prompt_format import truncate_turn as truncate
from .calibrate import calibrate, calibration_text, limits_of, record
from .context import PromptFitter
from .humaneval import read_jsonl
from .perplexity import mtpb_prompt_perplexity
from .report import (completion_counts, completion_counts_text, markdown_table, plot_bars, write_jsonl, write_run)
from .sandbox import ExecResult, Sandbox, SeriesValue

DEFAULT_TIMEOUT = 20.0  # the official harness's time limit
DEFAULT_MAX_GEN_LENGTH = 256  # when a problem has no max_gen_length (the official sampler's default)
MODES = ("multi", "single")
PRELOAD = ("numpy", "pandas")  # MTPB programs start with `import numpy as np`; data-science ones use pandas


@dataclass(frozen=True)
class Problem:
    id: int
    name: str
    category: str
    description: str
    prompts: tuple[str, ...]
    inputs: tuple[dict, ...]
    outputs: tuple
    max_gen_length: int
    solution: tuple[str, ...] | None = None  # reference code per turn (our own problems only)

    def turns(self, case: int) -> list[str]:
        """The turn prompts with the case's inputs filled in (str() of each value, as str.format does)."""
        return [p.format(**self.inputs[case]) for p in self.prompts]


def mini_path() -> Path:
    return Path(str(resources.files("opencodegen.eval") / "data" / "mtpb_mini.jsonl"))


def load_problems(path: str | Path | None = None) -> list[Problem]:
    path = Path(path) if path else mini_path()
    problems = []
    for number, row in enumerate(read_jsonl(path), 1):
        where = f"{path}: problem on line {number}"
        missing = {"id", "prompts", "inputs", "outputs"} - set(row)
        if missing:
            raise UserError(f"{where} lacks {', '.join(sorted(missing))}")
        if not row["prompts"] or not isinstance(row["prompts"], list):
            raise UserError(f"{where}: prompts must be a non-empty list of strings")
        # The official file has a problem with more outputs than inputs; the extra outputs have no test case.
        n_cases = min(len(row["inputs"]), len(row["outputs"]))
        if n_cases == 0:
            raise UserError(f"{where}: no test cases (inputs/outputs are empty)")
        for case in row["inputs"][:n_cases]:
            for prompt in row["prompts"]:
                try:
                    prompt.format(**case)
                except (KeyError, IndexError, ValueError) as e:
                    raise UserError(f"{where}: prompt {prompt!r} cannot be filled from inputs {case} ({e!r})") \
                        from None
        problems.append(Problem(
            id=int(row["id"]), name=row.get("name", str(row["id"])), category=row.get("category", "unknown"),
            description=row.get("description", ""), prompts=tuple(row["prompts"]),
            inputs=tuple(row["inputs"][:n_cases]), outputs=tuple(row["outputs"][:n_cases]),
            max_gen_length=int(row.get("max_gen_length") or DEFAULT_MAX_GEN_LENGTH),
            solution=tuple(row["solution"]) if row.get("solution") else None))
    if not problems:
        raise UserError(f"{path}: no problems")
    return sorted(problems, key=lambda p: p.id)


# ------------------------------------------------------------------------------------------------ prompts
def multi_turn_program(problem: Problem, case: int, completions: Sequence[str]) -> str:
    """History after every turn: preamble, then per turn the prompt and its truncated completion + blank line."""
    return synth_history(problem.turns(case), completions)


def single_turn_prompt(problem: Problem, case: int) -> str:
    """The paper's single-turn baseline: every turn's instruction at once, one completion for all of them."""
    return PREAMBLE + "".join(turn_prompt(t) for t in problem.turns(case))


# ------------------------------------------------------------------------------------------------ scoring
def wrap_last_in_print(code: str) -> str:
    """If the last top-level statement is not a print call, pass its value to print (the official rewrite, applied
    to any statement with a value: `x = f()` becomes `x = print(f())`). Code that does not parse, or whose last
    statement has no value (a def, a loop), runs as it is."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    if not tree.body:
        return code
    last = tree.body[-1]
    value = getattr(last, "value", None)
    if not isinstance(value, ast.AST):
        return code
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id.startswith("print"):
        return code
    # `print(` and `)` go around the value in the source itself (not ast.unparse, which drops comments and blank
    # lines), so every line keeps its number and a traceback points at the line the person sees.
    lines = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", code)

    def position(lineno: int, col: int) -> tuple[int, int]:  # ast's columns count UTF-8 bytes
        return lineno - 1, len(lines[lineno - 1].encode("utf-8")[:col].decode("utf-8"))

    (end_line, end_col), (line, col) = position(value.end_lineno, value.end_col_offset), position(value.lineno,
                                                                                                value.col_offset)
    lines[end_line] = lines[end_line][:end_col] + ")" + lines[end_line][end_col:]
    lines[line] = lines[line][:col] + "print(" + lines[line][col:]
    return "".join(lines)


def answers_match(answer, expected) -> bool:
    """MTPB's equivalence: normalise the answer, cast it to the expected type, then compare."""
    try:
        if isinstance(answer, SeriesValue):
            return bool(np.allclose(np.array(list(answer)), np.array(expected)))
        if type(answer) is list and answer and type(answer[0]) is tuple:
            answer = [list(t) for t in answer]
        if type(answer) is not type(expected):
            if type(expected) is bool:  # bool("False") is True: compare as text
                return str(answer) == str(expected)
            answer = type(expected)(answer)
        if type(answer) in (str, int, set, list, bool, tuple):
            return answer == expected
        if type(answer) is float:
            return abs(answer - expected) < 1e-6
        return False  # None, dict, ...: the official harness raises on these types
    except Exception:  # noqa: BLE001 - a failed cast is a wrong answer
        return False


# ------------------------------------------------------------------------------------------------ samples
def sample(model, tokenizer, problems: Sequence[Problem], n: int, params, mode: str = "multi", endpoint=None,
           compile: bool = False) -> list[dict]:
    """n samples per (problem, test case), from the model or from `endpoint` (an eval.endpoint.Endpoint).
    Multi-turn: each turn is sampled after the previous turns' truncated completions. Sample j uses seed base + j,
    so repeated histories still get independent draws. From the model, every sample is a session on one engine
    (engine.generate_sessions): its next turn joins the running batch as soon as its last one ends. From an
    endpoint, all samples' same turn are concurrent requests. compile: the model's decode steps run compiled."""
    from .endpoint import Request
    if mode not in MODES:
        raise UserError(f"MTPB mode must be one of {', '.join(MODES)}, not {mode!r}")
    base_seed = params.seed if params.seed is not None else 0
    units = [(p, case, j) for p in problems for case in range(len(p.inputs)) for j in range(n)]
    completions: list[list[str]] = [[] for _ in units]
    finishes: list[list[tuple[str, int]]] = [[] for _ in units]  # (finish_reason, tokens) per turn
    turns = [len(p.prompts) if mode == "multi" else 1 for p, _, _ in units]
    # single-turn: one completion in the budget of all the turns together
    budgets = [p.max_gen_length * (len(p.prompts) if mode == "single" else 1) for p, _, _ in units]
    unit_params = [replace(params, n=1, seed=base_seed + j, max_new_tokens=budget)
                   for (_, _, j), budget in zip(units, budgets)]

    def prompt(i: int) -> str:
        p, case, _ = units[i]
        if mode == "single":
            return single_turn_prompt(p, case)
        return multi_turn_program(p, case, completions[i]) + turn_prompt(p.turns(case)[len(completions[i])])

    def record(i: int, text: str, finish_reason: str, n_tokens: int) -> None:
        completions[i].append(truncate(text))
        finishes[i].append((finish_reason, n_tokens))
        task.advance(1)

    with progress_task(f"sample mtpb ({mode}-turn)", total=sum(turns), unit="turn") as task:
        if endpoint is None:
            from ..engine import generate_sessions  # torch: only sampling needs it, not scoring saved samples
            # A session's last prompt holds every instruction and every earlier answer: about its single-turn prompt
            # plus its budgets (x1.5 for re-tokenised answers and the turns' own lines), so a long-context model
            # decodes in that many positions and keeps room for many sessions at once.
            need = max((len(tokenizer.encode(single_turn_prompt(p, case))) + p.max_gen_length * len(p.prompts)
                        for p in problems for case in range(len(p.inputs))), default=0)  # each case once, not n times
            fit = PromptFitter(tokenizer, model, "mtpb", context=int(1.5 * need) + 64)

            def next_prompt(i: int, c) -> list[int] | None:
                record(i, c.text, c.finish_reason, len(c.token_ids))
                return fit(prompt(i), budgets[i]) if len(completions[i]) < turns[i] else None
            generate_sessions(model, tokenizer, [fit(prompt(i), budgets[i]) for i in range(len(units))],
                              unit_params, next_prompt, max_len=fit.context, compile=compile)
            fit.report()
        else:
            for turn in range(max(turns, default=0)):
                members = [i for i in range(len(units)) if turn < turns[i]]
                answers = endpoint.complete([Request(prompt(i), budgets[i], params.temperature, params.top_p, 1,
                                                     tuple(params.stop), None, unit_params[i].seed) for i in members])
                for i, [c] in zip(members, answers):
                    record(i, c.text, c.finish_reason, c.n_tokens)
    samples = []
    for i, (p, case, j) in enumerate(units):
        program = (multi_turn_program(p, case, completions[i]) if mode == "multi"
                   else single_turn_prompt(p, case) + completions[i][0] + "\n\n")
        reasons, n_tokens = zip(*finishes[i])
        samples.append({"id": p.id, "case": case, "sample": j, "mode": mode, "completions": completions[i],
                        "program": program, "finish_reasons": list(reasons), "n_tokens": list(n_tokens)})
    return samples


def reference_samples(problems: Sequence[Problem]) -> list[dict]:
    """The shipped reference solutions as samples (a self-check of the harness: they must all pass)."""
    samples = []
    for p in problems:
        if p.solution is None:
            raise UserError(f"MTPB problem {p.id} has no reference solution")
        for case in range(len(p.inputs)):
            turns = [code.format(**p.inputs[case]) for code in p.solution]
            samples.append({"id": p.id, "case": case, "sample": 0, "mode": "multi", "completions": turns,
                            "program": multi_turn_program(p, case, turns)})
    return samples


def _case_key(sample: dict) -> str:
    return f"{sample['id']}/{sample['case']}"


def _calibration_references(problems: Sequence[Problem]) -> list[dict]:
    missing = [p.id for p in problems if p.solution is None]
    if missing:
        raise UserError(f"--calibrate measures each problem's reference solution, and {len(missing)} MTPB problems "
                        f"have none (e.g. {missing[0]}; the official file ships without them): use --timeout")
    return reference_samples(problems)


def read_samples(path: str | Path, problems: Sequence[Problem]) -> list[dict]:
    """Completions made elsewhere. Each line: {"id", "case" (index into inputs) or "input" (the inputs dict),
    "completions": [code per turn]} — or "completions" as one whole program, as the official sampler writes it
    (its "input" field identifies the case)."""
    by_id = {p.id: p for p in problems}
    samples, counter = [], defaultdict(int)
    for number, row in enumerate(read_jsonl(path), 1):
        where = f"{path}: sample {number}"
        try:
            problem = by_id[int(row["id"])]
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}: id {row.get('id')!r} is not a problem of the benchmark file") from None
        if "case" in row:
            case = int(row["case"])
        elif "input" in row and row["input"] in problem.inputs:
            case = problem.inputs.index(row["input"])
        else:
            raise UserError(f"{where}: needs 'case' (0..{len(problem.inputs) - 1}) or an 'input' of the problem")
        if not 0 <= case < len(problem.inputs):
            raise UserError(f"{where}: case {case} out of range (problem {problem.id} has {len(problem.inputs)})")
        completions = row.get("completions")
        if isinstance(completions, str):
            program, turns = completions, [completions]
        elif isinstance(completions, list) and all(isinstance(c, str) for c in completions):
            if len(completions) != len(problem.prompts):
                raise UserError(f"{where}: {len(completions)} completions for {len(problem.prompts)} turns")
            program, turns = multi_turn_program(problem, case, completions), completions
        else:
            raise UserError(f"{where}: 'completions' must be a list of strings (one per turn) or a string")
        samples.append({"id": problem.id, "case": case, "sample": counter[(problem.id, case)],
                        "mode": row.get("mode", "multi"), "completions": turns, "program": program})
        counter[(problem.id, case)] += 1
    if not samples:
        raise UserError(f"{path}: no samples")
    return samples


def execute(samples: list[dict], sandbox: Sandbox, timeout: float | Sequence[float] = DEFAULT_TIMEOUT
            ) -> list[ExecResult]:
    """Each sample's run (its last printed value captured); timeout: one limit, or one per sample."""
    return sandbox.run([wrap_last_in_print(s["program"]) for s in samples], timeout=timeout,
                       capture_last_print=True, progress="execute mtpb")


def score(problems: Sequence[Problem], samples: list[dict], outcomes: list[ExecResult]) -> tuple[list[dict], dict]:
    """Per-sample rows and a summary: pass rate = passes / (samples x test cases), overall, per mode, per category
    and per problem (so problems that cannot pass show up as such), and the turns whose (truncated) completion is
    empty or stopped at its first token."""
    by_id = {p.id: p for p in problems}
    results = []
    tally: dict[str, dict[str, list[int]]] = {k: defaultdict(lambda: [0, 0]) for k in ("mode", "category", "problem")}
    for s, r in zip(samples, outcomes):
        p = by_id[s["id"]]
        expected = p.outputs[s["case"]]
        passed = r.has_value and answers_match(r.value, expected)
        results.append({"id": p.id, "case": s["case"], "sample": s["sample"], "mode": s["mode"], "passed": passed,
                        "answer": repr(r.value) if r.has_value else None, "expected": repr(expected),
                        "status": r.status, "reason": r.reason, "duration": round(r.duration, 4)})
        for key, name in (("mode", s["mode"]), ("category", f"{s['mode']}/{p.category}"),
                          ("problem", f"{s['mode']}/{p.id}")):
            tally[key][name][0] += passed
            tally[key][name][1] += 1

    def rates(table):
        def order(key: str):  # "multi/10" after "multi/9"
            mode, _, rest = key.partition("/")
            return (mode, int(rest) if rest.isdigit() else 0, rest)
        return {k: {"pass_rate": c / n, "passed": c, "total": n} for k, (c, n) in sorted(table.items(),
                                                                                       key=lambda kv: order(kv[0]))}
    problems_table = rates(tally["problem"])
    for key, row in problems_table.items():
        row["name"] = by_id[int(key.split("/")[1])].name
        row["category"] = by_id[int(key.split("/")[1])].category
    summary = {"benchmark": "mtpb", "problems": len({s["id"] for s in samples}), "samples": len(samples),
               "pass_rate": sum(r["passed"] for r in results) / len(results), "by_mode": rates(tally["mode"]),
               "by_category": rates(tally["category"]), "by_problem": problems_table,
               "statuses": dict(sorted(Counter(r.status for r in outcomes).items())),
               "completions": completion_counts(turn for s in samples for turn in _turns(s))}
    return results, summary


def _turns(sample: dict):
    """(text, finish_reason, tokens) per turn; the finish is None for samples read from a file."""
    reasons = sample.get("finish_reasons") or [None] * len(sample["completions"])
    n_tokens = sample.get("n_tokens") or [None] * len(sample["completions"])
    return zip(sample["completions"], reasons, n_tokens)


def evaluate(out: Path, *, data: str | Path | None = None, samples_path: str | Path | None = None, model=None,
             tokenizer=None, reference: bool = False, modes: Sequence[str] = ("multi",), n: int = 1, params=None,
             timeout: float = DEFAULT_TIMEOUT, workers: int | None = None, limit: int | None = None,
             prompt_perplexity: bool = False, allow_unsafe: bool = False, endpoint=None,
             compile: bool = False, calibration: tuple[float, float] | None = None) -> dict:
    """The whole `ocg eval mtpb`: samples (a file, the reference solutions, or the model or `endpoint` in each
    mode), execution, pass rates per mode, category and problem, outputs in `out` (sampled programs are written
    before they are run). compile: the model's decode steps run compiled (engine.generate). calibration: (factor,
    floor) replaces the fixed `timeout` with a limit per problem and input case measured on this machine from the
    reference solution (calibrate.py); problems without one (the official file's) cannot be calibrated."""
    problems = load_problems(data)[:limit] if limit else load_problems(data)
    stop = None  # sampled: the stop strings (--stop), besides the official truncation of each turn
    if samples_path is not None:
        samples = read_samples(samples_path, problems)
    elif reference:
        samples = reference_samples(problems)
    elif model is not None or endpoint is not None:
        if endpoint is not None:
            endpoint.resume_from(out)
        samples = [s for mode in modes for s in sample(model, tokenizer, problems, n, params, mode, endpoint,
                                                             compile)]
        write_jsonl(Path(out) / "samples.jsonl", samples)
        stop = list(params.stop)
    else:
        raise UserError("nothing to evaluate: give --samples FILE, --model DIR, --endpoint URL or --reference")
    with Sandbox(workers=workers, preload=PRELOAD, allow_unsafe=allow_unsafe) as sandbox:
        limits = None
        if calibration is not None:
            scored = {(s["id"], s["case"]) for s in samples}
            references = [r for r in _calibration_references(problems) if (r["id"], r["case"]) in scored]
            limits = calibrate([_case_key(r) for r in references],
                               lambda seconds: execute(references, sandbox, seconds), *calibration)
        outcomes = execute(samples, sandbox, limits_of(limits, [_case_key(s) for s in samples], timeout))
        isolation = sandbox.describe()
    results, summary = score(problems, samples, outcomes)
    summary["sandbox"] = isolation
    record(summary, limits, out)
    if stop is not None:
        summary["stop"] = stop
    if prompt_perplexity and model is not None:
        histories = {(s["id"], s["case"]): s["completions"] for s in samples
                     if s["mode"] == "multi" and s["sample"] == 0}
        if not histories:  # no multi-turn samples: the reference solutions stand in for the model's code
            histories = {(s["id"], s["case"]): s["completions"] for s in reference_samples(
                [p for p in problems if p.solution])}
        summary["prompt_perplexity"] = mtpb_prompt_perplexity(model, tokenizer, problems, histories)
    write_outputs(out, samples, results, summary)
    return summary


def report_markdown(summary: dict) -> str:
    lines = ["# MTPB", "", f"{summary['problems']} problems, {summary['samples']} programs "
             f"(samples x test cases). Pass rate {100 * summary['pass_rate']:.2f}%.", "",
             completion_counts_text(summary["completions"], "turn completions"), "",
             markdown_table(["mode", "pass rate (%)", "passed", "total"],
                            [(m, 100 * v["pass_rate"], v["passed"], v["total"])
                             for m, v in summary["by_mode"].items()]),
             "", "## By category", "",
             markdown_table(["mode/category", "pass rate (%)", "passed", "total"],
                            [(c, 100 * v["pass_rate"], v["passed"], v["total"])
                             for c, v in summary["by_category"].items()]),
             "", "## By problem", "",
             markdown_table(["mode/problem", "name", "category", "pass rate (%)", "passed", "total"],
                            [(k, v["name"], v["category"], 100 * v["pass_rate"], v["passed"], v["total"])
                             for k, v in summary["by_problem"].items()]),
             "", "Statuses: " + ", ".join(f"{k} {v}" for k, v in summary["statuses"].items())]
    if "calibration" in summary:
        lines += ["", calibration_text(summary["calibration"], "problem and input case")]
    if "prompt_perplexity" in summary:
        pp = summary["prompt_perplexity"]
        lines += ["", f"Mean prompt perplexity over {pp['cases']} cases: single-turn {pp['single_turn_mean_ppl']:.2f}, "
                  f"multi-turn {pp['multi_turn_mean_ppl']:.2f}."]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, samples: list[dict], results: list[dict], summary: dict) -> None:
    write_run(out, samples=samples, results=results, summary=summary, report=report_markdown(summary))
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for key, v in summary["by_category"].items():
        mode, category = key.split("/", 1)
        groups[f"{mode}-turn"][category] = v["pass_rate"]
    plot_bars(out / "mtpb_by_category.png", dict(groups), "MTPB pass rate by category", "pass rate (%)")
