"""The compression baseline for bits-per-byte: `xz -9` (LZMA2, preset 9) on the same held-out text, measured in
the same run. A language model that cannot beat a general-purpose compressor has learned little about code."""

from __future__ import annotations

import lzma
from typing import Iterable


def xz_bits_per_byte(texts: Iterable[str], concatenate: bool = True) -> float:
    """8 × compressed bytes / raw bytes. concatenate=True compresses the texts as one stream (xz sees cross-file
    repetition, as a model with a long context would); False compresses each text alone and sums the sizes."""
    blobs = [t.encode("utf-8") for t in texts]
    raw = sum(len(b) for b in blobs)
    if raw == 0:
        raise ValueError("no text to compress")
    if concatenate:
        packed = len(lzma.compress(b"".join(blobs), format=lzma.FORMAT_XZ, preset=9))
    else:
        packed = sum(len(lzma.compress(b, format=lzma.FORMAT_XZ, preset=9)) for b in blobs)
    return 8.0 * packed / raw
