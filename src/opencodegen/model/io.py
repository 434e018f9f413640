"""Checkpoint directories: config.json (ModelConfig), model.safetensors, tokenizer.json. Saving is atomic (a
temporary sibling directory renamed into place). Loading also accepts a HuggingFace directory, converted on the fly."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError
from .config import ModelConfig
from .transformer import GPT

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def atomic_directory(final: Path):
    """A context manager yielding a temporary directory beside `final`, renamed to `final` only on success;
    an existing `final` is replaced only after the new one is complete, so a failed write leaves it intact."""
    return _AtomicDirectory(Path(final))


class _AtomicDirectory:
    def __init__(self, final: Path):
        self.final = final

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.tmp-", dir=self.final.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def state_dict_for_saving(model: GPT) -> dict[str, torch.Tensor]:
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        sd.pop("lm_head.weight", None)  # safetensors refuses shared storage; the tie is restored on load
    return sd


def save_checkpoint(model: GPT, tokenizer, directory: str | Path, extra_files: dict[str, str] | None = None) -> Path:
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        (tmp / CONFIG).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
        save_file(state_dict_for_saving(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return directory


def is_hf_directory(directory: Path) -> bool:
    try:
        return "architectures" in json.loads((directory / CONFIG).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False


def load_weights(model: GPT, path: Path) -> None:
    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read weights ({e})") from None
    check_state_dict(model, sd, str(path))
    model.load_state_dict(sd, strict=False)


def check_state_dict(model: GPT, sd: dict[str, torch.Tensor], where: str) -> None:
    """Names and shapes must match the config exactly; the message says which tensor and how."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        expected.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected) - {"lm_head.weight"})
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs config {tuple(expected[k])}" for k in expected if k in sd and sd[k].shape != expected[k]]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}{' …' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}")
        if wrong:
            parts.append("shapes that don't match config.json: " + "; ".join(wrong[:5]))
        raise UserError(f"{where}: " + "; ".join(parts))


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                    with_tokenizer: bool = True):
    """Returns (GPT in eval mode, CodeTokenizer or None). Accepts our checkpoints and HF directories."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: checkpoint directory does not exist")
    if not (directory / CONFIG).is_file():
        raise UserError(f"{directory}: no {CONFIG} (not a checkpoint directory)")
    if is_hf_directory(directory):
        from .hf import load_hf_model  # imported lazily: only HF directories need the converters

        model = load_hf_model(directory)
    else:
        config = ModelConfig.from_file(directory / CONFIG)
        if not (directory / WEIGHTS).is_file():
            raise UserError(f"{directory}: no {WEIGHTS}")
        with torch.device("meta"):
            model = GPT(config)
        model = model.to_empty(device="cpu")
        model.rebuild_rope()
        load_weights(model, directory / WEIGHTS)
        if config.tie_embeddings:
            model.lm_head.weight = model.wte.weight
    tokenizer = None
    if with_tokenizer:
        from ..tokenizer import CodeTokenizer, check_vocab_fits

        tokenizer = CodeTokenizer.load(directory)
        check_vocab_fits(tokenizer, model.config.vocab_size, str(directory / "tokenizer.json"))
    model = model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
    return model.eval(), tokenizer
