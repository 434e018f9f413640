"""`ocg corpus build` (sources -> filtered, deduplicated, decontaminated, redacted, repository-packed corpus) and
`ocg corpus tokenize` (corpus -> shuffled token shards with FIM, train/valid split by repository).

    ocg corpus build --system mono --max-bytes 20000000 --out corpus/mono
    ocg corpus build --dir ~/src/repos --stack the-stack-python.parquet --out corpus/mine --workers 8
    ocg corpus tokenize corpus/mono --tokenizer tok/tokenizer.json --out tokens/mono --fim-rate 0.5
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import UserError


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", required=True, type=Path, help="corpus directory to write")
    src = p.add_argument_group("sources (any number, at least one)")
    src.add_argument("--dir", action="append", default=[], metavar="PATH",
                     help="a directory or git repository, or a folder of them")
    src.add_argument("--stack", action="append", default=[], metavar="PATH",
                     help="JSONL/Parquet in The Stack's schema (file or folder)")
    src.add_argument("--zip", action="append", default=[], metavar="PATH", help="a zip archive of sources")
    src.add_argument("--system", choices=["nl", "multi", "mono"], action="append", default=[],
                     help="this machine's own corpus part (NL docs, Multi languages, Mono Python)")
    src.add_argument("--max-bytes", type=int, default=None,
                     help="cap each --dir/--stack/--zip source, and each --system part, at about this many bytes")
    src.add_argument("--repo-depth", type=int, default=None,
                     help="path components naming a repository in --dir/--zip sources (default: auto)")
    src.add_argument("--languages", default=None, help="comma-separated languages to keep (default: all known)")
    f = p.add_argument_group("filters (StarCoder/CodeGen defaults)")
    f.add_argument("--max-file-bytes", type=int, default=1_000_000, help="drop bigger files")
    f.add_argument("--max-line-length", type=int, default=1000, help="drop files with a longer line")
    f.add_argument("--max-mean-line-length", type=float, default=100.0,
                   help="drop files whose lines are longer than this on average")
    f.add_argument("--min-alnum-fraction", type=float, default=0.25,
                   help="drop files with a smaller fraction of letters and digits")
    f.add_argument("--max-digit-fraction", type=float, default=0.9,
                   help="drop files with a larger fraction of digits (data tables)")
    f.add_argument("--disable-filter", action="append", default=[], metavar="NAME",
                   help="skip a check: max_line_length, mean_line_length, alnum_fraction, digit_fraction, "
                        "auto_generated, encoded_data")
    d = p.add_argument_group("dedup, decontamination, PII")
    d.add_argument("--no-near-dedup", action="store_true", help="exact dedup only")
    d.add_argument("--dedup-threshold", type=float, default=0.7, help="Jaccard threshold for near duplicates")
    d.add_argument("--no-humaneval", action="store_true", help="do not decontaminate against HumanEval")
    d.add_argument("--benchmark", action="append", default=[], metavar="JSONL",
                   help="also decontaminate against every string in this benchmark JSONL (e.g. MTPB)")
    d.add_argument("--decontam-method", choices=["substring", "ngram"], default="substring",
                   help="drop a file that contains a benchmark string, or that shares an n-gram with one")
    d.add_argument("--no-pii", action="store_true", help="do not redact e-mails, IPs and keys")
    r = p.add_argument_group("packing and execution")
    r.add_argument("--max-doc-chars", type=int, default=1_000_000, help="split bigger repositories into parts")
    _exec_args(r)


def _exec_args(g) -> None:
    g.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count)")
    g.add_argument("--tasks", type=int, default=None, help="datatrove tasks per stage (default: workers)")
    g.add_argument("--executor", choices=["local", "slurm", "ray"], default="local",
                   help="where the datatrove tasks run: this machine, Slurm jobs (needs sbatch) or a ray cluster "
                        "(needs pip install 'opencodegen[ray]')")
    g.add_argument("--slurm-partition", default=None, help="Slurm partition for the jobs (default: cpu)")
    g.add_argument("--slurm-time", default=None, help="e.g. 12:00:00")
    g.add_argument("--fresh", action="store_true", help="discard an earlier run in the output directory")
    g.add_argument("--seed", type=int, default=0, help="seed of every random choice (sampling, shuffling, FIM)")


def _tokenize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus", type=Path, help="a directory written by `ocg corpus build`")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json or a directory holding one")
    p.add_argument("--out", "-o", required=True, type=Path, help="token directory (train/ and valid/ inside)")
    p.add_argument("--format", choices=["repo", "file"], default="repo",
                   help="repo: Qwen2.5-Coder repository documents; file: one document per file")
    p.add_argument("--fim-rate", type=float, default=0.5, help="fraction of documents turned into fill-in-the-middle")
    p.add_argument("--spm-rate", type=float, default=0.5,
                   help="fraction of the FIM documents in suffix-prefix-middle order (the rest: prefix-suffix-middle)")
    p.add_argument("--valid-fraction", type=float, default=0.05, help="bytes held out, in whole repositories")
    p.add_argument("--max-tokens-per-shard", type=int, default=500_000_000, help="tokens per shard file at most")
    _exec_args(p)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND", required=True)
    _build_args(sub.add_parser("build", help="build a corpus from sources"))
    _tokenize_args(sub.add_parser("tokenize", help="tokenize a corpus into shuffled shards"))


def _executor_opts(args) -> dict:
    slurm = {k: v for k, v in (("partition", args.slurm_partition), ("time", args.slurm_time)) if v}
    return dict(workers=args.workers or os.cpu_count() or 1, tasks=args.tasks, executor=args.executor,
                fresh=args.fresh, slurm=slurm)


def run_build(args) -> int:
    from ..data.decontam import DecontamConfig
    from ..data.dedup import DedupConfig
    from ..data.filters import FilterConfig
    from ..data.pipeline import BuildOptions, build_corpus
    from ..data.sources import Source
    from ..data.system_corpus import system_corpus
    from ..progress import log

    languages = [x.strip() for x in args.languages.split(",")] if args.languages else None
    sources = [Source("dir", p, repo_depth=args.repo_depth, max_bytes=args.max_bytes, languages=languages)
               for p in args.dir]
    sources += [Source("stack", p, max_bytes=args.max_bytes) for p in args.stack]
    sources += [Source("zip", p, repo_depth=args.repo_depth, max_bytes=args.max_bytes, languages=languages)
                for p in args.zip]
    for part in args.system:
        found, notes = system_corpus(part, args.max_bytes)
        sources += found
        for note in notes:
            log(f"[yellow]{note}[/yellow]")
    if not sources:
        raise UserError("no sources: give --dir, --stack, --zip or --system")
    for b in args.benchmark:
        if not Path(b).is_file():
            raise UserError(f"--benchmark {b}: no such file")
    opts = BuildOptions(
        filters=FilterConfig(max_line_length=args.max_line_length, max_mean_line_length=args.max_mean_line_length,
                             min_alnum_fraction=args.min_alnum_fraction, max_digit_fraction=args.max_digit_fraction,
                             disabled=args.disable_filter),
        dedup=DedupConfig(threshold=args.dedup_threshold, near=not args.no_near_dedup, seed=42),
        decontam=DecontamConfig(humaneval=not args.no_humaneval, benchmark_files=args.benchmark,
                                method=args.decontam_method),
        pii=not args.no_pii, max_file_bytes=args.max_file_bytes, max_doc_chars=args.max_doc_chars, seed=args.seed,
        **_executor_opts(args))
    stats = build_corpus(sources, args.out, opts)
    if stats:
        log(f"corpus: {args.out}/data  stats: {args.out}/stats.json  rejects: {args.out}/rejects/")
    return 0 if not stats or stats["accounted"] else 1


def run_tokenize(args) -> int:
    from ..data.fim import FimConfig
    from ..data.pipeline import TokenizeOptions, tokenize_corpus
    from ..data.tokenize import TokenizeConfig
    from ..progress import log

    tok_path = Path(args.tokenizer)
    if not tok_path.exists():
        raise UserError(f"--tokenizer {tok_path}: no such file or directory")
    try:
        cfg = TokenizeConfig(format=args.format, fim=FimConfig(args.fim_rate, args.spm_rate), seed=args.seed,
                             valid_fraction=args.valid_fraction, max_tokens_per_shard=args.max_tokens_per_shard)
    except ValueError as e:
        raise UserError(str(e)) from None
    stats = tokenize_corpus(args.corpus, str(tok_path), args.out, TokenizeOptions(config=cfg, **{
        k: v for k, v in _executor_opts(args).items()}))
    if stats:
        log(f"tokens: {args.out}/train {stats['train']['tokens']:,}, {args.out}/valid {stats['valid']['tokens']:,}")
    return 0


def run(args: argparse.Namespace) -> int:
    return run_build(args) if args.corpus_command == "build" else run_tokenize(args)
