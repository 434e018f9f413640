"""Prompt-lookup drafts for speculative decoding (as vLLM's ngram speculator, transformers'
`prompt_lookup_num_tokens` and llama.cpp's lookup decoding): the last n tokens of a sequence (prompt + generated) are
looked up in its earlier text, and the tokens that followed them there are proposed as the next ones. Code repeats
itself (names, signatures, indentation, docstring phrases), so drafts are often right.

At batch 1 a decode step streams every weight once to produce one token; checking k drafted tokens in one forward
pass costs about the same, so each accepted draft token is a step saved. engine.py does the verifying; this
module only proposes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass
class SpeculationStats:
    """One sequence's speculation counts. passes: decode forward passes it took part in (the prompt's prefill is not
    one); drafted: draft tokens proposed; accepted: draft tokens that matched what the model chose. Every pass
    yields one token of the model's own plus the accepted drafts, so tokens = 1 + passes + accepted."""

    passes: int = 0
    drafted: int = 0
    accepted: int = 0


class NgramDrafter:
    """Drafts for one sequence from an index of its own n-grams (n in min_n..max_n): n-gram -> the position right
    after its latest occurrence. Appending a token updates the index in O(max_n), and a lookup costs O(max_n) dict
    probes, so drafting stays cheap however long the sequence grows.

    The longest n that matches wins (more context, fewer false matches); among occurrences the latest wins, since
    code repeats most what is nearby. A draft that runs into the present continues from its own start, so a periodic
    tail (a repeated line, a run of the same token) yields a full draft."""

    def __init__(self, ids: list[int], min_n: int = 1, max_n: int = 3):
        if not 1 <= min_n <= max_n:
            raise ValueError(f"n-gram sizes need 1 <= min_n <= max_n, got {min_n}..{max_n}")
        self.min_n, self.max_n = min_n, max_n
        self.ids: list[int] = []
        self.next_after: dict[tuple[int, ...], int] = {}
        self.extend(ids)

    def extend(self, tokens: Iterable[int]) -> None:
        ids, index = self.ids, self.next_after
        for t in tokens:
            end = len(ids)  # t lands at position `end`: every n-gram ending just before it is now followed by t
            for n in range(self.min_n, min(self.max_n, end) + 1):
                index[tuple(ids[end - n : end])] = end
            ids.append(t)

    def draft(self, k: int) -> list[int]:
        """Up to k tokens that may follow the sequence ([] when its tail occurred nowhere earlier)."""
        ids, length = self.ids, len(self.ids)
        if k <= 0:
            return []
        for n in range(min(self.max_n, length), self.min_n - 1, -1):
            start = self.next_after.get(tuple(ids[length - n :]))
            if start is not None:
                out: list[int] = []
                for j in range(start, start + k):
                    out.append(ids[j] if j < length else out[j - length])
                return out
        return []
