"""The fused cross-entropy + z-loss against torch's cross_entropy and logsumexp: values, gradients (gradcheck in
float64), and bf16 logits under autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from opencodegen.train.loss import cross_entropy_and_z


def reference(logits, targets, z):
    flat = logits.reshape(-1, logits.shape[-1]).float()
    ce = F.cross_entropy(flat, targets.reshape(-1))
    return ce, ce + z * torch.logsumexp(flat, dim=-1).pow(2).mean()


@pytest.mark.parametrize("z", [0.0, 1e-4, 0.5])
def test_matches_cross_entropy_and_logsumexp_with_gradients(z):
    torch.manual_seed(0)
    logits = (3 * torch.randn(2, 5, 17, dtype=torch.float64)).requires_grad_()
    targets = torch.randint(0, 17, (2, 5))
    ce, zz = cross_entropy_and_z(logits, targets)
    ref_ce, ref_loss = reference(logits, targets, z)
    assert torch.allclose(ce.double(), ref_ce.double()) and torch.allclose((ce + z * zz).double(), ref_loss.double())
    grad, = torch.autograd.grad(ce + z * zz, logits)
    ref_grad, = torch.autograd.grad(ref_loss, logits)
    assert torch.allclose(grad, ref_grad, atol=1e-12)


def test_gradcheck():
    torch.manual_seed(1)
    logits = torch.randn(6, 11, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (6,))
    assert torch.autograd.gradcheck(lambda x: cross_entropy_and_z(x, targets), (logits,))


def test_bf16_logits_match_the_fp32_reference_in_value_and_gradient():
    torch.manual_seed(2)
    w = torch.randn(32, 64, requires_grad=True)
    h = torch.randn(40, 32)
    targets = torch.randint(0, 64, (40,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = h @ w
        assert logits.dtype == torch.bfloat16
        ce, z = cross_entropy_and_z(logits, targets)
        ref_ce, ref_loss = reference(logits, targets, 1e-2)
    assert ce.dtype == torch.float32
    assert torch.allclose(ce, ref_ce) and torch.allclose(ce + 1e-2 * z, ref_loss)
    grad, = torch.autograd.grad(ce + 1e-2 * z, w, retain_graph=True)
    ref_grad, = torch.autograd.grad(ref_loss, w)
    assert torch.allclose(grad, ref_grad, rtol=1e-2, atol=1e-4)
