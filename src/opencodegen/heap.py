"""Keep large freed blocks in the process's heap (glibc's malloc), so that a training step reuses the memory of the
step before instead of asking the kernel for fresh pages.

Why: glibc serves every allocation above its mmap threshold (at most 32 MiB, however it adapts) with a new mmap and
returns it to the kernel on free. A small model's largest tensors (its tokens × vocabulary logits: 32 MiB for 2048
tokens of a 4096-id vocabulary, in fp32) sit at that size, so each step page-faults through them again, and the
kernel zeroes every page first: about 30,000 page faults a step of the quickstart's 3x192 model, against 3,900 with
this setting, whose step ran 1.12-1.19 times as fast on a 2-core AVX2 host (benchmarks/bench_heap.py). PyTorch's
CPU allocator caches nothing, so the fix belongs to malloc: a higher mmap threshold and a trim threshold that keeps
the freed top of the heap. The cost is that a process keeps its peak memory until it exits rather than handing freed
blocks back."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap (a 4096-token batch of an 8192-id vocabulary's fp32 logits is 128 MiB).
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 2**31 - 1  # the largest an int parameter takes


def glibc() -> ctypes.CDLL | None:
    """This process's C library if it is glibc (musl also has a mallopt, which ignores these parameters), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Set glibc's thresholds once for this process; False where malloc is not glibc's (macOS, musl), which is left
    as it is."""
    libc = glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
