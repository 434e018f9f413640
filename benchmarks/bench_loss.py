"""The training loss's forward and backward (cross-entropy + z-loss over a step's logits) against the named baseline,
torch's F.cross_entropy plus a separate torch.logsumexp for the z-loss, on logits the size of the quickstart's steps
(2048 tokens × 4096 ids) and of a larger vocabulary (2048 × 8192), in fp32 and bf16. The two alternate call by call;
each row is the median of the timed calls. The goal is against the memory traffic's floor: each pass over the logits
reads or writes them once, and this machine's copy bandwidth (a clone of the logits, timed in the same run) says
how long one pass takes.

    .venv/bin/python benchmarks/bench_loss.py      # writes benchmarks/results/loss.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from opencodegen import host
from opencodegen.eval.report import write_json
from opencodegen.heap import keep_freed_memory
from opencodegen.train.loss import cross_entropy_and_z

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "loss.json"
SHAPES = ((2048, 4096), (2048, 8192))
Z = 1e-4


def ours(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    ce, z = cross_entropy_and_z(logits, targets)
    return ce + Z * z


def baseline(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    flat = logits.float()
    return F.cross_entropy(flat, targets) + Z * torch.logsumexp(flat, dim=-1).pow(2).mean()


def timed(loss, logits: torch.Tensor, targets: torch.Tensor) -> float:
    x = logits.detach().requires_grad_()
    start = time.perf_counter()
    loss(x, targets).backward()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    keep_freed_memory()  # as every ocg command runs
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for tokens, vocab in SHAPES:
            logits = torch.randn(tokens, vocab).mul_(3).to(dtype)
            targets = torch.randint(0, vocab, (tokens,))
            times = {"ours": [], "baseline": []}
            clones = []
            for i in range(args.calls + 2):
                for name, fn in (("ours", ours), ("baseline", baseline))[:: 1 if i % 2 else -1]:
                    t = timed(fn, logits, targets)
                    if i >= 2:  # the first calls warm up
                        times[name].append(t)
                start = time.perf_counter()
                logits.clone()
                clones.append(time.perf_counter() - start)
            row = {"dtype": str(dtype).removeprefix("torch."), "tokens": tokens, "vocab": vocab,
                   "ours_ms": 1e3 * statistics.median(times["ours"]),
                   "baseline_ms": 1e3 * statistics.median(times["baseline"]),
                   "one_pass_ms": 1e3 * statistics.median(clones) / 2}  # a clone reads once and writes once
            row["speedup"] = row["baseline_ms"] / row["ours_ms"]
            row["ours_in_passes"] = row["ours_ms"] / row["one_pass_ms"]
            rows.append(row)
            print(f"{row['dtype']} {tokens}x{vocab}: ours {row['ours_ms']:.1f} ms, baseline {row['baseline_ms']:.1f} "
                  f"ms ({row['speedup']:.2f}x); ours = {row['ours_in_passes']:.1f} passes over the logits "
                  f"({row['one_pass_ms']:.1f} ms each)", flush=True)
    write_json(args.out, {"benchmark": "loss", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                          "host": {**host.describe(), "threads": torch.get_num_threads()},
                          "load_average": os.getloadavg()[0], "calls": args.calls, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
