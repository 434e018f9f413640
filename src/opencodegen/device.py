"""The device a recipe's `run.device` names, checked against this torch before anything is built.

"auto" is CUDA when this torch can use a GPU, else the CPU, so one recipe runs on a laptop and on a GPU node. A named
device that this torch cannot use (a CPU-only build asked for "cuda", "cuda:3" on a node with two GPUs) is refused
with one message, instead of torch's assertion deep inside the first `.to()`."""

from __future__ import annotations

import argparse

import torch

from .errors import UserError


def resolve_device(name: str, where: str = "run.device") -> str:
    name = name.strip()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"{where} {name!r} is not a device torch knows (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cpu":
        return name
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch was built without CUDA (the CPU build `make` installs)" if torch.version.cuda is None
                   else "no CUDA GPU is visible")
            raise UserError(f"{where} {name!r}: {why}; use --{where} cpu or auto (or install a CUDA torch on "
                            "a GPU machine)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"{where} {name!r}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
        return name
    if device.type == "mps" and torch.backends.mps.is_available():
        return name
    raise UserError(f"{where} {name!r}: this torch cannot train on {device.type} here (use auto, cpu or cuda)")


def device_arg(name: str) -> str:
    """argparse `type=` for a command's --device: the same check, reported as a usage error."""
    try:
        return resolve_device(name, "device")
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
