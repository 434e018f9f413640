"""What dynamo's guard check costs the compiled decode step, and what torch's guard filters would save: batch-1
greedy decode steps of tiny-30m (random weights), GPT.decode_step eager, compiled as model/compiled.py compiles it,
and compiled with each `torch.compiler` guard filter named on the command line (e.g.
skip_guard_on_all_nn_modules_unsafe, keep_tensor_guards_unsafe), taking turns, best of --repeats.

Times are the calling thread's CPU time per step (time.thread_time, one torch thread), not wall time: on a machine
shared with other jobs a process at nice 19 waits most of the wall clock, while its CPU time only grows through cache
and SMT contention. Compare variants within one run.

Each filtered variant compiles a copy of decode_step's code object, so that its compiled entries (and their guards)
are its own and not those of the default variant. The filters are unsafe in general (the compiled code no longer
checks what they skip); the project does not use them yet: this measures what they would be worth.

    python benchmarks/bench_decode_guards.py skip_guard_on_all_nn_modules_unsafe keep_tensor_guards_unsafe
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import types
from pathlib import Path

import torch
import torch.compiler

from opencodegen.eval.report import write_json
from opencodegen.model.compiled import INDUCTOR_OPTIONS
from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT, KVCache

OUT = Path(__file__).parent / "results" / "decode_guards.json"
OPTIONS = INDUCTOR_OPTIONS  # model/compiled.py's options (guard filters need them as options, not its backend)


def variants(filters: list[str]) -> dict:
    out = {"compiled": torch.compile(GPT.decode_step, dynamic=True, fullgraph=True, options=OPTIONS)}
    for name in filters:
        code = GPT.decode_step.__code__.replace()  # a code object of its own: its own compiled entries
        fn = types.FunctionType(code, GPT.decode_step.__globals__, name)
        out[name] = torch.compile(fn, dynamic=True, fullgraph=True,
                                  options={**OPTIONS, "guard_filter_fn": getattr(torch.compiler, name)})
    out["eager"] = GPT.decode_step
    return out


@torch.inference_mode()
def cpu_ms_per_step(model: GPT, fn, prompt: torch.Tensor, steps: int) -> float:
    cache = KVCache(model.config, 1, prompt.shape[1] + steps + 1, dtype=next(model.parameters()).dtype)
    model(prompt, cache=cache)
    token = torch.tensor([[1]])
    start = time.thread_time()
    for _ in range(steps):
        span = int(cache.lengths[:1].max()) + 1  # as GPT.decode reads it
        token = fn(model, token, cache, span).argmax(-1)[:, None]
    return (time.thread_time() - start) / steps * 1e3


def best_of_turns(model: GPT, fns: dict, prompt: torch.Tensor, steps: int, repeats: int) -> dict[str, float]:
    """The best CPU ms per step of each variant over `repeats` rounds in which the variants take turns (so that a
    slow spell of the machine falls on all of them, not on one)."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], cpu_ms_per_step(model, fn, prompt, steps))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("filters", nargs="*", help="torch.compiler guard filters to compare")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = GPT(ModelConfig.from_preset("tiny-30m")).eval().to(dtype)
    prompt = torch.randint(0, model.config.vocab_size, (1, 64), generator=torch.Generator().manual_seed(1))
    load_before = round(os.getloadavg()[0], 2)
    fns = variants(args.filters)
    first_call_s = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        cpu_ms_per_step(model, fn, prompt, 4)  # compiles
        first_call_s[name] = round(time.perf_counter() - start, 1)
    best = best_of_turns(model, fns, prompt, args.steps, args.repeats)
    result = {
        "benchmark": "CPU ms per batch-1 decode step (thread time), tiny-30m random weights, 64-token prompt",
        "dtype": args.dtype, "steps": args.steps, "repeats_best_of": args.repeats, "threads": 1,
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "load_average_1min_before_after": [load_before, round(os.getloadavg()[0], 2)],
        "cpu_ms_per_step": best, "first_call_s": first_call_s,
        "saving_vs_compiled": {name: 1 - best[name] / best["compiled"] for name in best if name != "compiled"},
    }
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
