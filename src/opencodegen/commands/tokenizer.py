"""`ocg tokenizer train`: a byte-level BPE for code (CodeGen's whitespace-run tokens, Qwen2.5-Coder's FIM and
repository tokens) trained on built corpora and/or directories of source files, saved as DIR/tokenizer.json.

    ocg tokenizer train --corpus corpus/mono --corpus corpus/multi --vocab-size 16384 --out tok
    ocg tokenizer train --files ~/src/myproject --ext .py --vocab-size 8192 --out tok
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from ..errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("train", help="train a code BPE tokenizer")
    p.add_argument("--out", "-o", required=True, type=Path, help="directory to write tokenizer.json into")
    p.add_argument("--corpus", action="append", default=[], type=Path, metavar="DIR",
                   help="a corpus written by `ocg corpus build` (repeatable)")
    p.add_argument("--files", action="append", default=[], type=Path, metavar="DIR",
                   help="a directory of source files (repeatable)")
    p.add_argument("--ext", action="append", default=[], metavar=".EXT",
                   help="with --files: only these suffixes (repeatable; default: every UTF-8 file)")
    p.add_argument("--vocab-size", type=int, default=32768, help="total ids, control and whitespace tokens included")
    p.add_argument("--max-mb", type=float, default=None, help="train on about this many MB per --corpus/--files")
    p.add_argument("--no-whitespace-tokens", action="store_true",
                   help="plain byte-level BPE, without CodeGen's tokens for runs of spaces and tabs")


def _texts(args: argparse.Namespace):
    from ..data.corpus_texts import capped, corpus_texts
    from ..eval.perplexity import read_text_files

    cap = int(args.max_mb * 1e6) if args.max_mb else None
    for corpus in args.corpus:
        yield from capped(corpus_texts(corpus), cap)
    for directory in args.files:
        yield from capped((text for _, text in read_text_files(directory, tuple(args.ext))), cap)


def run(args: argparse.Namespace) -> int:
    from ..progress import log
    from ..tokenizer import train_tokenizer

    if not args.corpus and not args.files:
        raise UserError("no training text: give --corpus DIR and/or --files DIR")
    for d in [*args.corpus, *args.files]:
        if not d.is_dir():
            raise UserError(f"{d}: not a directory")
    texts = _texts(args)
    first = list(itertools.islice(texts, 1))  # fail on an empty input before training anything
    if not first:
        raise UserError("the given corpora and directories hold no text to train on")
    start = time.perf_counter()
    tok = train_tokenizer(itertools.chain(first, texts), args.vocab_size,
                          whitespace_tokens=not args.no_whitespace_tokens, show_progress=True)
    path = tok.save(args.out)
    log(f"tokenizer: {path} ({tok.vocab_size} ids, eos {tok.eos_id}) in {time.perf_counter() - start:.1f} s")
    return 0
