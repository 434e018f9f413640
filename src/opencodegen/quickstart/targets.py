"""Time to target: the first checkpoint of a run that reaches each published model's HumanEval row
(published.HUMANEVAL_SMALL_MODELS), and the training time it took to get there.

Candidates are the checkpoints that can write programs, in the order training made them: the last pretraining
stage's end (where post-training starts) and the checkpoints the post-training stages keep (train_plan.apply spreads
them over each stage), a stage's averaged output (train/stage_output.py) after its own checkpoints. Each is scored
as the final checkpoint is, at the same n and temperature, so the rows compare.

The search costs evaluations only for rows the final checkpoint reaches: each such row's first checkpoint is found by
walking the candidates from the earliest. A row that neither the final checkpoint nor a checkpoint scored on the way
reaches is reported as not reached (earlier checkpoints are not searched for it: at n = 100 an evaluation takes
minutes)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..model.average import averaged_from
from ..train.checkpoint import checkpoint_dirs
from ..train.recipe import Recipe
from ..train.stage import stage_dir
from ..train.stage_output import AVERAGE
from .published import HUMANEVAL_SMALL_MODELS, reached


@dataclass
class Candidate:
    stage: str
    step: int
    path: str
    # optimiser steps' own time from the start of training to the end of this step (None: the metrics lack the step)
    train_seconds: float | None


def training_seconds(metrics: Path, stages: list[str]) -> dict[tuple[str, int], float]:
    """(stage, step) -> training seconds from the start of the run to the end of that step: the sum of the logged
    optimiser steps' seconds in stage order (validation, checkpoint writes and evaluation are not training time).
    A resumed run logs a step again; its last record counts."""
    per_step: dict[tuple[str, int], float] = {}
    for n, line in enumerate(metrics.read_text().splitlines(), 1):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{metrics}: line {n} is not JSON; cannot count training time") from None
        if isinstance(r, dict) and "seconds" in r and r.get("stage") in stages and "step" in r:
            per_step[(r["stage"], r["step"])] = float(r["seconds"])
    out, total = {}, 0.0
    for key in sorted(per_step, key=lambda k: (stages.index(k[0]), k[1])):
        total += per_step[key]
        out[key] = total
    return out


def candidates(train_dir: Path, recipe: Recipe) -> list[Candidate]:
    """The last pretraining checkpoint and every kept post-training checkpoint, oldest first."""
    names = [s.name for s in recipe.stages]
    seconds = training_seconds(train_dir / "metrics.jsonl", names)
    pre = [i for i, s in enumerate(recipe.stages) if s.kind == "pretrain"]
    out = []
    for i, s in enumerate(recipe.stages):
        if s.kind == "pretrain" and (not pre or i != pre[-1]):
            continue
        directory = stage_dir(train_dir, i, s.name)
        dirs = checkpoint_dirs(directory)
        for step, path in dirs[-1:] if s.kind == "pretrain" else dirs:
            out.append(Candidate(s.name, step, str(path), seconds.get((s.name, step))))
        if dirs and averaged_from(directory / AVERAGE):  # the stage's output, made at its end
            out.append(Candidate(s.name, dirs[-1][0], str(directory / AVERAGE), seconds.get((s.name, dirs[-1][0]))))
    return out


def time_to_target(found: list[Candidate], final_pass_at_k: dict[str, float],
                   evaluate: Callable[[Candidate], dict[str, float]]) -> dict:
    """{"rows": [{model, reached, stage, step, checkpoint, train_seconds}], "evaluated": [...]}. `found` ends with
    the final checkpoint, whose pass@k is `final_pass_at_k`; `evaluate` scores an earlier one."""
    final = found[-1]
    wanted = reached(final_pass_at_k)
    first: dict[str, Candidate] = {}
    evaluated = []
    for c in found[:-1]:
        if all(name in first for name in wanted):
            break
        pass_at_k = evaluate(c)
        evaluated.append({**asdict(c), "pass_at_k": pass_at_k, "reached": reached(pass_at_k)})
        for name in reached(pass_at_k):
            first.setdefault(name, c)
    for name in wanted:
        first.setdefault(name, final)
    evaluated.append({**asdict(final), "pass_at_k": final_pass_at_k, "reached": wanted})
    rows = []
    for name, *_ in HUMANEVAL_SMALL_MODELS:
        c = first.get(name)
        rows.append({"model": name, "reached": c is not None, **({"stage": c.stage, "step": c.step,
                                                                   "checkpoint": c.path,
                                                                   "train_seconds": c.train_seconds} if c else {})})
    return {"rows": rows, "evaluated": evaluated}
