"""Post-training benchmarks. Exercises part: exercises built per minute and the kept fraction per source, and how
fast the judge checks sampled completions (what an RL stage's reward costs).

    python benchmarks/bench_posttrain.py                      # all exercise rows -> results/posttrain.json
    python benchmarks/bench_posttrain.py --synthetic 3000 --workers 1

Baseline, same run, same candidates: the straightforward validation, one sandbox program per candidate to compute
its answers and one program each for the solution and every trivial body (what re-judging with `check_exercises`
does), against ours: answers for 32 candidates per program, one program for the solution, and the trivial bodies
decided from the literal tests (validate.py). Both must keep the same exercises.
Training part (--training): the quickstart model's shape (4 x 256, 4096 ids, tied head) on this machine, trained by
the one stage runner for a few steps each way: SFT tokens/s on packed exercises against pretraining tokens/s on
token shards (the named baseline: the same model, batch and context, so their ratio is the cost of packing and
masking), and an RL stage's samples sampled-and-judged per second (8 exercises x 8 samples a step, up to 128 new
tokens), from the trainer's own metrics log, warm-up step dropped.
Each measurement is one function returning a dict, so later rows add functions, not branches."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from opencodegen.exercises import validate as validate_module
from opencodegen.exercises.build import BuildOptions, build
from opencodegen.exercises.judge import CheckJob, Judge
from opencodegen.exercises.records import read_exercises
from opencodegen.exercises.synthetic import candidates
from opencodegen.exercises.validate import check_exercises, run_calls
from opencodegen import host


def measure_synthetic(n: int, seed: int, workers: int) -> dict:
    """`ocg exercises build --synthetic n`: exercises kept per minute of wall time, kept fraction, reasons."""
    out = Path(tempfile.mkdtemp(prefix="bench-synthetic-"))
    try:
        t0 = time.perf_counter()
        stats = build(BuildOptions(out=out, synthetic=n, seed=seed, workers=workers))
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    s = stats["sources"]["synthetic"]
    return {"source": "synthetic", "wanted": n, "kept": s["kept"], "candidates": s["candidates"],
            "kept_fraction": s["kept_fraction"], "rejected": s["rejected"], "wall_s": round(wall, 2),
            "exercises_per_minute": round(60 * s["kept"] / wall, 1), "workers": workers,
            "decontamination_removed": stats["decontamination"]["removed"]}


def measure_synthetic_vs_baseline(candidate_count: int, seed: int, workers: int) -> dict:
    """The first candidate_count candidates of the stream, validated twice in one judge: ours (validate.py), then the
    baseline (a program per candidate for its answers, a program each for the solution and every trivial body); the
    baseline's verdicts must keep exactly what ours keeps."""
    cands = list(islice(candidates(seed), candidate_count))
    with Judge(workers=workers) as judge:
        t0 = time.perf_counter()
        ours = validate_module.validate(judge, cands, seen_behaviour={})
        ours_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        batch, validate_module.VALUES_BATCH = validate_module.VALUES_BATCH, 1
        try:
            run_calls(judge, cands)
        finally:
            validate_module.VALUES_BATCH = batch
        answers_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        rechecked = check_exercises(judge, ours.kept)  # solution + 3 trivial bodies, each its own program
        check_s = time.perf_counter() - t2
    baseline_s = answers_s + check_s
    agree = len(rechecked.kept) == len(ours.kept) and not rechecked.rejected
    return {"candidates": candidate_count, "kept": len(ours.kept), "workers": workers,
            "ours": {"wall_s": round(ours_s, 2), "exercises_per_minute": round(60 * len(ours.kept) / ours_s, 1)},
            "baseline": {"name": "a sandbox program per candidate (answers) and per solution and trivial body "
                                 "(verdicts)", "wall_s": round(baseline_s, 2),
                         "exercises_per_minute": round(60 * len(rechecked.kept) / baseline_s, 1),
                         "seconds": {"answers": round(answers_s, 2), "verdicts": round(check_s, 2)}},
            "speedup": round(baseline_s / ours_s, 2), "verdicts_agree": agree}


def measure_mined(source_dir: Path, workers: int, seed: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-mined-"))
    try:
        t0 = time.perf_counter()
        stats = build(BuildOptions(out=out, mine_dirs=[source_dir], workers=workers, seed=seed))
        wall = time.perf_counter() - t0
        tested = sum(not e.sft_only for e in read_exercises(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    s = stats["sources"]["mined"]
    return {"source": "mined", "from": str(source_dir), "candidates": s["candidates"], "kept": s["kept"],
            "kept_with_tests": tested, "sft_only": s.get("sft_only", 0), "kept_fraction": s["kept_fraction"],
            "rejected": s["rejected"], "wall_s": round(wall, 2),
            "candidates_per_minute": round(60 * s["candidates"] / wall, 1),
            "exercises_per_minute": round(60 * s["kept"] / wall, 1), "workers": workers,
            "decontamination_removed": stats["decontamination"]["removed"]}


def measure_judge(n_exercises: int, k: int, seed: int, workers: int) -> dict:
    """Completions judged per second (an RL stage's reward): k completions per exercise, half of them wrong."""
    out = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    try:
        build(BuildOptions(out=out, synthetic=n_exercises, seed=seed, workers=workers))
        exercises = read_exercises(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    jobs = [CheckJob(e.prompt, e.solution if j % 2 == 0 else "    return None\n", e.tests, e.entry_point)
            for e in exercises for j in range(k)]
    with Judge(workers=workers) as judge:
        t0 = time.perf_counter()
        verdicts = judge.check(jobs)
        wall = time.perf_counter() - t0
    return {"what": "judge", "completions": len(jobs), "k": k, "wall_s": round(wall, 2),
            "completions_per_second": round(len(jobs) / wall, 1), "passed": sum(v.passed for v in verdicts),
            "workers": workers}


def measure_training(steps: int, workers: int) -> dict:
    """Tokens/s of sft against pretrain, and rl samples judged per second, on the quickstart model's shape."""
    import statistics

    import numpy as np
    import yaml

    from opencodegen.tokenizer import CodeTokenizer, train_tokenizer
    from opencodegen.train import load_recipe, train

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from train_fixtures import write_shard

    tmp = Path(tempfile.mkdtemp(prefix="bench-posttrain-train-"))
    try:
        texts = [p.read_text(errors="replace") for p in sorted(Path(os.__file__).parent.glob("*.py"))[:150]]
        train_tokenizer(texts, 4096).save(tmp / "tok")
        tok = CodeTokenizer.load(tmp / "tok")
        write_shard(tmp / "tokens" / "train", [np.array(tok.encode(t) + [tok.eos_id]) for t in texts])
        build(BuildOptions(out=tmp / "exercises", synthetic=400, seed=0, workers=workers))
        base = {"model": {"preset": "tiny-10m", "n_layer": 4, "n_embd": 256, "n_head": 4, "block_size": 512,
                          "vocab_size": 4096, "tie_embeddings": True},
                "tokenizer": str(tmp / "tok" / "tokenizer.json"),
                "optim": {"name": "adamw", "lr": 1e-3, "warmup_steps": 1},
                "batch": {"batch_tokens": 8192, "micro_batch": 8, "context_length": 256},
                "run": {"autocast": "auto", "eval_every": 10_000, "save_every": 10_000, "eval_tokens": 256}}
        kinds = {"pretrain": {"data": {str(tmp / "tokens"): 1.0}},
                 "sft": {"kind": "sft", "data": {str(tmp / "exercises"): 1.0}},
                 "rl": {"kind": "rl", "data": {str(tmp / "exercises"): 1.0},
                        "rl": {"exercises_per_step": 8, "group_size": 8, "max_new_tokens": 128}}}
        out = {}
        for kind, stage in kinds.items():
            recipe = tmp / f"{kind}.yaml"
            recipe.write_text(yaml.safe_dump({**base, "stages": [{"name": kind, "steps": steps, **stage}]}))
            train(load_recipe(recipe), tmp / kind, progress=False)
            recs = [json.loads(line) for line in (tmp / kind / "metrics.jsonl").read_text().splitlines()][1:]
            out[kind] = {"tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in recs), 1),
                         "seconds_per_step": round(statistics.median(r["seconds"] for r in recs), 3)}
            if kind == "rl":
                out[kind].update({"samples_judged_per_s": round(statistics.median(r["samples_per_s"] for r in recs), 1),
                                  "pass_rate": round(statistics.mean(r["pass_rate"] for r in recs), 4)})
        out["sft_vs_pretrain_tokens_per_s"] = round(out["sft"]["tokens_per_s"] / out["pretrain"]["tokens_per_s"], 3)
        out["autocast"] = json.loads((tmp / "sft" / "summary.json").read_text())["autocast"]
        return {"what": "training", "steps": steps, **out}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=3000)
    ap.add_argument("--baseline-candidates", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="sandbox workers (1: the one-core figure)")
    ap.add_argument("--stdlib-modules", default="colorsys,textwrap,fractions,statistics,string,heapq,bisect,"
                                                 "calendar,shlex,fnmatch,difflib,ipaddress,base64,html,json/encoder")
    ap.add_argument("--judge-exercises", type=int, default=200)
    ap.add_argument("--training", action="store_true", help="also the SFT/pretrain and RL rows")
    ap.add_argument("--training-steps", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "posttrain.json")
    args = ap.parse_args()

    stdlib = Path(os.__file__).parent
    src = Path(tempfile.mkdtemp(prefix="bench-stdlib-"))
    for name in args.stdlib_modules.split(","):
        if (stdlib / f"{name}.py").is_file():
            shutil.copy(stdlib / f"{name}.py", src / f"{name.replace('/', '_')}.py")
    load_start = os.getloadavg()
    t0 = time.time()
    rows = {"synthetic": measure_synthetic(args.synthetic, args.seed, args.workers),
            "synthetic_vs_baseline": measure_synthetic_vs_baseline(args.baseline_candidates, args.seed, args.workers),
            "mined_stdlib": measure_mined(src, args.workers, args.seed),
            "judge": measure_judge(args.judge_exercises, 8, args.seed, args.workers)}
    if args.training:
        rows["training"] = measure_training(args.training_steps, args.workers)
    shutil.rmtree(src, ignore_errors=True)
    result = {"benchmark": "posttrain (exercises)", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)),
              "host": host.describe(), "load_average": {"start": [round(x, 2) for x in load_start],
                                               "end": [round(x, 2) for x in os.getloadavg()]},
              "rows": rows,
              "note": "exercises_per_minute is kept exercises per minute of wall time, including the behaviour "
                      "duplicates and rejects the generator makes on the way; the machine is shared, so the load "
                      "average is part of the figure"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps(result, indent=2))
    return 0 if rows["synthetic_vs_baseline"]["verdicts_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
