"""The machine a measurement ran on: the CPU's name, the instruction sets its matrix products can use and the cores
this process may run on. Hosts differ from run to run (AVX2 only, AVX512-BF16, AMX) and so do their figures: every
benchmark and the quickstart's report state the host beside them."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

# The flags that decide how fast a matrix product runs here, fp32 and bf16 (the rest of /proc/cpuinfo's are noise).
MATMUL_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return ""


def _field(name: str) -> str:
    return next((line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines()
                 if line.split(":", 1)[0].strip() == name), "")


def cpu_name() -> str:
    return _field("model name") or platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    return frozenset(_field("flags").split())


def matmul_flags() -> list[str]:
    """The MATMUL_FLAGS this CPU has, in that order."""
    flags = cpu_flags()
    return [f for f in MATMUL_FLAGS if f in flags]


def cores() -> int:
    """Cores this process may use (its affinity), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def describe() -> dict:
    return {"cpu": cpu_name(), "cores": cores(), "matmul_flags": matmul_flags(), "machine": platform.machine(),
            "python": platform.python_version(), "kernel": platform.release()}


def one_line() -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores (avx2, fma, avx512f, avx512_bf16, amx_bf16, amx_tile), Python 3.11.7'"""
    return f"{cpu_name()}, {cores()} cores ({', '.join(matmul_flags()) or 'no AVX2'}), Python {platform.python_version()}"
