"""`ocg average OUT CKPT CKPT ...`: the mean of several checkpoints' weights as a new checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="checkpoint directory to write (replaced atomically)")
    parser.add_argument("checkpoints", type=Path, nargs="+",
                        help="checkpoints of one model, e.g. a stage's last ones; config and tokenizer from the last")


def run(args: argparse.Namespace) -> int:
    from ..model.average import average_checkpoints
    from ..progress import log

    average_checkpoints(args.checkpoints, args.out)
    log(f"wrote {args.out}: the mean of {len(args.checkpoints)} checkpoints' weights")
    return 0
