"""Muon: the Newton-Schulz orthogonalization against the SVD, one optimizer step computed by hand, and which parameters
it takes (the recipe checks are in test_train_recipe.py)."""

from __future__ import annotations

import math

import pytest
import torch

from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT
from opencodegen.train.optim import make_optimizer
from opencodegen.train.muon import Muon, Optimizers, muon_parameters, orthogonalize
from opencodegen.train.recipe import OptimConfig


@pytest.mark.parametrize("shape", [(64, 64), (48, 160), (160, 48)])
def test_orthogonalize_approximates_u_vt(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u, sg, vt = torch.linalg.svd(g, full_matrices=False)
    o = orthogonalize(g)
    s = torch.diagonal(u.T @ o @ vt.T)  # o's singular values, in the order of g's
    # Keller Jordan's quintic iteration leaves singular values near 1 (roughly 0.7..1.2), not exactly 1; five steps
    # cannot lift the tiniest ones (a square Gaussian matrix has some near 0), so look at those above 5% of the top.
    lifted = s[sg > 0.05 * sg[0]]
    assert len(lifted) > 0.8 * len(s) and 0.5 < float(lifted.min()) and float(s.max()) < 1.3
    # ... with U and V those of the gradient: o is U·diag(s')·Vᵀ, so Uᵀ·o·V is diagonal.
    core = u.T @ o @ vt.T
    off = core - torch.diag(torch.diagonal(core))
    assert float(off.abs().max()) < 1e-6
    assert o.shape == g.shape


def test_orthogonalize_in_bf16_is_close_to_full_precision():
    """The trainer orthogonalizes in bf16 where the hardware multiplies bf16 natively: the result stays in the band
    and within bf16 rounding of the full-precision iteration."""
    g = torch.randn(160, 48, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = orthogonalize(g)
    half = orthogonalize(g, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    assert float((half.double() - exact).norm() / exact.norm()) < 0.05
    s = torch.linalg.svdvals(half.double())
    assert 0.5 < float(s[s > 0.05 * s[0]].min()) and float(s.max()) < 1.3


def first_step(shape, group_options=None, **muon_options):
    """(weights after one Muon step from a random start and gradient, the start, the gradient)."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(*shape))
    g = torch.randn(*shape)
    w0 = w.detach().clone()
    w.grad = g.clone()
    Muon([{"params": [w], **(group_options or {})}], **muon_options).step()
    return w.detach(), w0, g


def test_one_step_by_hand():
    lr, wd, beta = 0.01, 0.1, 0.95
    w, w0, g = first_step((8, 20), lr=lr, weight_decay=wd, momentum=beta)
    # First step: momentum buffer = g; Nesterov update = g + beta * buffer; RMS matched to AdamW: 0.2 * sqrt(20).
    expected = w0 * (1 - lr * wd) - lr * 0.2 * math.sqrt(20) * orthogonalize(g + beta * g)
    assert torch.allclose(w, expected, atol=1e-6)


def test_one_step_with_bf16_orthogonalization_keeps_fp32_weights():
    lr, beta = 0.01, 0.95
    w, w0, g = first_step((8, 20), lr=lr, momentum=beta, ns_dtype=torch.bfloat16)
    assert w.dtype == torch.float32
    expected = w0 - lr * 0.2 * math.sqrt(20) * orthogonalize(g + beta * g, dtype=torch.bfloat16).float()
    assert torch.allclose(w, expected, atol=1e-6)
    fp32_step, _, _ = first_step((8, 20), lr=lr, momentum=beta)
    assert not torch.equal(w, fp32_step)


def test_row_blocks_are_orthogonalized_apart():
    lr, beta, blocks = 0.01, 0.95, [8, 8, 8]
    w, w0, g = first_step((24, 16), {"row_blocks": blocks}, lr=lr, momentum=beta)
    expected = torch.cat([b - lr * 0.2 * math.sqrt(16) * orthogonalize(u + beta * u)
                          for b, u in zip(w0.split(blocks), g.split(blocks))])
    assert torch.allclose(w, expected, atol=1e-6)
    stacked = w0 - lr * 0.2 * math.sqrt(24) * orthogonalize(g + beta * g)
    assert not torch.allclose(w, stacked, atol=1e-4)


@pytest.mark.parametrize("n_kv_heads", [None, 2])
def test_muon_takes_the_blocks_matrices_adamw_the_rest(n_kv_heads):
    model = GPT(ModelConfig.from_preset("tiny-1m", n_kv_heads=n_kv_heads))
    (plain, fused), rest = muon_parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in plain["params"] + fused["params"]} == {
        n for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2}
    assert {names[id(p)] for p in fused["params"]} == {f"blocks.{i}.attn.qkv.weight" for i in range(2)}
    c = model.config
    assert fused["row_blocks"] == [c.n_head * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim]
    assert sum(fused["row_blocks"]) == fused["params"][0].shape[0]
    assert {"wte.weight", "lm_head.weight"} <= {names[id(p)] for p in rest}
    opt = make_optimizer(model, OptimConfig(name="muon", lr=1e-3))
    assert isinstance(opt, Optimizers) and isinstance(opt.optimizers[0], Muon)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert opt.optimizers[0].ns_dtype == torch.float32
    assert make_optimizer(model, OptimConfig(name="muon"), torch.bfloat16).optimizers[0].ns_dtype == torch.bfloat16


def test_state_dict_round_trip():
    model = GPT(ModelConfig.from_preset("tiny-1m"))
    opt = make_optimizer(model, OptimConfig(name="muon", lr=1e-3))
    model(torch.randint(0, 100, (2, 8))).sum().backward()
    opt.step()
    again = make_optimizer(model, OptimConfig(name="muon", lr=1e-3))
    again.load_state_dict(opt.state_dict())
    a, b = opt.optimizers[0].state, again.optimizers[0].state
    assert all(torch.equal(a[p]["momentum_buffer"], b[p]["momentum_buffer"]) for p in a)
