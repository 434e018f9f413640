"""The quickstart's evaluations of the final Mono checkpoint, each a thin call into `opencodegen.eval` that leaves the
usual samples/results/summary/report in eval/<name>/ and returns the few numbers the report shows."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ..engine import generate
from ..eval import humaneval as he
from ..eval import infill as fim
from ..eval import mtpb as mt
from ..eval import repo_completion
from ..eval.compression import xz_bits_per_byte
from ..eval.context import fit_prompts
from ..eval.perplexity import evaluate_bpb, read_text_files
from ..eval.report import plot_bars, write_jsonl
from ..eval.repo_tasks import NoTasks
from ..model.io import load_checkpoint
from ..sampling import HUMANEVAL_STOP, SamplingParams
from ..serve.synth import ProgramRunner, SynthSession, SynthSettings, model_complete
from . import targets
from .budget import Budget
from .published import reached

# Prompts for the report's samples: everyday Python a model trained on the standard library has seen the like of.
SAMPLE_PROMPTS = (
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "import os\n\n\ndef list_python_files(directory):\n    \"\"\"Return the paths of the .py files under directory.\"\"\"\n",
    "class Stack:\n    \"\"\"A last-in, first-out stack.\"\"\"\n\n    def __init__(self):\n",
    "def parse_key_value(line):\n    \"\"\"Split 'key=value' into a (key, value) tuple.\"\"\"\n",
)


def _load(checkpoint: Path):
    return load_checkpoint(checkpoint)


def bits_per_byte(checkpoint: Path, files_dir: Path, out: Path, budget: Budget, context: int | None = None) -> dict:
    """The model on the held-out files beside xz -9 on the same text (one stream, and each file alone). Long files
    are scored in windows of `context` tokens (default: the model's) starting 3/4 of a window apart, so every token
    has at least a quarter window behind it (xz sees everything before it), at 1.33x the tokens of one pass instead
    of half-overlapping windows' 2x: a slightly pessimistic figure for a third less time (the README gives the
    difference on one checkpoint). Scored at the context the model was pretrained at: a model
    whose block_size is longer (to hold HumanEval prompts) never saw those distances in pretraining."""
    model, tok = _load(checkpoint)
    if context is not None and context < model.config.block_size:
        model.set_rope(block_size=context)
    summary = evaluate_bpb(out, model, tok, files_dir=files_dir, limit=budget.bpb_max_files,
                           stride=3 * model.config.block_size // 4)
    texts = [t for _, t in read_text_files(files_dir)][:budget.bpb_max_files]
    return {"model": summary["bits_per_byte"], "xz_concat": summary["xz_bits_per_byte"],
            "xz_per_file": xz_bits_per_byte(texts, concatenate=False), "files": summary["documents"],
            "bytes": summary["bytes"], "tokens": summary["tokens"], "bits_per_token": summary["bits_per_token"],
            "beats_xz": summary["beats_xz"], "context": summary["context"], "stride": summary["stride"],
            "png": str(out / "bits_per_byte.png")}


PILOT_TASKS = 8  # HumanEval tasks sampled (at humaneval_n_min each) to time the sampled pass's programs


def humaneval(checkpoint: Path, out: Path, budget: Budget, deadline: float | None = None) -> dict:
    """As the Codex and CodeGen papers measure it: greedy pass@1, and pass@k from n samples at temperature 0.8 and
    top-p 0.95 with the unbiased estimator, for every k that n allows; plus which problems any sample solved.
    deadline: time.monotonic() by which the sampled pass should end (it sizes n, never below humaneval_n_min)."""
    model, tok = _load(checkpoint)
    greedy = he.evaluate(out / "greedy", model=model, tokenizer=tok, n=1,
                         params=SamplingParams(max_new_tokens=budget.humaneval_max_new_tokens, temperature=0.0, seed=0),
                         ks=[1], limit=budget.humaneval_tasks, workers=budget.workers)
    t = budget.humaneval_temperature
    n, sizing = budget.humaneval_n, None
    if n is None:  # as many as fit: pilots of the sampled pass itself (sampling and judging) size n
        # A pass costs a fixed part (the sandbox's start, its files and plot: about 2 s on a 2-core AVX2 host) and a
        # part per program. Charged to the 160 programs of the pilot, the fixed part doubled the rate there, and n
        # came out half of what fitted; a pilot of one program times it alone.
        started = time.perf_counter()
        sampled_pass(model, tok, out / "pilot-fixed", budget, 1, limit=1)
        fixed = time.perf_counter() - started
        started = time.perf_counter()
        pilot = sampled_pass(model, tok, out / "pilot", budget, budget.humaneval_n_min,
                             limit=min(PILOT_TASKS, greedy["tasks_scored"]))
        seconds = time.perf_counter() - started
        rate = max(seconds - fixed, seconds / 4) / pilot["samples"]  # (a noisy fixed part takes at most 3/4)
        left = None if deadline is None else deadline - time.monotonic()
        n = budget.humaneval_samples(rate, greedy["tasks_scored"], left, fixed)
        sizing = {"seconds_per_program": rate, "fixed_seconds": fixed, "seconds_left": left,
                  "least": budget.humaneval_n_min, "most": budget.humaneval_n_max}
    # one pass per temperature in one call: the budget's first, then the papers' others (their best per k is kept)
    sampled = sampled_pass(model, tok, out / "sampled", budget, n, temperatures=budget.humaneval_temperatures())
    pass_at_k, papers = sampled["pass_at_k"], None
    if "by_run" in sampled:  # the papers' protocol: each k's best temperature, beside the budget's own
        pass_at_k = sampled["by_run"][f"t={t}"]["pass_at_k"]
        best = {k: {"value": v, "temperature": sampled["best_temperature"][k]} for k, v in sampled["pass_at_k"].items()}
        papers = {"by_temperature": {label[2:]: {"pass_at_k": v["pass_at_k"]} for label, v in sampled["by_run"].items()},
                  "best": best, "reached": reached(sampled["pass_at_k"])}
    # per_task is the first run's: the budget's temperature
    solved = sorted({task for s in (greedy, sampled) for task, v in s["per_task"].items() if v["correct"]},
                    key=lambda task: int(task.rsplit("/", 1)[1]))
    return {"greedy_pass@1": greedy["pass_at_k"]["pass@1"], "pass_at_k": pass_at_k,
            "temperature": t, "n": n, "sizing": sizing, "tasks": sampled["tasks_scored"], "solved": solved,
            "reached": reached(pass_at_k), "papers_protocol": papers,
            "programs": greedy["samples"] + sampled["samples"],
            "statuses": sampled["statuses"], "greedy_statuses": greedy["statuses"],
            "completions": {"greedy": greedy["completions"], "sampled": sampled["completions"]},
            "png": str(out / "sampled" / "pass_at_k.png")}


def sampled_pass(model, tok, out: Path, budget: Budget, n: int, limit: int | None = None,
                 temperatures: list[float] | None = None) -> dict:
    """pass@k for every k that n allows, from n samples per task at the budget's temperature (or at each of
    `temperatures`, then with the best per k) and top-p 0.95, on the first `limit` tasks (default: the budget's)."""
    params = SamplingParams(max_new_tokens=budget.humaneval_max_new_tokens, seed=0,
                            temperature=budget.humaneval_temperature, top_p=0.95)
    return he.evaluate(out, model=model, tokenizer=tok, n=n, params=params, ks=[k for k in (1, 10, 100) if k <= n],
                       limit=limit or budget.humaneval_tasks, workers=budget.workers, temperatures=temperatures)


def time_to_target(run_dir: Path, recipe, final: dict, out: Path, budget: Budget) -> dict:
    """The first checkpoint that reaches each published row (targets.py), each earlier one scored as `final` (the
    final checkpoint's humaneval() result) was."""
    def evaluate(c: targets.Candidate) -> dict:
        model, tok = _load(Path(c.path))
        return sampled_pass(model, tok, out / f"{c.stage}-{c.step}", budget, final["n"])["pass_at_k"]

    return targets.time_to_target(targets.candidates(run_dir / "train", recipe), final["pass_at_k"], evaluate)


def mtpb(checkpoint: Path, out: Path, budget: Budget) -> dict:
    model, tok = _load(checkpoint)
    params = SamplingParams(temperature=0.2, top_p=0.95, seed=0)  # the paper's; lengths come from each problem
    s = mt.evaluate(out, model=model, tokenizer=tok, modes=("multi", "single"), n=budget.mtpb_n, params=params,
                    limit=budget.mtpb_problems, workers=budget.workers)
    by_category: dict[str, dict[str, float]] = {}
    for key, v in s["by_category"].items():
        mode, category = key.split("/", 1)
        by_category.setdefault(category, {})[f"{mode}_turn"] = v["pass_rate"]
    png = out / "pass_rate_by_category.png"
    plot_bars(png, {f"{m}-turn": {c: v.get(f"{m}_turn", 0.0) for c, v in by_category.items()}
                    for m in ("multi", "single")}, "MTPB pass rate by category", "pass rate (%)")
    return {"multi_turn": s["by_mode"].get("multi", {}).get("pass_rate"),
            "single_turn": s["by_mode"].get("single", {}).get("pass_rate"), "by_category": by_category,
            "problems": s["problems"], "programs": s["samples"], "n": budget.mtpb_n, "completions": s["completions"],
            "png": str(png)}


def infill(checkpoint: Path, out: Path, budget: Budget) -> dict:
    model, tok = _load(checkpoint)
    # One line was masked, so the first newline ends the answer (infill.sample keeps one line either way).
    params = SamplingParams(max_new_tokens=budget.fim_max_new_tokens, temperature=0.0, stop=("\n",), seed=0)
    s = fim.evaluate(out, model=model, tokenizer=tok, modes=("single-line",), limit=budget.fim_tasks, n=1,
                     params=params, ks=(1,), workers=budget.workers)
    v = s["by_mode"]["single-line"]
    return {"tasks": v["tasks"], "exact_match": v["exact_match"], "pass@1": v["pass_at_k"].get("pass@1"),
            "completions": s["completions"]}


# Short `ocg synth` sessions for the report: what a user following "what next" would type. Each ends by printing a
# value; the expected one is shown beside what the model's program printed.
SYNTH_SESSIONS = (
    (("Assign the list [5, 3, 8, 1, 9] to a variable named nums.", "Keep only the numbers in nums that are greater "
      "than 4.", "Print the sum of nums."), "22"),
    (("Assign the string 'hello world' to a variable named text.", "Convert text to uppercase.", "Print text."),
     "HELLO WORLD"),
    (("Set n to 6.", "Make a list squares of the squares of the numbers from 1 to n.", "Print squares."),
     "[1, 4, 9, 16, 25, 36]"),
)


def synth_sessions(checkpoint: Path, out: Path, budget: Budget) -> dict:
    """Each of SYNTH_SESSIONS through `ocg synth`'s session (MTPB's format and sampling settings, seed 0), its
    program run in the sandbox as `:run` runs it: does the post-trained model answer with code that runs?"""
    model, tok = _load(checkpoint)
    rows = []
    with ProgramRunner(workers=1) as runner:
        for intents, expected in SYNTH_SESSIONS:
            session = SynthSession(complete=model_complete(model, tok), settings=SynthSettings(seed=0))
            for intent in intents:
                asyncio.run(session.add_turn(intent))
            run = session.run(runner)
            rows.append({"intents": list(intents), "program": session.program, "status": run.status,
                         "stdout": run.stdout, "reason": run.reason, "expected": expected,
                         "correct": run.status == "passed" and run.stdout.strip() == expected})
    write_jsonl(out / "sessions.jsonl", rows)
    return {"sessions": rows, "ran": sum(r["status"] == "passed" for r in rows),
            "correct": sum(r["correct"] for r in rows)}


def repository_completion(checkpoint: Path, run_dir: Path, out: Path, budget: Budget) -> dict:
    """Lines of the held-out repositories that use a name another of their files defines, completed greedily with
    and without the cross-file context of the repository format: what repository-level packing buys. `checkpoint`
    is the pretrained (Mono) one, which was trained on the repository documents."""
    from .heldout import heldout_repos
    repos = heldout_repos(run_dir)
    model, tok = _load(checkpoint)
    try:
        s = repo_completion.evaluate(out, repos=repos, model=model, tokenizer=tok,
                                     params=SamplingParams(max_new_tokens=budget.repo_max_new_tokens,
                                                           temperature=0.0),
                                     limit=budget.repo_tasks, seed=0)
    except NoTasks as e:  # held-out repositories whose files do not use each other: nothing to compare, said so
        return {"tasks": 0, "note": str(e), "checkpoint": str(checkpoint)}
    return {"tasks": s["tasks"], "by_mode": s["by_mode"], "paired": s.get("paired"), "context": s["context"],
            "window": s.get("window"),
            "note": s.get("note"), "reading": repo_completion.reading(s), "checkpoint": str(checkpoint),
            "png": str(out / "repo_completion.png")}


def samples(checkpoint: Path, out: Path, budget: Budget) -> dict:
    """Greedy completions of a few prompts, cut at the HumanEval stops (the end of the function)."""
    model, tok = _load(checkpoint)
    params = SamplingParams(max_new_tokens=budget.sample_max_new_tokens, temperature=0.0, stop=HUMANEVAL_STOP)
    prompts = fit_prompts(tok, model, SAMPLE_PROMPTS, params.max_new_tokens, "samples")
    rows = [{"prompt": p, "completion": c[0].text, "finish_reason": c[0].finish_reason}
            for p, c in zip(SAMPLE_PROMPTS, generate(model, tok, prompts, params))]
    write_jsonl(out / "samples.jsonl", rows)
    return {"samples": rows}
