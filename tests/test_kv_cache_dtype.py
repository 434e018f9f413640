"""Attention over a KV cache runs in the cache's dtype (transformer.kv_cache_dtype: fp32 on a CPU): a bf16 model's
keys and values are stored exactly, its decode attention is ATen's SDPA over fp32 operands, and the result equals
attention computed by hand in fp32 from the bf16-rounded projections. Grouped-query attention reads the shared kv heads
(enable_gqa) and gives what repeating them gives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import opencodegen.model.transformer as transformer
from eval_tiny import ByteTokenizer
from opencodegen.engine import Engine
from opencodegen.model.config import ModelConfig
from opencodegen.model.rope import apply_rotary
from opencodegen.model.transformer import GPT, KVCache, kv_cache_dtype

QWEN = dict(parallel_residual=False, norm="rmsnorm", mlp="swiglu", n_kv_heads=2, qkv_bias=True,
            rope_interleaved=False, rotary_dim=8)


def tiny(dtype: torch.dtype, **overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig.from_preset("tiny-1m", vocab_size=256, block_size=64, **overrides)).eval().to(dtype)


def test_cpu_caches_are_fp32_whatever_the_weights():
    for weights in (torch.float32, torch.bfloat16, torch.float16):
        assert kv_cache_dtype(weights, "cpu") == torch.float32
    assert kv_cache_dtype(torch.bfloat16, "cuda") == torch.bfloat16
    engine = Engine(tiny(torch.bfloat16), ByteTokenizer(), slots=2, max_len=32)
    assert {t.dtype for t in engine.cache.k + engine.cache.v} == {torch.float32}


@pytest.mark.parametrize("family", ["codegen", "qwen"])
@torch.inference_mode()
def test_bf16_decode_attends_in_fp32_over_exact_keys(family, monkeypatch):
    """A decode step of a bf16 model over an fp32 cache: the stored keys and values are bf16 numbers (the projection's
    rounding, nothing added), layer 0's attention is SDPA over fp32 q, k, v, and its output is what the textbook
    formula gives in fp32 from the layer's own bf16 projections of the same tokens (GQA: kv heads repeated)."""
    model = tiny(torch.bfloat16, **(QWEN if family == "qwen" else {}))
    c = model.config
    tokens = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(1))
    cache = KVCache(c, 1, 32, dtype=torch.float32)
    model(tokens[:, :11], cache=cache, rows=torch.tensor([0]))
    seen = []
    real_sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        y = real_sdpa(q, k, v, **kwargs)
        seen.append((q, k, v, y))
        return y

    monkeypatch.setattr(transformer.F, "scaled_dot_product_attention", spy)
    model.decode(tokens[:, 11:], cache)
    q, k, v, y = seen[0]  # layer 0
    assert len(seen) == c.n_layer and {t.dtype for t in (q, k, v, y)} == {torch.float32}
    for t in cache.k + cache.v:
        assert torch.equal(t, t.bfloat16().float())

    # Layer 0 by hand over all 12 tokens: its projections in bf16 (the model's rounding), attention in fp32.
    block = model.blocks[0]
    H, KV, D = c.n_head, c.n_kv_heads, c.head_dim
    qkv = block.attn.qkv(block.norm_1(model.wte(tokens))).view(1, 12, H + 2 * KV, D).transpose(1, 2)
    rot = c.rotary_dim or D
    cos, sin = model.rope_cos[:12][None, None], model.rope_sin[:12][None, None]
    qk = apply_rotary(qkv[:, :H + KV], cos[..., :rot], sin[..., :rot], c.rope_interleaved)
    q_ref, k_ref, v_ref = qk[:, :H].float(), qk[:, H:].float(), qkv[:, H + KV:].float()
    k_ref, v_ref = k_ref.repeat_interleave(H // KV, 1), v_ref.repeat_interleave(H // KV, 1)
    scores = q_ref[:, :, -1:] @ k_ref.transpose(-1, -2) / D ** 0.5  # (1, H, 1, 12)
    expected = scores.softmax(-1) @ v_ref
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(k[:, :, :12], cache.k[0][:, :, :12])


@torch.inference_mode()
def test_grouped_query_attention_reads_shared_heads_as_repeated_ones():
    """Prefill and decode of a GQA model: logits equal a run where SDPA is handed every kv head repeated (the old
    copy), bit for bit."""
    model = tiny(torch.float32, **QWEN)
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(2))
    real_sdpa = F.scaled_dot_product_attention

    def repeated(q, k, v, *, enable_gqa=False, **kwargs):
        rep = q.shape[1] // k.shape[1]
        return real_sdpa(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), **kwargs)

    def run():
        cache = KVCache(model.config, 2, 32)
        out = [model(tokens[:, :12], cache=cache)]
        out += [model(tokens[:, t:t + 1], cache=cache) for t in range(12, 16)]
        return torch.cat(out, 1)

    shared = run()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transformer.F, "scaled_dot_product_attention", repeated)
        copied = run()
    assert torch.equal(shared, copied)
