"""How local corpus stages are run: ours (`run_stages`: each stage's datatrove LocalPipelineExecutor in a child
process forked from a forkserver that has imported the steps' modules, and forking its task workers) against the
named baseline, datatrove's LocalPipelineExecutor run in this process as its documentation does (task workers from
datatrove's default forkserver, which import the steps' modules in every task). Same sources, same stages, fresh
output directories, each run in a fresh Python process (as `ocg corpus build` is: the forkserver of one process is
shared, so a run after the other would inherit its state), runs alternated; the two corpora must have the same
statistics.

    python benchmarks/bench_corpus_executor.py [--source DIR] [--workers 2] [--rounds 2]
writes benchmarks/results/corpus_executor.json (with the host's CPU flags and load average)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor

import opencodegen
from opencodegen.data.pipeline import BuildOptions, build_corpus, corpus_stages
from opencodegen.data.report import corpus_stats
from opencodegen.data.sources import Source, plan_inputs
from opencodegen import host

RESULTS = Path(__file__).parent / "results" / "corpus_executor.json"


def ours(sources: list[Source], out: Path, opts: BuildOptions) -> dict[str, float]:
    stats = build_corpus(sources, out, opts, print_summary=False)
    return {name: s["wall_seconds"] for name, s in stats["stages"].items()}


def baseline(sources: list[Source], out: Path, opts: BuildOptions) -> dict[str, float]:
    manifest = out / "work" / "manifest.jsonl"
    manifest.parent.mkdir(parents=True)
    plan_inputs(sources, manifest, opts.seed)
    walls = {}
    for st in corpus_stages(sources, out, opts, len(manifest.read_text().splitlines())):
        ex = LocalPipelineExecutor(pipeline=st.pipeline, tasks=st.tasks, workers=min(opts.workers, st.tasks),
                                   logging_dir=str(out / "logs" / st.name))
        start = time.perf_counter()
        ex.run()
        walls[st.name] = round(time.perf_counter() - start, 3)
    return walls


def run_fresh(name: str, source: str, out: Path, workers: int) -> dict[str, float]:
    """One run in a new interpreter; returns its stage walls."""
    done = subprocess.run([sys.executable, __file__, "--one", name, "--source", source, "--out", str(out),
                           "--workers", str(workers)], check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def comparable(stats: dict) -> dict:
    return {k: stats[k] for k in ("files_in", "files_kept", "bytes_kept", "drops", "documents", "repos")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(Path(opencodegen.__file__).parent), help="a directory of sources")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--one", choices=["ours", "baseline"], help=argparse.SUPPRESS)  # a child run
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sources = [Source("dir", args.source)]
    if args.one:
        run = ours if args.one == "ours" else baseline
        print(json.dumps(run(sources, Path(args.out), BuildOptions(workers=args.workers))))
        return
    load_start = os.getloadavg()[0]
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "baseline": []}
    stats = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in ("baseline", "ours") if r % 2 == 0 else ("ours", "baseline"):
                out = Path(tmp) / f"{name}-{r}"
                runs[name].append(run_fresh(name, args.source, out, args.workers))
                stats[name] = comparable(corpus_stats(out))
    if stats["ours"] != stats["baseline"]:
        raise SystemExit(f"the two corpora differ: {stats}")
    totals = {name: [round(sum(w.values()), 3) for w in walls] for name, walls in runs.items()}
    median = {name: round(statistics.median(t), 3) for name, t in totals.items()}
    result = {
        "host": host.one_line(),
        "load_average_1min": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        "source": args.source, "files_in": stats["ours"]["files_in"], "workers": args.workers,
        "baseline": "datatrove LocalPipelineExecutor.run() in this process, default start method (forkserver)",
        "total_seconds": totals, "median_total_seconds": median,
        "speedup": round(median["baseline"] / median["ours"], 2),
        "stage_seconds": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("host", "load_average_1min", "median_total_seconds", "speedup")}))


if __name__ == "__main__":
    main()
