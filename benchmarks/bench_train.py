"""Training throughput and MFU, with transformers as the named baseline, all measured in one run.

Part 1, one process, the training step alone: opencodegen's GPT against transformers' CodeGenForCausalLM built from
the same config with the same weights (exported in memory with opencodegen.model.hf), on the same batches, with the
same optimizer (the trainer's make_optimizer: fused torch AdamW, no decay on 1-D parameters) and the same loss
(cross-entropy on fp32 logits). A step is ACCUM micro-batches of MICRO x SEQ tokens (forward, backward) and one
optimizer step, i.e. exactly the trainer's step on the recipe of part 2. The two implementations alternate step by
step (ABBA order) so both see the same machine state; each row is the median of N steps after a warm-up.

Part 2 (fp32), the real trainer on synthetic shards (`python -m opencodegen.train`, one process, and 2-process DDP over
gloo through `python -m torch.distributed.run`), on the same recipe. Trainer vs part 1's bare step shows the
trainer's own overhead (data, clipping, logging); 2 processes vs 1 shows DDP on this machine's cores.

MFU = FLOPs per token (6·N + 12·L·H·Q·T, PaLM appendix B; ModelConfig.flops_per_token) x tokens/s / peak, where the
peak is a 2048^3 matmul (best of N) measured in this run in the row's dtype. The issue's goal is ours >= 1.5x
transformers; every (preset, dtype) also gets the ceiling any implementation could reach, from the matmul peak and
from the step's own GEMMs timed alone (`gemm_floor`), so a missed goal says whether it was reachable at all.

    .venv/bin/python benchmarks/bench_train.py            # full run, writes benchmarks/results/train.json
    .venv/bin/python benchmarks/bench_train.py --quick    # tiny-1m, few steps; prints only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import transformers
import yaml

from opencodegen.eval.report import write_json
from opencodegen.model.config import ModelConfig
from opencodegen.model.hf import config_to_hf, hf_architecture, to_hf_state_dict
from opencodegen.model.transformer import GPT
from opencodegen.train.optim import make_optimizer
from opencodegen.train.precision import cpu_has_native_bf16
from opencodegen.train.recipe import OptimConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from train_fixtures import write_random_splits  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "train.json"
PRESETS = ("tiny-1m", "tiny-10m", "tiny-30m")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MICRO, SEQ, ACCUM = 2, 256, 2  # rows per forward, context, micro-batches per optimizer step
GOAL = 1.5


# ---- the denominators ------------------------------------------------------------------------------------------
LAYOUTS = {"a·b": lambda a, b: a @ b, "a·bᵀ": lambda a, b: a @ b.t(), "aᵀ·b": lambda a, b: a.t() @ b}


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 3, budget_s: float = 10.0) -> tuple[float, dict]:
    """FLOP/s of an n^3 matmul, best of `repeats`, in the best of the three operand layouts: the MFU denominator
    (what this machine's BLAS can do at best). CPUs without bf16 instructions (this one: AVX2 only) run some bf16
    layouts through a slow fallback that would take minutes at 2048^3; a 512^3 probe predicting more than budget_s
    per product records that layout's probe rate instead, and it cannot be the peak."""
    rates = {}
    for name, product in LAYOUTS.items():
        small = torch.randn(512, 512, dtype=dtype)
        product(small, small)
        probe = _timed(lambda: product(small, small))
        if probe * (n / 512) ** 3 > budget_s:
            rates[f"{name} (512^3 probe, too slow for {n}^3)"] = 2 * 512**3 / probe
            continue
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        product(a, b)
        rates[name] = 2 * n**3 / min(_timed(lambda: product(a, b)) for _ in range(repeats))
    return max(v for k, v in rates.items() if "probe" not in k), rates


def gemm_floor(config: ModelConfig, dtype: torch.dtype, repeats: int = 2) -> float:
    """Seconds per optimizer step spent only in the step's matrix products, each run alone on random tensors of the
    model's shapes: every Linear's forward, input-gradient and weight-gradient product, and the attention's two
    forward and four backward batched products, for ACCUM micro-batches. No implementation of this step through
    torch's BLAS can be faster, so tokens_per_step / floor bounds every row's tokens/s."""
    c, m = config, MICRO * SEQ
    with torch.device("meta"):
        shapes = [mod.weight.shape for mod in GPT(config).modules() if isinstance(mod, torch.nn.Linear)]
    mats = []
    for out_f, in_f in shapes:
        x, w, g = (torch.randn(*s, dtype=dtype) for s in ((m, in_f), (out_f, in_f), (m, out_f)))
        mats += [(x, w.t()), (g, w), (g.t(), x)]  # y = x·Wᵀ, dx = g·W, dW = gᵀ·x
    q = torch.randn(MICRO, c.n_head, SEQ, c.head_dim, dtype=dtype)
    p = torch.randn(MICRO, c.n_head, SEQ, SEQ, dtype=dtype)
    # forward: S = q·kᵀ, O = P·v; backward: dP = dO·vᵀ, dv = Pᵀ·dO, dq = dS·k, dk = dSᵀ·q
    mats += [(q, q.transpose(-1, -2)), (p, q)] * c.n_layer + [(q, q.transpose(-1, -2)), (p.transpose(-1, -2), q),
                                                               (p, q), (p.transpose(-1, -2), q)] * c.n_layer

    def products():
        for a, b in mats:
            torch.matmul(a, b)

    return ACCUM * min(_timed(products) for _ in range(repeats))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---- part 1: the bare training step, ours vs transformers --------------------------------------------------------
def paired_models(config: ModelConfig) -> tuple[GPT, torch.nn.Module]:
    """Our GPT with random weights and transformers' CodeGenForCausalLM holding the same tensors (via the exporter's
    config and state-dict mapping, so the comparison is the same model, not merely the same shapes)."""
    torch.manual_seed(0)
    ours = GPT(config).train()
    arch = hf_architecture(config)
    hf_config_class = getattr(transformers, arch.replace("ForCausalLM", "Config"))
    hf_config = hf_config_class(**config_to_hf(config, arch, torch.float32))
    theirs = getattr(transformers, arch)(hf_config).train()
    missing, unexpected = theirs.load_state_dict(to_hf_state_dict(ours.state_dict(), config, arch), strict=False)
    learned = {n for n, _ in theirs.named_parameters()}
    if unexpected or learned & set(missing):
        raise SystemExit(f"weight mapping mismatch: missing {sorted(learned & set(missing))}, unexpected {unexpected}")
    return ours, theirs


def step_fn(model: torch.nn.Module, batches: list[torch.Tensor], dtype: torch.dtype, hf: bool) -> Callable[[], float]:
    """One optimizer step over the micro-batches; returns the last micro-batch's loss."""
    optim = make_optimizer(model, OptimConfig())

    def step() -> float:
        for toks in batches:
            x, y = toks[:, :-1], toks[:, 1:]
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                # transformers would build a KV cache in training unless told not to; that is not training work.
                logits = model(x, use_cache=False).logits if hf else model(x)
                loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
            (loss / len(batches)).backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def interleaved(fns: dict[str, Callable[[], float]], warmup: int, steps: int) -> tuple[dict, dict]:
    """Runs the step functions alternately (ABBA...) for warmup + steps rounds: (step times, first losses)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    first: dict[str, float] = {}
    names = list(fns)
    for i in range(warmup + steps):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            loss = fns[name]()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
            first.setdefault(name, loss)
    return times, first


def bare_step_rows(preset: str, dtype_name: str, warmup: int, steps: int) -> tuple[list[dict], dict]:
    config = ModelConfig.from_preset(preset)
    dtype = DTYPES[dtype_name]
    ours, theirs = paired_models(config)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, config.vocab_size, (MICRO, SEQ + 1), generator=g) for _ in range(ACCUM)]
    times, first = interleaved({"opencodegen": step_fn(ours, batches, dtype, hf=False),
                                "transformers": step_fn(theirs, batches, dtype, hf=True)}, warmup, steps)
    rows = [{"part": "bare step", "implementation": name, "processes": 1,
             "step_seconds": statistics.median(t), "step_seconds_all": t,
             "tokens_per_s": MICRO * SEQ * ACCUM / statistics.median(t), "first_step_loss": first[name]}
            for name, t in times.items()]
    check = {"first_step_loss_abs_diff": abs(first["opencodegen"] - first["transformers"]),
             "hf_attention": theirs.config._attn_implementation}
    return rows, check


# ---- part 2: the real trainer, 1 process and 2-process DDP -------------------------------------------------------
def trainer_row(preset: str, dtype_name: str, nproc: int, steps: int, work: Path, threads: int) -> dict:
    name = f"{preset}-{dtype_name}-{nproc}proc"
    recipe = {"model": {"preset": preset},
              "batch": {"batch_tokens": MICRO * SEQ * ACCUM, "micro_batch": MICRO, "context_length": SEQ},
              "run": {"autocast": dtype_name, "eval_every": 10**6, "save_every": 10**6, "eval_tokens": SEQ + 1},
              "stages": [{"name": "s", "data": {str(work / "tok"): 1.0}, "steps": steps}]}
    (work / f"{name}.yaml").write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    p = subprocess.run([*launcher, "-m", "opencodegen.train", "--config", str(work / f"{name}.yaml"),
                        "--run-dir", str(work / name)], env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"trainer run {name} failed:\n{p.stderr[-3000:]}")
    recs = [json.loads(line) for line in (work / name / "metrics.jsonl").read_text().splitlines()]
    dts = [MICRO * SEQ * ACCUM / r["tokens_per_s"] for r in recs[1:]]  # the first step pays for warm-up
    return {"part": "trainer", "implementation": "opencodegen trainer" + (" DDP (gloo)" if nproc > 1 else ""),
            "processes": nproc, "threads_per_process": int(env["OMP_NUM_THREADS"]),
            "step_seconds": statistics.median(dts), "step_seconds_all": dts,
            "tokens_per_s": MICRO * SEQ * ACCUM / statistics.median(dts)}


# ---- report -----------------------------------------------------------------------------------------------------
def add_rates(row: dict, config: ModelConfig, peak: float) -> dict:
    fpt = config.flops_per_token(SEQ)
    row["achieved_gflops"] = row["tokens_per_s"] * fpt / 1e9
    row["mfu"] = row["tokens_per_s"] * fpt / peak
    return row


def goal_check(ours: dict, theirs: dict, floor_s: float) -> dict:
    """Ours/transformers against the goal, and the best any implementation could do on this machine: at the matmul
    peak (MFU 100%) or at the step's own GEMMs timed alone."""
    ceiling_peak = 1 / theirs["mfu"]
    ceiling_gemm = theirs["step_seconds"] / floor_s
    speedup = ours["tokens_per_s"] / theirs["tokens_per_s"]
    return {"speedup": speedup, "goal": GOAL, "met": speedup >= GOAL,
            "transformers_mfu": theirs["mfu"], "ceiling_at_matmul_peak": ceiling_peak,
            "gemm_floor_step_seconds": floor_s, "gemm_floor_tokens_per_s": MICRO * SEQ * ACCUM / floor_s,
            "ceiling_at_gemm_floor": ceiling_gemm, "ruled_out": min(ceiling_peak, ceiling_gemm) < GOAL}


def verdict(goals: list[dict]) -> str:
    def ceiling(g: dict) -> float:
        return min(g["ceiling_at_matmul_peak"], g["ceiling_at_gemm_floor"])

    met = [g for g in goals if g["met"]]
    parts = [f"goal ours >= {GOAL}x transformers met in {len(met)}/{len(goals)} (preset, dtype) pairs "
             f"(speedups {min(g['speedup'] for g in goals):.2f}x to {max(g['speedup'] for g in goals):.2f}x)"]
    ruled_out = [g for g in goals if g["ruled_out"]]
    if ruled_out:
        parts.append(f"in {len(ruled_out)} pairs no implementation could reach it: "
                     + "; ".join(f"{g['preset']} {g['dtype']}: transformers at MFU {g['transformers_mfu']:.0%}, "
                                 f"ceiling {ceiling(g):.2f}x" for g in ruled_out))
    open_ = [g for g in goals if not g["ruled_out"] and not g["met"]]
    if open_:
        parts.append("not ruled out by the ceilings (upper bounds: they leave out the loss, norms, activations and "
                     "optimizer that every implementation also runs) but missed: "
                     + "; ".join(f"{g['preset']} {g['dtype']} {g['speedup']:.2f}x, ceiling {ceiling(g):.2f}x"
                                 for g in open_))
    return ". ".join(parts)


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"training throughput, {MICRO}x{SEQ} tokens x {ACCUM} micro-batches per step")
    for col in ("preset", "dtype", "implementation", "procs", "tok/s", "GFLOP/s", "MFU", "vs transformers"):
        t.add_column(col, justify="right")
    for r in rows:
        vs = r.get("speedup_vs_transformers")
        t.add_row(r["preset"], r["dtype"], r["implementation"], str(r["processes"]), f"{r['tokens_per_s']:,.0f}",
                  f"{r['achieved_gflops']:.1f}", f"{r['mfu']:.1%}", "-" if vs is None else f"{vs:.2f}x")
    Console().print(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny-1m only, few steps; writes JSON only with --out")
    ap.add_argument("--steps", type=int, default=4, help="timed bare steps per implementation (after warm-up)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--trainer-steps", type=int, default=3, help="trainer steps per run; the first is not timed")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="threads per process (default 1: on a shared machine a 2-thread process stalls at every "
                         "OpenMP barrier whenever another job holds a core; DDP rows then use one core per process)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    presets, steps, warmup, trainer_steps = PRESETS, args.steps, args.warmup, args.trainer_steps
    out = args.out or (None if args.quick else OUT)
    if args.quick:
        presets, steps, warmup, trainer_steps = ("tiny-1m",), 2, 1, 2
    load_start = os.getloadavg()[0]
    measured = {name: matmul_peak(dtype, repeats=2 if args.quick else 3) for name, dtype in DTYPES.items()}
    peaks = {name: peak for name, (peak, _) in measured.items()}
    print(f"matmul peak (2048^3): fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s; "
          f"load average {load_start:.1f} on {os.cpu_count()} cores", flush=True)
    rows, goals = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_random_splits(work / "tok", 8192)  # only speed is measured
        for preset in presets:
            config = ModelConfig.from_preset(preset)
            for dtype_name in DTYPES:
                bare, check = bare_step_rows(preset, dtype_name, warmup, steps)
                # Trainer rows in fp32 only: on CPUs without bf16 instructions (this one) bf16 runs below fp32 (the
                # bare rows show it), and each bf16 trainer process first spends tens of seconds timing a bf16
                # 1024^3 matmul for its own MFU display.
                trainer = [trainer_row(preset, dtype_name, n, trainer_steps, work, args.threads) for n in (1, 2)] \
                    if dtype_name == "fp32" else []
                group = [add_rates({"preset": preset, "dtype": dtype_name, "params": config.n_params(),
                                    "flops_per_token": config.flops_per_token(SEQ), **r},
                                   config, peaks[dtype_name] * r["processes"])
                         for r in bare + trainer]
                ours, theirs = group[:2]
                for r in group:
                    r["speedup_vs_transformers"] = r["tokens_per_s"] / theirs["tokens_per_s"]
                if trainer:
                    one, two = group[2:]
                    one["vs_bare_step"] = one["tokens_per_s"] / ours["tokens_per_s"]  # the trainer's own overhead
                    two["vs_one_process"] = two["tokens_per_s"] / one["tokens_per_s"]
                goals.append({"preset": preset, "dtype": dtype_name, **check,
                              **goal_check(ours, theirs, gemm_floor(config, DTYPES[dtype_name]))})
                rows += group
                for r in group:
                    print(f"{preset:9s} {dtype_name} {r['implementation']:30s} {r['tokens_per_s']:9,.0f} tok/s "
                          f"MFU {r['mfu']:6.1%}  {r['speedup_vs_transformers']:.2f}x", flush=True)
    print_table(rows)
    ours_rate = {(r["preset"], r["dtype"]): r["tokens_per_s"] for r in rows if r["implementation"] == "opencodegen"}
    summary = verdict(goals)
    print(summary)
    if out is None:
        print("quick run: nothing written (pass --out PATH to keep the JSON)")
        return
    write_json(out, {
        "benchmark": "training tokens/s: forward + backward + optimizer step; opencodegen vs transformers "
                     "CodeGenForCausalLM (same config, weights, batches, optimizer), and the opencodegen trainer "
                     "with 1 process and 2-process DDP (gloo)",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
                    "note": "shared with other agents' jobs; a load average above the core count means the "
                            "numbers are pessimistic and noisier (ours and transformers alternate step by step, so "
                            "their ratio is the robust figure)"},
        "torch": torch.__version__, "baseline": f"transformers {transformers.__version__} CodeGenForCausalLM",
        "step": {"micro_batch": MICRO, "context_length": SEQ, "micro_batches_per_step": ACCUM,
                 "tokens_per_step": MICRO * SEQ * ACCUM, "timed_steps": steps, "warmup_steps": warmup,
                 "trainer_steps": trainer_steps, "statistic": "median step time",
                 "optimizer": "opencodegen.train.loop.make_optimizer: torch AdamW, fused, no decay on 1-D params",
                 "data": "uniform random token ids (only speed is measured)",
                 "trainer_rows": "fp32 only (bf16 runs below fp32 on CPUs without bf16 instructions, and each bf16 "
                                 "trainer process first times a bf16 matmul for its MFU display); the trainer's own "
                                 "MFU figure is not used, every MFU here is against this run's peak"},
        "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
        "cpu_bf16_instructions": cpu_has_native_bf16(),
        "ours_bf16_over_fp32": {p: ours_rate[p, "bf16"] / ours_rate[p, "fp32"] for p in presets},
        "matmul_gflops_by_layout": {k: {name: r / 1e9 for name, r in rates.items()}
                                    for k, (_, rates) in measured.items()},
        "mfu_formula": "flops/token = 6·N (parameters without the input embedding) + 12·L·H·Q·T (PaLM app. B); "
                       "MFU = flops/token · tokens/s / peak of a 2048^3 matmul in the row's dtype, measured in "
                       "this run with --threads threads (DDP rows: against the peak times the process count)",
        "goal": {"target": f"opencodegen >= {GOAL}x transformers (issue 2)", "verdict": summary,
                 "ceilings": "upper bounds on any implementation's speedup over transformers; "
                             "ceiling_at_matmul_peak = 1 / transformers MFU (ours at 100% of the 2048^3 matmul peak); "
                             "ceiling_at_gemm_floor = transformers step time / the step's GEMMs timed alone "
                             "at the model's shapes (small GEMMs run below the big-matmul peak)",
                 "per_preset": goals},
        "results": rows,
    })
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
