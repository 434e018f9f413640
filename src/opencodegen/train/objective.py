"""What a kind of stage supplies to the one stage runner (train/stage.py).

The runner owns everything every kind shares: the model and its weights, the optimizer and learning-rate schedule,
gradient accumulation under DDP/FSDP, autocast, clipping, the divergence check, progress, logging, checkpoints and
exact resume. An objective owns only what differs between kinds: which micro-batches a step has and the loss of one.

Exact resume holds for every kind as long as `batches(step)` is a function of the step, the weights and the
objective's `state_dict()` (which the checkpoint keeps), seeded from (run seed, stage index, step): what each objective
guarantees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class MicroBatch:
    """One forward/backward pass's worth of this rank's data; objectives put what their loss needs in `data`."""

    data: dict[str, torch.Tensor]


class Objective:
    """Base class: pretraining, SFT, DPO and RL each subclass it."""

    kind = "objective"

    def setup(self, model: torch.nn.Module, ctx: Any) -> None:
        """Called once the model has its starting weights and is on its device (a reference copy is taken here)."""

    def batches(self, step: int, model: torch.nn.Module) -> list[MicroBatch]:
        """This rank's micro-batches for optimizer step `step`. `model` is the unwrapped model (RL samples from it)."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(value to report, which must stay finite; value to backpropagate, already divided so that summing over the
        step's micro-batches gives the step's loss; per-micro-batch metrics to average)."""
        raise NotImplementedError

    def step_metrics(self) -> dict[str, float]:
        """Numbers measured while building the last step's batches (rewards, sampling speed), for the log."""
        return {}

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Validation numbers, every run.eval_every steps; 'val_loss' (if present) picks the best checkpoint."""
        return {}

    def tokens_in(self, batch: MicroBatch) -> int:
        """Tokens a micro-batch trains on, for throughput."""
        return int(sum(t.numel() for k, t in batch.data.items() if k == "tokens"))

    def state_dict(self) -> dict[str, Any]:
        """What the objective learned while training that its next batches depend on (JSON), for the checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The state a checkpoint kept (`state_dict()`'s), when resuming."""

    def close(self) -> None:
        """Releases what setup() started (a sandbox, say)."""
