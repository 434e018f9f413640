"""Fill-in-the-middle evaluation on HumanEval, built the way HumanEval-Infilling was (Bavarian et al. 2022): mask
part of a canonical solution, give the model the code before (prefix) and after (suffix), and judge the middle.

Tasks: single-line masks every non-blank line (1033 tasks); multi-line masks every span of consecutive non-blank
lines, blank lines inside the span included (5815 tasks, single lines among them); random-span masks the text
between two character offsets drawn uniformly from the solution, 10 per problem (1640 tasks, seeded). The prompt is
PSM with the tokenizer's own FIM tokens: <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|>, the text
pieces encoded separately and the special ids spliced in, so a literal "<|fim_prefix|>" in code is never a control
token. A single-line middle ends at its first line break; other middles are cut at a syntax boundary when they run
on (syntax_truncate). Scored by execution (pass@k: prefix + middle + suffix + tests) and by exact match of the
stripped middle (SantaCoder's FIM metric), reported by span length."""

from __future__ import annotations

import ast
import random
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..progress import progress_task
from ..prompt_format import FIM_CONTROL_TOKENS, FIM_TEXT_STOPS, encode_pieces, fim_end_ids, psm, require_fim_ids
from .calibrate import calibrate, calibration_text, limits_of, record
from .context import fit_infill, prompt_room
from .humaneval import judge_case, load_problems, read_jsonl
from .judge import JudgeCase
from .passk import mean_pass_at_k
from .report import (completion_counts, completion_counts_text, markdown_table, plot_lines, write_jsonl, write_run)
from .sandbox import ExecResult, Sandbox

MODES = ("single-line", "multi-line", "random-span")
RANDOM_SPANS_PER_PROBLEM = 10  # HumanEval-Infilling's random-span set: 1640 tasks, 10 per problem


@dataclass(frozen=True)
class InfillTask:
    task_id: str  # e.g. "HumanEval/0/single-line/3-3"
    problem_id: str
    mode: str
    prefix: str  # the HumanEval prompt + solution lines before the span
    middle: str  # the masked lines, each with its newline
    suffix: str
    span_lines: int  # non-blank lines in the middle


def random_span_tasks(problems: dict[str, dict], per_problem: int = RANDOM_SPANS_PER_PROBLEM, seed: int = 0
                      ) -> list[InfillTask]:
    """Bavarian et al.'s random-span infilling: the middle is a span of the canonical solution between two
    character offsets drawn uniformly (so it may start and end inside a line or a token). Seeded per problem, so
    the set is the same on every machine and for any subset of problems."""
    tasks = []
    for pid, p in problems.items():
        solution = p["canonical_solution"].rstrip()
        rng = random.Random(f"{seed}/{pid}")
        for k in range(per_problem):
            i, j = sorted(rng.sample(range(len(solution) + 1), 2))
            middle = solution[i:j]
            tasks.append(InfillTask(
                task_id=f"{pid}/random-span/{k}", problem_id=pid, mode="random-span", prefix=p["prompt"] + solution[:i],
                middle=middle, suffix=solution[j:] + "\n", span_lines=middle.count("\n") + 1))
    return tasks


def build_tasks(problems: dict[str, dict], mode: str) -> list[InfillTask]:
    if mode not in MODES:
        raise UserError(f"infilling mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "random-span":
        return random_span_tasks(problems)
    tasks = []
    for pid, p in problems.items():
        lines = p["canonical_solution"].splitlines(keepends=True)
        nonblank = [i for i, line in enumerate(lines) if line.strip()]
        for a in range(len(nonblank)):
            for b in range(a, a + 1 if mode == "single-line" else len(nonblank)):
                start, end = nonblank[a], nonblank[b]
                tasks.append(InfillTask(
                    task_id=f"{pid}/{mode}/{a}-{b}", problem_id=pid, mode=mode,
                    prefix=p["prompt"] + "".join(lines[:start]), middle="".join(lines[start:end + 1]),
                    suffix="".join(lines[end + 1:]), span_lines=b - a + 1))
    return tasks


def spread(tasks: list[InfillTask], limit: int | None) -> list[InfillTask]:
    """An evenly spaced subset (every problem and span length stays represented), deterministic."""
    if not limit or limit >= len(tasks):
        return tasks
    step = len(tasks) / limit
    return [tasks[int(i * step)] for i in range(limit)]


def psm_prompt(tokenizer, task: InfillTask, room: int | None = None) -> list[int]:
    """PSM token ids; with `room`, prefix and suffix are cut at their far ends to fit it (see context.fit_infill)."""
    ids = require_fim_ids(tokenizer)
    prefix, suffix = tokenizer.encode(task.prefix), tokenizer.encode(task.suffix)
    if room is not None:
        prefix, suffix = fit_infill(prefix, suffix, room - FIM_CONTROL_TOKENS)
    return encode_pieces(tokenizer, psm(ids, prefix, suffix))


def infill_case(task: InfillTask, problems: dict[str, dict], completion: str) -> JudgeCase:
    """The candidate is prefix + middle + suffix; the judge runs the problem's tests on it, as for HumanEval. A
    middle that should end a line but doesn't gets its newline, so the suffix's first line is not glued onto it."""
    if task.middle.endswith("\n") and not completion.endswith("\n"):
        completion += "\n"
    return replace(judge_case(problems[task.problem_id], ""), candidate=task.prefix + completion + task.suffix)


def exact_match(task: InfillTask, completion: str) -> bool:
    return completion.strip() == task.middle.strip()


def cut_middle(task: InfillTask, text: str) -> str:
    """A single-line task's middle ends at its first line break: one line was masked. Other middles are cut at a
    syntax boundary (syntax_truncate)."""
    if task.mode == "single-line":
        return text[: text.index("\n") + 1] if "\n" in text else text
    return syntax_truncate(task, text)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def syntax_truncate(task: InfillTask, text: str) -> str:
    """SAFIM's post-processing in spirit (Gong et al. 2024): a middle that runs on past its span (often re-writing
    the suffix) rarely leaves a program that parses. If prefix + middle + suffix does not parse, the middle is cut
    at the last line boundary (before or after a line break) where it does; with none, it is left as it is. A middle
    that parses is never changed, so this can only turn certain syntax errors into programs that run."""
    if _parses(task.prefix + text + task.suffix):
        return text
    cuts = sorted({i for i, ch in enumerate(text) if ch == "\n"} | {i + 1 for i, ch in enumerate(text) if ch == "\n"},
                  reverse=True)
    for cut in cuts:
        if _parses(task.prefix + text[:cut] + task.suffix):
            return text[:cut]
    return text


def sample_endpoint(endpoint, tasks: Sequence[InfillTask], n: int, params, fim_format: str) -> list[dict]:
    """Middles from an OpenAI-compatible server: the prefix and suffix apart in the request's `suffix` field
    (fim_format "suffix") or spliced into one prompt with the model's FIM tokens."""
    from .endpoint import fim_prompt, sample_rows
    if fim_format != "suffix":
        params = replace(params, stop=tuple(params.stop) + FIM_TEXT_STOPS)
    items = [(t.task_id, *fim_prompt(t.prefix, t.suffix, fim_format)) for t in tasks]
    by_id = {t.task_id: t for t in tasks}
    return [{**row, "completion": cut_middle(by_id[row["task_id"]], row["completion"])}
            for row in sample_rows(endpoint, items, n, params, "sample infill")]


def sample(model, tokenizer, tasks: Sequence[InfillTask], n: int, params, compile: bool = False) -> list[dict]:
    from ..engine import each_prompt_done, generate  # torch: only sampling needs it, not scoring saved samples
    ends = fim_end_ids(tokenizer)
    room = prompt_room(model, params.max_new_tokens)
    params = replace(params, n=n, stop_token_ids=tuple(params.stop_token_ids) + ends)
    with progress_task("sample infill", total=len(tasks), unit="task") as bar:
        outputs = generate(model, tokenizer, [psm_prompt(tokenizer, t, room) for t in tasks], params, compile=compile,
                           on_done=each_prompt_done(n, len(tasks), lambda _: bar.advance(1)))
    return [{"task_id": task.task_id, "completion": cut_middle(task, c.text), "completion_id": j,
             "finish_reason": c.finish_reason, "n_tokens": len(c.token_ids)}
            for task, completions in zip(tasks, outputs) for j, c in enumerate(completions)]


def execute(tasks: Sequence[InfillTask], problems: dict[str, dict], samples: list[dict], sandbox: Sandbox,
            timeout: float | Sequence[float] = 3.0) -> list[ExecResult]:
    """Each sample's verdict; timeout: one limit, or one per sample."""
    by_id = {t.task_id: t for t in tasks}
    return sandbox.judge([infill_case(by_id[s["task_id"]], problems, s["completion"]) for s in samples],
                         timeout=timeout, progress="execute infill")


def score(tasks: Sequence[InfillTask], samples: list[dict], outcomes: list[ExecResult], ks: Sequence[int] = (1, 10, 100)
          ) -> tuple[list[dict], dict]:
    by_id = {t.task_id: t for t in tasks}
    results = []
    per_task: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # n, passed, exact
    for s, r in zip(samples, outcomes):
        task = by_id[s["task_id"]]
        em = exact_match(task, s["completion"])
        results.append({"task_id": task.task_id, "completion_id": s["completion_id"], "mode": task.mode,
                        "span_lines": task.span_lines, "passed": r.passed, "exact_match": em, "status": r.status,
                        "reason": r.reason})
        row = per_task[task.task_id]
        row[0] += 1
        row[1] += r.passed
        row[2] += em
    summary: dict = {"benchmark": "infill", "tasks": len(per_task), "samples": len(samples),
                     "completions": completion_counts((s["completion"], s.get("finish_reason"), s.get("n_tokens"))
                                                      for s in samples),
                     "by_mode": {}}
    for mode in sorted({by_id[t].mode for t in per_task}):
        ids = [t for t in per_task if by_id[t].mode == mode]
        counts = [(per_task[t][0], per_task[t][1]) for t in ids]
        by_span: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for t in ids:
            by_span[by_id[t].span_lines][0] += per_task[t][2]
            by_span[by_id[t].span_lines][1] += per_task[t][0]
        summary["by_mode"][mode] = {
            "tasks": len(ids), "pass_at_k": mean_pass_at_k(counts, ks),
            "exact_match": sum(per_task[t][2] for t in ids) / sum(per_task[t][0] for t in ids),
            "exact_match_by_span_lines": {str(k): v[0] / v[1] for k, v in sorted(by_span.items())}}
    return results, summary


def read_samples(path, tasks: Sequence[InfillTask]) -> list[dict]:
    """{"task_id", "completion"} per line (task ids as build_tasks names them)."""
    known = {t.task_id for t in tasks}
    samples, counter = [], defaultdict(int)
    for number, row in enumerate(read_jsonl(path), 1):
        if not isinstance(row.get("completion"), str) or row.get("task_id") not in known:
            raise UserError(f"{path}: sample {number} needs a string completion and a task_id of the chosen "
                            f"infilling mode(s), e.g. {next(iter(known))!r}")
        samples.append({"task_id": row["task_id"], "completion": row["completion"],
                        "completion_id": counter[row["task_id"]]})
        counter[row["task_id"]] += 1
    return samples


def evaluate(out, *, model=None, tokenizer=None, samples_path=None, reference: bool = False,
             modes: Sequence[str] = MODES, limit: int | None = None, n: int = 1, params=None,
             ks: Sequence[int] = (1, 10, 100), timeout: float = 3.0, workers: int | None = None,
             allow_unsafe: bool = False, endpoint=None, fim_format: str = "suffix", compile: bool = False,
             calibration: tuple[float, float] | None = None) -> dict:
    """The whole `ocg eval infill`. limit: tasks per mode (an evenly spread subset). endpoint: an
    eval.endpoint.Endpoint to sample from instead of a model; sampled middles are written before they are run.
    compile: the model's decode steps run compiled (engine.generate). calibration: (factor, floor) replaces the fixed
    `timeout` with per-problem limits measured on this machine (calibrate.py)."""
    problems = load_problems()
    tasks = [t for mode in modes for t in spread(build_tasks(problems, mode), limit)]
    # sampled: the stop strings (--stop), besides the FIM end tokens (and their text for --fim-format prompts)
    stop = None
    if samples_path is not None:
        samples = read_samples(samples_path, tasks)
        scored = {s["task_id"] for s in samples}
        tasks = [t for t in tasks if t.task_id in scored]
    elif reference:
        samples = [{"task_id": t.task_id, "completion": t.middle, "completion_id": 0} for t in tasks]
    elif model is not None:
        samples = sample(model, tokenizer, tasks, n, params, compile=compile)
        write_jsonl(Path(out) / "samples.jsonl", samples)
        stop = list(params.stop)
    elif endpoint is not None:
        endpoint.resume_from(out)
        samples = sample_endpoint(endpoint, tasks, n, params, fim_format)
        write_jsonl(Path(out) / "samples.jsonl", samples)
        stop = list(params.stop)
    else:
        raise UserError("nothing to evaluate: give --samples FILE, --model DIR, --endpoint URL or --reference")
    with Sandbox(workers=workers, allow_unsafe=allow_unsafe) as sandbox:
        limits = None
        if calibration is not None:
            # Every task of a problem, its middle put back, is that problem's canonical program: one reference run
            # per problem sets the limit of all its tasks.
            ids = sorted({t.problem_id for t in tasks}, key=list(problems).index)
            limits = calibrate(ids, lambda seconds: sandbox.judge(
                [judge_case(problems[t], problems[t]["canonical_solution"]) for t in ids], timeout=seconds,
                progress="calibrate time limits"), *calibration)
        problem_of = {t.task_id: t.problem_id for t in tasks}
        outcomes = execute(tasks, problems, samples, sandbox,
                           limits_of(limits, [problem_of[s["task_id"]] for s in samples], timeout))
        isolation = sandbox.describe()
    results, summary = score(tasks, samples, outcomes, ks)
    summary["sandbox"] = isolation
    record(summary, limits, out)
    if stop is not None:
        summary["stop"] = stop
    write_outputs(out, samples, results, summary)
    return summary


def report_markdown(summary: dict) -> str:
    lines = ["# HumanEval infilling", "", f"{summary['tasks']} tasks, {summary['samples']} samples.", "",
             completion_counts_text(summary["completions"], "middles"), ""]
    if "calibration" in summary:
        lines += [calibration_text(summary["calibration"], "problem"), ""]
    for mode, v in summary["by_mode"].items():
        lines += [f"## {mode} ({v['tasks']} tasks)", "",
                  markdown_table(["metric", "score (%)"], [("exact match", 100 * v["exact_match"])] +
                                 [(k, 100 * s) for k, s in v["pass_at_k"].items()]), "",
                  markdown_table(["span (lines)", "exact match (%)"],
                                 [(k, 100 * s) for k, s in v["exact_match_by_span_lines"].items()]), ""]
    return "\n".join(lines)


def write_outputs(out, samples: list[dict], results: list[dict], summary: dict) -> None:
    write_run(out, samples=samples, results=results, summary=summary, report=report_markdown(summary))
    plot_lines(out / "fim_exact_match_by_span.png",
               {mode: {int(k): s for k, s in v["exact_match_by_span_lines"].items()}
                for mode, v in summary["by_mode"].items()},
               "FIM exact match by span length", "masked span (non-blank lines)", "exact match (%)")
