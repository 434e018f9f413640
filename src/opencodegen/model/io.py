"""Checkpoint directories: config.json (ModelConfig), model.safetensors, tokenizer.json. Saving is atomic (a
temporary sibling directory renamed into place). Loading also accepts a HuggingFace directory, converted on the fly."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file

from ..errors import UserError
from ..filemodes import as_if_created
from ..tokenizer import CONFIG_NAME as TOKENIZER_CONFIG
from ..tokenizer import FILE_NAME as TOKENIZER_FILE
from ..tokenizer import TEMPLATE_NAME, CodeTokenizer, check_vocab_fits, write_tokenizer_config
from .config import ModelConfig
from .transformer import GPT
from .weights import WEIGHTS, load_weights, state_dict_for_saving

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
        as_if_created(self.tmp)  # mkdtemp made it private; the published directory is not
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(model: GPT, tokenizer: CodeTokenizer | str | Path | None, directory: str | Path, *,
                    state_dict: dict[str, torch.Tensor] | None = None,
                    write_extra: Callable[[Path], None] | None = None, chat_template: str | None = None) -> Path:
    """config.json, model.safetensors and the tokenizer (from a CodeTokenizer, or copied from a tokenizer.json path
    with the tokenizer_config.json and chat template beside it), written atomically and made durable before the
    rename shows them. `state_dict`: an already gathered one instead of the model's own (FSDP's full state dict on
    rank 0). `write_extra(tmp)` adds files to the directory being written (a trainer's trainer_state/), so they
    appear together with the weights or not at all. `chat_template`: the tokenizer's from now on (a model that
    learnt the chat format)."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        (tmp / CONFIG).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
        save_file(state_dict_for_saving(model, state_dict), str(tmp / WEIGHTS), metadata={"format": "pt"})
        if isinstance(tokenizer, (str, Path)):
            shutil.copyfile(tokenizer, tmp / TOKENIZER_FILE)
            for name in (TOKENIZER_CONFIG, TEMPLATE_NAME):
                if (Path(tokenizer).parent / name).is_file():
                    shutil.copyfile(Path(tokenizer).parent / name, tmp / name)
            if chat_template is not None:
                write_tokenizer_config(tmp, None, chat_template)
        elif tokenizer is not None:
            (tokenizer if chat_template is None else tokenizer.with_chat_template(chat_template)).save(tmp)
        if write_extra is not None:
            write_extra(tmp)
        _fsync_tree(tmp)
    return directory


def _fsync_tree(root: Path) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def is_hf_directory(directory: Path) -> bool:
    try:
        return "architectures" in json.loads((directory / CONFIG).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                    with_tokenizer: bool = True):
    """Returns (GPT in eval mode, CodeTokenizer or None). Accepts our checkpoints and HF directories."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: checkpoint directory does not exist")
    if not (directory / CONFIG).is_file():
        raise UserError(f"{directory}: no {CONFIG} (not a checkpoint directory)")
    if is_hf_directory(directory):
        from .hf import load_hf_model  # here, not at the top: hf.py imports this module

        model = load_hf_model(directory)
    else:
        config = ModelConfig.from_file(directory / CONFIG)
        if not (directory / WEIGHTS).is_file():
            raise UserError(f"{directory}: no {WEIGHTS}")
        with torch.device("meta"):
            model = GPT(config)
        model = model.to_empty(device="cpu")  # copied into, so the weights become fp32 unless `dtype` says otherwise
        model.rebuild_rope()
        load_weights(model, directory / WEIGHTS)
    tokenizer = None
    if with_tokenizer:
        tokenizer = CodeTokenizer.load(directory)
        check_vocab_fits(tokenizer, model.config.vocab_size, str(directory / "tokenizer.json"))
    model = model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
    return model.eval(), tokenizer
