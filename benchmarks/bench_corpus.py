"""Corpus builder throughput on this machine's Python standard library: the whole stdlib from files to token shards
(build + tokenize), MB/s per core for every stage and step, and the slowest step with what bounds it.

Baselines measured in the same run:
  - I/O floor: one process reads every input file and writes it as JSONL (what any pipeline must at least do);
  - raw tokenizer: `CodeTokenizer.encode_batch` over the kept files in one process (what tokenization alone costs).

Goal (issue 3): the whole standard library, files -> token shards, in under 5 minutes on 2 cores.

    python benchmarks/bench_corpus.py [--workers 2] [--vocab 8192]
writes benchmarks/results/corpus.json."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from opencodegen.data.pipeline import BuildOptions, TokenizeOptions, build_corpus, tokenize_corpus
from opencodegen.data.report import stage_counters
from opencodegen.data.sources import plan_source
from opencodegen.data.system_corpus import python_stdlib
from opencodegen.tokenizer import train_tokenizer

RESULTS = Path(__file__).parent / "results" / "corpus.json"


def io_floor(items: list[dict], out: Path) -> tuple[float, int]:
    """Read every planned file and write it to JSONL, one process: (seconds, bytes)."""
    start, n = time.perf_counter(), 0
    with open(out, "w") as f:
        for it in items:
            if it["kind"] != "file":
                continue
            try:
                data = (Path(it["root"]) / it["rel"]).read_bytes()
            except OSError:
                continue
            n += len(data)
            f.write(json.dumps({"text": data.decode("utf-8", "replace"), "id": it["rel"]}) + "\n")
    return time.perf_counter() - start, n


BOUNDS = {  # what limits each step, by the work it does per byte (files are read far faster: see the I/O floor)
    "encode": "CPU: byte-level BPE in HF tokenizers (Rust); compare the raw encode_batch baseline",
    "signatures": "CPU: numpy token n-gram hashing and 256 multiply-shift min-hashes per shingle",
    "code quality": "CPU: regex scans over every character (encoded-data patterns, alnum and digit counts)",
    "decontaminate": "CPU: normalising each file and hashing its 10-grams against the benchmark index",
    "redact": "CPU: PII regex scans over every character",
    "Jsonl": "CPU: gzip compression of the output documents",
}


def bound_by(step: str) -> str:
    return next((v for k, v in BOUNDS.items() if k in step), "CPU")


def kept_texts(corpus: Path) -> list[str]:
    texts = []
    for f in sorted((corpus / "data").glob("*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            texts += [json.loads(line)["text"] for line in fh]
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench_corpus_"))
    source = python_stdlib(None)
    items = plan_source(source)
    mb_in = sum(it.get("size", 0) for it in items) / 1e6

    io_s, io_bytes = io_floor(items, work / "io.jsonl")

    start = time.perf_counter()
    build = build_corpus([source], work / "corpus", BuildOptions(workers=args.workers), print_summary=False)
    build_s = time.perf_counter() - start

    texts = kept_texts(work / "corpus")
    t0 = time.perf_counter()
    tok = train_tokenizer(texts, vocab_size=args.vocab)
    train_tok_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_raw = sum(len(x) for x in tok.encode_batch(texts))
    raw_tok_s = time.perf_counter() - t0
    mb_kept = build["bytes_kept"] / 1e6

    start = time.perf_counter()
    toks = tokenize_corpus(work / "corpus", tok, work / "tokens", TokenizeOptions(workers=args.workers),
                           print_summary=False)
    tokenize_s = time.perf_counter() - start

    # per step: MB entering its stage per second spent in the step (datatrove's per-task timers, summed over tasks;
    # on a busy machine they include time waiting for a core)
    stage_mb = {"prepare": mb_in, "bands": mb_in, "cluster": mb_in, "clean": mb_in, "pack": mb_kept,
                "report": mb_kept}
    steps = []
    for stage, s in build["stages"].items():
        for step, cpu in s["step_seconds"].items():
            steps.append({"stage": stage, "step": step, "cpu_seconds": cpu,
                          "mb_per_s_per_core": round(stage_mb[stage] / cpu, 2) if cpu > 0.01 else None})
    for stage, s in stage_counters(work / "tokens" / "logs").items():
        for step, cpu in s["step_seconds"].items():
            steps.append({"stage": stage, "step": step, "cpu_seconds": cpu,
                          "mb_per_s_per_core": round(mb_kept / cpu, 2) if cpu > 0.01 else None})
    stages = [{"stage": k, "wall_seconds": v.get("wall_seconds"), "tasks": v.get("tasks")}
              for k, v in build["stages"].items()]
    stages += [{"stage": k, "wall_seconds": v} for k, v in toks["wall_seconds"].items()]
    slowest = max(steps, key=lambda s: s["cpu_seconds"])
    total_s = build_s + tokenize_s
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "workers": args.workers,
        "input": {"files": build["files_in"], "mb": round(mb_in, 2), "kept_files": build["files_kept"],
                  "kept_mb": round(mb_kept, 2)},
        "tokens": {"train": toks["train"]["tokens"], "valid": toks["valid"]["tokens"], "vocab": args.vocab,
                   "tokenizer": f"{type(tok).__module__}.{type(tok).__name__}"},
        "seconds": {"build": round(build_s, 2), "tokenize": round(tokenize_s, 2), "files_to_shards": round(total_s, 2),
                    "tokenizer_training (not part of the pipeline)": round(train_tok_s, 2)},
        "goal_under_5_minutes": total_s < 300,
        "whole_pipeline_mb_per_s_per_core": round(mb_in / (total_s * args.workers), 2),
        "stages": stages,
        "steps": steps,
        "baselines": {
            "io_floor_read_and_write_jsonl_mb_per_s_per_core": round(io_bytes / 1e6 / io_s, 2),
            "raw_encode_batch_mb_per_s": round(mb_kept / raw_tok_s, 2),
            "raw_encode_batch_tokens": n_raw,
        },
        "slowest_step": {**slowest, "bound_by": bound_by(slowest["step"])},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    t = Table(title=f"corpus pipeline on the Python stdlib ({mb_in:.1f} MB, {args.workers} workers)")
    for c in ("stage", "step", "CPU s", "MB/s/core"):
        t.add_column(c)
    for s in steps:
        t.add_row(s["stage"], s["step"], f"{s['cpu_seconds']:.2f}",
                  "-" if s["mb_per_s_per_core"] is None else f"{s['mb_per_s_per_core']:.1f}")
    console.print(t)
    console.print(f"files -> shards: {total_s:.1f} s (build {build_s:.1f} s, tokenize {tokenize_s:.1f} s); "
                  f"whole pipeline {result['whole_pipeline_mb_per_s_per_core']} MB/s per core; "
                  f"I/O floor {result['baselines']['io_floor_read_and_write_jsonl_mb_per_s_per_core']} MB/s; "
                  f"raw encode_batch {result['baselines']['raw_encode_batch_mb_per_s']} MB/s")
    console.print(f"slowest step: {slowest['stage']} / {slowest['step']} ({slowest['cpu_seconds']:.1f} CPU s)")
    console.print(f"wrote {RESULTS}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
