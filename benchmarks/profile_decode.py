"""Where one batch-1 decode step's time goes: torch.profiler over greedy decoding of tiny-30m (random weights, the
bench_decode.py setting: 64-token prompt, 128 new tokens, prefill excluded), eager and with the compiled decode step
(Engine(compile=True)), fp32 and bf16. Per mode: wall time per token, operator calls per token, the operators with
the most self time, and the share of the step that is not inside any operator (Python: the engine's bookkeeping,
module calls, dispatch).

Compiled, the whole step (positions, cache writes, layers, vocabulary projection) is one event (the compiled region:
its matmuls, SDPA and fused C++ loops are called from inductor's C++ wrapper, out of the profiler's sight); the
operators counted are the ones outside it: the span's read and the sampling.

Operator counts and shares are meaningful on a loaded machine; absolute times are not (bench_decode.py measures
those, A/B in one run).

    python benchmarks/profile_decode.py [--new-tokens 128] [--top 12] [--modes eager,compiled]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from opencodegen.engine import Engine, Request
from opencodegen.healing import HealedPrompt
from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT
from opencodegen.sampling import SamplingParams
from opencodegen.eval.report import write_json
from opencodegen.train.precision import cpu_has_native_bf16

OUT = Path(__file__).parent / "results" / "decode_profile.json"

class TokenIdsOnly:
    eos_id = None

    def decode(self, ids) -> str:
        return ""


def decode_steps(model: GPT, prompt: list[int], new_tokens: int, compile: bool) -> tuple[Engine, Request]:
    """An engine with the prompt prefilled and one decode step done (the compiled step's warm-up), ready to step."""
    engine = Engine(model, TokenIdsOnly(), slots=1, max_len=len(prompt) + new_tokens, compile=compile)
    request = Request([HealedPrompt(prompt)], SamplingParams(max_new_tokens=new_tokens, temperature=0.0,
                                                             ignore_eos=True, seed=0))
    engine.add(request)
    engine.step()  # prefill and the first decode step
    return engine, request


def profile_mode(model: GPT, prompt: list[int], args, compile: bool) -> dict:
    engine, request = decode_steps(model, prompt, args.new_tokens, compile)
    steps = args.new_tokens // 2  # the middle of the completion: no prefill, no finishing row
    for _ in range(4):
        engine.step()  # warm-up (a compiled step has compiled by now)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            engine.step()
        wall = time.perf_counter() - start
    while engine.busy:
        engine.step()
    events = [e for e in prof.key_averages() if e.key != "ProfilerStep*"]
    # Top-level events only (those not inside another) sum to the time spent in torch; the rest of the wall time is
    # Python around them. A call of compiled code is one event ("Torch-Compiled Region"), its inside not itemized.
    top_level = defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.cpu_parent is None:
            top_level[e.name][0] += 1
            top_level[e.name][1] += e.cpu_time_total
    in_ops_us = sum(t for _, t in top_level.values())
    profiled_us = wall * 1e6  # (profiling adds overhead to every op: shares, not absolute times)
    by_self = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]
    return {
        "mode": "compiled" if compile else "eager",
        "compiled_active": engine.compiled,
        "profiled_ms_per_token": profiled_us / steps / 1e3,
        "top_level_calls_per_token": sum(n for n, _ in top_level.values()) / steps,
        "share_in_ops": in_ops_us / profiled_us,
        "share_python_between_ops": 1 - in_ops_us / profiled_us,
        "top_level_ops": {name: {"calls_per_token": n / steps, "share": t / profiled_us}
                          for name, (n, t) in sorted(top_level.items(), key=lambda kv: -kv[1][1])[: args.top]},
        "top_self_time": {e.key: {"calls_per_token": e.count / steps, "share": e.self_cpu_time_total / profiled_us}
                          for e in by_self},
        "tokens_identical_to_eager": None,
        "token_ids": request.completions[0][0].token_ids,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--top", type=int, default=12, help="operators listed per mode")
    ap.add_argument("--modes", default="eager,compiled")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: on a shared machine OpenMP's spinning swamps the profile)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_preset("tiny-30m")).eval()
    prompt = torch.randint(0, model.config.vocab_size, (args.prompt_tokens,),
                           generator=torch.Generator().manual_seed(1)).tolist()
    dtypes = [("fp32", torch.float32)] + ([("bf16", torch.bfloat16)] if cpu_has_native_bf16() else [])
    rows = []
    for dtype_name, dtype in dtypes:
        model = model.to(dtype)
        runs = [profile_mode(model, prompt, args, compile=m == "compiled") for m in args.modes.split(",")]
        for run in runs:
            run["tokens_identical_to_eager"] = run["token_ids"] == runs[0]["token_ids"]
        for run in runs:
            del run["token_ids"]
            run["dtype"] = dtype_name
            print(json.dumps(run, indent=1))
        rows += runs
    write_json(args.out, {
        "what": "torch.profiler over batch-1 greedy decode steps (no prefill) of tiny-30m, random weights",
        "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "cpu_native_bf16": cpu_has_native_bf16(), "load_average_1min": round(__import__("os").getloadavg()[0], 2),
        "note": "profiling adds overhead to every operator call, so shares overstate op-heavy modes; tok/s comes "
                "from bench_decode.py", "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
