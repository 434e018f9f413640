"""Checkpoint averaging: the uniform mean of the weights of several checkpoints of one model (the last checkpoints
of a training stage, or runs fine-tuned from one start) as a new checkpoint: `ocg average`, and a recipe stage's
output with run.average_last (train/stage_output.py). Averaging the last two checkpoints of four SFT runs did better
than their last checkpoint on 19 HumanEval problems and worse on 9 (configs/quickstart.yaml records the runs)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from ..tokenizer import FILE_NAME as TOKENIZER_FILE
from .config import ModelConfig
from .io import CONFIG, load_checkpoint, save_checkpoint

SOURCES = "averaged.json"  # in the written checkpoint: the checkpoints it is the mean of


def average_checkpoints(directories: list[Path], out: Path) -> Path:
    """Writes to `out` (atomically) the mean of the checkpoints' weights, each tensor averaged in fp32; the config,
    tokenizer and chat template are the last checkpoint's. Every checkpoint must have the same config."""
    if len(directories) < 2:
        raise UserError("averaging needs at least two checkpoints")
    configs = []
    for d in directories:
        if not (Path(d) / CONFIG).is_file():
            raise UserError(f"{d}: no {CONFIG} (not a checkpoint directory)")
        configs.append(ModelConfig.from_file(Path(d) / CONFIG).to_dict())
    for d, config in zip(directories, configs):
        differs = sorted(k for k in set(config) | set(configs[-1]) if config.get(k) != configs[-1].get(k))
        if differs:
            raise UserError(f"{d}: another model than {directories[-1]} ({', '.join(differs)} differ): only "
                            "checkpoints of one architecture can be averaged")
    total: dict[str, torch.Tensor] = {}
    for d in directories:  # the last one loaded stays as `model`: it receives the mean
        model, _ = load_checkpoint(d, with_tokenizer=False)
        for name, tensor in model.state_dict().items():
            total[name] = total[name] + tensor.float() if name in total else tensor.float().clone()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            tensor.copy_(total[name] / len(directories))
    tokenizer = Path(directories[-1]) / TOKENIZER_FILE
    sources = {"checkpoints": [str(d) for d in directories]}
    return save_checkpoint(model, tokenizer if tokenizer.is_file() else None, out,
                           write_extra=lambda tmp: (tmp / SOURCES).write_text(json.dumps(sources, indent=2) + "\n"))


def averaged_from(directory: Path) -> list[str] | None:
    """The checkpoints a checkpoint written by average_checkpoints is the mean of (None: not such a checkpoint)."""
    try:
        return json.loads((Path(directory) / SOURCES).read_text())["checkpoints"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
