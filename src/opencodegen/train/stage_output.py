"""A finished stage's output: the weights the next stage starts from and, for the last stage, the run's final
checkpoint. By default the stage's last checkpoint; with run.average_last = N > 1, the uniform mean of the weights of
its last N kept checkpoints, written once beside them as `average/` (which lists its sources in averaged.json).

Averaging the last checkpoints of a fine-tuning stage smooths the noise of its final steps (LAWA; the "model soups"
of one run): in the quickstart's SFT, the mean of the checkpoints at two thirds and at the end scored higher on
HumanEval than the end alone (configs/quickstart.yaml records the runs). The mean is a function of the kept
checkpoints only, so a run resumed after an interruption writes the same one; an `average/` of other checkpoints (the
stage was extended since) is written again."""

from __future__ import annotations

from pathlib import Path

from ..model.average import average_checkpoints, averaged_from
from ..progress import log
from . import checkpoint as ckpt
from . import distributed as dist_
from .recipe import RunConfig

AVERAGE = "average"


def stage_output(directory: Path, run: RunConfig, dist: dist_.Dist) -> Path:
    """The stage's output checkpoint directory (see the module's docstring); rank 0 writes the mean, the others wait."""
    kept = [d for _, d in ckpt.checkpoint_dirs(directory)]
    sources = kept[-run.average_last:]
    if len(sources) < 2:
        return kept[-1]
    out = directory / AVERAGE
    if dist.is_main and averaged_from(out) != [str(d) for d in sources]:
        average_checkpoints(sources, out)
        log(f"{directory.name}: its output is the mean of {len(sources)} checkpoints' weights "
            f"({', '.join(d.name for d in sources)}): {out}")
    dist_.barrier(dist)
    return out
