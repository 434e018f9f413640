"""One decoder-only Transformer for the CodeGen (GPT-J parallel block) and Qwen2/Qwen3/Llama (sequential block, GQA,
SwiGLU; Qwen3 adds q/k norms) families, switched by ModelConfig. Attention runs through SDPA. A KVCache with per-row
lengths serves both batched sampling (rows at different positions) and the server's continuous batching (rows are
request slots)."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .rope import apply_rotary, cos_sin_table


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32, as Qwen2/Llama do, then cast back before the weight.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm == "layernorm":
        return nn.LayerNorm(config.n_embd, eps=config.norm_eps)
    return RMSNorm(config.n_embd, config.norm_eps)


class KVCache:
    """Keys and values for every layer, (B, n_kv_heads, max_len, head_dim), plus how many positions each row holds.

    A row is one sequence. Rows advance independently: a forward pass over `rows` writes its new keys at
    positions lengths[rows] … lengths[rows]+T-1 of those rows and then bumps their lengths."""

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int, device=None, dtype=torch.float32):
        shape = (batch_size, config.n_kv_heads, max_len, config.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.lengths = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.max_len = max_len

    @property
    def batch_size(self) -> int:
        return self.lengths.shape[0]

    def copy_rows(self, src: int, dst: torch.Tensor | list[int]) -> None:
        """Share a prefilled prompt: row `src`'s keys, values and length are copied into rows `dst`."""
        dst = torch.as_tensor(dst, dtype=torch.long, device=self.lengths.device)
        n = int(self.lengths[src])
        for k, v in zip(self.k, self.v):
            k[dst, :, :n] = k[src, :, :n]
            v[dst, :, :n] = v[src, :, :n]
        self.lengths[dst] = n

    def truncate(self, lengths: list[int]) -> None:
        """Rows 0..len(lengths)-1 keep only their first lengths[r] positions (speculative decoding drops the keys of
        rejected draft tokens). Lowering the length is enough: positions at or past it are masked out of attention
        and overwritten by the row's next forward pass."""
        new = torch.tensor(lengths, dtype=torch.long, device=self.lengths.device)
        if bool((new > self.lengths[: len(lengths)]).any()):
            raise ValueError("KVCache.truncate can only shorten rows")
        self.lengths[: len(lengths)] = new


class CacheSlots(NamedTuple):
    """Where one forward pass writes into the KV cache: positions (B, T) per row, and the keys every row attends
    over (span: the longest row's). With one row, its cache row and first position as ints too, so each layer writes
    it with a slice copy instead of a scatter."""
    positions: torch.Tensor
    span: int
    row: int | None
    start: int | None


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        # One fused projection, rows laid out [q (H·D) | k (KV·D) | v (KV·D)] for every family.
        self.qkv = nn.Linear(c.n_embd, (c.n_head + 2 * c.n_kv_heads) * c.head_dim, bias=c.qkv_bias)
        self.proj = nn.Linear(c.n_head * c.head_dim, c.n_embd, bias=c.attn_out_bias)
        # Qwen3 normalises each head's query and key: the attention logits stay bounded whatever the weights grow to.
        self.q_norm = RMSNorm(c.head_dim, c.norm_eps) if c.qk_norm else nn.Identity()
        self.k_norm = RMSNorm(c.head_dim, c.norm_eps) if c.qk_norm else nn.Identity()

    def forward(self, x, cos, sin, mask, cache: KVCache | None, layer: int, rows,
                slots: CacheSlots | None) -> torch.Tensor:
        c = self.config
        B, T, _ = x.shape
        H, KV = c.n_head, c.n_kv_heads
        qkv = self.qkv(x).view(B, T, H + 2 * KV, c.head_dim).transpose(1, 2)  # (B, H + 2·KV, T, D)
        qk, v = qkv.split([H + KV, KV], dim=1)
        if c.qk_norm:
            qk = torch.cat([self.q_norm(qk[:, :H]), self.k_norm(qk[:, H:])], dim=1)
        # Queries and keys rotate together: one rotation per layer instead of two (decoding is bound by op count).
        q, k = apply_rotary(qk, cos, sin, c.rope_interleaved).split([H, KV], dim=1)  # (B, H, T, D), (B, KV, T, D)
        if cache is not None:
            # Write the new keys at each row's own positions, then attend over the filled prefix.
            ck, cv = cache.k[layer], cache.v[layer]
            span = slots.span
            if slots.start is not None:  # one row (batch-1 decoding, a prefill): a plain slice copy
                row, s = slots.row, slots.start
                ck[row, :, s:s + T] = k[0]
                cv[row, :, s:s + T] = v[0]
                k, v = ck[row:row + 1, :, :span], cv[row:row + 1, :, :span]
            else:  # rows at different positions: scatter (index result is (B, T, KV, D))
                index_rows = torch.arange(B, device=x.device) if rows is None else rows
                ck[index_rows[:, None], :, slots.positions] = k.transpose(1, 2).to(ck.dtype)
                cv[index_rows[:, None], :, slots.positions] = v.transpose(1, 2).to(cv.dtype)
                if rows is None:  # rows 0..B-1: a view, no gather (the common case when sampling one batch)
                    k, v = ck[:B, :, :span], cv[:B, :, :span]
                else:
                    k, v = ck[rows, :, :span], cv[rows, :, :span]
            if k.dtype != q.dtype:
                k, v = k.to(q.dtype), v.to(q.dtype)
        # No mask: causal over the pass's own tokens, or (one token of one row) every key in the cache so far.
        # Grouped-query attention (n_kv_heads < n_head): each kv head serves n_head/n_kv query heads; the kernel
        # reads the shared head instead of a copy of the cache with every kv head repeated (the same values).
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and cache is None,
                                           enable_gqa=c.n_kv_heads != c.n_head)
        return self.proj(y.transpose(1, 2).reshape(B, T, c.n_head * c.head_dim))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        e, f, bias = config.n_embd, config.intermediate_size, config.mlp_bias
        self.swiglu = config.mlp == "swiglu"
        if self.swiglu:
            self.gate = nn.Linear(e, f, bias=bias)
        self.fc = nn.Linear(e, f, bias=bias)
        self.proj = nn.Linear(f, e, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.swiglu:
            return self.proj(F.silu(self.gate(x)) * self.fc(x))
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))  # CodeGen's gelu_new is the tanh approximation


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.parallel = config.parallel_residual
        self.norm_1 = make_norm(config)
        self.attn = Attention(config)
        self.norm_2 = None if self.parallel else make_norm(config)  # GPT-J shares one norm between attn and MLP
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, mask, cache, layer, rows, slots) -> torch.Tensor:
        h = self.norm_1(x)
        a = self.attn(h, cos, sin, mask, cache, layer, rows, slots)
        if self.parallel:
            return x + a + self.mlp(h)
        x = x + a
        return x + self.mlp(self.norm_2(x))


class GPT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = make_norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.lm_head_bias)
        self.tie_weights()
        self.rebuild_rope()
        self._compiled_decode = None
        self.apply(self._init_weights)
        # GPT-2 style: shrink the residual projections with depth so the residual stream's variance stays bounded.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=config.init_std / math.sqrt(2 * config.n_layer))

    def tie_weights(self) -> None:
        """With tie_embeddings the output head is the token embedding itself. Loading a state dict replaces
        `wte.weight` (assign=True) or is given no `lm_head.weight`, so every load re-ties (model.weights does)."""
        if self.config.tie_embeddings:
            self.lm_head.weight = self.wte.weight

    def set_rope(self, *, block_size: int | None = None, rope_base: float | None = None,
                 rope_scaling: dict | None = None) -> None:
        """A long-context stage's rotary settings (None keeps a field): the config becomes a copy with them and the
        table is rebuilt. The weights do not depend on them, so the same weights serve both. (Attention modules keep
        the config they were built with: they read head shapes and rope_interleaved only, which stay the same.)"""
        changes = {"block_size": block_size, "rope_base": rope_base, "rope_scaling": rope_scaling}
        self.config = dataclasses.replace(self.config, **{k: v for k, v in changes.items() if v is not None})
        self.rebuild_rope()

    def rebuild_rope(self) -> None:
        """Computes the rotary table from the config (after a meta-device build, or set_rope)."""
        c = self.config
        device = self.wte.weight.device
        cos, sin = cos_sin_table(c.rotary_dim, c.rope_base, c.rope_scaling, c.block_size, c.rope_interleaved)
        # Not persistent: derived from the config, so checkpoints hold only learned weights.
        self.register_buffer("rope_cos", cos.to(device), persistent=False)
        self.register_buffer("rope_sin", sin.to(device), persistent=False)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(
        self,
        idx: torch.Tensor,
        *,
        cache: KVCache | None = None,
        rows: torch.Tensor | None = None,
        doc_ids: torch.Tensor | None = None,
        hidden_only: bool = False,
        compiled: bool = False,
    ) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, V) in fp32 (or the final hidden states (B, T, C) if hidden_only).

        cache/rows: incremental decoding; row b of the batch is cache row rows[b] (None: rows 0..B-1) and continues
        from that row's current length. doc_ids (B, T): tokens attend only within their own document. A decode step
        (one token for each of cache rows 0..B-1, logits wanted) runs `decode`; compiled: as torch.compile'd code."""
        B, T = idx.shape
        if cache is not None and rows is None and T == 1 and not hidden_only:
            return self.decode(idx, cache, compiled)[:, None]
        device = idx.device
        if cache is None:
            start = torch.zeros(B, dtype=torch.long, device=device)
        else:
            rows = None if rows is None else rows.to(device)
            start = cache.lengths[:B] if rows is None else cache.lengths[rows]
        positions = start[:, None] + torch.arange(T, device=device)  # (B, T)
        longest = int(positions.max()) + 1
        self._check_length(longest, cache)
        mask = None
        if cache is None and doc_ids is not None:
            same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]
            causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()
            mask = (same_doc & causal).unsqueeze(1)  # (B, 1, T, T)
        row = None if cache is None or B > 1 else 0 if rows is None else int(rows[0])
        x = self.layers(idx, *self.pass_inputs(positions, longest, cache, row, mask), cache, rows)
        if hidden_only:
            return x
        return self.lm_head(x).float()

    def decode(self, idx: torch.Tensor, cache: KVCache, compiled: bool = False) -> torch.Tensor:
        """A decode step: one token for each of cache rows 0..B-1, idx (B, 1) -> next-token logits (B, V) in fp32;
        each row continues from its own length. compiled: the whole step (positions, rotary, cache writes and
        lengths, layers, vocabulary projection) is one call of torch.compile'd code (model/compiled.py)."""
        span = int(cache.lengths[: idx.shape[0]].max()) + 1  # the longest row's length after this step
        self._check_length(span, cache)
        if compiled:
            return self.compiled_decode().step(idx, cache, span)
        return self.decode_step(idx, cache, span)

    def decode_step(self, idx: torch.Tensor, cache: KVCache, span: int) -> torch.Tensor:
        """`decode` once the span is known: every tensor op of the step and nothing that reads a tensor into Python,
        so that torch.compile takes it whole. The same operations as a forward pass of one token per row."""
        B = idx.shape[0]
        positions = cache.lengths[:B, None]  # (B, 1): each row's next position
        x = self.layers(idx, *self.pass_inputs(positions, span, cache, 0 if B == 1 else None, None), cache, None)
        return self.lm_head(x.flatten(0, 1)).float()

    def _check_length(self, longest: int, cache: KVCache | None) -> None:
        if longest > self.rope_cos.shape[0]:
            raise ValueError(f"sequence of {longest} positions exceeds the model's block_size {self.rope_cos.shape[0]}")
        if cache is not None and longest > cache.max_len:
            raise ValueError(f"sequence of {longest} positions exceeds the KV cache's {cache.max_len}")

    def pass_inputs(self, positions: torch.Tensor, longest: int, cache: KVCache | None, row: int | None,
                    mask: torch.Tensor | None):
        """The rotary rows (cos, sin), the attention mask and the cache slots of a pass over `positions` (B, T),
        the longest row ending at `longest`; row: the cache row of a one-row pass (its writes are slice copies)."""
        B, T = positions.shape
        if B == 1:  # a slice of the table rather than a gather
            cos, sin = (t[longest - T:longest][None, None] for t in (self.rope_cos, self.rope_sin))  # (1, 1, T, rot)
        else:
            cos = self.rope_cos[positions].unsqueeze(1)  # (B, 1, T, rot)
            sin = self.rope_sin[positions].unsqueeze(1)
        slots = None
        if cache is not None:
            slots = CacheSlots(positions, longest, row, None if row is None else longest - T)
            if B > 1 or T > 1:  # (one token of one row sees every key written so far: no mask)
                # Row b's query at position p sees keys 0..p of its own row.
                key_pos = torch.arange(longest, device=positions.device)
                mask = (key_pos[None, None, :] <= positions[:, :, None]).unsqueeze(1)  # (B, 1, T, S)
        return cos, sin, mask, slots

    def compiled_decode(self):
        """The compiled decode step, made on first use and kept: the model compiles once, whatever number of
        engines decode with it."""
        if self._compiled_decode is None:
            from .compiled import CompiledDecode  # imports torch._dynamo: seconds, only for those who compile

            self._compiled_decode = CompiledDecode(self)
        return self._compiled_decode

    def layers(self, idx, cos, sin, mask, slots, cache, rows) -> torch.Tensor:
        """Token ids (B, T) -> final hidden states (B, T, C); writes the pass's keys and values into the cache and
        moves its rows' lengths past them."""
        x = self.wte(idx)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, mask, cache, i, rows, slots)
        if cache is not None:
            cache.lengths[slice(0, idx.shape[0]) if rows is None else rows] = slots.positions[:, -1] + 1
        return self.norm_f(x)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
