"""Qwen2ForCausalLM (Qwen2, Qwen2.5, Qwen2.5-Coder): Llama's layout with biases on q, k and v only, none on the
output projection or the MLP."""

from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from .llama import Llama


class Qwen2(Llama):
    architecture = "Qwen2ForCausalLM"
    model_type = "qwen2"

    def switches_from_hf(self, hf: dict[str, Any]) -> dict[str, bool]:
        return {"qkv_bias": True, "attn_out_bias": False, "mlp_bias": False, "qk_norm": False}

    def switch_requirements(self, c: ModelConfig) -> dict[str, bool]:
        return {"no qk_norm": not c.qk_norm, "qkv_bias": c.qkv_bias, "no attn_out_bias": not c.attn_out_bias,
                "no mlp_bias": not c.mlp_bias}

    def switches_to_hf(self, c: ModelConfig) -> dict[str, Any]:
        return {"use_sliding_window": False, "sliding_window": None, "max_window_layers": c.n_layer}
