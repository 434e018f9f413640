"""Qwen3ForCausalLM: Llama's layout plus an RMSNorm over each head's query and key (qk_norm), attention biases all
or none, no MLP bias; head_dim is its own field (default 128), not hidden_size / heads."""

from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from .llama import Llama


class Qwen3(Llama):
    architecture = "Qwen3ForCausalLM"
    model_type = "qwen3"
    default_head_dim = 128  # Qwen3Config's default

    def switches_from_hf(self, hf: dict[str, Any]) -> dict[str, bool]:
        bias = bool(hf.get("attention_bias", False))
        return {"qkv_bias": bias, "attn_out_bias": bias, "mlp_bias": False, "qk_norm": True}

    def switch_requirements(self, c: ModelConfig) -> dict[str, bool]:
        return {"qk_norm": c.qk_norm, "q/k/v/o bias all or none": c.qkv_bias == c.attn_out_bias,
                "no mlp_bias": not c.mlp_bias}

    def switches_to_hf(self, c: ModelConfig) -> dict[str, Any]:
        return {"use_sliding_window": False, "sliding_window": None, "max_window_layers": c.n_layer,
                "attention_bias": c.qkv_bias}
