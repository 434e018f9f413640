"""What the user sees and keeps: JSONL metrics log, TensorBoard events, loss-curve PNG per stage, MFU."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch


def measure_peak_flops(dtype: torch.dtype, device: str = "cpu", n: int = 1024, repeats: int = 3) -> float:
    """FLOP/s of a square matmul in the training dtype, measured now on this device: the MFU denominator."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


class MetricsLog:
    """Appends one JSON object per line; on resume, lines past the checkpoint's step are dropped first so the log
    reads as one uninterrupted run."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def truncate(self, stage: str, step: int) -> None:
        if not (self.enabled and self.path.is_file()):
            return
        keep = []
        seen_stage = False
        for line in self.path.read_text().splitlines():
            rec = json.loads(line)
            if rec["stage"] == stage:
                seen_stage = True
                if rec["step"] > step:
                    continue
            elif seen_stage:
                continue  # a later stage than the one being resumed
            keep.append(line)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        tmp.replace(self.path)

    def write(self, record: dict[str, Any], global_step: int) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("step",):
                self.tb.add_scalar(f"{record['stage']}/{k}", v, global_step)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def smoothed(values: list[float], beta: float = 0.9) -> list[float]:
    """Bias-corrected exponential moving average (as TensorBoard's smoothing): the first points are not pulled
    towards zero."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


def plot_stage(records: list[dict[str, Any]], stage: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in records if r["stage"] == stage and "loss" in r]
    valid = [(r["step"], r["val_loss"]) for r in records if r["stage"] == stage and "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", lw=0.8, alpha=0.4)
        # Small token batches make the per-step loss noisy; the trend is what the eye wants.
        ax.plot([s for s, _ in train], smoothed([v for _, v in train]), label="train loss (EMA, 0.9)", lw=1.5)
    if valid:
        ax.plot(*zip(*valid), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"stage {stage}")
    ax.legend(loc="upper left")
    reward = [(r["step"], r["pass_rate"]) for r in records if r["stage"] == stage and "pass_rate" in r]
    if reward:  # rl and sampled-dpo stages: what the judge says matters more than the loss
        right = ax.twinx()
        right.plot(*zip(*reward), color="tab:green", lw=0.8, alpha=0.4)
        right.plot([s for s, _ in reward], smoothed([v for _, v in reward]), color="tab:green", lw=1.5,
                   label="pass rate of samples (EMA, 0.9)")
        right.set_ylabel("pass rate")
        right.set_ylim(0, 1)
        right.legend(loc="upper right")
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
