"""HuggingFace interoperability for CodeGenForCausalLM, Qwen2ForCausalLM and LlamaForCausalLM, local files only.

Import reads config.json and the weights (model.safetensors, pytorch_model.bin, or a sharded index of either),
maps the HF config onto ModelConfig and renames/re-lays the tensors; export does the reverse. Tensors keep their
dtype both ways. Shapes are checked in the HF name space (the expected HF shapes are obtained by converting a
meta-device model of the config), so an error names the file and the tensor the user actually has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError
from .config import ModelConfig
from .io import CONFIG, WEIGHTS, atomic_directory, check_state_dict
from .transformer import GPT

ARCHITECTURES = ("CodeGenForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM")
MODEL_TYPES = {"CodeGenForCausalLM": "codegen", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
               "LlamaForCausalLM": "llama"}
# HF checkpoints may carry non-learned buffers; they are derived from the config, so we drop them.
IGNORED_SUFFIXES = (".attn.causal_mask", ".attn.masked_bias", ".rotary_emb.inv_freq", ".attn.bias")
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


# ---- config mapping --------------------------------------------------------------------------------------------
def _require(hf: dict[str, Any], key: str, where: str) -> Any:
    if hf.get(key) is None:
        raise UserError(f"{where}: missing field {key!r}")
    return hf[key]


def _rope_from_hf(hf: dict[str, Any], where: str) -> tuple[float, dict[str, Any] | None]:
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
    scaling: dict[str, Any] = {"type": kind, "factor": float(_require(params, "factor", where + " rope scaling"))}
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


def config_from_hf(hf: dict[str, Any], where: str) -> tuple[str, ModelConfig]:
    archs = hf.get("architectures") or []
    arch = next((a for a in archs if a in ARCHITECTURES), None)
    if arch is None:
        raise UserError(f"{where}: field 'architectures' is {archs!r}; supported: {', '.join(ARCHITECTURES)}")
    name = hf.get("_name_or_path") or arch
    if arch == "CodeGenForCausalLM":
        act = hf.get("activation_function", "gelu_new")
        if act != "gelu_new":
            raise UserError(f"{where}: field 'activation_function' is {act!r}; only gelu_new is supported")
        n_embd, n_head = _require(hf, "n_embd", where), _require(hf, "n_head", where)
        if n_head % 4:
            raise UserError(f"{where}: n_head={n_head} is not a multiple of CodeGen's mp_num=4")
        return arch, ModelConfig(
            name=name, vocab_size=_require(hf, "vocab_size", where), block_size=hf.get("n_positions") or 2048,
            n_layer=_require(hf, "n_layer", where), n_embd=n_embd, n_head=n_head, intermediate_size=hf.get("n_inner"),
            rotary_dim=hf.get("rotary_dim"), parallel_residual=True, norm="layernorm",
            norm_eps=hf.get("layer_norm_epsilon", 1e-5), mlp="gelu", mlp_bias=True, lm_head_bias=True,
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)), rope_interleaved=True,
            bos_token_id=hf.get("bos_token_id"), eos_token_id=hf.get("eos_token_id"))
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise UserError(f"{where}: field 'hidden_act' is {act!r}; only silu is supported")
    if hf.get("use_sliding_window"):
        raise UserError(f"{where}: use_sliding_window=true is not supported")
    base, scaling = _rope_from_hf(hf, where)
    qwen2, qwen3 = arch == "Qwen2ForCausalLM", arch == "Qwen3ForCausalLM"
    attention_bias = bool(hf.get("attention_bias", False))
    eos = hf.get("eos_token_id")
    return arch, ModelConfig(
        name=name, vocab_size=_require(hf, "vocab_size", where), block_size=_require(hf, "max_position_embeddings", where),
        n_layer=_require(hf, "num_hidden_layers", where), n_embd=_require(hf, "hidden_size", where),
        n_head=_require(hf, "num_attention_heads", where), n_kv_heads=hf.get("num_key_value_heads"),
        head_dim=hf.get("head_dim", 128 if qwen3 else None),  # Qwen3Config's default is 128, not hidden/heads
        intermediate_size=_require(hf, "intermediate_size", where),
        parallel_residual=False, norm="rmsnorm", norm_eps=hf.get("rms_norm_eps", 1e-6), mlp="swiglu",
        mlp_bias=False if qwen2 or qwen3 else bool(hf.get("mlp_bias", False)), qk_norm=qwen3,
        qkv_bias=True if qwen2 else attention_bias, attn_out_bias=False if qwen2 else attention_bias,
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)), rope_base=base, rope_scaling=scaling,
        bos_token_id=hf.get("bos_token_id"), eos_token_id=eos[0] if isinstance(eos, list) else eos)


def hf_architecture(c: ModelConfig) -> str:
    """Which HF family reproduces this config exactly; a UserError listing the mismatches otherwise."""
    codegen = {
        "parallel_residual": c.parallel_residual, "norm == layernorm": c.norm == "layernorm", "mlp == gelu": c.mlp == "gelu",
        "mlp_bias": c.mlp_bias, "lm_head_bias": c.lm_head_bias, "rope_interleaved": c.rope_interleaved,
        "no qkv_bias": not c.qkv_bias, "no attn_out_bias": not c.attn_out_bias, "n_kv_heads == n_head": c.n_kv_heads == c.n_head,
        "head_dim == n_embd/n_head": c.head_dim * c.n_head == c.n_embd, "n_head % 4 == 0": c.n_head % 4 == 0,
        "rope_base == 10000": c.rope_base == 10000.0, "no rope_scaling": not c.rope_scaling,
        "no qk_norm": not c.qk_norm,
    }
    llama = {
        "not parallel_residual": not c.parallel_residual, "norm == rmsnorm": c.norm == "rmsnorm", "mlp == swiglu": c.mlp == "swiglu",
        "no lm_head_bias": not c.lm_head_bias, "not rope_interleaved": not c.rope_interleaved,
        "rotary_dim == head_dim": c.rotary_dim == c.head_dim,
    }
    if all(codegen.values()):
        return "CodeGenForCausalLM"
    if all(llama.values()):
        if c.qk_norm and c.qkv_bias == c.attn_out_bias and not c.mlp_bias:
            return "Qwen3ForCausalLM"
        if not c.qk_norm and c.qkv_bias and not c.attn_out_bias and not c.mlp_bias:
            return "Qwen2ForCausalLM"
        if not c.qk_norm and c.qkv_bias == c.attn_out_bias:
            return "LlamaForCausalLM"
    raise UserError(
        f"model config {c.name!r} matches no HuggingFace family: CodeGen needs "
        f"{[k for k, ok in codegen.items() if not ok]}, "
        f"Llama/Qwen2/Qwen3 need {[k for k, ok in llama.items() if not ok]} "
        "(and Qwen2 = qkv bias only, Llama = q/k/v/o bias all or none; Qwen3 = qk_norm, q/k/v/o bias all or none, "
        "no mlp bias)")


def config_to_hf(c: ModelConfig, arch: str, dtype: torch.dtype) -> dict[str, Any]:
    common = {"architectures": [arch], "model_type": MODEL_TYPES[arch], "vocab_size": c.vocab_size,
              "tie_word_embeddings": c.tie_embeddings, "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
              # "torch_dtype" for transformers 4.x and vLLM, "dtype" for transformers 5.
              "torch_dtype": DTYPE_NAMES[dtype], "dtype": DTYPE_NAMES[dtype], "use_cache": True,
              "initializer_range": c.init_std}
    if arch == "CodeGenForCausalLM":
        return {**common, "n_positions": c.block_size, "n_ctx": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer,
                "n_head": c.n_head, "rotary_dim": c.rotary_dim, "n_inner": c.intermediate_size,
                "activation_function": "gelu_new", "layer_norm_epsilon": c.norm_eps,
                "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    hf = {**common, "hidden_size": c.n_embd, "intermediate_size": c.intermediate_size, "num_hidden_layers": c.n_layer,
          "num_attention_heads": c.n_head, "num_key_value_heads": c.n_kv_heads, "head_dim": c.head_dim,
          "max_position_embeddings": c.block_size, "rms_norm_eps": c.norm_eps, "hidden_act": "silu",
          "rope_theta": c.rope_base, "attention_dropout": 0.0}
    if c.rope_scaling:
        # Both spellings of the type key: "rope_type" (transformers >= 4.45, vLLM) and "type" (older readers).
        hf["rope_scaling"] = {**{k: v for k, v in c.rope_scaling.items() if k != "type"},
                              "rope_type": c.rope_scaling["type"], "type": c.rope_scaling["type"]}
    if arch == "LlamaForCausalLM":
        hf.update(attention_bias=c.qkv_bias, mlp_bias=c.mlp_bias, pretraining_tp=1)
    else:
        hf.update(use_sliding_window=False, sliding_window=None, max_window_layers=c.n_layer)
    if arch == "Qwen3ForCausalLM":
        hf.update(attention_bias=c.qkv_bias)
    return hf


# ---- tensor mapping --------------------------------------------------------------------------------------------
def _names(arch: str, c: ModelConfig) -> dict[str, str]:
    """ours -> HF for every tensor except the fused qkv, which _split/_fuse handle."""
    if arch == "CodeGenForCausalLM":
        top = {"wte.weight": "transformer.wte.weight", "norm_f.weight": "transformer.ln_f.weight",
               "norm_f.bias": "transformer.ln_f.bias", "lm_head.weight": "lm_head.weight", "lm_head.bias": "lm_head.bias"}
        layer = {"norm_1.weight": "ln_1.weight", "norm_1.bias": "ln_1.bias", "attn.proj.weight": "attn.out_proj.weight",
                 "mlp.fc.weight": "mlp.fc_in.weight", "mlp.fc.bias": "mlp.fc_in.bias",
                 "mlp.proj.weight": "mlp.fc_out.weight", "mlp.proj.bias": "mlp.fc_out.bias"}
        prefix = "transformer.h"
    else:
        top = {"wte.weight": "model.embed_tokens.weight", "norm_f.weight": "model.norm.weight", "lm_head.weight": "lm_head.weight"}
        layer = {"norm_1.weight": "input_layernorm.weight", "norm_2.weight": "post_attention_layernorm.weight",
                 "attn.proj.weight": "self_attn.o_proj.weight", "attn.proj.bias": "self_attn.o_proj.bias",
                 "attn.q_norm.weight": "self_attn.q_norm.weight", "attn.k_norm.weight": "self_attn.k_norm.weight",
                 "mlp.gate.weight": "mlp.gate_proj.weight", "mlp.gate.bias": "mlp.gate_proj.bias",
                 "mlp.fc.weight": "mlp.up_proj.weight", "mlp.fc.bias": "mlp.up_proj.bias",
                 "mlp.proj.weight": "mlp.down_proj.weight", "mlp.proj.bias": "mlp.down_proj.bias"}
        prefix = "model.layers"
    names = dict(top)
    for i in range(c.n_layer):
        names.update({f"blocks.{i}.{ours}": f"{prefix}.{i}.{theirs}" for ours, theirs in layer.items()})
    return names


def _qkv_hf_names(arch: str, i: int) -> list[str]:
    if arch == "CodeGenForCausalLM":
        return [f"transformer.h.{i}.attn.qkv_proj.weight"]
    return [f"model.layers.{i}.self_attn.{p}_proj.{w}" for w in ("weight", "bias") for p in "qkv"]


def to_hf_state_dict(sd: dict[str, torch.Tensor], c: ModelConfig, arch: str) -> dict[str, torch.Tensor]:
    names = _names(arch, c)
    out = {names[k]: v for k, v in sd.items() if k in names}
    sizes = [c.n_head * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim]
    for i in range(c.n_layer):
        w = sd[f"blocks.{i}.attn.qkv.weight"]
        if arch == "CodeGenForCausalLM":
            # HF rows: view(mp_num=4, 3, E/4, E) with the middle axis ordered q, v, k; each of our q/k/v is
            # (E, E) with heads in order, and head = block·(H/4) + j, so q.view(4, E/4, E) lines up with it.
            q, k, v = (t.reshape(4, -1, t.shape[-1]) for t in w.split(sizes, 0))
            out[f"transformer.h.{i}.attn.qkv_proj.weight"] = torch.stack([q, v, k], 1).reshape(w.shape).contiguous()
            continue
        tensors = [w] + ([sd[f"blocks.{i}.attn.qkv.bias"]] if c.qkv_bias else [])
        for kind, t in zip(("weight", "bias"), tensors):
            for p, part in zip("qkv", t.split(sizes, 0)):
                out[f"model.layers.{i}.self_attn.{p}_proj.{kind}"] = part.contiguous()
    if c.tie_embeddings:
        out.pop("lm_head.weight", None)
    return out


def from_hf_state_dict(hf: dict[str, torch.Tensor], c: ModelConfig, arch: str) -> dict[str, torch.Tensor]:
    """Assumes the shapes were checked (check_hf_shapes)."""
    theirs_to_ours = {v: k for k, v in _names(arch, c).items()}
    out = {theirs_to_ours[k]: v for k, v in hf.items() if k in theirs_to_ours}
    for i in range(c.n_layer):
        if arch == "CodeGenForCausalLM":
            w = hf[f"transformer.h.{i}.attn.qkv_proj.weight"]
            q, v, k = w.reshape(4, 3, -1, w.shape[-1]).unbind(1)  # middle axis is q, v, k
            out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([t.reshape(-1, w.shape[-1]) for t in (q, k, v)], 0)
            continue
        pre = f"model.layers.{i}.self_attn"
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([hf[f"{pre}.{p}_proj.weight"] for p in "qkv"], 0)
        if c.qkv_bias:
            out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([hf[f"{pre}.{p}_proj.bias"] for p in "qkv"], 0)
    if c.tie_embeddings:
        out.pop("lm_head.weight", None)
    return out


def check_hf_shapes(hf: dict[str, torch.Tensor], files: dict[str, str], c: ModelConfig, arch: str, where: str) -> None:
    with torch.device("meta"):
        expected = {k: v.shape for k, v in to_hf_state_dict(GPT(c).state_dict(), c, arch).items()}
    missing = sorted(set(expected) - set(hf))
    unexpected = sorted(set(hf) - set(expected) - {"lm_head.weight"})
    wrong = [f"{files.get(k, where)}: tensor {k} has shape {tuple(hf[k].shape)} but config.json implies {tuple(s)}"
             for k, s in expected.items() if k in hf and hf[k].shape != s]
    parts = wrong[:5]
    if missing:
        parts.append(f"{where}: missing tensors {missing[:5]}{' …' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(f"{where}: unexpected tensors {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}")
    if parts:
        raise UserError("; ".join(parts))


# ---- reading -----------------------------------------------------------------------------------------------------
def _read_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise UserError(f"{path}: weight file does not exist") from None
    except (SafetensorError, OSError, ValueError, RuntimeError, EOFError) as e:
        raise UserError(f"{path}: cannot read weights ({type(e).__name__}: {e})") from None


def read_hf_weights(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a HF directory plus, per tensor, the file it came from (for error messages)."""
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (directory / single).is_file():
            sd = _read_file(directory / single)
            return sd, {k: str(directory / single) for k in sd}
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        path = directory / index
        if path.is_file():
            try:
                weight_map = json.loads(path.read_text())["weight_map"]
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
                raise UserError(f"{path}: not a valid shard index ({type(e).__name__}: {e})") from None
            sd, files = {}, {}
            for shard in sorted(set(weight_map.values())):
                for k, v in _read_file(directory / shard).items():
                    sd[k], files[k] = v, str(directory / shard)
            absent = sorted(k for k in weight_map if k not in sd)
            if absent:
                raise UserError(f"{path}: tensors listed but not found in their shard: {absent[:5]}")
            return sd, files
    raise UserError(f"{directory}: no model.safetensors, pytorch_model.bin or shard index")


def read_hf_config(directory: Path) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: model directory does not exist")
    path = directory / CONFIG
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (not a HuggingFace model directory)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def _build(config: ModelConfig, sd: dict[str, torch.Tensor], where: str) -> GPT:
    """A GPT whose parameters are the given tensors themselves (no copy, dtype kept)."""
    with torch.device("meta"):
        model = GPT(config)
    check_state_dict(model, sd, where)
    model.load_state_dict(sd, strict=False, assign=True)
    if config.tie_embeddings:
        model.lm_head.weight = model.wte.weight
    model.rebuild_rope()
    return model.eval()


def load_hf_model(directory: str | Path, dtype: torch.dtype | None = None) -> GPT:
    """A HF CodeGen/Qwen2/Qwen3/Llama directory -> GPT. dtype None keeps the stored floating dtype (the most common
    one)."""
    directory = Path(directory)
    arch, config = config_from_hf(read_hf_config(directory), str(directory / CONFIG))
    hf, files = read_hf_weights(directory)
    hf = {k: v for k, v in hf.items() if not k.endswith(IGNORED_SUFFIXES)}
    check_hf_shapes(hf, files, config, arch, str(directory))
    if dtype is None:
        counts: dict[torch.dtype, int] = {}
        for v in hf.values():
            if v.is_floating_point():
                counts[v.dtype] = counts.get(v.dtype, 0) + v.numel()
        dtype = max(counts, key=counts.get) if counts else torch.float32
    sd = {k: v.to(dtype) for k, v in from_hf_state_dict(hf, config, arch).items()}
    return _build(config, sd, str(directory))


# ---- export ------------------------------------------------------------------------------------------------------
def export_hf(checkpoint_dir: str | Path, out_dir: str | Path) -> Path:
    """Our checkpoint directory -> a HF directory AutoModelForCausalLM/AutoTokenizer (and vLLM) load. Atomic."""
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if not checkpoint_dir.is_dir():
        raise UserError(f"{checkpoint_dir}: checkpoint directory does not exist")
    config = ModelConfig.from_file(checkpoint_dir / CONFIG)
    arch = hf_architecture(config)
    weights = checkpoint_dir / WEIGHTS
    try:
        sd = load_file(str(weights))
    except FileNotFoundError:
        raise UserError(f"{weights}: no such file") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{weights}: cannot read weights ({e})") from None
    with torch.device("meta"):
        check_state_dict(GPT(config), sd, str(weights))
    floating = {v.dtype for v in sd.values() if v.is_floating_point()}
    dtype = floating.pop() if len(floating) == 1 else torch.float32
    tokenizer = None
    if (checkpoint_dir / "tokenizer.json").is_file():
        from ..tokenizer import CodeTokenizer, check_vocab_fits

        tokenizer = CodeTokenizer.load(checkpoint_dir)
        check_vocab_fits(tokenizer, config.vocab_size, str(checkpoint_dir / "tokenizer.json"))
        if config.eos_token_id is None:  # our presets leave it to the tokenizer; HF readers want it in the config
            config.eos_token_id = tokenizer.eos_id
    hf_config = config_to_hf(config, arch, dtype)
    with atomic_directory(out_dir) as tmp:
        (tmp / CONFIG).write_text(json.dumps(hf_config, indent=2) + "\n")
        save_file(to_hf_state_dict(sd, config, arch), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        generation = {"bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id,
                      "pad_token_id": config.eos_token_id}
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save(tmp)
    return out_dir
