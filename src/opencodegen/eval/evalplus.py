"""HumanEval+ and MBPP+ (evalplus, Liu et al. 2023): the same problems with many more test inputs, where a program
passes only if it returns what the reference solution returns on every input.

The released files (HumanEvalPlus.jsonl, MbppPlus.jsonl, .gz too) are given by path. Each line has task_id, prompt,
entry_point, canonical_solution, base_input and plus_input (lists of argument lists) and atol. Two verdicts per
sample, as evalplus reports them: "base" (the original inputs) and "plus" (base and extra inputs).

Time limits are calibrated on this machine, as evalplus does (its issue #5: fixed limits cut off correct programs
on slow CPUs): each problem's reference solution is run first, and the problem's limit is
max(floor, factor x its measured time), evalplus's defaults being floor 4 s and factor 4. The calibration is
recorded in the results. evalplus measures each input apart; here the limit covers a problem's whole input list.

Comparison follows evalplus: equal values pass; a float result (or a list of floats) is compared with
numpy.allclose(rtol=1e-7, atol=the problem's atol or 1e-6). Not reproduced: evalplus's hand-written special cases
(e.g. HumanEval/32's find_zero, which accepts any root) and its sanitizer that cuts chatty completions to code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from .calibrate import DEFAULT_FACTOR, DEFAULT_FLOOR, calibrate, summary_of
from .humaneval import read_jsonl

# evalplus's stops for base models (its sanitizer does the rest there; completions here are cut only by these)
STOP = ("\nif __name__", "\ndef main(", "\nprint(")

# Appended to the candidate's program: the reference runs in its own namespace, on deep copies of each input (a
# candidate may mutate its arguments), and every output is compared as evalplus compares them.
_CHECK = '''

def __ocg_same(got, expected, atol):
    if got == expected:
        return True
    floats = isinstance(expected, float) or (isinstance(expected, (list, tuple)) and len(expected) > 0
                                             and all(isinstance(x, float) for x in expected))
    if not (floats or atol):
        return False
    try:
        import numpy
        return bool(numpy.allclose(got, expected, rtol=1e-07, atol=atol or 1e-06))
    except Exception:
        return False


def __ocg_check():
    import copy, json
    reference = {{}}
    exec(compile({reference!r}, "<reference>", "exec"), reference)
    for i, args in enumerate(json.loads({inputs!r})):
        expected = reference[{entry!r}](*copy.deepcopy(args))
        got = {entry}(*copy.deepcopy(args))
        assert __ocg_same(got, expected, {atol!r}), "wrong output on input " + str(i)


__ocg_check()
'''


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


def program(problem: dict, code: str, plus: bool) -> str:
    """The candidate's code, then the check over the base inputs (plus=False) or base and extra inputs."""
    inputs = problem["base_input"] + (problem["plus_input"] if plus else [])
    return code + _CHECK.format(reference=reference_code(problem), inputs=json.dumps(inputs),
                                entry=problem["entry_point"], atol=problem["atol"])


def evaluate(out: Path, *, data: str | Path, samples_path=None, model=None, tokenizer=None, reference: bool = False,
             n: int = 1, params=None, ks: Sequence[int] = (1, 10, 100), workers: int | None = None,
             limit: int | None = None, endpoint=None, factor: float = DEFAULT_FACTOR,
             floor: float = DEFAULT_FLOOR, allow_unsafe: bool = False) -> dict:
    """The whole `ocg eval evalplus`: calibrated limits, samples (file, reference, model or endpoint), the plus
    check for every sample and the base check for those that fail it, pass@k for both, outputs in `out`."""
    from dataclasses import replace

    from . import humaneval
    from .endpoint import sample_rows
    from .passk import mean_pass_at_k
    from .report import write_json, write_jsonl
    from .samples import read_samples
    from .sandbox import Sandbox
    everything = load_problems(data)
    problems = dict(list(everything.items())[:limit]) if limit else everything
    if samples_path is not None:
        samples = [s for s in read_samples(samples_path, everything) if s["task_id"] in problems]
    elif reference:
        samples = [{"task_id": t, "completion": reference_code(p), "completion_id": 0, "whole": True}
                   for t, p in problems.items()]
    elif model is not None or endpoint is not None:
        params = replace(params, stop=tuple(params.stop) + STOP)
        if endpoint is not None:
            endpoint.resume_from(out)
            samples = sample_rows(endpoint, [(t, p["prompt"], None) for t, p in problems.items()], n, params,
                                  "sample evalplus")
        else:
            samples = humaneval.sample_completions(model, tokenizer, list(problems.values()), n, params)
        write_jsonl(Path(out) / "samples.jsonl", samples)
    else:
        raise UserError("nothing to evaluate: give --samples FILE, --model DIR, --endpoint URL or --reference")
    scored = {s["task_id"] for s in samples}
    with Sandbox(workers=workers, allow_unsafe=allow_unsafe) as sandbox:
        ids = [t for t in problems if t in scored]
        calibration = calibrate(ids, lambda seconds: sandbox.run(
            [program(problems[t], reference_code(problems[t]), plus=True) for t in ids], timeout=seconds,
            progress="calibrate time limits"), factor, floor)
        limits = calibration["problems"]
        plus = sandbox.run([program(problems[s["task_id"]], candidate_code(problems[s["task_id"]], s), plus=True)
                            for s in samples], timeout=[limits[s["task_id"]]["limit"] for s in samples],
                           progress="execute evalplus (plus)")
        retry = [i for i, r in enumerate(plus) if not r.passed]  # passing plus implies passing base
        base = dict(zip(retry, sandbox.run(
            [program(problems[samples[i]["task_id"]], candidate_code(problems[samples[i]["task_id"]], samples[i]),
                     plus=False) for i in retry],
            timeout=[limits[samples[i]["task_id"]]["limit"] for i in retry], progress="execute evalplus (base)")))
    results, per_task = [], {t: [0, 0, 0] for t in problems if t in scored}  # n, base passed, plus passed
    for i, (s, r) in enumerate(zip(samples, plus)):
        base_passed = r.passed or base[i].passed
        results.append({"task_id": s["task_id"], "completion_id": s["completion_id"], "base_passed": base_passed,
                        "plus_passed": r.passed, "status": r.status, "reason": r.reason,
                        "duration": round(r.duration, 4), "time_limit": limits[s["task_id"]]["limit"]})
        row = per_task[s["task_id"]]
        row[0] += 1
        row[1] += base_passed
        row[2] += r.passed
    summary = {"benchmark": "evalplus", "data": str(data), "tasks_scored": len(per_task), "samples": len(samples),
               "pass_at_k": {"base": mean_pass_at_k([(v[0], v[1]) for v in per_task.values()], ks),
                             "plus": mean_pass_at_k([(v[0], v[2]) for v in per_task.values()], ks)},
               "per_task": {t: {"n": v[0], "base_correct": v[1], "plus_correct": v[2]} for t, v in per_task.items()},
               "calibration": summary_of(calibration)}
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
             f"({cal['host']['cpus']} CPUs, load {cal['host']['loadavg'][0]:.2f}): max({cal['floor']} s, "
             f"{cal['factor']} x the reference solution's time); per problem in calibration.json.", "",
             markdown_table(["metric", "base (%)", "plus (%)"],
                            [(k, 100 * summary["pass_at_k"]["base"][k], 100 * summary["pass_at_k"]["plus"][k])
                             for k in summary["pass_at_k"]["plus"]]), ""]
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
