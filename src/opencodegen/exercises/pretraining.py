"""Exercises as pretraining documents: each prompt + solution, ending in end-of-text, written as a token directory
(train/ and valid/ datatrove shards, as `ocg corpus tokenize` writes) that a pretraining stage can mix with a corpus.

This is phi-1's finding at our scale: a tiny model that sees short, runnable, documented functions while it learns
Python writes programs that standard-library code alone does not teach it in the same tokens (the quickstart's Mono
stage mixes them in; the measurement is in configs/quickstart.yaml). The exercises are the decontaminated ones
`ocg exercises build` wrote. The rows an SFT stage holds out for its validation (train.examples.held_out, by id) go
to valid/ here, never to train/, so that stage's validation loss stays a measure of unseen exercises."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
from datatrove.pipeline.tokens.tokenizer import TokenizedFile

from ..data.tokenize import token_width
from ..errors import UserError
from ..tokenizer import CodeTokenizer
from ..train.examples import held_out, read_examples


def write_pretraining_tokens(exercises: Path, tokenizer_path: Path, out: Path, valid_fraction: float,
                             seed: int = 0) -> dict:
    """Writes out/train and out/valid (replacing an earlier out whole, atomically) and returns their counts."""
    tok = CodeTokenizer.load(tokenizer_path)
    if tok.eos_id is None:
        raise UserError(f"{tokenizer_path}: no end-of-text token to end each exercise with")
    rows = [e for e in read_examples(exercises) if e.completion is not None]
    if not rows:
        raise UserError(f"{exercises}: no exercise with a solution to pretrain on")
    random.Random(seed).shuffle(rows)  # windows cross document ends: neighbours should not be one family's run
    width = token_width(tok.vocab_size)
    dtype = np.dtype("<u2" if width == 2 else "<u4")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {}
    for split in ("train", "valid"):
        docs = [r for r in rows if held_out(r, valid_fraction) == (split == "valid")]
        counts[split] = {"documents": len(docs), "tokens": 0}
        if not docs:
            continue
        shard = TokenizedFile(str(tmp / split), "00000.ds", token_size=width,
                              tokenizer_name_or_path=str(tokenizer_path), save_final_metadata=True)
        for ids in tok.encode_batch([r.prompt + r.completion for r in docs]):
            shard.write_bytes(np.asarray(ids + [tok.eos_id], dtype=dtype).tobytes())
            counts[split]["tokens"] += len(ids) + 1
        shard.close()
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return counts
