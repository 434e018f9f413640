"""LlamaForCausalLM: sequential pre-norm blocks with RMSNorm, SwiGLU, grouped-query attention, half rotation on all
head dims, separate q/k/v projections; attention biases all or none (attention_bias), MLP biases optional (mlp_bias).
Qwen2 and Qwen3 share this layout and differ in the biases and norms they allow, so they subclass it."""

from __future__ import annotations

from typing import Any

import torch

from ...errors import UserError
from ..config import ModelConfig
from .base import HFFamily, qkv_sizes, require


class Llama(HFFamily):
    architecture = "LlamaForCausalLM"
    model_type = "llama"
    ignored_suffixes = (".rotary_emb.inv_freq",)
    default_head_dim: int | None = None  # None: hidden_size / num_attention_heads

    # ---- what differs between the Llama-style families ----------------------------------------------------------
    def switches_from_hf(self, hf: dict[str, Any]) -> dict[str, bool]:
        bias = bool(hf.get("attention_bias", False))
        return {"qkv_bias": bias, "attn_out_bias": bias, "mlp_bias": bool(hf.get("mlp_bias", False)),
                "qk_norm": False}

    def switch_requirements(self, c: ModelConfig) -> dict[str, bool]:
        return {"no qk_norm": not c.qk_norm, "q/k/v/o bias all or none": c.qkv_bias == c.attn_out_bias}

    def switches_to_hf(self, c: ModelConfig) -> dict[str, Any]:
        return {"attention_bias": c.qkv_bias, "mlp_bias": c.mlp_bias, "pretraining_tp": 1}

    # ---- the shared layout ----------------------------------------------------------------------------------------
    def config_from_hf(self, hf: dict[str, Any], name: str, where: str) -> ModelConfig:
        act = hf.get("hidden_act", "silu")
        if act != "silu":
            raise UserError(f"{where}: field 'hidden_act' is {act!r}; only silu is supported")
        if hf.get("use_sliding_window"):
            raise UserError(f"{where}: use_sliding_window=true is not supported")
        base, scaling = rope_from_hf(hf, where)
        eos = hf.get("eos_token_id")
        return ModelConfig(
            name=name, vocab_size=require(hf, "vocab_size", where),
            block_size=require(hf, "max_position_embeddings", where), n_layer=require(hf, "num_hidden_layers", where),
            n_embd=require(hf, "hidden_size", where), n_head=require(hf, "num_attention_heads", where),
            n_kv_heads=hf.get("num_key_value_heads"), head_dim=hf.get("head_dim", self.default_head_dim),
            intermediate_size=require(hf, "intermediate_size", where), parallel_residual=False, norm="rmsnorm",
            norm_eps=hf.get("rms_norm_eps", 1e-6), mlp="swiglu", **self.switches_from_hf(hf),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)), rope_base=base, rope_scaling=scaling,
            bos_token_id=hf.get("bos_token_id"), eos_token_id=eos[0] if isinstance(eos, list) else eos)

    def requirements(self, c: ModelConfig) -> dict[str, bool]:
        return {
            "not parallel_residual": not c.parallel_residual, "norm == rmsnorm": c.norm == "rmsnorm",
            "mlp == swiglu": c.mlp == "swiglu", "no lm_head_bias": not c.lm_head_bias,
            "not rope_interleaved": not c.rope_interleaved, "rotary_dim == head_dim": c.rotary_dim == c.head_dim,
            **self.switch_requirements(c),
        }

    def config_to_hf(self, c: ModelConfig) -> dict[str, Any]:
        hf = {"hidden_size": c.n_embd, "intermediate_size": c.intermediate_size, "num_hidden_layers": c.n_layer,
              "num_attention_heads": c.n_head, "num_key_value_heads": c.n_kv_heads, "head_dim": c.head_dim,
              "max_position_embeddings": c.block_size, "rms_norm_eps": c.norm_eps, "hidden_act": "silu",
              "rope_theta": c.rope_base, "attention_dropout": 0.0}
        if c.rope_scaling:
            # Both spellings of the type key: "rope_type" (transformers >= 4.45, vLLM) and "type" (older readers).
            hf["rope_scaling"] = {**{k: v for k, v in c.rope_scaling.items() if k != "type"},
                                  "rope_type": c.rope_scaling["type"], "type": c.rope_scaling["type"]}
        return {**hf, **self.switches_to_hf(c)}

    def names(self, c: ModelConfig) -> dict[str, str]:
        names = {"wte.weight": "model.embed_tokens.weight", "norm_f.weight": "model.norm.weight",
                 "lm_head.weight": "lm_head.weight"}
        layer = {"norm_1.weight": "input_layernorm.weight", "norm_2.weight": "post_attention_layernorm.weight",
                 "attn.proj.weight": "self_attn.o_proj.weight", "attn.proj.bias": "self_attn.o_proj.bias",
                 "attn.q_norm.weight": "self_attn.q_norm.weight", "attn.k_norm.weight": "self_attn.k_norm.weight",
                 "mlp.gate.weight": "mlp.gate_proj.weight", "mlp.gate.bias": "mlp.gate_proj.bias",
                 "mlp.fc.weight": "mlp.up_proj.weight", "mlp.fc.bias": "mlp.up_proj.bias",
                 "mlp.proj.weight": "mlp.down_proj.weight", "mlp.proj.bias": "mlp.down_proj.bias"}
        for i in range(c.n_layer):
            names.update({f"blocks.{i}.{ours}": f"model.layers.{i}.{theirs}" for ours, theirs in layer.items()})
        return names

    def qkv_to_hf(self, sd: dict[str, torch.Tensor], c: ModelConfig, layer: int) -> dict[str, torch.Tensor]:
        out = {}
        for kind in ("weight", "bias") if c.qkv_bias else ("weight",):
            parts = sd[f"blocks.{layer}.attn.qkv.{kind}"].split(qkv_sizes(c), 0)
            out.update({f"model.layers.{layer}.self_attn.{p}_proj.{kind}": t.contiguous()
                        for p, t in zip("qkv", parts)})
        return out

    def qkv_from_hf(self, hf: dict[str, torch.Tensor], c: ModelConfig, layer: int) -> dict[str, torch.Tensor]:
        pre = f"model.layers.{layer}.self_attn"
        return {f"blocks.{layer}.attn.qkv.{kind}": torch.cat([hf[f"{pre}.{p}_proj.{kind}"] for p in "qkv"], 0)
                for kind in (("weight", "bias") if c.qkv_bias else ("weight",))}


def rope_from_hf(hf: dict[str, Any], where: str) -> tuple[float, dict[str, Any] | None]:
    """rope_theta + rope_scaling (transformers 4.x) or rope_parameters (5.x) -> (base, our rope_scaling)."""
    params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    base = float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return base, None
    if kind not in ("linear", "yarn"):
        raise UserError(f"{where}: rope scaling type {kind!r} is not supported (only linear and yarn)")
    if float(params.get("partial_rotary_factor", 1.0)) != 1.0:
        raise UserError(f"{where}: partial_rotary_factor is not supported for this architecture")
    scaling: dict[str, Any] = {"type": kind, "factor": float(require(params, "factor", where + " rope scaling"))}
    if kind == "yarn":
        # Pinned explicitly so a later change of block_size cannot move the interpolation ramp.
        scaling["original_max_position_embeddings"] = int(
            params.get("original_max_position_embeddings") or hf["max_position_embeddings"])
        for key in ("beta_fast", "beta_slow", "attention_factor", "truncate"):
            if params.get(key) is not None:
                scaling[key] = params[key]
        if params.get("mscale") or params.get("mscale_all_dim"):
            raise UserError(f"{where}: yarn mscale/mscale_all_dim are not supported")
    return base, scaling
