"""`ocg eval compare RUN_A RUN_B`: problem-by-problem differences between two result directories of the same
benchmark, and whether the difference in the mean is more than chance.

Each problem's score is the fraction of its samples that passed (pass@1's unbiased estimate); for MTPB a problem
is one (mode, problem, test case), for evalplus the "plus" verdict counts. The two runs are paired on the problems
they share:
- a paired randomization test: under "no difference" each problem's A - B is as likely to have either sign; the
  p-value is the share of sign assignments whose mean is at least as far from 0 as the observed one (all of them
  when at most 20 problems differ, else 20,000 random ones, seeded);
- a 95% bootstrap interval of the mean difference (problems resampled, 10,000 times, seeded);
- with one sample per problem, McNemar's exact test on the problems only one run solves.
"""

from __future__ import annotations

import json
from collections import defaultdict
from math import comb
from pathlib import Path

import numpy as np

from ..errors import UserError

EXACT_UP_TO = 20
PERMUTATIONS = 20_000
BOOTSTRAPS = 10_000


def problem_key(row: dict) -> str:
    if "task_id" in row:
        return str(row["task_id"])
    if "id" in row and "case" in row:  # MTPB
        return f"{row.get('mode', 'multi')}/{row['id']}/{row['case']}"
    raise UserError(f"a results row has neither task_id nor (id, case): {json.dumps(row)[:200]}")


def verdict(row: dict) -> bool:
    for key in ("plus_passed", "passed"):
        if key in row:
            return bool(row[key])
    raise UserError(f"a results row has no verdict (passed or plus_passed): {json.dumps(row)[:200]}")


def load_run(directory: str | Path) -> tuple[str, dict[str, tuple[int, int]]]:
    """(benchmark, {problem: (samples, passed)}) from a run's summary.json and results.jsonl."""
    from .humaneval import read_jsonl
    directory = Path(directory)
    for name in ("summary.json", "results.jsonl"):
        if not (directory / name).is_file():
            raise UserError(f"{directory}: not an `ocg eval` result directory (no {name})")
    try:
        benchmark = json.loads((directory / "summary.json").read_text()).get("benchmark", "?")
    except json.JSONDecodeError as e:
        raise UserError(f"{directory / 'summary.json'}: not valid JSON ({e.msg})") from None
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in read_jsonl(directory / "results.jsonl"):
        c = counts[problem_key(row)]
        c[0] += 1
        c[1] += verdict(row)
    if not counts:
        raise UserError(f"{directory / 'results.jsonl'}: no results")
    return benchmark, {k: (n, c) for k, (n, c) in counts.items()}


def randomization_p(diffs: np.ndarray, seed: int = 0) -> float:
    """Two-sided paired sign-flip test of mean(diffs) == 0."""
    nonzero = diffs[diffs != 0]
    if len(nonzero) == 0:
        return 1.0
    observed = abs(nonzero.sum()) - 1e-12
    if len(nonzero) <= EXACT_UP_TO:
        signs = ((np.arange(2 ** len(nonzero))[:, None] >> np.arange(len(nonzero))) & 1) * 2 - 1
    else:
        signs = np.random.default_rng(seed).choice((-1, 1), size=(PERMUTATIONS, len(nonzero)))
    return float(np.mean(np.abs(signs @ nonzero) >= observed))


def bootstrap_interval(diffs: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(BOOTSTRAPS, len(diffs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: the discordant problems split as a fair coin would."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(run_a: str | Path, run_b: str | Path, seed: int = 0) -> dict:
    bench_a, a = load_run(run_a)
    bench_b, b = load_run(run_b)
    if bench_a != bench_b:
        raise UserError(f"{run_a} is a {bench_a} run and {run_b} a {bench_b} run: compare runs of one benchmark")
    shared = sorted(set(a) & set(b), key=_natural)
    if not shared:
        raise UserError(f"{run_a} and {run_b} share no problems")
    score_a = np.array([a[k][1] / a[k][0] for k in shared])
    score_b = np.array([b[k][1] / b[k][0] for k in shared])
    diffs = score_a - score_b
    low, high = bootstrap_interval(diffs, seed)
    result = {"benchmark": bench_a, "run_a": str(run_a), "run_b": str(run_b), "problems": len(shared),
              "only_in_a": sorted(set(a) - set(b), key=_natural), "only_in_b": sorted(set(b) - set(a), key=_natural),
              "mean_a": float(score_a.mean()), "mean_b": float(score_b.mean()), "mean_difference": float(diffs.mean()),
              "ci95": [low, high], "p_randomization": randomization_p(diffs, seed),
              "a_better": int((diffs > 0).sum()), "b_better": int((diffs < 0).sum()),
              "equal": int((diffs == 0).sum()),
              "per_problem": {k: {"a": float(x), "b": float(y), "n_a": a[k][0], "n_b": b[k][0]}
                              for k, x, y in zip(shared, score_a, score_b)}}
    if all(a[k][0] == 1 and b[k][0] == 1 for k in shared):
        result["p_mcnemar"] = mcnemar_p(result["a_better"], result["b_better"])
    return result


def _natural(key: str):
    return [int(part) if part.isdigit() else part for part in key.replace("/", " / ").split()]


def report_markdown(r: dict) -> str:
    from .report import markdown_table
    lines = [f"# {r['benchmark']}: {r['run_a']} (A) vs {r['run_b']} (B)", "",
             f"{r['problems']} shared problems. Mean pass rate A {100 * r['mean_a']:.2f}%, B {100 * r['mean_b']:.2f}%; "
             f"A - B = {100 * r['mean_difference']:+.2f} points (95% bootstrap interval {100 * r['ci95'][0]:+.2f} to "
             f"{100 * r['ci95'][1]:+.2f}), paired randomization p = {r['p_randomization']:.4f}"
             + (f", McNemar exact p = {r['p_mcnemar']:.4f}" if "p_mcnemar" in r else "") + ".",
             f"A better on {r['a_better']}, B better on {r['b_better']}, equal on {r['equal']}.", ""]
    for side in ("a", "b"):
        if r[f"only_in_{side}"]:
            lines += [f"Only in {side.upper()} (not compared): {len(r[f'only_in_{side}'])} problems.", ""]
    differing = [(k, 100 * v["a"], 100 * v["b"], 100 * (v["a"] - v["b"])) for k, v in r["per_problem"].items()
                 if v["a"] != v["b"]]
    lines += ["## Problems that differ", "", markdown_table(["problem", "A (%)", "B (%)", "A - B"], differing)]
    return "\n".join(lines) + "\n"


def plot(path: Path, r: dict) -> None:
    """Per-problem pass rates, A against B: points off the diagonal are the differences."""
    from .report import plt, save_figure
    xs = [100 * v["b"] for v in r["per_problem"].values()]
    ys = [100 * v["a"] for v in r["per_problem"].values()]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 100], [0, 100], color="grey", lw=1)
    ax.scatter(xs, ys, alpha=0.5, s=18)
    ax.set_xlabel(f"B: {Path(r['run_b']).name} (% passed)")
    ax.set_ylabel(f"A: {Path(r['run_a']).name} (% passed)")
    ax.set_title(f"{r['benchmark']}: A - B = {100 * r['mean_difference']:+.1f} pts, p = {r['p_randomization']:.3g}")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def write_outputs(out: Path, r: dict) -> None:
    from .report import write_json, write_text
    write_json(out / "compare.json", r)
    write_text(out / "compare.md", report_markdown(r))
    plot(out / "compare.png", r)
