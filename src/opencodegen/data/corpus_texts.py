"""Read the documents of a built corpus (`ocg corpus build` output: data/*.jsonl.gz) back as plain texts, e.g. to
train a tokenizer on them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import UserError


def corpus_files(corpus_dir: str | Path) -> list[Path]:
    corpus = Path(corpus_dir)
    files = sorted((corpus / "data").glob("*.jsonl.gz"))
    if not files:
        raise UserError(f"{corpus}: not a built corpus (no data/*.jsonl.gz); run `ocg corpus build` first")
    return files


def corpus_texts(corpus_dir: str | Path) -> Iterator[str]:
    """Document texts in file order."""
    for file in corpus_files(corpus_dir):
        with gzip.open(file, "rt", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)["text"]


def capped(texts: Iterable[str], max_bytes: int | None) -> Iterator[str]:
    """The texts, stopping after the one that brings the UTF-8 total to max_bytes (None: all of them)."""
    seen = 0
    for text in texts:
        yield text
        seen += len(text.encode("utf-8", "surrogatepass"))
        if max_bytes is not None and seen >= max_bytes:
            return
