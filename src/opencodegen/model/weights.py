"""The one checked way weights get into (and out of) a GPT: every loader (our checkpoints, HF imports, the trainer
between stages and on resume) goes through `load_weights`, which checks names and shapes against the model first, so
a missing, extra or mis-shaped tensor is a UserError naming it, never a silently random weight."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import UserError
from .transformer import GPT

WEIGHTS = "model.safetensors"


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read weights ({e})") from None


def expected_shapes(model: GPT) -> dict[str, torch.Size]:
    """Every tensor a checkpoint of this model holds. A tied head is the embedding, so it is not stored; buffers
    that are not persistent (the rotary table) are derived from the config and never are."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        expected.pop("lm_head.weight", None)
    return expected


def check_state_dict(model: GPT, sd: dict[str, torch.Tensor], where: str) -> None:
    """Names and shapes must match the model exactly; the message says which tensor and how. A `lm_head.weight`
    beside a tied embedding is tolerated (HF tied checkpoints may carry it)."""
    expected = expected_shapes(model)
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected) - {"lm_head.weight"})
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs config {tuple(s)}" for k, s in expected.items()
             if k in sd and sd[k].shape != s]
    parts = []
    if missing:
        parts.append(f"missing tensors {_some(missing)}")
    if unexpected:
        parts.append(f"unexpected tensors {_some(unexpected)}")
    if wrong:
        parts.append("shapes that don't match config.json: " + "; ".join(wrong[:5]))
    if parts:
        raise UserError(f"{where}: " + "; ".join(parts))


def load_weights(model: GPT, source: dict[str, torch.Tensor] | str | Path, *, where: str | None = None,
                 assign: bool = False) -> GPT:
    """Checks, loads and re-ties. `source` is a state dict, a safetensors file or a checkpoint directory (its
    model.safetensors); `where` names it in errors (default: the path). assign=True makes the given tensors the
    parameters themselves (no copy, their dtype kept), for a model built on the meta device; the rotary table is then
    rebuilt too, since a meta model has none."""
    if isinstance(source, dict):
        sd, where = source, where or "state dict"
    else:
        path = Path(source)
        path = path / WEIGHTS if path.is_dir() else path
        sd, where = read_safetensors(path), where or str(path)
    check_state_dict(model, sd, where)
    if model.config.tie_embeddings:
        sd = {k: v for k, v in sd.items() if k != "lm_head.weight"}  # the embedding is the head's one source
    missing, unexpected = model.load_state_dict(sd, strict=False, assign=assign)
    # The check above makes this impossible unless the module and expected_shapes disagree: a bug, not bad input.
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    if assign:
        model.rebuild_rope()
    return model


def state_dict_for_saving(model: GPT, state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors without the tied head (safetensors refuses shared storage; load re-ties it).
    `state_dict`: an already gathered one (e.g. FSDP's full state dict on rank 0) instead of the model's own."""
    sd = model.state_dict() if state_dict is None else state_dict
    out = {k: v.detach().contiguous().cpu() for k, v in sd.items()}
    if model.config.tie_embeddings:
        out.pop("lm_head.weight", None)
    return out


def _some(names: list[str]) -> str:
    return f"{names[:5]}{' …' if len(names) > 5 else ''}"
