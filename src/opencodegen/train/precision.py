"""Which dtype autocast runs in. "auto" (the default) picks bf16 only where the hardware multiplies bf16 natively:
CUDA devices that support it, and CPUs with AVX512-BF16 or AMX. Elsewhere torch emulates bf16 matmuls and they run
far slower than fp32 (the README's hosts paragraph has the measurement), so fp32 wins. The answer comes from the hardware, not from a timing, so every rank of a run agrees on it."""

from __future__ import annotations

import torch

from .. import host

AUTOCAST_CHOICES = ("auto", "bf16", "fp32")


def cpu_has_native_bf16() -> bool:
    # not Linux: no flags, so no way to tell, and the slow path is the worse mistake
    return bool({"avx512_bf16", "amx_bf16"} & host.cpu_flags())


def resolve_autocast(setting: str, device: str) -> str:
    """'bf16' or 'fp32' for a recipe's run.autocast setting on `device`."""
    if setting != "auto":
        return setting
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device == "cpu" and cpu_has_native_bf16() else "fp32"
