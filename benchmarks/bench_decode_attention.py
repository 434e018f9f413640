"""What one decode step's attention costs in each cache dtype: ATen's SDPA of a one-token query over a KV cache span,
bf16 operands (a bf16 cache: the baseline, what a bf16 model decodes with) against fp32 operands (an fp32 cache,
measured and not adopted: see the README's performance table), for the head shapes of tiny-30m and Qwen2.5-Coder-0.5B (GQA,
enable_gqa), the span growing one position per call as in decoding. The two take turns, best of --repeats.

Times are the calling thread's CPU time (time.thread_time) at one torch thread: on a machine shared with other jobs a
process at nice 19 waits most of the wall clock, while its CPU time only grows through cache contention.

    python benchmarks/bench_decode_attention.py [--spans 64:320] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from opencodegen.eval.report import write_json
from opencodegen.model.config import ModelConfig
from opencodegen.train.precision import cpu_has_native_bf16

OUT = Path(__file__).parent / "results" / "decode_attention.json"
PRESETS = ("tiny-30m", "qwen2.5-coder-0.5B")


def us_per_call(config: ModelConfig, dtype: torch.dtype, spans: range):
    """A run of one SDPA call per span (layer 0 of a decode step), returning microseconds per call."""
    g = torch.Generator().manual_seed(0)
    shape = (1, config.n_kv_heads, spans.stop, config.head_dim)
    k, v = (torch.randn(shape, generator=g).to(dtype) for _ in range(2))
    q = torch.randn(1, config.n_head, 1, config.head_dim, generator=g).to(dtype)
    gqa = config.n_kv_heads != config.n_head

    def run() -> float:
        start = time.thread_time()
        for span in spans:
            F.scaled_dot_product_attention(q, k[:, :, :span], v[:, :, :span], enable_gqa=gqa)
        return (time.thread_time() - start) / len(spans) * 1e6
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", default="64:320", help="first:last cache span (positions attended over)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    first, last = (int(s) for s in args.spans.split(":"))
    spans = range(first, last)
    rows = []
    with torch.inference_mode():
        for name in PRESETS:
            config = ModelConfig.from_preset(name)
            runs = {"bf16_cache": us_per_call(config, torch.bfloat16, spans),
                    "fp32_cache": us_per_call(config, torch.float32, spans)}
            for run in runs.values():
                run()  # warm-up
            best = {m: float("inf") for m in runs}
            for _ in range(args.repeats):
                for m, run in runs.items():  # taking turns
                    best[m] = min(best[m], run())
            row = {"preset": name, "heads": config.n_head, "kv_heads": config.n_kv_heads, "head_dim": config.head_dim,
                   **{f"{m}_us_per_call": round(t, 2) for m, t in best.items()},
                   "speedup": round(best["bf16_cache"] / best["fp32_cache"], 2)}
            rows.append(row)
            print(row)
    write_json(args.out, {
        "benchmark": "SDPA of a one-token query over a KV cache span (one layer of a decode step), CPU time per call",
        "baseline": "bf16_cache: bf16 q, k, v (ATen's flash kernel for CPU in bf16)",
        "spans": [first, last], "repeats_best_of": args.repeats, "threads": 1, "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "cpu_native_bf16": cpu_has_native_bf16(),
        "load_average_1min": round(os.getloadavg()[0], 2), "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
