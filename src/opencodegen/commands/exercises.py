"""`ocg exercises build`: HumanEval-shaped exercises, each kept only if it runs, decontaminated.

    ocg exercises build --synthetic 5000 --seed 0 --out runs/exercises/synthetic
    ocg exercises build --multi-turn 1000 --out runs/exercises/multi-turn
    ocg exercises build --mine-corpus runs/quickstart/corpus/mono --out runs/exercises/mined
    ocg exercises build --mine-dir ~/src/my-repos --out runs/exercises/mine
    ocg exercises build --self --model CKPT --from runs/exercises/synthetic --k 8 --out runs/exercises/self-r1
    ocg exercises tokens runs/exercises/synthetic --tokenizer runs/quickstart/tokenizer/tokenizer.json \
        --out runs/tokens/exercises      # pretraining documents a recipe's stage can mix in
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..device import device_arg
from ..errors import UserError

QUICKSTART_MONO = Path("runs/quickstart/corpus/mono")


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", required=True, type=Path, help="directory to write (exercises.jsonl, stats.json, "
                                                                  "rejects/)")
    s = p.add_argument_group("sources (any number, at least one)")
    s.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="N exercises from the seeded generator of small typed programs over the builtins")
    s.add_argument("--multi-turn", type=int, default=0, metavar="N",
                   help="N programs in the multi-turn synthesis format (MTPB's and `ocg synth`'s): each gives one "
                        "SFT row per turn and one single-turn row")
    s.add_argument("--seed", type=int, default=0, help="seed of the generators and the hypothesis draws")
    s.add_argument("--mine-dir", "--dir", action="append", default=[], type=Path, metavar="PATH",
                   help="mine documented functions from the .py files under PATH")
    s.add_argument("--mine-corpus", action="append", default=[], type=Path, nargs="?", const=QUICKSTART_MONO,
                   metavar="CORPUS", help="mine a corpus written by `ocg corpus build` (its held-out repositories "
                                          f"are never read; without a value: {QUICKSTART_MONO})")
    s.add_argument("--self", dest="self_gen", action="store_true",
                   help="self-generation round: --model samples --k solutions per exercise of --from; passing "
                        "ones are kept")
    m = p.add_argument_group("mining")
    m.add_argument("--max-body-lines", type=int, default=15, help="longest function body mined (lines)")
    m.add_argument("--hypothesis-examples", type=int, default=6,
                   help="inputs drawn by hypothesis per mined function (0: doctests and call sites only)")
    g = p.add_argument_group("self-generation")
    g.add_argument("--model", type=Path, help="checkpoint or HuggingFace model directory")
    g.add_argument("--from", dest="from_dir", type=Path, help="exercises to solve (a directory or a JSONL file)")
    g.add_argument("--k", type=int, default=8, help="samples per exercise")
    g.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    g.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling: keep the most likely tokens whose probabilities sum to this")
    g.add_argument("--max-new-tokens", type=int, default=128, help="most tokens per sampled solution")
    g.add_argument("--limit", type=int, default=None, help="only the first N exercises of --from")
    g.add_argument("--device", default="cpu", type=device_arg,
                   help="cpu, cuda, cuda:N or auto (a GPU when this torch sees one) (default: %(default)s)")
    d = p.add_argument_group("decontamination (HumanEval and the shipped MTPB problems always)")
    d.add_argument("--benchmark", action="append", default=[], metavar="JSONL",
                   help="also drop exercises overlapping this benchmark (MBPP code/text, HumanEval "
                        "prompt/canonical_solution, MTPB prompts)")
    d.add_argument("--ngram", type=int, default=10, help="tokens per n-gram for the code and text overlap rules")
    e = p.add_argument_group("execution")
    e.add_argument("--workers", type=int, default=None,
                   help="sandbox workers and mining processes (default: the usable cores)")
    e.add_argument("--timeout", type=float, default=3.0, help="seconds per program")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="exercises_command", metavar="SUBCOMMAND", required=True)
    _build_args(sub.add_parser("build", help="build exercises: synthetic, mined, self-generated"))
    c = sub.add_parser("check", help="re-judge exercises (e.g. after changing the judge): each solution must pass "
                                     "its tests and every trivial body must fail them")
    c.add_argument("exercises", type=Path, help="a directory written by `ocg exercises build`, or a JSONL file")
    c.add_argument("--out", "-o", required=True, type=Path, help="directory for the exercises that still hold")
    c.add_argument("--workers", type=int, default=None, help="sandbox workers (default: the usable cores)")
    c.add_argument("--timeout", type=float, default=3.0, help="seconds per program")
    t = sub.add_parser("tokens", help="write exercises as a pretraining token directory (train/, valid/) that a "
                                      "recipe's pretraining stage can mix in, as the quickstart's Mono stage does")
    t.add_argument("exercises", type=Path, help="a directory written by `ocg exercises build`, or a JSONL file")
    t.add_argument("--tokenizer", required=True, type=Path, help="the tokenizer.json the recipe trains with")
    t.add_argument("--out", "-o", required=True, type=Path, help="token directory to write (replaced whole)")
    t.add_argument("--valid-fraction", type=float, default=0.02,
                   help="share of exercises (by id) kept out of train/, as an SFT stage's sft.valid_fraction holds "
                        "them out: give the same value so that SFT validates on exercises pretraining never saw "
                        "(default: %(default)s, SFT's default)")
    t.add_argument("--seed", type=int, default=0, help="seed of the document order")


def _self_options(args) -> dict | None:
    if not args.self_gen:
        if args.model or args.from_dir:
            raise UserError("--model and --from are for a self-generation round: add --self")
        return None
    if not args.model or not args.from_dir:
        raise UserError("--self needs --model CKPT and --from EXERCISES")
    if args.k < 1:
        raise UserError(f"--k {args.k}: must be at least 1")
    from ..model.io import load_checkpoint
    from ..sampling import SamplingParams
    from ..exercises.records import read_exercises

    exercises = read_exercises(args.from_dir)[:args.limit]
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                            seed=args.seed)
    if not args.model.exists():
        raise UserError(f"--model {args.model}: no such directory")
    model, tokenizer = load_checkpoint(args.model, device=args.device)
    return {"model": model, "tokenizer": tokenizer, "exercises": exercises, "k": args.k, "params": params}


def run(args: argparse.Namespace) -> int:
    return {"build": run_build, "check": run_check, "tokens": run_tokens}[args.exercises_command](args)


def run_tokens(args: argparse.Namespace) -> int:
    from ..exercises.pretraining import write_pretraining_tokens
    from ..progress import log

    if not args.exercises.exists():
        raise UserError(f"{args.exercises}: no such file or directory")
    if not args.tokenizer.is_file():
        raise UserError(f"--tokenizer {args.tokenizer}: no such file")
    if not 0 <= args.valid_fraction < 1:
        raise UserError(f"--valid-fraction {args.valid_fraction}: must be in [0, 1)")
    counts = write_pretraining_tokens(args.exercises, args.tokenizer, args.out, args.valid_fraction, args.seed)
    log(f"{args.out}: train {counts['train']['documents']:,} exercises ({counts['train']['tokens']:,} tokens), "
        f"valid {counts['valid']['documents']:,} ({counts['valid']['tokens']:,} tokens)")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from ..exercises.build import check_directory
    from ..progress import log

    stats = check_directory(args.exercises, args.out, args.workers, args.timeout)
    log(f"checked {stats['checked']:,}: kept {stats['kept']:,}, rejected {stats['rejected'] or 'none'} -> {args.out}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from ..exercises.build import BuildOptions, build, summary_table
    from ..progress import console, log

    if args.max_body_lines < 1 or args.hypothesis_examples < 0 or args.ngram < 2 or args.timeout <= 0:
        raise UserError("--max-body-lines must be >= 1, --hypothesis-examples >= 0, --ngram >= 2, --timeout > 0")
    for c in args.mine_corpus:
        if not c.is_dir():
            hint = " (run `ocg quickstart` first, or give a corpus directory)" if c == QUICKSTART_MONO else ""
            raise UserError(f"--mine-corpus {c}: no such directory{hint}")
    opts = BuildOptions(out=args.out, synthetic=args.synthetic, multi_turn=args.multi_turn, seed=args.seed, mine_dirs=args.mine_dir,
                        mine_corpora=args.mine_corpus, max_body_lines=args.max_body_lines,
                        hypothesis_examples=args.hypothesis_examples, benchmark_files=args.benchmark,
                        ngram=args.ngram, workers=args.workers, timeout=args.timeout,
                        self_gen=_self_options(args))
    stats = build(opts)
    console.print(summary_table(stats))
    log(f"exercises: {args.out}/exercises.jsonl ({stats['exercises']:,})  stats: {args.out}/stats.json  "
        f"rejects: {args.out}/rejects/")
    return 0 if stats["accounted"] else 1
