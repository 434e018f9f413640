"""Rotary position embeddings: inverse frequencies (plain, linear-scaled, YaRN), the cos/sin table, and the two
rotation conventions (GPT-J interleaved pairs for CodeGen, NeoX/Llama half rotation for Qwen2/Qwen3/Llama)."""

from __future__ import annotations

import math
from typing import Any

import torch


def inv_frequencies(dim: int, base: float, scaling: dict[str, Any] | None, block_size: int) -> tuple[torch.Tensor, float]:
    """Returns (inv_freq of shape (dim/2,), attention_factor that multiplies cos and sin)."""
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    inv_freq = 1.0 / (base**exponents)
    if not scaling:
        return inv_freq, 1.0
    factor = float(scaling["factor"])
    if scaling["type"] == "linear":  # positions divided by factor == frequencies divided by factor
        return inv_freq / factor, 1.0
    # YaRN (Peng et al. 2023): keep high frequencies (many rotations within the original context), interpolate low
    # ones by `factor`, ramp linearly in between; scale attention by 0.1·ln(factor)+1.
    original = int(scaling.get("original_max_position_embeddings") or block_size)
    beta_fast, beta_slow = float(scaling.get("beta_fast", 32)), float(scaling.get("beta_slow", 1))

    def correction_dim(n_rotations: float) -> float:
        return (dim * math.log(original / (n_rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if scaling.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolate = 1 - ramp  # 1 where the dimension keeps its original frequency
    inv_freq = (inv_freq / factor) * (1 - extrapolate) + inv_freq * extrapolate
    attention_factor = scaling.get("attention_factor")
    if attention_factor is None:
        attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv_freq, float(attention_factor)


def cos_sin_table(dim: int, base: float, scaling: dict[str, Any] | None, n_positions: int, interleaved: bool):
    """cos and signed sin, each (n_positions, dim) in fp32, laid out for apply_rotary's convention. The rotation of a
    pair (a, b) by angle t is (a·cos t - b·sin t, b·cos t + a·sin t) = x·cos + partner·sin with partner = (b, a) and
    sin's entry for the pair's first element negated: the sign lives in the table, so decoding pays no negation."""
    inv_freq, attention_factor = inv_frequencies(dim, base, scaling, n_positions)
    angles = torch.outer(torch.arange(n_positions, dtype=torch.int64).float(), inv_freq)  # (T, dim/2)
    # Interleaved pairs (x0,x1),(x2,x3)… need each angle twice in a row; half rotation pairs x_i with x_{i+dim/2}.
    sign = torch.tensor([-1.0, 1.0])
    if interleaved:
        angles, sign = angles.repeat_interleave(2, dim=-1), sign.repeat(dim // 2)
    else:
        angles, sign = torch.cat([angles, angles], dim=-1), sign.repeat_interleave(dim // 2)
    return angles.cos() * attention_factor, angles.sin() * attention_factor * sign


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool) -> torch.Tensor:
    """Rotates the first cos.shape[-1] dims of x (B, H, T, D) in fp32 and returns x's dtype; cos/sin (cos_sin_table:
    sin is signed) broadcast as (B or 1, 1, T, rot). Each pair's partner is one flip (interleaved) or one roll (half
    rotation) of x: decoding is bound by the number of ops per layer. Negating the table rather than x is exact
    (-b·s == b·(-s) in IEEE arithmetic), so this gives the textbook formula's values bit for bit."""
    rot = cos.shape[-1]
    partial = rot < x.shape[-1]
    x_rot = (x[..., :rot] if partial else x).float()
    if interleaved:
        partner = x_rot.unflatten(-1, (rot // 2, 2)).flip(-1).flatten(-2)
    else:
        partner = x_rot.roll(rot // 2, dims=-1)
    out = (x_rot * cos + partner * sin).to(x.dtype)
    return torch.cat((out, x[..., rot:]), dim=-1) if partial else out
