"""Training checkpoints: a model checkpoint (config.json, model.safetensors, tokenizer.json: usable directly by
`ocg generate`/`ocg eval`/`ocg export-hf`) plus trainer_state/ (optimizer, RNG states, step = data cursor, metrics).
Written atomically (temporary directory renamed into place), so a failed write leaves earlier checkpoints intact.
Layout: <run>/<stage>/checkpoint-<step>/, <run>/<stage>/best/ (lowest validation loss)."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model.io import save_checkpoint
from ..model.weights import load_weights
from ..model.transformer import GPT

STATE = "trainer_state"


def checkpoint_dirs(stage_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for d in Path(stage_dir).glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and (d / STATE / "state.json").is_file():
            found.append((int(m.group(1)), d))
    return sorted(found)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save(directory: Path, model_sd: dict[str, torch.Tensor], model: GPT, tokenizer_path: str | None,
         optim_sd: dict[str, Any] | None, state: dict[str, Any], chat_template: str | None = None) -> Path:
    """The model checkpoint (model.io.save_checkpoint) plus trainer_state/, written together or not at all.
    model_sd: the full (unsharded) state dict, on CPU. Only rank 0 calls this."""
    def trainer_state(tmp: Path) -> None:
        (tmp / STATE).mkdir()
        if optim_sd is not None:
            torch.save(optim_sd, tmp / STATE / "optimizer.pt")
        torch.save(rng_state(), tmp / STATE / "rng.pt")
        (tmp / STATE / "state.json").write_text(json.dumps(state, indent=2) + "\n")

    return save_checkpoint(model, tokenizer_path, directory, state_dict=model_sd, write_extra=trainer_state,
                           chat_template=chat_template)


def load_state(directory: Path) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    state = json.loads((directory / STATE / "state.json").read_text())
    opt = directory / STATE / "optimizer.pt"
    optim_sd = torch.load(opt, weights_only=False) if opt.is_file() else None
    rng = torch.load(directory / STATE / "rng.pt", weights_only=False)
    return state, optim_sd, rng


def load_model_weights(model: GPT, directory: Path) -> None:
    """A checkpoint's weights into `model`, checked (model/weights.py): a missing, unexpected or misshapen tensor is an
    error naming it, and a tied head stays tied."""
    load_weights(model, Path(directory))


def prune(stage_dir: Path, keep_last: int) -> None:
    for _, d in checkpoint_dirs(stage_dir)[:-keep_last]:
        shutil.rmtree(d, ignore_errors=True)
