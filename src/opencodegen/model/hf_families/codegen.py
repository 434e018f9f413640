"""CodeGenForCausalLM (Salesforce CodeGen 1/2, GPT-J's block): one shared LayerNorm before a parallel attention and
gelu MLP, interleaved rotary on the first rotary_dim dims, biases on the MLP and the head, and a fused qkv whose rows
are laid out for 4-way model parallelism."""

from __future__ import annotations

from typing import Any

import torch

from ...errors import UserError
from ..config import ModelConfig
from .base import HFFamily, qkv_sizes, require

MP_NUM = 4  # CodeGen's fused qkv rows are mp_num blocks of (q, v, k), whatever the model size


class CodeGen(HFFamily):
    architecture = "CodeGenForCausalLM"
    model_type = "codegen"
    ignored_suffixes = (".attn.causal_mask", ".attn.masked_bias", ".attn.bias")

    def config_from_hf(self, hf: dict[str, Any], name: str, where: str) -> ModelConfig:
        act = hf.get("activation_function", "gelu_new")
        if act != "gelu_new":
            raise UserError(f"{where}: field 'activation_function' is {act!r}; only gelu_new is supported")
        n_embd, n_head = require(hf, "n_embd", where), require(hf, "n_head", where)
        if n_head % MP_NUM:
            raise UserError(f"{where}: n_head={n_head} is not a multiple of CodeGen's mp_num={MP_NUM}")
        return ModelConfig(
            name=name, vocab_size=require(hf, "vocab_size", where), block_size=hf.get("n_positions") or 2048,
            n_layer=require(hf, "n_layer", where), n_embd=n_embd, n_head=n_head, intermediate_size=hf.get("n_inner"),
            rotary_dim=hf.get("rotary_dim"), parallel_residual=True, norm="layernorm",
            norm_eps=hf.get("layer_norm_epsilon", 1e-5), mlp="gelu", mlp_bias=True, lm_head_bias=True,
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)), rope_interleaved=True,
            bos_token_id=hf.get("bos_token_id"), eos_token_id=hf.get("eos_token_id"))

    def requirements(self, c: ModelConfig) -> dict[str, bool]:
        return {
            "parallel_residual": c.parallel_residual, "norm == layernorm": c.norm == "layernorm",
            "mlp == gelu": c.mlp == "gelu", "mlp_bias": c.mlp_bias, "lm_head_bias": c.lm_head_bias,
            "rope_interleaved": c.rope_interleaved, "no qkv_bias": not c.qkv_bias,
            "no attn_out_bias": not c.attn_out_bias, "n_kv_heads == n_head": c.n_kv_heads == c.n_head,
            "head_dim == n_embd/n_head": c.head_dim * c.n_head == c.n_embd,
            f"n_head % {MP_NUM} == 0": c.n_head % MP_NUM == 0,
            "rope_base == 10000": c.rope_base == 10000.0, "no rope_scaling": not c.rope_scaling,
            "no qk_norm": not c.qk_norm,
        }

    def config_to_hf(self, c: ModelConfig) -> dict[str, Any]:
        return {"n_positions": c.block_size, "n_ctx": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer,
                "n_head": c.n_head, "rotary_dim": c.rotary_dim, "n_inner": c.intermediate_size,
                "activation_function": "gelu_new", "layer_norm_epsilon": c.norm_eps,
                "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}

    def names(self, c: ModelConfig) -> dict[str, str]:
        names = {"wte.weight": "transformer.wte.weight", "norm_f.weight": "transformer.ln_f.weight",
                 "norm_f.bias": "transformer.ln_f.bias", "lm_head.weight": "lm_head.weight",
                 "lm_head.bias": "lm_head.bias"}
        layer = {"norm_1.weight": "ln_1.weight", "norm_1.bias": "ln_1.bias", "attn.proj.weight": "attn.out_proj.weight",
                 "mlp.fc.weight": "mlp.fc_in.weight", "mlp.fc.bias": "mlp.fc_in.bias",
                 "mlp.proj.weight": "mlp.fc_out.weight", "mlp.proj.bias": "mlp.fc_out.bias"}
        for i in range(c.n_layer):
            names.update({f"blocks.{i}.{ours}": f"transformer.h.{i}.{theirs}" for ours, theirs in layer.items()})
        return names

    def qkv_to_hf(self, sd: dict[str, torch.Tensor], c: ModelConfig, layer: int) -> dict[str, torch.Tensor]:
        # HF rows: view(mp_num, 3, E/mp_num, E) with the middle axis ordered q, v, k; each of our q/k/v is (E, E)
        # with heads in order, and head = block·(H/mp_num) + j, so q.view(mp_num, E/mp_num, E) lines up with it.
        w = sd[f"blocks.{layer}.attn.qkv.weight"]
        q, k, v = (t.reshape(MP_NUM, -1, t.shape[-1]) for t in w.split(qkv_sizes(c), 0))
        return {f"transformer.h.{layer}.attn.qkv_proj.weight": torch.stack([q, v, k], 1).reshape(w.shape).contiguous()}

    def qkv_from_hf(self, hf: dict[str, torch.Tensor], c: ModelConfig, layer: int) -> dict[str, torch.Tensor]:
        w = hf[f"transformer.h.{layer}.attn.qkv_proj.weight"]
        q, v, k = w.reshape(MP_NUM, 3, -1, w.shape[-1]).unbind(1)  # middle axis is q, v, k
        return {f"blocks.{layer}.attn.qkv.weight": torch.cat([t.reshape(-1, w.shape[-1]) for t in (q, k, v)], 0)}
