"""GPT behaviour against itself: cached incremental decoding == full recomputation, KV-cache rows at different
positions == separate runs, document mask == separate documents; parameter counts of every preset."""

from __future__ import annotations

import pytest
import torch

from opencodegen.model.config import PRESETS, ModelConfig
from opencodegen.model.transformer import GPT, KVCache

FAMILIES = {
    "codegen-like": ModelConfig.from_preset("tiny-1m", vocab_size=128),
    "qwen-like": ModelConfig(vocab_size=128, block_size=256, n_layer=2, n_embd=64, n_head=4, n_kv_heads=2,
                             intermediate_size=96, qkv_bias=True, tie_embeddings=True, rope_base=1e6,
                             rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}),
}


def model_for(name: str) -> GPT:
    torch.manual_seed(0)
    return GPT(FAMILIES[name]).eval()


@pytest.mark.parametrize("name", list(FAMILIES))
@torch.no_grad()
def test_incremental_decoding_matches_full(name):
    model = model_for(name)
    tokens = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(1))
    full = model(tokens)
    cache = KVCache(model.config, 2, 24)
    pieces = [model(tokens[:, :10], cache=cache)]  # prefill, then one token at a time, then a chunk of 4
    for t in range(10, 20):
        pieces.append(model(tokens[:, t:t + 1], cache=cache))
    pieces.append(model(tokens[:, 20:], cache=cache))
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.lengths.tolist() == [24, 24]


@pytest.mark.parametrize("name", list(FAMILIES))
@torch.no_grad()
def test_rows_at_different_positions_match_separate_runs(name):
    model = model_for(name)
    g = torch.Generator().manual_seed(2)
    a, b = torch.randint(0, 128, (1, 13), generator=g), torch.randint(0, 128, (1, 5), generator=g)
    cache = KVCache(model.config, 4, 32)
    rows_a, rows_b = torch.tensor([3]), torch.tensor([1])
    model(a[:, :12], cache=cache, rows=rows_a)
    model(b[:, :4], cache=cache, rows=rows_b)
    # One batched step: row 3 is at position 12, row 1 at position 4.
    step = model(torch.cat([a[:, 12:], b[:, 4:]]), cache=cache, rows=torch.tensor([3, 1]))
    torch.testing.assert_close(step[0, -1], model(a)[0, -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step[1, -1], model(b)[0, -1], atol=1e-5, rtol=1e-5)
    assert cache.lengths.tolist() == [0, 5, 0, 13]


@pytest.mark.parametrize("name", list(FAMILIES))
@torch.no_grad()
def test_document_mask_matches_separate_documents(name):
    model = model_for(name)
    g = torch.Generator().manual_seed(3)
    docs = [torch.randint(0, 128, (1, n), generator=g) for n in (7, 11, 6)]
    packed = torch.cat(docs, 1)
    doc_ids = torch.cat([torch.full((1, d.shape[1]), i) for i, d in enumerate(docs)], 1)
    got = model(packed, doc_ids=doc_ids)
    # Positions restart per document only through the mask; rotary is relative, so logits match separate runs.
    expected = torch.cat([model(d) for d in docs], 1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model(packed), expected, atol=1e-3)


@pytest.mark.parametrize("preset,overrides", [(p, {}) for p in PRESETS] + [("tiny-1m", {"qk_norm": True})])
def test_n_params_matches_module(preset, overrides):
    config = ModelConfig.from_preset(preset, **overrides)
    with torch.device("meta"):
        model = GPT(config)
    assert config.n_params() == model.num_params()
    embedding = config.vocab_size * config.n_embd
    assert config.n_params(include_embedding=False) == model.num_params() - embedding


def test_tiny_preset_sizes():
    sizes = {p: ModelConfig.from_preset(p).n_params() / 1e6 for p in ("tiny-1m", "tiny-10m", "tiny-30m")}
    assert 0.7 < sizes["tiny-1m"] < 1.5 and 7 < sizes["tiny-10m"] < 13 and 22 < sizes["tiny-30m"] < 38, sizes


@pytest.mark.parametrize("interleaved", [True, False], ids=["gptj-pairs", "half-rotation"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotary_is_the_textbook_rotation_bit_for_bit(interleaved, dtype):
    """apply_rotary (partner by flip/roll, sign folded into the sin table) against the rotation written from its
    definition: pair (a, b) at position p becomes (a·cos - b·sin, b·cos + a·sin) of angle p·inv_freq[i], in fp32,
    cast back to x's dtype; the dims past rotary_dim pass through. Equality is exact: the fast form only moves a sign."""
    from opencodegen.model.rope import apply_rotary, cos_sin_table, inv_frequencies

    rot, D, T = 16, 24, 7
    x = torch.randn(2, 3, T, D, generator=torch.Generator().manual_seed(0)).to(dtype)
    cos, sin = cos_sin_table(rot, 1e4, None, T, interleaved)
    got = apply_rotary(x, cos[None, None], sin[None, None], interleaved)

    angle = torch.outer(torch.arange(T).float(), inv_frequencies(rot, 1e4, None, T)[0])  # (T, rot/2)
    c, s = angle.cos(), angle.sin()
    xf = x[..., :rot].float()
    a, b = (xf[..., 0::2], xf[..., 1::2]) if interleaved else xf.chunk(2, dim=-1)
    ra, rb = a * c - b * s, b * c + a * s
    rotated = torch.stack((ra, rb), dim=-1).flatten(-2) if interleaved else torch.cat((ra, rb), dim=-1)
    want = torch.cat((rotated.to(dtype), x[..., rot:]), dim=-1)
    assert got.dtype == dtype and torch.equal(got, want)
