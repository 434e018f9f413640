"""HumanEval+ and MBPP+ (evalplus, Liu et al. 2023): the same problems with many more test inputs, where a program
passes only if it returns what the reference solution returns on every input.

The released files (HumanEvalPlus.jsonl, MbppPlus.jsonl, .gz too) are given by path. Each line has task_id, prompt,
entry_point, canonical_solution, base_input and plus_input (lists of argument lists) and atol. Two verdicts per
sample, as evalplus reports them: "base" (the original inputs) and "plus" (the extra inputs, counted only when base
passed too).

The procedure is evalplus's (evalplus/evaluate.py and evalplus/eval/__init__.py, reproduced, not copied):
1. Ground truth on this machine: each reference solution runs in the sandbox on every input (a deep copy of it),
   timed input by input; its outputs are the expected ones (for the tasks whose reference returns a re.Match, whether
   it is not None).
2. Per-input time limits: max(floor, factor x the reference's time on that input), evalplus's defaults being floor
   4 s and factor 4 (its issue #5: fixed limits cut off correct programs on slow CPUs); a run's deadline is
   min(60 s, the sum of its inputs' limits) + 1 s. The table is written to calibration.json.
3. Judged runs (judge.py): the candidate runs in the sandbox; the loop over inputs runs in the trusted judge, which
   calls the candidate's function through its plain-data proxy, times each call, fails an input that took longer
   than its limit, and compares each output with evalplus_oracle.same_output (exact equality, float tolerance, the
   problem-specific oracles). An output that is not plain data (an object whose __eq__ always says yes) stays in the
   sandbox and fails when compared; numpy outputs are compared as the reference's were recorded (Python values).
   As in evalplus, the first failing input ends the run.

Differences from evalplus: an input over its limit is detected when the call returns (evalplus interrupts it at the
limit; here the run's deadline interrupts it); a call's time includes moving its arguments and result across the
sandbox boundary.

MBPP+ inputs stored as JSON lists or strings reach both the reference and the candidate in the shapes the functions
take (tuples, sets, complex numbers: evalplus_inputs.py, evalplus's mbpp_deserialize_inputs), and inputs are written
into the programs as Python literals, so those shapes survive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import UserError
from . import evalplus_oracle
from .calibrate import CALIBRATION_TIMEOUT, DEFAULT_FACTOR, DEFAULT_FLOOR, summary_of
from .evalplus_inputs import deserialize_inputs
from .humaneval import read_jsonl
from .judge import JudgeCase
from .sandbox import ExecResult

# evalplus's stops for base models (its sanitizer does the rest there; completions here are cut only by these)
STOP = ("\nif __name__", "\ndef main(", "\nprint(")
RUN_CAP = 60.0  # evalplus's EVALPLUS_TIMEOUT_PER_TASK: a run's deadline is at most this (+ 1 s)
PARTS = ("base", "plus")

# Runs in the sandbox after the reference solution: its outputs and its time on each input, printed as plain data.
_GROUND_TRUTH = """

def _ocg_ground_truth():
    import copy, io, time
    nan, inf = float("nan"), float("inf")
    report = []
    for inputs in {inputs}:
        outputs, seconds = [], []
        for args in inputs:
            args = copy.deepcopy(args)
            start = time.perf_counter()
            out = {entry}(*args)
            seconds.append(time.perf_counter() - start)
            outputs.append((out is not None) if {not_none!r} else out)
        report.append((outputs, seconds))
    print(report, file=io.StringIO())  # captured as the run's value, not written to stdout (its size is capped)


_ocg_ground_truth()
"""

# Trusted: runs in the judge after evalplus_oracle's code. `candidate` is the proxy of the candidate's function.
_CHECK = """
import time
nan, inf = float("nan"), float("inf")
_inputs = {inputs}
_expected = {expected}
_limits = {limits!r}
_atol = {atol!r}
for _i, _args in enumerate(_inputs):
    _start = time.perf_counter()
    _out = candidate(*_args)
    _took = time.perf_counter() - _start
    assert _took <= _limits[_i], "input %d took %.3f s, over its time limit of %.3f s" % (_i, _took, _limits[_i])
    _same, _atol = same_output({dataset!r}, {entry!r}, _args, _out, _expected[_i], _atol)
    assert _same, "wrong output on {part} input %d" % _i
"""

# Appended to the candidate of the tasks whose reference returns a re.Match: what crosses is whether it is None.
_NOT_NONE = """

def _ocg_not_none(*args):
    out = {entry}(*args)
    return out if isinstance(out, bool) else out is not None
"""

_ORACLE_CODE = Path(evalplus_oracle.__file__).read_text(encoding="utf-8")


def load_problems(path: str | Path) -> dict[str, dict]:
    problems = {}
    for number, row in enumerate(read_jsonl(path), 1):
        missing = {"task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input"} - set(row)
        if missing:
            raise UserError(f"{path}: problem {number} lacks {', '.join(sorted(missing))} (is this evalplus's "
                            "HumanEvalPlus.jsonl or MbppPlus.jsonl?)")
        for key in ("base_input", "plus_input"):
            if not isinstance(row[key], list) or not all(isinstance(args, list) for args in row[key]):
                raise UserError(f"{path}: problem {row['task_id']}: {key} must be a list of argument lists")
            try:
                row[key] = deserialize_inputs(row["task_id"], row[key])
            except (ValueError, TypeError, AttributeError, IndexError) as e:
                raise UserError(f"{path}: problem {row['task_id']}: {key} is not in the shape MBPP+ stores for this "
                                f"task ({type(e).__name__}: {e})") from None
        problems[row["task_id"]] = {**row, "atol": float(row.get("atol") or 0.0)}
    if not problems:
        raise UserError(f"{path}: no problems")
    return problems


def reference_code(problem: dict) -> str:
    """MBPP+'s canonical solutions are whole programs; HumanEval+'s are function bodies that follow the prompt."""
    solution = problem["canonical_solution"]
    return solution if problem["task_id"].startswith("Mbpp/") else problem["prompt"] + solution


def candidate_code(problem: dict, sample: dict) -> str:
    return sample["completion"] if sample.get("whole") else problem["prompt"] + sample["completion"]


def dataset_of(problem: dict) -> str:
    return "mbpp" if problem["task_id"].startswith("Mbpp/") else "humaneval"


def not_none(problem: dict) -> bool:
    return dataset_of(problem) == "mbpp" and problem["entry_point"] in evalplus_oracle.NOT_NONE


def ground_truth_program(problem: dict) -> str:
    """The reference solution, then the timed loop over base and plus inputs (see _GROUND_TRUTH)."""
    return reference_code(problem) + _GROUND_TRUTH.format(
        inputs=repr([problem["base_input"], problem["plus_input"]]), entry=problem["entry_point"],
        not_none=not_none(problem))


def ground_truth(problems: dict[str, dict], outcomes: Sequence[ExecResult], factor: float, floor: float) -> dict:
    """calibration.json: {"factor", "floor", "host", "problems": {task_id: {"reference_status", "reference_seconds",
    "reference_reason" (when it failed), "base" and "plus": {"expected", "input_seconds", "input_limits",
    "deadline"}}}}, from the ground-truth programs' outcomes (in the order of `problems`)."""
    import os
    table = {}
    for (task_id, problem), r in zip(problems.items(), outcomes):
        value = r.value if r.has_value else None
        if not (r.passed and type(value) is list and len(value) == len(PARTS)):
            table[task_id] = {"reference_status": "error" if r.passed else r.status,
                              "reference_reason": r.reason or "its outputs are not plain data",
                              "reference_seconds": round(r.duration, 4)}
            continue
        entry = {"reference_status": "passed"}
        for part, (outputs, seconds) in zip(PARTS, value):
            limits = [round(max(floor, factor * t), 4) for t in seconds]
            entry[part] = {"expected": list(outputs), "input_seconds": [round(t, 6) for t in seconds],
                           "input_limits": limits, "deadline": round(min(RUN_CAP, sum(limits)) + 1.0, 3)}
        entry["reference_seconds"] = round(sum(sum(entry[p]["input_seconds"]) for p in PARTS), 4)
        table[task_id] = entry
    return {"factor": factor, "floor": floor, "host": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
            "problems": table}


def judge_case(problem: dict, code: str, part: str, truth: dict) -> JudgeCase:
    """The candidate `code` on `part` ("base" or "plus") of the problem's inputs, judged as evalplus judges: the
    inputs, expected outputs and per-input limits are literals of the trusted check (repr of plain data; NaN and
    infinities spelled as names the check defines)."""
    functions = (problem["entry_point"],)
    if not_none(problem):
        code += _NOT_NONE.format(entry=problem["entry_point"])
        functions = ("_ocg_not_none",)
    check = _CHECK.format(inputs=repr(problem[f"{part}_input"]), expected=repr(truth[part]["expected"]),
                          limits=truth[part]["input_limits"], atol=problem["atol"], dataset=dataset_of(problem),
                          entry=problem["entry_point"], part=part)
    return JudgeCase(candidate=code, check=check, functions=functions, helpers=_ORACLE_CODE)


def run_part(sandbox, problems: dict[str, dict], samples: Sequence[dict], truth: dict, part: str) -> list[ExecResult]:
    """Judged runs of `samples` on `part`'s inputs; a problem without ground truth gives an "error" without a run, and
    a chat reply without a program a failure (instruct.NO_PROGRAM)."""
    from .instruct import NO_PROGRAM, no_program
    runnable = [i for i, s in enumerate(samples) if truth[s["task_id"]]["reference_status"] == "passed"
                and not no_program(s)]
    outcomes = sandbox.judge([judge_case(problems[samples[i]["task_id"]],
                                         candidate_code(problems[samples[i]["task_id"]], samples[i]), part,
                                         truth[samples[i]["task_id"]]) for i in runnable],
                             timeout=[truth[samples[i]["task_id"]][part]["deadline"] for i in runnable],
                             progress=f"execute evalplus ({part})") if runnable else []
    results = [ExecResult(status="failed", reason=NO_PROGRAM) if no_program(s) else
               ExecResult(status="error", reason="no expected outputs: the reference solution failed on this "
                          "machine (" + truth[s["task_id"]].get("reference_reason", "") + ")") for s in samples]
    for i, r in zip(runnable, outcomes):
        results[i] = r
    return results


def evaluate(out: Path, *, data: str | Path, samples_path=None, model=None, tokenizer=None, reference: bool = False,
             n: int = 1, params=None, ks: Sequence[int] = (1, 10, 100), workers: int | None = None,
             limit: int | None = None, endpoint=None, factor: float = DEFAULT_FACTOR,
             floor: float = DEFAULT_FLOOR, allow_unsafe: bool = False, sanitize: bool = False,
             compile: bool = False, chat: bool = False, system: str | None = None) -> dict:
    """The whole `ocg eval evalplus`: samples (file, reference, model or endpoint), ground truth and per-input limits,
    the base check for every sample and the plus check for those that pass it, pass@k for both, outputs in `out`.
    With `sanitize`, each sample's program is first cut as evalplus's sanitizer cuts it (sanitize.py); the samples
    written are the programs scored. compile: the model's decode steps run compiled (engine.generate). chat: the
    model is asked in its chat format and the program cut from its reply is scored whole (instruct.py), with
    `system` as the system message."""
    from dataclasses import replace

    from . import humaneval, instruct
    from .endpoint import sample_rows
    from .passk import mean_pass_at_k
    from .report import write_json, write_jsonl
    from .samples import read_samples
    from .sandbox import Sandbox
    if not (factor > 0 and floor > 0):
        raise UserError(f"time-limit factor and floor must be > 0, not {factor} and {floor}")
    everything = load_problems(data)
    problems = dict(list(everything.items())[:limit]) if limit else everything
    prompting = None
    if chat and model is None and endpoint is None:
        raise UserError("--chat asks a model in its chat format: give --model DIR or --endpoint URL")
    if samples_path is not None:
        samples = [s for s in read_samples(samples_path, everything) if s["task_id"] in problems]
    elif reference:
        samples = [{"task_id": t, "completion": reference_code(p), "completion_id": 0, "whole": True}
                   for t, p in problems.items()]
    elif model is not None or endpoint is not None:
        params = replace(params, stop=tuple(params.stop) + (() if chat else STOP))
        if endpoint is not None:
            endpoint.resume_from(out)
        if chat:
            samples = instruct.sample([(t, p["prompt"], (p["entry_point"],)) for t, p in problems.items()], n,
                                      params, model=model, tokenizer=tokenizer, endpoint=endpoint, system=system,
                                      compile=compile, what="evalplus")
        elif endpoint is not None:
            samples = sample_rows(endpoint, [(t, p["prompt"], None) for t, p in problems.items()], n, params,
                                  "sample evalplus")
        else:
            samples = humaneval.sample_completions(model, tokenizer, list(problems.values()), n, params,
                                                  compile=compile, what="evalplus")
        write_jsonl(Path(out) / "samples.jsonl", samples)
        prompting = instruct.prompting(samples, params.stop, chat, system)
    else:
        raise UserError("nothing to evaluate: give --samples FILE, --model DIR, --endpoint URL or --reference")
    sanitized = 0
    if sanitize:
        from .sanitize import sanitize as cut
        for s in samples:
            problem = problems[s["task_id"]]
            program = candidate_code(problem, s)
            s["completion"], s["whole"] = cut(program, problem["entry_point"]), True
            if s["completion"] != program:
                s["unsanitized"] = program  # kept in samples.jsonl beside what was scored
                sanitized += 1
    scored = {s["task_id"] for s in samples}
    with Sandbox(workers=workers, allow_unsafe=allow_unsafe) as sandbox:
        measured = {t: p for t, p in problems.items() if t in scored}
        calibration = ground_truth(measured, sandbox.run(
            [ground_truth_program(p) for p in measured.values()], timeout=CALIBRATION_TIMEOUT,
            capture_last_print=True, progress="ground truth and time limits"), factor, floor)
        truth = calibration["problems"]
        base = run_part(sandbox, problems, samples, truth, "base")
        again = [i for i, r in enumerate(base) if r.passed]  # plus counts only where base passed, as in evalplus
        plus = dict(zip(again, run_part(sandbox, problems, [samples[i] for i in again], truth, "plus")))
    results, per_task = [], {t: [0, 0, 0] for t in problems if t in scored}  # n, base passed, plus passed
    for i, (s, b) in enumerate(zip(samples, base)):
        p = plus.get(i)
        plus_passed = p is not None and p.passed
        decided = b if p is None else p
        results.append({"task_id": s["task_id"], "completion_id": s["completion_id"], "base_passed": b.passed,
                        "plus_passed": plus_passed, "base_status": b.status,
                        "plus_status": None if p is None else p.status, "status": decided.status,
                        "reason": decided.reason, "duration": round(b.duration + (p.duration if p else 0.0), 4)})
        row = per_task[s["task_id"]]
        row[0] += 1
        row[1] += b.passed
        row[2] += plus_passed
    summary = {"benchmark": "evalplus", "data": str(data), "tasks_scored": len(per_task), "samples": len(samples),
               "pass_at_k": {"base": mean_pass_at_k([(v[0], v[1]) for v in per_task.values()], ks),
                             "plus": mean_pass_at_k([(v[0], v[2]) for v in per_task.values()], ks)},
               "per_task": {t: {"n": v[0], "base_correct": v[1], "plus_correct": v[2]} for t, v in per_task.items()},
               "calibration": summary_of(calibration)}
    if sanitize:
        summary["sanitized"] = sanitized  # samples whose program the sanitizer changed
    if prompting is not None:
        summary["prompting"] = prompting
    if len(per_task) < len(problems):
        summary["tasks_missing"] = len(problems) - len(per_task)
    write_outputs(out, samples, results, summary, problems)
    write_json(Path(out) / "calibration.json", calibration)
    return summary


def report_markdown(summary: dict) -> str:
    from .report import markdown_table
    cal = summary["calibration"]
    lines = [f"# evalplus ({Path(summary['data']).name})", "",
             f"{summary['tasks_scored']} tasks, {summary['samples']} samples. Time limits calibrated on this machine "
             f"({cal['host']['cpus']} CPUs, load {cal['host']['loadavg'][0]:.2f}), per input: max({cal['floor']} s, "
             f"{cal['factor']} x the reference solution's time on it); per input in calibration.json.", "",
             markdown_table(["metric", "base (%)", "plus (%)"],
                            [(k, 100 * summary["pass_at_k"]["base"][k], 100 * summary["pass_at_k"]["plus"][k])
                             for k in summary["pass_at_k"]["plus"]]), ""]
    if "prompting" in summary:
        from .instruct import prompting_text
        lines += [prompting_text(summary["prompting"]), ""]
    if cal["reference_failures"]:
        lines += ["Reference solutions that fail their own check on this machine: "
                  + ", ".join(cal["reference_failures"]), ""]
    lines += ["## Per task", "", markdown_table(["task", "n", "base", "plus"], [
        (t, v["n"], v["base_correct"], v["plus_correct"]) for t, v in summary["per_task"].items()])]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, samples: list[dict], results: list[dict], summary: dict, problems: dict[str, dict]
                  ) -> None:
    from .report import write_run
    from .samples import write_evalplus
    write_run(Path(out), samples=samples, results=results, summary=summary, report=report_markdown(summary))
    write_evalplus(Path(out) / "evalplus_samples.jsonl", samples, {t: p["prompt"] for t, p in problems.items()})
