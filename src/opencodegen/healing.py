"""Token healing: a prompt that ends inside a token (an editor's cursor in the middle of an identifier, trailing
spaces, a newline the vocabulary would have merged with more) is backed up to a boundary, and the first generated
tokens are constrained to spell the removed text again, so the model chooses its own tokenization of the prompt's
end (as guidance's and transformers' `token_healing` do). The re-spelled text is not part of the completion.

Which tokens are backed up: the longest tail of the prompt's tokens whose text some other, longer token starts with
(it "could have been spelled differently"): for "def fibon" encoded "def", " fib", "on", the tail " fibon" when a
token such as " fibonacci" exists, else "on" when one such as "onacci" does. A prompt whose tail no longer token
extends ends at a natural boundary and is left exactly as it is, so healing changes nothing there. The tail is
widened to a character boundary, so the kept prompt and the removed text are both whole characters.

While text remains to be re-spelled, a token is allowed when its text starts with all of the remaining text (the
re-spelling is then complete, and the token may go on past it) or is a non-empty prefix of it (the re-spelling goes
on). Control tokens are never allowed then. Healing needs each token's bytes, which a byte-level BPE (ours,
CodeGen's, Qwen2's) defines; for another kind of vocabulary it is a no-op."""

from __future__ import annotations

import bisect
import weakref
from dataclasses import dataclass
from typing import Sequence

import torch

MAX_TAIL_TOKENS = 8  # a tail longer than this is not one token respelled (a long token is rarely split so finely)


@dataclass(frozen=True)
class HealedPrompt:
    """Prompt token ids whose end was backed up, and the text (UTF-8 bytes) the completion must start by
    re-spelling; `removed` is empty when nothing was backed up."""
    ids: list[int]
    removed: bytes = b""


class TokenIndex:
    """The bytes of every text token of a tokenizer, sorted, to find the tokens that start with given bytes."""

    def __init__(self, token_bytes: Sequence[bytes | None]):
        self.size = len(token_bytes)
        pairs = sorted((b, i) for i, b in enumerate(token_bytes) if b)
        self.sorted_bytes = [b for b, _ in pairs]
        self.sorted_ids = torch.tensor([i for _, i in pairs], dtype=torch.long)
        self.ids_of: dict[bytes, list[int]] = {}
        for b, i in pairs:
            self.ids_of.setdefault(b, []).append(i)
        self.bytes_of = list(token_bytes)
        self.longest = max(map(len, self.sorted_bytes), default=0)

    def _range(self, prefix: bytes) -> tuple[int, int]:
        """Positions in sorted_bytes of the tokens that start with prefix (non-empty)."""
        lo = bisect.bisect_left(self.sorted_bytes, prefix)
        end = prefix.rstrip(b"\xff")
        if not end:
            return lo, len(self.sorted_bytes)
        upper = end[:-1] + bytes([end[-1] + 1])  # the smallest bytes above every extension of prefix
        return lo, bisect.bisect_left(self.sorted_bytes, upper, lo)

    def extended(self, text: bytes) -> bool:
        """Whether some token's text starts with `text` and is longer."""
        lo, hi = self._range(text)
        return hi - lo > len(self.ids_of.get(text, ()))

    def allowed(self, pending: bytes) -> torch.Tensor:
        """Ids of the tokens that start with `pending` or are a non-empty prefix of it."""
        lo, hi = self._range(pending)
        shorter = [i for n in range(1, len(pending)) for i in self.ids_of.get(pending[:n], ())]
        return torch.cat([self.sorted_ids[lo:hi], torch.tensor(shorter, dtype=torch.long)])


_INDEXES: "weakref.WeakKeyDictionary[object, TokenIndex | None]" = weakref.WeakKeyDictionary()


def token_index(tokenizer) -> TokenIndex | None:
    """The tokenizer's TokenIndex (built once per tokenizer), or None when its tokens have no defined bytes."""
    if tokenizer not in _INDEXES:
        table = tokenizer.token_bytes() if hasattr(tokenizer, "token_bytes") else None
        _INDEXES[tokenizer] = TokenIndex(table) if table is not None else None
    return _INDEXES[tokenizer]


def heal_tail(tokenizer, ids: Sequence[int]) -> tuple[list[int], bytes]:
    """(the ids kept, the bytes removed from their end): the longest tail of `ids` (at most MAX_TAIL_TOKENS, only
    text tokens, shorter than the longest token) whose text a longer token extends, widened to a character
    boundary; (ids, b"") when there is none."""
    ids = list(ids)
    index = token_index(tokenizer)
    if index is None:
        return ids, b""
    k, tail = 0, b""
    for j in range(1, min(MAX_TAIL_TOKENS, len(ids)) + 1):
        piece = index.bytes_of[ids[-j]] if 0 <= ids[-j] < index.size else None
        if not piece:  # a control token (or an id outside the vocabulary) is a hard boundary
            break
        tail = piece + tail
        if len(tail) >= index.longest:
            break
        if index.extended(tail):
            k = j
    if k == 0:
        return ids, b""
    removed = b"".join(index.bytes_of[t] for t in ids[len(ids) - k:])
    while removed and 0x80 <= removed[0] < 0xC0:  # starts inside a character: take the rest of the character
        piece = index.bytes_of[ids[-k - 1]] if k < len(ids) and 0 <= ids[-k - 1] < index.size else None
        if not piece:
            return ids, b""
        k += 1
        removed = piece + removed
    try:
        removed.decode("utf-8")
    except UnicodeDecodeError:  # token ids that end inside a character: no text to re-spell
        return ids, b""
    return ids[:len(ids) - k], removed


def heal(tokenizer, ids: Sequence[int]) -> HealedPrompt:
    kept, removed = heal_tail(tokenizer, ids)
    return HealedPrompt(kept, removed)


class Respeller:
    """One sequence's constraint: the prompt text still to be re-spelled by its next tokens."""

    def __init__(self, index: TokenIndex, removed: bytes):
        self.index = index
        self.pending = removed

    def allowed(self) -> torch.Tensor:
        return self.index.allowed(self.pending)

    def advance(self, token: int) -> None:
        if not self.pending:
            return
        piece = self.index.bytes_of[token] if 0 <= token < self.index.size else None
        if not piece or not (piece.startswith(self.pending) or self.pending.startswith(piece)):
            raise ValueError(f"token {token} does not re-spell {self.pending!r}")  # the mask makes this impossible
        self.pending = self.pending[len(piece):]


def constrain(logits: torch.Tensor, respellers: Sequence[Respeller | None]) -> torch.Tensor:
    """Logits (B, V) with every token row b may not take set to -inf, for rows still re-spelling; the same tensor,
    untouched, when no row is."""
    rows = [b for b, r in enumerate(respellers) if r is not None and r.pending]
    if not rows:
        return logits
    out = logits.clone()
    for b in rows:
        keep = torch.zeros(out.shape[-1], dtype=torch.bool, device=out.device)
        keep[respellers[b].allowed().to(out.device)] = True
        out[b].masked_fill_(~keep, -float("inf"))
    return out
