"""HuggingFace interoperability, local files only, for every family in hf_families (CodeGen, Qwen2, Qwen3, Llama).

Import reads config.json and the weights (model.safetensors, pytorch_model.bin, or a sharded index of either), lets
the family's adapter map the config onto ModelConfig and rename/re-lay the tensors; export does the reverse. Tensors
keep their dtype both ways. Shapes are checked in the HF name space (the expected HF shapes are obtained by converting
a meta-device model of the config), so an error names the file and the tensor the user actually has."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..tokenizer import CodeTokenizer, check_vocab_fits
from .config import ModelConfig
from .hf_families import FAMILIES
from .io import CONFIG, atomic_directory
from .transformer import GPT
from .weights import WEIGHTS, check_state_dict, load_weights, read_safetensors

ARCHITECTURES = tuple(FAMILIES)
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


# ---- config mapping --------------------------------------------------------------------------------------------
def config_from_hf(hf: dict[str, Any], where: str) -> tuple[str, ModelConfig]:
    archs = hf.get("architectures") or []
    arch = next((a for a in archs if a in FAMILIES), None)
    if arch is None:
        raise UserError(f"{where}: field 'architectures' is {archs!r}; supported: {', '.join(ARCHITECTURES)}")
    return arch, FAMILIES[arch].config_from_hf(hf, hf.get("_name_or_path") or arch, where)


def hf_architecture(c: ModelConfig) -> str:
    """Which HF family reproduces this config exactly; a UserError listing, per family, what it lacks otherwise."""
    unmet = {arch: [k for k, ok in family.requirements(c).items() if not ok] for arch, family in FAMILIES.items()}
    exact = [arch for arch, lacking in unmet.items() if not lacking]
    if exact:
        return exact[0]
    raise UserError(f"model config {c.name!r} matches no HuggingFace family: "
                    + "; ".join(f"{arch} needs {lacking}" for arch, lacking in unmet.items()))


def config_to_hf(c: ModelConfig, arch: str, dtype: torch.dtype) -> dict[str, Any]:
    family = FAMILIES[arch]
    common = {"architectures": [arch], "model_type": family.model_type, "vocab_size": c.vocab_size,
              "tie_word_embeddings": c.tie_embeddings, "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
              # "torch_dtype" for transformers 4.x and vLLM, "dtype" for transformers 5.
              "torch_dtype": DTYPE_NAMES[dtype], "dtype": DTYPE_NAMES[dtype], "use_cache": True,
              "initializer_range": c.init_std}
    return {**common, **family.config_to_hf(c)}


# ---- tensor mapping --------------------------------------------------------------------------------------------
def to_hf_state_dict(sd: dict[str, torch.Tensor], c: ModelConfig, arch: str) -> dict[str, torch.Tensor]:
    family = FAMILIES[arch]
    names = family.names(c)
    out = {names[k]: v for k, v in sd.items() if k in names}
    for i in range(c.n_layer):
        out.update(family.qkv_to_hf(sd, c, i))
    if c.tie_embeddings:
        out.pop("lm_head.weight", None)
    return out


def from_hf_state_dict(hf: dict[str, torch.Tensor], c: ModelConfig, arch: str) -> dict[str, torch.Tensor]:
    """Assumes the shapes were checked (check_hf_shapes)."""
    family = FAMILIES[arch]
    theirs_to_ours = {v: k for k, v in family.names(c).items()}
    out = {theirs_to_ours[k]: v for k, v in hf.items() if k in theirs_to_ours}
    for i in range(c.n_layer):
        out.update(family.qkv_from_hf(hf, c, i))
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


def load_hf_model(directory: str | Path, dtype: torch.dtype | None = None) -> GPT:
    """A HF CodeGen/Qwen2/Qwen3/Llama directory -> GPT. dtype None keeps the stored floating dtype (the most common
    one)."""
    directory = Path(directory)
    arch, config = config_from_hf(read_hf_config(directory), str(directory / CONFIG))
    hf, files = read_hf_weights(directory)
    hf = {k: v for k, v in hf.items() if not k.endswith(FAMILIES[arch].ignored_suffixes)}
    check_hf_shapes(hf, files, config, arch, str(directory))
    if dtype is None:
        counts: dict[torch.dtype, int] = {}
        for v in hf.values():
            if v.is_floating_point():
                counts[v.dtype] = counts.get(v.dtype, 0) + v.numel()
        dtype = max(counts, key=counts.get) if counts else torch.float32
    sd = {k: v.to(dtype) for k, v in from_hf_state_dict(hf, config, arch).items()}
    with torch.device("meta"):
        model = GPT(config)
    # assign: the parameters are the read tensors themselves, no copy, their dtype kept
    return load_weights(model, sd, where=str(directory), assign=True).eval()


# ---- export ------------------------------------------------------------------------------------------------------
def export_hf(checkpoint_dir: str | Path, out_dir: str | Path) -> Path:
    """Our checkpoint directory -> a HF directory AutoModelForCausalLM/AutoTokenizer (and vLLM) load. Atomic."""
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    if not checkpoint_dir.is_dir():
        raise UserError(f"{checkpoint_dir}: checkpoint directory does not exist")
    config = ModelConfig.from_file(checkpoint_dir / CONFIG)
    arch = hf_architecture(config)
    weights = checkpoint_dir / WEIGHTS
    sd = read_safetensors(weights)
    with torch.device("meta"):
        check_state_dict(GPT(config), sd, str(weights))
    floating = {v.dtype for v in sd.values() if v.is_floating_point()}
    dtype = floating.pop() if len(floating) == 1 else torch.float32
    tokenizer = None
    if (checkpoint_dir / "tokenizer.json").is_file():
        tokenizer = CodeTokenizer.load(checkpoint_dir)
        check_vocab_fits(tokenizer, config.vocab_size, str(checkpoint_dir / "tokenizer.json"))
        if config.eos_token_id is None:  # our presets leave it to the tokenizer; HF readers want it in the config
            config = dataclasses.replace(config, eos_token_id=tokenizer.eos_id)
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
