"""ModelConfig: one flat, serialisable set of switches that covers the CodeGen (GPT-J style) and the Qwen2/Qwen3/Llama
families, in the spirit of litgpt's Config. Presets name the published shapes plus tiny CPU models."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from ..errors import UserError

RopeScalingType = Literal["linear", "yarn"]


@dataclass(frozen=True)
class ModelConfig:
    """Frozen: a changed model (a long-context stage's rotary base, an export's eos id) is a new config made with
    `dataclasses.replace`, so a config shared by a model, a checkpoint and a cache never changes under them."""

    name: str = "custom"
    vocab_size: int = 51200  # rows of the embedding (already padded)
    block_size: int = 2048  # longest context the rotary table is built for
    n_layer: int = 12
    n_embd: int = 768
    n_head: int = 12
    n_kv_heads: int | None = None  # grouped-query attention; None = n_head (plain multi-head)
    head_dim: int | None = None  # None = n_embd // n_head
    intermediate_size: int | None = None  # None = 4 * n_embd
    # Block layout. CodeGen: x + attn(ln(x)) + mlp(ln(x)) with one shared norm; Llama/Qwen: sequential, two norms.
    parallel_residual: bool = False
    norm: Literal["layernorm", "rmsnorm"] = "rmsnorm"
    norm_eps: float = 1e-6
    mlp: Literal["gelu", "swiglu"] = "swiglu"  # gelu: fc -> tanh-gelu -> proj (CodeGen's gelu_new)
    mlp_bias: bool = False
    qkv_bias: bool = False  # Qwen2 has biases on q, k and v only
    attn_out_bias: bool = False
    lm_head_bias: bool = False  # CodeGen's lm_head has a bias
    qk_norm: bool = False  # Qwen3: an RMSNorm over each head's query and key, before the rotation
    tie_embeddings: bool = False
    # Rotary. CodeGen: GPT-J interleaved pairs on the first rotary_dim dims; Llama: half rotation on all dims.
    rotary_dim: int | None = None  # None = head_dim
    rope_interleaved: bool = False
    rope_base: float = 10000.0
    rope_scaling: dict[str, Any] | None = None  # {"type": RopeScalingType, "factor": f, ...}
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    init_std: float = 0.02

    def __post_init__(self) -> None:
        # Fill the derived defaults once; frozen, so through object.__setattr__.
        n_kv_heads = self.n_kv_heads or self.n_head
        head_dim = self.head_dim or self.n_embd // self.n_head
        defaults = {"n_kv_heads": n_kv_heads, "head_dim": head_dim,
                    "intermediate_size": self.intermediate_size or 4 * self.n_embd,
                    "rotary_dim": self.rotary_dim or head_dim}
        for name, value in defaults.items():
            object.__setattr__(self, name, value)
        problems = [f"{name}={value!r} is not {_alternatives(allowed)}"
                    for name, value, allowed in self._bad_literals()]
        if self.n_head % self.n_kv_heads:
            problems.append(f"n_head={self.n_head} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.rotary_dim > self.head_dim or self.rotary_dim % 2:
            problems.append(f"rotary_dim={self.rotary_dim} must be even and <= head_dim={self.head_dim}")
        if self.rope_scaling and self.rope_scaling.get("type") not in get_args(RopeScalingType):
            problems.append(f"rope_scaling type {self.rope_scaling.get('type')!r} is not "
                            f"{_alternatives(get_args(RopeScalingType))}")
        if problems:
            raise UserError(f"model config {self.name!r}: " + "; ".join(problems))

    def _bad_literals(self):
        """(name, value, allowed values) of every Literal-typed field whose value is not one of them."""
        for name, hint in get_type_hints(type(self)).items():
            if get_origin(hint) is Literal and getattr(self, name) not in get_args(hint):
                yield name, getattr(self, name), get_args(hint)

    # ---- serialisation -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"model_type": "opencodegen", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> "ModelConfig":
        d = {k: v for k, v in d.items() if k != "model_type"}
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise UserError(f"{where}: unknown model config field(s) {unknown}")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d, where=str(path))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        if name not in PRESETS:
            raise UserError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], "name": name, **overrides})

    # ---- derived numbers -------------------------------------------------------------------------------------
    def n_params(self, include_embedding: bool = True) -> int:
        """Parameter count computed from the shapes (matches sum(p.numel()) of GPT; checked in tests)."""
        e, h, kv, d, f = self.n_embd, self.n_head, self.n_kv_heads, self.head_dim, self.intermediate_size
        norm = 2 * e if self.norm == "layernorm" else e
        attn = e * (h + 2 * kv) * d + (h + 2 * kv) * d * self.qkv_bias + h * d * e + e * self.attn_out_bias
        attn += 2 * d * self.qk_norm
        if self.mlp == "gelu":
            mlp = 2 * e * f + (f + e) * self.mlp_bias
        else:
            mlp = 3 * e * f + (2 * f + e) * self.mlp_bias
        block = attn + mlp + norm * (1 if self.parallel_residual else 2)
        emb = self.vocab_size * e
        head = 0 if self.tie_embeddings else self.vocab_size * e
        total = self.n_layer * block + norm + head + self.vocab_size * self.lm_head_bias
        return total + (emb if include_embedding else 0)

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token, PaLM appendix B: 6·N (non-embedding) + 12·L·H·Q·T for attention scores."""
        return 6 * self.n_params(include_embedding=False) + 12 * self.n_layer * self.n_head * self.head_dim * seq_len


def _codegen(n_layer: int, n_embd: int, n_head: int, rotary_dim: int) -> dict[str, Any]:
    return dict(
        vocab_size=51200, block_size=2048, n_layer=n_layer, n_embd=n_embd, n_head=n_head, rotary_dim=rotary_dim,
        parallel_residual=True, norm="layernorm", norm_eps=1e-5, mlp="gelu", mlp_bias=True, lm_head_bias=True,
        rope_interleaved=True, bos_token_id=1, eos_token_id=50256,
    )


def _qwen25(n_embd: int, n_layer: int, n_head: int, n_kv: int, inter: int, vocab: int, tied: bool) -> dict[str, Any]:
    return dict(
        vocab_size=vocab, block_size=32768, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_kv_heads=n_kv,
        intermediate_size=inter, norm="rmsnorm", norm_eps=1e-6, mlp="swiglu", qkv_bias=True, tie_embeddings=tied,
        rope_base=1e6, eos_token_id=151643,
    )


def _tiny(n_layer: int, n_embd: int, n_head: int) -> dict[str, Any]:
    # CodeGen's block (parallel residual, shared LayerNorm, gelu MLP), a small vocabulary for our own tokenizer.
    return dict(
        vocab_size=8192, block_size=1024, n_layer=n_layer, n_embd=n_embd, n_head=n_head, rotary_dim=None,
        parallel_residual=True, norm="layernorm", norm_eps=1e-5, mlp="gelu", mlp_bias=True, lm_head_bias=True,
        rope_interleaved=True,
    )


def _alternatives(values: tuple[Any, ...]) -> str:
    return " or ".join(repr(v) for v in values)


PRESETS: dict[str, dict[str, Any]] = {
    # ~1M / ~10M / ~30M parameters with an 8192-token vocabulary (embeddings included).
    "tiny-1m": _tiny(n_layer=2, n_embd=64, n_head=4),
    "tiny-10m": _tiny(n_layer=6, n_embd=256, n_head=8),
    "tiny-30m": _tiny(n_layer=8, n_embd=448, n_head=8),
    "codegen-350M": _codegen(20, 1024, 16, 32),
    "codegen-2B": _codegen(32, 2560, 32, 64),
    "codegen-6B": _codegen(33, 4096, 16, 64),
    "codegen-16B": _codegen(34, 6144, 24, 64),
    "qwen2.5-coder-0.5B": _qwen25(896, 24, 14, 2, 4864, 151936, True),
    "qwen2.5-coder-1.5B": _qwen25(1536, 28, 12, 2, 8960, 151936, True),
    "qwen2.5-coder-7B": _qwen25(3584, 28, 28, 4, 18944, 152064, False),
}
