"""Automatic prefix caching, as vLLM's APC, llama.cpp's cache_prompt and SGLang's radix cache do it: the keys and
values of prompts already prefilled are kept, so a request whose prompt starts like an earlier one (an editor asking
again a little further down the same file) prefills only what is new.

Reuse is exact by construction, not within a tolerance. Every prompt is prefilled in chunks of `block` tokens on a
grid fixed at position 0, with the cache on or off (`PrefixCache.prefill`). The keys, values and hidden states of
chunk j then depend only on tokens 0..(j+1)·block-1 and come out of the same kernels on the same shapes every time,
so a chunk loaded from the cache is bit for bit the chunk the request would have computed. Off the grid that fails:
a float kernel's rounding depends on its shapes (prefilling 1000 tokens as 990 + 10 instead of all at once moves the
logits by float rounding), so reuse may only stop at chunk boundaries.

That is why the cache holds blocks of `block` tokens, each keyed by its parent block and its own tokens (vLLM's
hashed blocks, with exact keys rather than hashes, so a collision cannot hand out wrong keys) rather than a token trie:
a trie finds longer matches, but the grid forbids reusing their tail. Only full blocks are kept, and a prompt always
computes at least its last chunk (its logits are needed), so a prompt of n tokens reuses at most
floor((n - 1) / block) blocks. The grid has a price without the cache: small chunks are small matrix products, which
use the cores less well, while large ones make an edited prompt recompute more (half a block on average) than it
changed. The default block is a compromise between the two (measurements in the README); `ocg serve --prefill-chunk`
moves it.

A prefill is resumable (`PrefixCache.start` returns a `Prefill`, whose `advance` computes one grid chunk), so the
scheduler runs decode steps for its other rows between the chunks of a long prompt; `PrefixCache.prefill` runs one to
completion. Either way each chunk is the same forward pass, so interleaving changes nothing in the result.
A prompt's blocks are stored right after its last chunk, so running requests share theirs too, not only finished ones.
Blocks are copies, not pages of the scheduler's cache: `load` copies them into the request's row, so evicting a block
never touches a running sequence. The cache is bounded in bytes and evicts the least recently used block first. A
chain is always touched from its leaf to its root, so a block is more recently used than any block under it and
eviction only ever takes leaves: every cached block stays reachable from the root. (A prompt whose matched chain was
evicted while it was being prefilled, by another prompt's store, stores nothing.)"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

DEFAULT_BLOCK = 128
ROOT = -1  # the parent id of a prompt's first block

Key = tuple[int, tuple[int, ...]]  # (parent block id or ROOT, the block's tokens)


@dataclass(eq=False)
class Block:
    id: int
    key: Key
    k: torch.Tensor  # (n_layer, n_kv_heads, block, head_dim)
    v: torch.Tensor

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


class PrefixCache:
    """Keys and values of prompt blocks, at most `capacity_bytes` of them (0 disables caching; prefill still runs on
    the block grid, so outputs do not depend on whether the cache is on). Used by the scheduler's model thread only."""

    def __init__(self, capacity_bytes: int, block: int = DEFAULT_BLOCK):
        if capacity_bytes < 0 or block < 1:
            raise ValueError(f"capacity_bytes={capacity_bytes} must be >= 0 and block={block} >= 1")
        self.capacity_bytes, self.block = capacity_bytes, block
        self._blocks: dict[Key, Block] = {}
        self._lru: OrderedDict[int, Block] = OrderedDict()  # by id, least recently used first
        self._next_id = 0
        self.bytes = 0
        self.counters = {"prompts": 0, "prompts_hit": 0, "prompt_tokens": 0, "cached_tokens": 0,
                         "blocks_stored": 0, "blocks_evicted": 0}

    def stats(self) -> dict:
        return {"capacity_bytes": self.capacity_bytes, "bytes": self.bytes, "blocks": len(self._blocks),
                "block_tokens": self.block, **self.counters}

    # ---- one prompt ------------------------------------------------------------------------------------------------

    def prefill(self, model, kv, row: int, ids: list[int], *, reuse: bool = True,
                keep_hidden: bool = False) -> tuple[torch.Tensor, int]:
        """Prefills `ids` into row `row` of the KVCache `kv` in one go (`start`, then `advance` to the end). Returns
        the final hidden states (`Prefill.hidden`) and the number of prompt tokens taken from the cache."""
        prefill = self.start(model, kv, row, ids, reuse=reuse, keep_hidden=keep_hidden)
        while not prefill.done:
            prefill.advance()
        return prefill.hidden, prefill.cached

    def start(self, model, kv, row: int, ids: list[int], *, reuse: bool = True,
              keep_hidden: bool = False) -> "Prefill":
        """Begins prefilling `ids` into row `row` of `kv`: the longest cached chain of its blocks is copied in (when
        `reuse`; never with `keep_hidden`, which needs every position computed). The rest is computed by the returned
        Prefill's `advance`, one grid chunk per call."""
        chain = self.match(ids) if reuse and not keep_hidden else []
        return Prefill(self, model, kv, row, ids, chain, keep_hidden)

    def match(self, ids: list[int]) -> list[Block]:
        """The longest chain of cached blocks that `ids` starts with, leaving at least one token to compute; the
        chain counts as used."""
        chain: list[Block] = []
        parent = ROOT
        for j in range((len(ids) - 1) // self.block):
            block = self._blocks.get((parent, tuple(ids[j * self.block:(j + 1) * self.block])))
            if block is None:
                break
            chain.append(block)
            parent = block.id
        self._touch(chain)
        return chain

    def load(self, chain: list[Block], kv, row: int) -> int:
        """Copies the chain's keys and values to the start of row `row` and sets the row's length; returns it."""
        n = len(chain) * self.block
        if chain:
            k = torch.cat([b.k for b in chain], dim=2)  # (n_layer, n_kv_heads, n, head_dim)
            v = torch.cat([b.v for b in chain], dim=2)
            for layer in range(len(kv.k)):
                kv.k[layer][row, :, :n] = k[layer]
                kv.v[layer][row, :, :n] = v[layer]
        kv.lengths[row] = n
        return n

    def store(self, ids: list[int], kv, row: int, chain: list[Block]) -> None:
        """Keeps the full blocks of `ids` (just prefilled into row `row`) after `chain` (its blocks from `match`)
        that are not cached yet, evicting least recently used blocks to make room."""
        if self.capacity_bytes == 0 or any(b.id not in self._lru for b in chain):
            return  # (a chain evicted while its prompt was being prefilled: its new blocks would be unreachable)
        chain = list(chain)
        parent = chain[-1].id if chain else ROOT
        for j in range(len(chain), len(ids) // self.block):
            s, e = j * self.block, (j + 1) * self.block
            key = (parent, tuple(ids[s:e]))
            block = self._blocks.get(key)
            if block is None:
                if not self._make_room(2 * len(kv.k) * kv.k[0][row, :, s:e].nbytes, keep={b.id for b in chain}):
                    break
                k = torch.stack([layer[row, :, s:e] for layer in kv.k])  # a copy: the row will be overwritten
                v = torch.stack([layer[row, :, s:e] for layer in kv.v])
                block = Block(self._next_id, key, k, v)
                self._next_id += 1
                self._blocks[key] = block
                self._lru[block.id] = block
                self.bytes += block.nbytes
                self.counters["blocks_stored"] += 1
            chain.append(block)
            parent = block.id
        self._touch(chain)

    # ---- bookkeeping -----------------------------------------------------------------------------------------------

    def _touch(self, chain: list[Block]) -> None:
        for block in reversed(chain):  # leaf first, so the root ends up the most recently used
            self._lru.move_to_end(block.id)

    def _make_room(self, nbytes: int, keep: set[int]) -> bool:
        """Evicts least recently used blocks outside `keep` (the chain being stored, whose blocks are all ancestors
        of the new one) until `nbytes` more fit; False if they cannot."""
        while self.bytes + nbytes > self.capacity_bytes:
            victim = next((b for b in self._lru.values() if b.id not in keep), None)
            if victim is None:
                return False
            del self._lru[victim.id]
            del self._blocks[victim.key]
            self.bytes -= victim.nbytes
            self.counters["blocks_evicted"] += 1
        return True


class Prefill:
    """One prompt being prefilled into one row, a grid chunk at a time, so that the scheduler can run decode steps
    for other rows between chunks. Made by PrefixCache.start (the cached blocks are already in the row); each
    `advance` is one forward pass over the next `block` tokens (the same pass, on the same shapes, as a prefill run
    to completion), and the one that reaches the end stores the prompt's new blocks and counts the prompt. `row` may
    be changed between calls by whoever moved the row's contents (KVCache.copy_rows); dropping an unfinished Prefill
    abandons it (nothing is stored, the row is simply free)."""

    def __init__(self, cache: PrefixCache, model, kv, row: int, ids: list[int], chain: list[Block],
                 keep_hidden: bool):
        self.cache, self.model, self.kv, self.row, self.ids = cache, model, kv, row, ids
        self.chain, self.keep_hidden = chain, keep_hidden
        self.cached = cache.load(chain, kv, row)  # prompt tokens taken from the cache
        self.position = self.cached  # tokens of the prompt in the row so far
        self._x = torch.tensor([ids], dtype=torch.long, device=kv.lengths.device)
        self._pieces: list[torch.Tensor] = []  # each chunk's hidden states (its last position only, unless keep_hidden)

    @property
    def done(self) -> bool:
        return self.position == len(self.ids)

    def advance(self) -> None:
        s, e = self.position, min(self.position + self.cache.block, len(self.ids))
        rows = torch.tensor([self.row], device=self.kv.lengths.device)
        hidden = self.model(self._x[:, s:e], cache=self.kv, rows=rows, hidden_only=True)
        self._pieces.append(hidden if self.keep_hidden else hidden[:, -1:])
        self.position = e
        if self.done:
            self.cache.store(self.ids, self.kv, self.row, self.chain)
            counters = self.cache.counters
            counters["prompts"] += 1
            counters["prompts_hit"] += self.cached > 0
            counters["prompt_tokens"] += len(self.ids)
            counters["cached_tokens"] += self.cached

    @property
    def hidden(self) -> torch.Tensor:
        """The final hidden states once done: (1, len(ids), C) with keep_hidden, else (1, 1, C) for the last
        position only."""
        return torch.cat(self._pieces, dim=1) if self.keep_hidden else self._pieces[-1]
