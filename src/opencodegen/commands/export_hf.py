"""`ocg export-hf CKPT OUT`: our checkpoint -> a HuggingFace directory (transformers, vLLM, llama.cpp converters)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="opencodegen checkpoint directory")
    parser.add_argument("out", type=Path, help="HuggingFace directory to write (replaced atomically)")


def run(args: argparse.Namespace) -> int:
    from ..model.hf import export_hf
    from ..progress import log

    export_hf(args.checkpoint, args.out)
    log(f"wrote {args.out}")
    return 0
