"""Tiny token shards in datatrove's format (written by datatrove's own TokenizedFile) and a byte tokenizer whose
ids are the byte values, so that bits per byte can be checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from datatrove.pipeline.tokens.tokenizer import TokenizedFile


def write_shard(directory: Path, docs: list[np.ndarray], name: str = "00000.ds", width: int = 2) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    out = TokenizedFile(str(directory), name, token_size=width, tokenizer_name_or_path="bytes",
                        save_final_metadata=True)
    for d in docs:
        out.write_bytes(np.asarray(d, dtype="<u2" if width == 2 else "<u4").tobytes())
    out.close()
    return directory / name


def write_random_splits(root: Path, vocab: int, docs: int = 64, length: int = 4096) -> Path:
    """train/ and valid/ shards of uniformly random ids under `root`, for benchmarks that measure only speed."""
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        write_shard(root / split, [rng.integers(0, vocab, length) for _ in range(docs)])
    return root


def make_tokens(root: Path, name: str, seed: int, n_train: int = 120, n_valid: int = 12) -> Path:
    """Printable-ASCII documents with a learnable pattern (each doc repeats a short random motif)."""
    rng = np.random.default_rng(seed)

    def doc() -> np.ndarray:
        motif = rng.integers(32, 127, rng.integers(3, 8))
        return np.tile(motif, 40)[: rng.integers(40, 200)]

    write_shard(root / name / "train", [doc() for _ in range(n_train)])
    write_shard(root / name / "valid", [doc() for _ in range(n_valid)])
    return root / name


def byte_tokenizer(path: Path) -> Path:
    """tokenizer.json: byte-level BPE with no merges and id == byte value (256 ids)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    # GPT-2's byte -> printable-symbol table: printable latin-1 bytes stand for themselves, the rest move to 256+.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbol, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbol[b] = chr(b)
        else:
            symbol[b] = chr(256 + extra)
            extra += 1
    vocab = {symbol[b]: b for b in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def recipe_file(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def tiny_recipe(root: Path, **run) -> dict:
    return {
        "model": {"preset": "tiny-1m", "vocab_size": 256, "n_layer": 1, "n_embd": 32, "n_head": 2},
        "tokenizer": str(byte_tokenizer(root / "tok" / "tokenizer.json")),
        "optim": {"lr": 3e-3, "warmup_steps": 2},
        "batch": {"batch_tokens": 256, "micro_batch": 2, "context_length": 32},
        "run": {"eval_every": 3, "save_every": 2, "eval_tokens": 512, "autocast": "fp32", **run},
        "stages": [
            {"name": "nl", "data": {str(make_tokens(root / "tokens", "nl", 1)): 1.0}, "steps": 4},
            {"name": "mono", "data": {str(make_tokens(root / "tokens", "nl", 1)): 1.0,
                                      str(make_tokens(root / "tokens", "mono", 2)): 3.0}, "steps": 4},
        ],
    }
