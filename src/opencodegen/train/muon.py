"""Muon (momentum orthogonalized by Newton-Schulz; Jordan et al. 2024, as scaled in Moonlight, Liu et al. 2025) for
the 2-D weight matrices inside the blocks, with AdamW for everything else (embeddings, the output head, biases and
norm gains), the split used by modded-nanogpt and Moonlight.

Why our own rather than torch.optim.Muon: torch's always orthogonalizes in bf16, which CPUs without AVX512-BF16/AMX
emulate far slower than fp32 (there a Muon step cost more than the whole forward and backward). This one iterates in
`ns_dtype`, which the trainer sets to its autocast dtype: bf16 where the hardware multiplies bf16 natively (as Keller
Jordan's Muon does on GPUs), fp32 elsewhere.

The update of a matrix of shape (A, B) is scaled by 0.2·sqrt(max(A, B)) so that its RMS matches AdamW's (Moonlight's
"match_rms_adamw"): the recipe's lr and weight decay then mean the same for both optimizers.

A parameter group may name `row_blocks`: its matrices are several stacked along the rows, and each block is
orthogonalized (and scaled) on its own. The attention's fused q|k|v projection is three matrices: orthogonalizing the
stack as one would share one set of singular values between q, k and v (modded-nanogpt orthogonalizes them apart).
On the quickstart recipe (scored on its first 50 held-out files), apart trained to 1.816 bits per byte against 1.859
for the stack, and most of the gain is context use: on tokens that repeat a (previous token, token) pair seen earlier
in the window the loss fell from 3.80 to 3.59 nats, on the others only from 4.81 to 4.77."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .distributed import unwrap

# Keller Jordan's quintic coefficients: the iteration pushes singular values towards ~1 in five steps.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def orthogonalize(g: torch.Tensor, steps: int = NS_STEPS, eps: float = 1e-7, dtype: torch.dtype | None = None
                  ) -> torch.Tensor:
    """Approximately U·Vᵀ of g = U·S·Vᵀ by a Newton-Schulz iteration on the smaller Gram matrix, in `dtype` (default:
    g's)."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype or g.dtype)
    x = x / x.norm().clamp(min=eps)  # spectral norm <= Frobenius norm <= 1: inside the iteration's basin
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.95, nesterov: bool = True,
                 ns_dtype: torch.dtype = torch.float32):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                                      row_blocks=None))
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(beta).add_(p.grad)
                update = p.grad.add(buf, alpha=beta) if group["nesterov"] else buf
                p.mul_(1 - group["lr"] * group["weight_decay"])
                blocks = group["row_blocks"] or [p.shape[0]]
                for rows, u in zip(p.split(blocks), update.split(blocks), strict=True):
                    rows.add_(orthogonalize(u, dtype=self.ns_dtype), alpha=-group["lr"] * 0.2 * math.sqrt(max(u.shape)))


def muon_parameters(model: nn.Module) -> tuple[list[dict[str, Any]], list[nn.Parameter]]:
    """(Muon's parameter groups, the rest for AdamW): Muon takes the 2-D weights of Linear layers inside the blocks,
    the fused q|k|v projections in a group of their own with their row blocks; the token embedding and the output
    head are lookups/classifiers over the vocabulary, not transforms, and stay on AdamW like every 1-D parameter."""
    config = unwrap(model).config
    qkv_rows = [config.n_head * config.head_dim] + [config.n_kv_heads * config.head_dim] * 2
    fused, plain = [], []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and ".blocks." in f".{name}" and module.weight.requires_grad:
            (fused if name.endswith(".attn.qkv") else plain).append(module.weight)
    inner = {id(p) for p in fused + plain}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in inner]
    return [{"params": plain}, {"params": fused, "row_blocks": qkv_rows}], rest


class Optimizers:
    """Several optimizers stepped as one: what the training loop, the LR schedule and checkpoints see."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for o in self.optimizers for g in o.param_groups]

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        for o, s in zip(self.optimizers, sd["optimizers"], strict=True):
            o.load_state_dict(s)
