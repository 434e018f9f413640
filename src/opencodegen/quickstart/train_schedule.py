"""Training that keeps to its time budget when the machine slows down (or speeds up) after the plan was timed.

The plan (train_plan.py) times a few steps before training and fits every stage's steps to the budget. On a shared
host that one measurement can be far off an hour later: other jobs start, and a run planned for 12 minutes takes 25.
So the stages run one at a time, and before each one starts, the stages not yet run are fitted again to the time
that is left, at the pace the finished stages actually kept (their wall seconds over the plan's prediction for them,
validation and checkpoints included). A stage's steps are fixed when it starts and never change afterwards: its
learning-rate schedule depends on them, so a resumed run reads them back from `schedule.json` (exact resume)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from ..eval.report import write_json
from ..progress import log
from ..train import train
from ..train.checkpoint import checkpoint_dirs
from ..train.recipe import Recipe
from ..train.stage import stage_dir
from .train_plan import OVERHEAD_SHARE, fit_steps, set_steps

SCHEDULE = "schedule.json"


def refit(plan: dict, names: list[str], done: dict[str, dict], budget_seconds: float) -> list[float]:
    """Steps for the stages not in `done`, fitted to the seconds left at the pace the done ones kept.

    `done` maps a finished stage's name to {"steps", "seconds"} (its decided steps and its wall seconds). The pace
    is the finished stages' wall seconds over what the plan predicted for their steps; the stages left keep the
    plan's proportions and its SFT caps. A stage's wall time is its steps' time over (1 - OVERHEAD_SHARE), the plan's
    own allowance for validation and checkpoints."""
    per_step = plan["seconds_per_step"]
    predicted = sum(done[n]["steps"] * per_step[i] / (1 - OVERHEAD_SHARE) for i, n in enumerate(names) if n in done)
    spent = sum(d["seconds"] for d in done.values())
    pace = spent / predicted if predicted > 0 and spent > 0 else 1.0
    left = [i for i, n in enumerate(names) if n not in done]
    caps = plan.get("sft_caps") or {}
    fitted = fit_steps([plan["steps"][i] for i in left],
                       [per_step[i] * pace / (1 - OVERHEAD_SHARE) for i in left],
                       max(0.0, budget_seconds - spent),
                       {k: caps[names[i]]["max_steps"] for k, i in enumerate(left) if names[i] in caps})
    return [max(2.0, n) for n in fitted]


def _finished(run_dir: Path, index: int, name: str, steps: int) -> bool:
    found = checkpoint_dirs(stage_dir(run_dir, index, name))
    return bool(found) and found[-1][0] >= steps


def with_schedule(recipe: Recipe, schedule: dict) -> Recipe:
    """The recipe with the steps its stages were given when they started (stages not started keep theirs)."""
    out = copy.deepcopy(recipe)
    for s in out.stages:
        if s.name in schedule["stages"]:
            set_steps(s, schedule["stages"][s.name]["steps"])
    return out


def train_on_schedule(recipe: Recipe, run_dir: Path, plan: dict) -> dict[str, Any]:
    """Trains `recipe` (already shaped by train_plan.apply) stage by stage under run_dir, refitting the stages left
    before each one starts. Returns the training summary, with the schedule the stages ran to."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / SCHEDULE
    schedule = json.loads(path.read_text()) if path.is_file() else {"budget_seconds": plan["minutes"] * 60,
                                                                     "stages": {}}
    decided: dict[str, dict] = schedule["stages"]
    names = [s.name for s in recipe.stages]
    summary: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name not in decided:
            done = {n: d for n, d in decided.items() if "seconds" in d}
            steps = round(refit(plan, names, done, schedule["budget_seconds"])[0])
            planned = plan["steps"][i]
            left = schedule["budget_seconds"] - sum(d["seconds"] for d in done.values())
            decided[name] = {"steps": steps, "planned_steps": planned, "seconds_left": round(left, 1)}
            write_json(path, schedule)
            if steps != planned:
                log(f"stage {name}: {steps} steps instead of the planned {planned}, to finish training within "
                    f"{plan['minutes']:g} minutes at the pace of the stages before it")
        if "seconds" in decided[name] and _finished(run_dir, i, name, decided[name]["steps"]):
            continue
        prefix = with_schedule(recipe, schedule)
        prefix.stages = prefix.stages[: i + 1]
        start = time.perf_counter()
        summary = train(prefix, run_dir, progress=True, table=i == len(names) - 1)
        # a stage resumed after an interruption is charged only for the part this run did
        decided[name]["seconds"] = round(decided[name].get("seconds", 0.0) + time.perf_counter() - start, 1)
        write_json(path, schedule)
    if not summary:  # every stage finished in an earlier run (which stopped before recording it)
        summary = train(with_schedule(recipe, schedule), run_dir, progress=False)
    return {**summary, "schedule": schedule}
