"""The training loss: token cross-entropy plus PaLM's z-loss (z · mean(log Z)²), computed from one log-sum-exp.

Why not F.cross_entropy plus a separate torch.logsumexp: with an 8192-token vocabulary the (tokens × vocabulary)
logits are the largest tensor of a small model's step, and that pair normalizes them twice in each direction (a
log-softmax, then a log-sum-exp, each with its own backward). This normalizes once each way, and saves the logits in
their autocast dtype rather than an fp32 log-softmax. The gradient is softmax · (g_ce + 2·g_z·log Z) / N, minus g_ce / N
at each target, where g_ce and g_z are the gradients arriving at the two outputs."""

from __future__ import annotations

import torch


def _accumulation_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.promote_types(logits.dtype, torch.float32)  # fp32 for bf16/fp16 logits, float64 stays float64


class _CrossEntropyAndZ(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = logits.to(_accumulation_dtype(logits))
        lse = torch.logsumexp(x, dim=-1)
        ce = (lse - x.gather(-1, targets[:, None]).squeeze(-1)).mean()
        ctx.save_for_backward(logits, targets, lse)
        return ce, lse.pow(2).mean()

    @staticmethod
    def backward(ctx, d_ce: torch.Tensor, d_z: torch.Tensor):
        logits, targets, lse = ctx.saved_tensors
        n = logits.shape[0]
        grad = logits.to(_accumulation_dtype(logits), copy=True).sub_(lse[:, None]).exp_()  # the softmax
        grad.mul_(((d_ce + 2 * d_z * lse) / n)[:, None])
        grad[torch.arange(n, device=grad.device), targets] -= d_ce / n
        return grad.to(logits.dtype), None


def cross_entropy_and_z(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, mean (log Z)²) of logits (..., V) against integer targets (...), both in fp32 (float64 for
    float64 logits)."""
    return _CrossEntropyAndZ.apply(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
