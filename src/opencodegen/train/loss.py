"""The training loss: token cross-entropy plus PaLM's z-loss (z · mean(log Z)²), computed from one log-sum-exp.

Why not F.cross_entropy plus a separate torch.logsumexp: with an 8192-token vocabulary the (tokens × vocabulary)
logits are the largest tensor of a small model's step, and that pair normalizes them twice in each direction (a
log-softmax, then a log-sum-exp, each with its own backward). This normalizes once: fp32 logits' exponentials are
kept for the backward, and low-precision logits are saved in their autocast dtype rather than as an fp32
log-softmax. The gradient is softmax · (g_ce + 2·g_z·log Z) / N, minus g_ce / N
at each target, where g_ce and g_z are the gradients arriving at the two outputs."""

from __future__ import annotations

import torch


def _accumulation_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.promote_types(logits.dtype, torch.float32)  # fp32 for bf16/fp16 logits, float64 stays float64


class _CrossEntropyAndZ(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        acc = _accumulation_dtype(logits)
        x = logits.to(acc)
        top = x.amax(dim=-1, keepdim=True)
        exp = (x - top).exp_()  # exp(x - max): the forward's only tensor as large as the logits
        total = exp.sum(dim=-1)
        lse = top.squeeze(-1) + total.log()
        ce = (lse - x.gather(-1, targets[:, None]).squeeze(-1)).mean()
        # Logits already in the accumulation dtype (fp32 training): keep the exponentials for the backward, which
        # then needs one pass over them instead of four (copy, subtract, exponentiate, scale); the logits themselves
        # are then free. Low-precision logits are kept instead, at half the memory, and exponentiated again.
        keep = exp if logits.dtype == acc else logits
        ctx.save_for_backward(keep, targets, lse, total)
        return ce, lse.pow(2).mean()

    @staticmethod
    def backward(ctx, d_ce: torch.Tensor, d_z: torch.Tensor):
        kept, targets, lse, total = ctx.saved_tensors
        n = kept.shape[0]
        scale = (d_ce + 2 * d_z * lse) / n
        if kept.dtype == lse.dtype:  # exp(x - max): the softmax is exp / total
            grad = kept * (scale / total)[:, None]
        else:  # the low-precision logits: softmax = exp(x - lse)
            grad = kept.to(lse.dtype, copy=True).sub_(lse[:, None]).exp_().mul_(scale[:, None])
        grad[torch.arange(n, device=grad.device), targets] -= d_ce / n
        return grad.to(kept.dtype), None  # (kept has the logits' dtype either way)


def cross_entropy_and_z(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, mean (log Z)²) of logits (..., V) against integer targets (...), both in fp32 (float64 for
    float64 logits)."""
    return _CrossEntropyAndZ.apply(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
