"""`ocg import-hf DIR OUT [--dtype]`: a local HuggingFace CodeGen/Qwen2/Qwen3/Llama directory -> our checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="HuggingFace model directory (config.json + weights)")
    parser.add_argument("out", type=Path, help="checkpoint directory to write")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: the stored dtype")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..model.hf import load_hf_model
    from ..model.io import save_checkpoint
    from ..progress import log

    model = load_hf_model(args.source, dtype=getattr(torch, DTYPES[args.dtype]) if args.dtype else None)
    tokenizer = None
    if (args.source / "tokenizer.json").is_file():
        from ..tokenizer import CodeTokenizer, check_vocab_fits

        tokenizer = CodeTokenizer.load(args.source)
        check_vocab_fits(tokenizer, model.config.vocab_size, str(args.source / "tokenizer.json"))
    else:
        log(f"note: {args.source} has no tokenizer.json; the checkpoint is written without a tokenizer")
    save_checkpoint(model, tokenizer, args.out)
    log(f"wrote {args.out} ({model.num_params() / 1e6:.1f}M parameters, {next(model.parameters()).dtype})")
    return 0
