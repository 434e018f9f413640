"""Training throughput and MFU for the tiny presets: one process (fp32 baseline vs bf16 autocast) and 2-process DDP
(gloo, bf16) on this machine's cores. Synthetic shards (uniform random ids), so only speed is measured.
Writes benchmarks/results/bench_train.json.

    .venv/bin/python benchmarks/bench_train.py [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from train_fixtures import write_shard  # noqa: E402


def run(recipe: dict, work: Path, name: str, nproc: int) -> dict:
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(max(1, 2 // nproc))}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    p = subprocess.run([*launcher, "-m", "opencodegen.train", "--config", str(path), "--run-dir", str(work / name)],
                       env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    recs = [json.loads(line) for line in (work / name / "metrics.jsonl").read_text().splitlines()]
    steady = [r for r in recs[1:] if "val_loss" not in r] or recs[-1:]  # the first step pays for warm-up
    summary = json.loads((work / name / "summary.json").read_text())
    return {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
            "mfu": statistics.median(r["mfu"] for r in steady), "peak_flops_per_s": summary["peak_flops"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    from opencodegen.model.config import ModelConfig

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rng = np.random.default_rng(0)
        for split in ("train", "valid"):
            write_shard(work / "tok" / split, [rng.integers(0, 8192, 4096) for _ in range(64)])
        for preset in ("tiny-1m", "tiny-10m", "tiny-30m"):
            cfg = ModelConfig.from_preset(preset)
            for name, autocast, nproc in (("fp32 1 proc (baseline)", "fp32", 1), ("bf16 1 proc", "bf16", 1),
                                          ("bf16 DDP 2 proc", "bf16", 2)):
                recipe = {"model": {"preset": preset},
                          "batch": {"batch_tokens": 8192, "micro_batch": 4,
                                    "context_length": 256},
                          "run": {"autocast": autocast, "eval_every": 10_000, "save_every": 10_000,
                                  "eval_tokens": 256},
                          "stages": [{"name": "s", "data": {str(work / "tok"): 1.0}, "steps": args.steps}]}
                r = run(recipe, work, f"{preset}-{autocast}-{nproc}", nproc)
                r.update(preset=preset, config=name, params=cfg.n_params(), processes=nproc,
                         flops_per_token=cfg.flops_per_token(256))
                results.append(r)
                print(f"{preset:9s} {name:24s} {r['tokens_per_s']:9,.0f} tok/s  MFU {r['mfu']:.1%}", flush=True)
    for r in results:
        base = next(b for b in results if b["preset"] == r["preset"] and b["config"].endswith("(baseline)"))
        r["speedup_vs_fp32"] = r["tokens_per_s"] / base["tokens_per_s"]
    out = ROOT / "benchmarks" / "results" / "bench_train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
                               "context_length": 256, "batch_tokens": 8192, "steps": args.steps,
                               "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
