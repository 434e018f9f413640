"""What keeping LayerNorm as ATen's kernel costs the compiled decode step, and what it buys: tiny-30m (random weights,
LayerNorm weights perturbed so they matter) compiled as model/compiled.py compiles it (inductor's decompositions less
LayerNorm's) against plain inductor with the same options (the baseline, which decomposes LayerNorm into a fused
loop), and eager.

Speed: the calling thread's CPU time per batch-1 decode step at one torch thread, the variants taking turns, best of
--repeats (bench_decode_guards.py's measure). Exactness: one bf16 decode step over --rows cache rows at random lengths,
--trials times; how many rows' logits differ from eager's in any bit.

    python benchmarks/bench_decode_layer_norm.py
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import types
from pathlib import Path

import torch

from bench_decode_guards import best_of_turns, cpu_ms_per_step
from opencodegen.eval.report import write_json
from opencodegen.model.compiled import INDUCTOR_OPTIONS, inductor_keeping_layer_norm
from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT, KVCache

OUT = Path(__file__).parent / "results" / "decode_layer_norm.json"


def own_code(name: str):
    """decode_step under a code object of its own, so that each variant keeps its own compiled entries."""
    return types.FunctionType(GPT.decode_step.__code__.replace(), GPT.decode_step.__globals__, name)


def variants() -> dict:
    return {"layer_norm_kept (ours)": torch.compile(own_code("kept"), dynamic=True, fullgraph=True,
                                                    backend=inductor_keeping_layer_norm),
            "inductor_default (baseline)": torch.compile(own_code("default"), dynamic=True, fullgraph=True,
                                                         options=INDUCTOR_OPTIONS),
            "eager": GPT.decode_step}


@torch.inference_mode()
def rows_differing(model: GPT, fn, rows: int, trials: int) -> int:
    gen = torch.Generator().manual_seed(3)
    differing = 0
    for _ in range(trials):
        cache = KVCache(model.config, rows, 64, dtype=torch.bfloat16)
        for t in cache.k + cache.v:
            t.copy_(torch.randn(t.shape, generator=gen))
        cache.lengths.copy_(torch.randint(1, 60, (rows,), generator=gen))
        fed = torch.randint(0, model.config.vocab_size, (rows, 1), generator=gen)
        span = int(cache.lengths.max()) + 1
        eager = model.decode_step(fed, copy.deepcopy(cache), span)
        differing += int((fn(model, fed, copy.deepcopy(cache), span) != eager).any(-1).sum())
    return differing


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_preset("tiny-30m")).eval().to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    prompt = torch.randint(0, model.config.vocab_size, (1, 64), generator=torch.Generator().manual_seed(1))
    load_before = round(os.getloadavg()[0], 2)
    fns = variants()
    exact = {name: rows_differing(model, fn, args.rows, args.trials) for name, fn in fns.items() if name != "eager"}
    for fn in fns.values():
        cpu_ms_per_step(model, fn, prompt, 4)  # the one-row compile
    best = best_of_turns(model, fns, prompt, args.steps, args.repeats)
    result = {
        "benchmark": "bf16 decode step: LayerNorm kept as ATen's kernel against inductor's fused LayerNorm",
        "model": "tiny-30m (CodeGen block), random weights", "threads": 1, "steps": args.steps,
        "repeats_best_of": args.repeats, "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "load_average_1min_before_after": [load_before, round(os.getloadavg()[0], 2)],
        "cpu_ms_per_step_batch_1": best,
        "ours_vs_baseline": best["layer_norm_kept (ours)"] / best["inductor_default (baseline)"],
        f"rows_with_logits_unlike_eager_of_{args.rows * args.trials}": exact,
    }
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
