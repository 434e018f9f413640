"""Repository-level completion (`ocg eval repo`) on real checkpoints: exact match and edit similarity with in-file
context (the baseline) against cross-file context, per repository, on a seeded choice of the held-out repositories'
lines; and what it costs (wall and CPU seconds, building the tasks and answering them), so the quickstart's step can
be sized (Budget.repo_tasks).

    python benchmarks/bench_eval_repo.py --run-dir runs/quickstart --limit 500 --cross-file-share 0.5 \\
        --cross-file-share 0.25 --model mono=runs/quickstart/train/stage-2-mono/checkpoint-1207

Each model's run directory (--out/NAME) keeps its answers' journal, so an interrupted benchmark resumes; the seconds
recorded are those of the last (resumed) run, with how many answers it took from the journal. The result file holds a
list of runs: this one is added (and rewritten after each model and share finishes, so a stopped run keeps what it
measured), earlier ones are kept, and benchmarks of other models may run at the same time. `tasks_sha256` names the
exact tasks: two rows with the same value are paired line by line (checkpoints of different runs are compared on the
same lines when their held-out files are the same).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from opencodegen import host

OUT = Path(__file__).parent / "results" / "eval_repo.json"


def tasks_sha256(tasks) -> str:
    """What names a task set: every task's id, target and prompt text (seed and limit alone do not: they choose from
    whatever the held-out files are)."""
    h = hashlib.sha256()
    for t in tasks:
        h.update(json.dumps([t.task_id, t.target, t.prefix]).encode())
    return h.hexdigest()


def earlier_runs(path: Path) -> list[dict]:
    """The runs already in the result file (one written before it held a list is that list's first run)."""
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return data["runs"] if "runs" in data else [data]


def write_result(path: Path, run: dict) -> None:
    """Put `run` in the result file in place of its earlier state (same run_id), or after the runs already there;
    under a lock, so benchmarks of other models running at the same time keep theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)  # the lock: the file itself is replaced, its directory stays
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        runs = earlier_runs(path)
        at = next((i for i, r in enumerate(runs) if r.get("run_id") == run["run_id"]), len(runs))
        runs[at:at + 1] = [run]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        os.close(directory)  # releases the lock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", type=Path, required=True, help="the quickstart run whose held-out repositories")
    ap.add_argument("--model", action="append", required=True, help="NAME=CHECKPOINT_DIR (repeatable)")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--cross-file-share", type=float, action="append",
                    help="share of the prompt's room reserved for other files (repeatable: one run per share; "
                         "default: ocg eval repo's)")
    ap.add_argument("--out", type=Path, default=Path("runs") / "bench_eval_repo")
    ap.add_argument("--result", type=Path, default=OUT)
    ap.add_argument("--note", help="what this run is for, recorded with it")
    args = ap.parse_args()

    import torch

    from opencodegen.eval import repo_completion
    from opencodegen.eval.repo_tasks import build_tasks
    from opencodegen.model.io import load_checkpoint
    from opencodegen.quickstart.heldout import heldout_repos
    from opencodegen.sampling import SamplingParams

    repos = heldout_repos(args.run_dir)
    shares = args.cross_file_share or [repo_completion.DEFAULT_CROSS_FILE_SHARE]
    start, cpu = time.perf_counter(), time.process_time()
    tasks, skipped, _ = build_tasks(repos, limit=args.limit, seed=args.seed)
    build = {"wall_s": round(time.perf_counter() - start, 2), "cpu_s": round(time.process_time() - cpu, 2),
             "tasks": len(tasks), "skipped": len(skipped), "tasks_sha256": tasks_sha256(tasks),
             "by_repo": {r: sum(t.repo == r for t in tasks) for r in sorted({t.repo for t in tasks})}}
    commit = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or None
    result = {"run_id": f"{time.time():.0f}-{os.getpid()}",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
              "host": {**host.describe(), "torch_threads": torch.get_num_threads()},
              "run_dir": str(args.run_dir), "limit": args.limit, "seed": args.seed,
              "max_new_tokens": args.max_new_tokens, "cross_file_shares": shares, "build_tasks": build, "models": {}}
    if args.note:
        result["note"] = args.note
    for spec in args.model:
        name, _, path = spec.partition("=")
        model, tokenizer = load_checkpoint(Path(path))
        for share in shares:
            key = name if len(shares) == 1 else f"{name}@{share}"
            load0 = os.getloadavg()[0]
            start, cpu = time.perf_counter(), time.process_time()
            summary = repo_completion.evaluate(args.out / key, repos=repos, model=model, tokenizer=tokenizer,
                                               params=SamplingParams(max_new_tokens=args.max_new_tokens),
                                               limit=args.limit, seed=args.seed, cross_file_share=share)
            wall, used = time.perf_counter() - start, time.process_time() - cpu
            prompts, resumed = summary["tasks"] * len(summary["by_mode"]), summary["answers_from_journal"]
            result["models"][key] = {
                "checkpoint": path, "cross_file_share": share, "window": summary.get("window"),
                "by_mode": summary["by_mode"], "by_repo": summary["by_repo"], "paired": summary.get("paired"),
                "context": summary["context"], "reading": repo_completion.reading(summary),
                "cost": {"wall_s": round(wall, 1), "cpu_s": round(used, 1), "prompts": prompts,
                         "answers_from_journal": resumed,
                         "cpu_s_per_generated_prompt": round(used / (prompts - resumed), 3) if prompts > resumed
                         else None,
                         "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}}
            result["date_end"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            write_result(args.result, result)
            print(json.dumps({key: result["models"][key]["by_mode"]}, indent=1), f"\nwrote {args.result}", flush=True)


if __name__ == "__main__":
    main()
