"""The optimizer and its learning-rate schedule, shared by every kind of stage."""

from __future__ import annotations

import math

import torch

from .muon import Muon, Optimizers, muon_parameters
from .recipe import OptimConfig


def lr_at(step: int, total: int, o: OptimConfig) -> float:
    """Linear warmup over warmup_steps, then from lr to lr_end at the last step: a cosine, or for "wsd" (MiniCPM's
    warmup-stable-decay) lr held until the last decay_fraction of the steps, then a straight line down."""
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    span = max(1, total - o.warmup_steps)
    progress = min(1.0, (step - o.warmup_steps) / span)
    if o.schedule == "wsd":
        return o.lr - (o.lr - o.lr_end) * max(0.0, 1 - (1 - progress) / o.decay_fraction)
    return o.lr_end + 0.5 * (o.lr - o.lr_end) * (1 + math.cos(math.pi * progress))


def length_free(o: OptimConfig) -> bool:
    """True when lr_at gives every step the same rate whatever the stage's length (lr_end equal to lr: after the
    warmup, which is counted in steps, the rate is constant), so a stage may stop at any step with the schedule it
    would have had at that length."""
    return o.lr_end == o.lr


def make_optimizer(model: torch.nn.Module, o: OptimConfig, matmul_dtype: torch.dtype = torch.float32
                   ) -> torch.optim.Optimizer | Optimizers:
    """matmul_dtype: the autocast dtype, which Muon's orthogonalization then runs in too."""
    # No weight decay on 1-D parameters (biases, norm gains), as in CodeGen/GPT-2.
    def adamw(params: list[torch.nn.Parameter]) -> torch.optim.AdamW:
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": o.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        # Fused on CPU too: one kernel per parameter instead of foreach's chain of ops makes the whole training step
        # faster for the small models (benchmarks/bench_train.py uses this same optimizer).
        return torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, fused=True)

    if o.name == "muon":
        groups, rest = muon_parameters(model)
        return Optimizers([Muon(groups, lr=o.lr, weight_decay=o.weight_decay, ns_dtype=matmul_dtype), adamw(rest)])
    return adamw([p for p in model.parameters() if p.requires_grad])
