"""The quickstart as a benchmark: runs (or resumes, or just reads) `ocg quickstart` and records in
benchmarks/results/quickstart.json everything issue 19 measures: wall time per stage and in total, peak memory, the
shape the plan chose and why, held-out bits per byte beside xz -9 measured in the same run (it must stay below), the
exercises and what decontamination removed, the SFT/RL curves' end points, HumanEval (greedy pass@1, pass@k from n
samples at T=0.8 top-p 0.95, the problems solved) beside the published small models, MTPB multi- and single-turn,
and FIM, and the time to target (the first checkpoint that reaches each published row).

    .venv/bin/python benchmarks/bench_quickstart.py [--run-dir runs/quickstart] [--fresh] [--minutes 12]
    .venv/bin/python benchmarks/bench_quickstart.py --run-dir runs/speedrun --minutes 60 --papers-protocol \
        --out quickstart_speedrun.json

A run directory whose stages are all finished is only read: a rerun of this script re-records an earlier run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from opencodegen.eval.report import write_json
from opencodegen.quickstart.budget import Budget
from opencodegen.quickstart.pipeline import run_quickstart
from opencodegen.quickstart.published import HUMANEVAL_SMALL_MODELS, PAPERS_TEMPERATURES

ROOT = Path(__file__).resolve().parents[1]
GOAL_BPB = "below xz -9 on the concatenated held-out files"
MOONSHOT_BPB = 1.2


def record(r: dict) -> dict:
    bpb, load = r["bpb"], r["load_average_1min"]
    return {
        "benchmark": "ocg quickstart end to end: corpus, tokenizer, NL -> Multi -> Mono, evaluation, report",
        "date": r["date"], "machine": r["machine"],
        "contention": {"load_average_1min": load, "cores": r["cores"], "note": (
            "the 1-minute load average was above half the cores when the run started (other work, or the tail of "
            "work that had just ended): the times may be pessimistic" if (load["start"] or 0) > r["cores"] / 2 else
            "the machine was quiet when the run started (the load at the end is the run's own processes)")},
        "model": r["model"], "train_plan": r["train_plan"], "train_schedule": r.get("train_schedule"),
        "seconds": {"total": r["total_seconds"], **{k: v["seconds"] for k, v in r["stages"].items()}},
        "total_minutes": round(r["total_seconds"] / 60, 2),
        "peak_rss_mib": r["peak_rss_mib"],
        "held_out": {"files": bpb["files"], "bytes": bpb["bytes"], "repos": r["heldout"]["repos"]},
        "bits_per_byte": {"model": bpb["model"], "baseline_xz9_concat": bpb["xz_concat"],
                          "xz9_per_file": bpb["xz_per_file"], "bits_per_token": bpb["bits_per_token"],
                          "model_context": bpb["context"], "window_stride": bpb["stride"],
                          "goal": GOAL_BPB, "beats_xz": bpb["model"] < bpb["xz_concat"],
                          "moonshot": MOONSHOT_BPB, "beats_moonshot": bpb["model"] < MOONSHOT_BPB},
        "train": r["train"],
        "humaneval": {k: r["humaneval"].get(k) for k in ("greedy_pass@1", "pass_at_k", "temperature", "n", "tasks",
                                                          "solved", "reached", "papers_protocol", "completions")},
        "time_to_target": r.get("time_to_target"),
        "published": [dict(zip(("model", "params", "pass@1", "pass@10", "pass@100", "source"), row))
                      for row in HUMANEVAL_SMALL_MODELS],
        "mtpb": {k: r["mtpb"][k] for k in ("multi_turn", "single_turn", "by_category", "problems", "completions")},
        "exercises": r.get("exercises"),
        "fim_single_line": r["fim"],
        "repo_completion": r.get("repo_completion"),
        "synth_sessions": [{k: s.get(k) for k in ("intents", "expected", "stdout", "correct")}
                           for s in (r.get("synth") or {}).get("sessions", [])],
        "corpus": r["corpus"], "corpus_notes": r["corpus_notes"],
        "run_dir": r["run_dir"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "quickstart")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--minutes", type=float, default=Budget().train_minutes)
    ap.add_argument("--papers-protocol", action="store_true",
                    help="also sample at T 0.2 and 0.6 and record each k's best temperature (as the papers report)")
    ap.add_argument("--out", default="quickstart.json", help="file name under benchmarks/results/")
    args = ap.parse_args()
    budget = Budget(train_minutes=args.minutes,
                    humaneval_other_temperatures=PAPERS_TEMPERATURES if args.papers_protocol else ())
    results = run_quickstart(args.run_dir, budget, fresh=args.fresh)
    out = ROOT / "benchmarks" / "results" / args.out
    rec = record(results)
    write_json(out, rec)
    print(json.dumps({"bpb": rec["bits_per_byte"], "total_minutes": rec["total_minutes"],
                      "humaneval": rec["humaneval"], "mtpb": {k: rec["mtpb"][k] for k in ("multi_turn", "single_turn")}},
                     indent=2))


if __name__ == "__main__":
    main()
