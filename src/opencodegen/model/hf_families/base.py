"""What one HuggingFace family must say to be imported and exported (in the spirit of torchtitan's
StateDictAdapter): how its config.json maps onto ModelConfig and back, when a ModelConfig is exactly this family,
and how its tensor names and fused-qkv layout map onto GPT's. model/hf.py does the rest (reading files, checking
shapes, dtypes, writing) the same way for every family."""

from __future__ import annotations

from typing import Any

import torch

from ...errors import UserError
from ..config import ModelConfig


class HFFamily:
    architecture: str  # the `architectures` entry in config.json, e.g. "LlamaForCausalLM"
    model_type: str  # config.json's model_type
    ignored_suffixes: tuple[str, ...] = ()  # stored buffers derived from the config (masks, inverse frequencies)

    def config_from_hf(self, hf: dict[str, Any], name: str, where: str) -> ModelConfig:
        raise NotImplementedError

    def requirements(self, c: ModelConfig) -> dict[str, bool]:
        """Named conditions, all true exactly when this family's HF implementation reproduces `c`."""
        raise NotImplementedError

    def config_to_hf(self, c: ModelConfig) -> dict[str, Any]:
        """The family's own config.json fields (hf.py adds the ones every family shares)."""
        raise NotImplementedError

    def names(self, c: ModelConfig) -> dict[str, str]:
        """Our tensor name -> HF's, for every tensor except the fused qkv (qkv_to_hf / qkv_from_hf)."""
        raise NotImplementedError

    def qkv_to_hf(self, sd: dict[str, torch.Tensor], c: ModelConfig, layer: int) -> dict[str, torch.Tensor]:
        """Layer `layer`'s HF attention input projection(s) from our fused [q | k | v] rows."""
        raise NotImplementedError

    def qkv_from_hf(self, hf: dict[str, torch.Tensor], c: ModelConfig, layer: int) -> dict[str, torch.Tensor]:
        """Our fused `blocks.{layer}.attn.qkv.*` from HF's tensors (shapes already checked)."""
        raise NotImplementedError


def qkv_sizes(c: ModelConfig) -> list[int]:
    """Rows of q, k and v in our fused projection."""
    return [c.n_head * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim]


def require(hf: dict[str, Any], key: str, where: str) -> Any:
    if hf.get(key) is None:
        raise UserError(f"{where}: missing field {key!r}")
    return hf[key]
