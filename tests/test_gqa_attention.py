"""Grouped-query attention reads the shared kv heads (SDPA's enable_gqa) and gives what repeating them gives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import opencodegen.model.transformer as transformer
from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT, KVCache

QWEN = dict(parallel_residual=False, norm="rmsnorm", mlp="swiglu", n_kv_heads=2, qkv_bias=True,
            rope_interleaved=False, rotary_dim=8)


def tiny(dtype: torch.dtype, **overrides) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig.from_preset("tiny-1m", vocab_size=256, block_size=64, **overrides)).eval().to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.inference_mode()
def test_grouped_query_attention_reads_shared_heads_as_repeated_ones(dtype):
    """Prefill and decode of a GQA model: logits equal a run where SDPA is handed every kv head repeated (the old
    copy), bit for bit."""
    model = tiny(dtype, **QWEN)
    tokens = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(2))
    real_sdpa = F.scaled_dot_product_attention

    def repeated(q, k, v, *, enable_gqa=False, **kwargs):
        rep = q.shape[1] // k.shape[1]
        return real_sdpa(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), **kwargs)

    def run():
        cache = KVCache(model.config, 2, 32, dtype=dtype)
        out = [model(tokens[:, :12], cache=cache)]
        out += [model(tokens[:, t:t + 1], cache=cache) for t in range(12, 16)]
        return torch.cat(out, 1)

    shared = run()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transformer.F, "scaled_dot_product_attention", repeated)
        copied = run()
    assert torch.equal(shared, copied)
