"""Training step time with glibc's default malloc (the baseline) against opencodegen.heap.keep_freed_memory(), which
`ocg` sets for every command: the quickstart's own recipe (configs/quickstart.yaml: Muon, 2048-token steps of
256-token windows, a 4096-id vocabulary) at the shapes its plan chooses on the hosts seen (3x192 on AVX2, 4x256 on
AMX), on synthetic shards. Each run is a fresh trainer process (the setting is per process); the two settings
alternate (ABBA) so both see the same machine, and each row is the median over its runs of their median step.

    .venv/bin/python benchmarks/bench_heap.py                 # writes benchmarks/results/heap.json
    .venv/bin/python benchmarks/bench_heap.py --steps 12 --rounds 1 --out /tmp/heap.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from opencodegen import host
from opencodegen.eval.report import write_json
from opencodegen.quickstart.shape_plan import with_shape
from opencodegen.train.recipe import recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from train_fixtures import write_random_splits  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "heap.json"
SHAPES = ((3, 192), (4, 256))
SETTINGS = ("glibc default", "keep_freed_memory")

# One trainer process: the library's train() (which leaves malloc alone), after keep_freed_memory() or not.
TRAINER = r"""
import json, resource, statistics, sys, tempfile
from opencodegen.heap import keep_freed_memory
if sys.argv[2] == "keep_freed_memory":
    assert keep_freed_memory()
from opencodegen.train import train
from opencodegen.train.recipe import load_recipe
recipe = load_recipe(sys.argv[1])
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with tempfile.TemporaryDirectory() as run:
    train(recipe, run, progress=False, table=False)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    seconds = [json.loads(line)["seconds"] for line in open(run + "/metrics.jsonl") if '"seconds"' in line]
print(json.dumps({"step_seconds": statistics.median(seconds[3:]),  # the first steps warm up
                  "page_faults_per_step": faults / recipe.stages[0].steps,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def recipe_for(shape: tuple[int, int], steps: int, tokens: Path) -> dict:
    recipe = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    recipe.pop("tokenizer"), recipe.pop("data_root")
    recipe["run"].update(autocast="fp32", eval_every=10**6, save_every=10**6, eval_tokens=256)
    recipe["stages"] = [{"name": "mono", "data": {str(tokens): 1.0}, "steps": steps}]
    recipe["model"] = with_shape(recipe_from_dict(recipe), *shape).model  # as the quickstart's plan sets a shape
    return recipe


def run_once(recipe_path: Path, setting: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    p = subprocess.run([sys.executable, "-c", TRAINER, str(recipe_path), setting], env=env, capture_output=True,
                       text=True)
    if p.returncode:
        raise SystemExit(f"trainer ({setting}) failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=25, help="optimizer steps per trainer run (the first 3 untimed)")
    ap.add_argument("--rounds", type=int, default=2, help="ABBA rounds per shape (each runs every setting twice)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    load_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_random_splits(work / "tok", 4096)  # only speed is measured
        for shape in SHAPES:
            path = work / f"{shape[0]}x{shape[1]}.yaml"
            path.write_text(yaml.safe_dump(recipe_for(shape, args.steps, work / "tok")))
            runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
            for _ in range(args.rounds):
                for setting in (*SETTINGS, *reversed(SETTINGS)):
                    runs[setting].append(run_once(path, setting, args.threads))
            row = {"shape": f"{shape[0]}x{shape[1]}"}
            for setting, rs in runs.items():
                row[setting] = {"step_seconds": statistics.median(r["step_seconds"] for r in rs),
                                "step_seconds_runs": [r["step_seconds"] for r in rs],
                                "page_faults_per_step": statistics.median(r["page_faults_per_step"] for r in rs),
                                "peak_rss_mib": max(r["peak_rss_mib"] for r in rs)}
            row["speedup"] = row[SETTINGS[0]]["step_seconds"] / row[SETTINGS[1]]["step_seconds"]
            rows.append(row)
            print(f"{row['shape']}: {SETTINGS[0]} {row[SETTINGS[0]]['step_seconds']:.3f} s a step, "
                  f"{SETTINGS[1]} {row[SETTINGS[1]]['step_seconds']:.3f} s ({row['speedup']:.2f}x); page faults a step "
                  f"{row[SETTINGS[0]]['page_faults_per_step']:,.0f} / {row[SETTINGS[1]]['page_faults_per_step']:,.0f}; "
                  "peak RSS "
                  f"{row[SETTINGS[0]]['peak_rss_mib']:.0f} / {row[SETTINGS[1]]['peak_rss_mib']:.0f} MiB", flush=True)
    write_json(args.out, {"benchmark": "heap", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                          "host": {**host.describe(), "threads": args.threads},
                          "load_average": [load_start, os.getloadavg()[0]],
                          "steps": args.steps, "rounds": args.rounds, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
