"""Training that keeps to its time budget when the machine slows down (or speeds up) after the plan was timed.

The plan (train_plan.py) times a few steps before training and fits every stage's steps to the budget. On a shared
host that one measurement can be far off an hour later: other jobs start, and a run planned for 12 minutes takes 25.
So the stages run one at a time, and before each one starts, the stages not yet run are fitted again to the time
that is left, at the pace the finished stages actually kept (their wall seconds over the plan's prediction for them,
validation and checkpoints included). A stage's steps are fixed when it starts and never change afterwards: its
learning-rate schedule depends on them, so a resumed run reads them back from `schedule.json` (exact resume). A
slowdown inside a stage is not seen until it ends, so a pretraining stage that post-training follows also gets a time
allowance (run.max_seconds, PRETRAIN_ALLOWANCE times its fitted time) and ends where it is when that runs out; the
step it reached is recorded as `stopped_at`, and the stages after it start from there.

The last stage has no stage after it to give time to, and its fitted steps can be far off: RL's steps are timed on
the model before post-training, whose samples run to max_new_tokens, and a 60-minute run's RL then took 3.9 s a step
against the 7.0 its probe timed, leaving 5.3 minutes unused. So when its learning rate does not depend on its length
(optim.length_free: RL's is constant), it is given up to OPEN_ENDED_STEPS times its fitted steps and the time left as
its run.max_seconds, and trains until that time is used.

The model's shape is chosen by the plan too, and a plan timed while other work used the cores sees a slower machine
than training then has: one such plan timed steps 2.5 times slower than the run then trained them, chose a
0.9M-parameter model, and the run ended worse than xz -9. So when the first stage runs in at most REPLAN_PACE of the
time the plan predicted for it, the plan is made again for the time that is left (`replan`, its probes calibrated
against the first stage's own pace); if it chooses another shape, what was trained is set aside (into REPLACED) and
training starts over with the new plan. This happens once a run; schedule.json records it, and a resumed run trains
with the plan it recorded."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from ..eval.report import write_json
from ..progress import log
from ..train import train
from ..train.checkpoint import checkpoint_dirs
from ..train.optim import length_free
from ..train.recipe import Recipe
from ..train.stage import stage_dir
from . import train_plan
from .train_plan import OVERHEAD_SHARE, fit_steps, set_steps

SCHEDULE = "schedule.json"
# Make the plan again when the first stage took at most this share of its predicted time (1.5 times the speed the
# plan measured). Quiet runs keep within about 10% of their plan (README); starting over costs the first stage's
# time and a new plan's (about a tenth of the budget), which only a larger shape pays back.
REPLAN_PACE = 2 / 3
REPLACED = "replaced-by-replan"  # in the training directory: what was trained with the first plan
# A pretraining stage followed by post-training may run this much longer than its fitted time (run.max_seconds), then
# it ends where it is: a machine that slows down inside Mono (the longest stage) would otherwise take the time from
# SFT, whose steps are fixed only when it starts (a 60-minute run lost 273 of SFT's 667 steps so).
PRETRAIN_ALLOWANCE = 1.1
# An open-ended last stage's steps are at most this many times those fitted to the time left: room for a probe that
# timed its step at 1.8 times what it then took, and its checkpoints (spread over these steps) still a third apart.
OPEN_ENDED_STEPS = 2
# The stages left are refitted at the pace of the finished stages predicted to take at least this long. A stage's
# setup, last validation and checkpoint take a few seconds whatever its length (2.2-2.5 s on a 2-core AVX2 host): a
# third of the quickstart's 8-second NL stage there, which read as a machine 1.3 times slower than planned and took 61
# of Mono's 546 steps (Mono then ran at 0.97 of its planned pace). The time they took is still counted as spent.
# (The replan after the first stage uses its pace whatever its length: those seconds can only make a stage look
# slower, never trigger a replan.)
MIN_PACE_SECONDS = 30.0


def steps_run(decided: dict) -> int:
    """A stage's steps: those it was given, or where it stopped when its max_seconds ran out."""
    return decided.get("stopped_at", decided["steps"])


def _wall_per_step(plan: dict, index: int) -> float:
    """Stage `index`'s planned seconds a step with the plan's allowance for validation and checkpoints
    (OVERHEAD_SHARE of a stage's wall time)."""
    return plan["seconds_per_step"][index] / (1 - OVERHEAD_SHARE)


def pace(plan: dict, names: list[str], done: dict[str, dict], min_seconds: float = 0.0) -> float:
    """The finished stages' wall seconds over what the plan predicted for their steps (1.0 before any finished),
    counting only the stages predicted to take at least `min_seconds`."""
    stages = [(steps_run(done[n]) * _wall_per_step(plan, i), done[n]["seconds"]) for i, n in enumerate(names)
              if n in done]  # (predicted, spent) of each finished stage
    counted = [(p, s) for p, s in stages if p >= min_seconds]
    predicted, spent = sum(p for p, _ in counted), sum(s for _, s in counted)
    return spent / predicted if predicted > 0 and spent > 0 else 1.0


def refit(plan: dict, names: list[str], done: dict[str, dict], budget_seconds: float) -> list[float]:
    """Steps for the stages not in `done`, fitted to the seconds left at the pace the done ones kept.

    `done` maps a finished stage's name to {"steps", "seconds"} (its decided steps and its wall seconds). The pace
    is the finished stages' wall seconds over what the plan predicted for their steps (of those predicted to take at
    least MIN_PACE_SECONDS; all of their seconds count as spent); the stages left keep the
    plan's proportions and its SFT caps. A stage's wall time is its steps' time over (1 - OVERHEAD_SHARE), the plan's
    own allowance for validation and checkpoints."""
    rate = pace(plan, names, done, MIN_PACE_SECONDS)
    spent = sum(d["seconds"] for d in done.values())
    left = [i for i, n in enumerate(names) if n not in done]
    caps = plan.get("sft_caps") or {}
    fitted = fit_steps([plan["steps"][i] for i in left],
                       [_wall_per_step(plan, i) * rate for i in left],
                       max(0.0, budget_seconds - spent),
                       {k: caps[names[i]]["max_steps"] for k, i in enumerate(left) if names[i] in caps})
    return [max(2.0, n) for n in fitted]


def _last_step(run_dir: Path, index: int, name: str) -> int:
    found = checkpoint_dirs(stage_dir(run_dir, index, name))
    return found[-1][0] if found else 0


def allowance(plan: dict, names: list[str], kinds: list[str], done: dict[str, dict], index: int,
              steps: int) -> float | None:
    """run.max_seconds for stage `index` given `steps`: PRETRAIN_ALLOWANCE times its fitted wall time at the pace
    of the stages done, for a pretraining stage that post-training follows; else None (no limit)."""
    if kinds[index] != "pretrain" or all(k == "pretrain" for k in kinds[index + 1:]):
        return None
    seconds = steps * _wall_per_step(plan, index) * pace(plan, names, done, MIN_PACE_SECONDS)
    return round(PRETRAIN_ALLOWANCE * seconds, 1)


def open_ended(recipe: Recipe, index: int, steps: int, seconds_left: float) -> tuple[int, float] | None:
    """(steps, max_seconds) for the last stage when its learning rate does not depend on its length (see the
    module's docstring), else None. It may use the seconds left but for the plan's OVERHEAD_SHARE of them: the
    stage's setup and its last step, validation and checkpoint fall outside or after its max_seconds check."""
    if index != len(recipe.stages) - 1 or not length_free(recipe.stage_optim(index)):
        return None
    return OPEN_ENDED_STEPS * steps, round(seconds_left * (1 - OVERHEAD_SHARE), 1)


def with_schedule(recipe: Recipe, schedule: dict) -> Recipe:
    """The recipe with the steps its stages were given when they started, or those they ran if their time ran out
    (stages not started keep theirs), and their time allowances."""
    out = copy.deepcopy(recipe)
    for s in out.stages:
        decided = schedule["stages"].get(s.name)
        if decided:
            set_steps(s, steps_run(decided))
            if decided.get("max_seconds") is not None:
                s.run = {**s.run, "max_seconds": decided["max_seconds"]}
    return out


def train_on_schedule(base: Recipe, run_dir: Path, plan: dict,
                      replan: Callable[[float, float], dict] | None = None) -> dict[str, Any]:
    """Trains `base` shaped by `plan` (train_plan.apply) stage by stage under run_dir, refitting the stages left before
    each one starts; `replan(minutes, calibration)` makes a new plan (see the module's docstring and _replan).
    Returns the training summary,
    with the schedule the stages ran to and the plan they were trained with."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / SCHEDULE
    schedule = json.loads(path.read_text()) if path.is_file() else {"budget_seconds": plan["minutes"] * 60,
                                                                     "stages": {}}
    replanned = schedule.get("replanned")
    if replanned and "plan" in replanned:
        plan = replanned["plan"]
        if not replanned.get("set_aside"):  # the run stopped while moving the first plan's training
            _set_aside(run_dir, schedule)
    recipe = train_plan.apply(base, plan)
    decided: dict[str, dict] = schedule["stages"]
    names, kinds = [s.name for s in recipe.stages], [s.kind for s in recipe.stages]
    summary: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name not in decided:
            done = {n: d for n, d in decided.items() if "seconds" in d}
            steps = round(refit(plan, names, done, schedule["budget_seconds"])[0])
            planned = plan["steps"][i]
            left = schedule["budget_seconds"] - sum(d["seconds"] for d in done.values())
            decided[name] = {"steps": steps, "planned_steps": planned, "seconds_left": round(left, 1),
                             "max_seconds": allowance(plan, names, kinds, done, i, steps)}
            if steps != planned:
                log(f"stage {name}: {steps} steps instead of the planned {planned}, to finish training within "
                    f"{plan['minutes']:g} minutes at the pace of the stages before it")
            unbounded = open_ended(recipe, i, steps, left)
            if unbounded:
                decided[name].update(fitted_steps=steps, steps=unbounded[0], max_seconds=unbounded[1])
                log(f"stage {name}: its learning rate is constant, so it trains until the {unbounded[1]:.0f} s "
                    f"left are used (at most {unbounded[0]} steps)")
            write_json(path, schedule)
        if not ("seconds" in decided[name] and _last_step(run_dir, i, name) >= steps_run(decided[name])):
            prefix = with_schedule(recipe, schedule)
            prefix.stages = prefix.stages[: i + 1]
            start = time.perf_counter()
            summary = train(prefix, run_dir, progress=True, table=i == len(names) - 1)
            # a stage resumed after an interruption is charged only for the part this run did
            decided[name]["seconds"] = round(decided[name].get("seconds", 0.0) + time.perf_counter() - start, 1)
            reached = _last_step(run_dir, i, name)
            if reached < decided[name]["steps"]:  # its max_seconds ran out: the stages after it start from here
                decided[name]["stopped_at"] = reached
            write_json(path, schedule)
        if i == 0 and replan is not None and plan.get("shape") and replanned is None:
            new = _replan(schedule, plan, recipe, replan, path)
            if new is not None:
                return train_on_schedule(base, run_dir, new, replan)
    if not summary:  # every stage finished in an earlier run (which stopped before recording it)
        summary = train(with_schedule(recipe, schedule), run_dir, progress=False)
    return {**summary, "schedule": schedule, "plan": plan}


def _replan(schedule: dict, plan: dict, recipe: Recipe, replan: Callable[[float, float], dict],
            path: Path) -> dict | None:
    """After the first stage: a new plan when that stage ran much faster than planned and the new plan chooses
    another shape (the schedule then starts afresh for the time left); None to go on with `plan`. Recorded in
    `schedule` either way, so a resumed run does not ask again.

    The new plan's probes are calibrated: the first stage's step is probed again now, and every step time the new
    plan measures is scaled by the stage's own seconds a step over that probe's (at most 1). If the other work has
    ended, the probe agrees with training and the scale is 1; if it goes on, a probe still misjudges training under
    it (a run beside a test suite timed steps 2.5 times slower than it then trained them), and the scale corrects
    the new plan by what this run measured."""
    names = [s.name for s in recipe.stages]
    first = schedule["stages"][names[0]]
    rate = pace(plan, names, {names[0]: first})
    if rate > REPLAN_PACE:
        return None
    left = schedule["budget_seconds"] - first["seconds"]
    log(f"stage {names[0]} ran at {1 / rate:.1f} times the speed the plan measured (other work was using the cores "
        f"while it timed?): planning again for the {left / 60:.1f} minutes left")
    start = time.perf_counter()
    trained_step = first["seconds"] * (1 - OVERHEAD_SHARE) / steps_run(first)
    calibration = min(1.0, trained_step / train_plan.seconds_per_step(recipe, 0))
    new = replan(left / 60, calibration)
    seconds = time.perf_counter() - start
    record = {"pace": round(rate, 3), "calibration": round(calibration, 3), "seconds": round(seconds, 1),
              "first_shape": plan["shape"]["chosen"], "shape": new["shape"]["chosen"],
              "seconds_before": round(first["seconds"] + seconds, 1)}
    if new["shape"]["chosen"] == plan["shape"]["chosen"]:
        log(f"the new plan chooses the same shape ({plan['shape']['chosen']}): training goes on")
        schedule["replanned"] = record
        schedule["budget_seconds"] -= seconds  # the time the new plan took is gone from the budget
        write_json(path, schedule)
        return None
    log(f"the new plan chooses {new['shape']['chosen']} instead of {plan['shape']['chosen']}: training starts over "
        f"(what was trained is kept in {path.parent / REPLACED})")
    fresh = {"budget_seconds": left - seconds, "stages": {}, "replanned": {**record, "plan": new, "set_aside": False}}
    write_json(path, fresh)
    _set_aside(path.parent, fresh)
    return new


def _set_aside(run_dir: Path, schedule: dict) -> None:
    """Moves everything the first plan's training wrote (stages, metrics, summaries) into run_dir/REPLACED, then
    records that it did: only then does the new plan's training write anything here."""
    aside = run_dir / REPLACED
    aside.mkdir(exist_ok=True)
    for entry in run_dir.iterdir():
        if entry.name not in (SCHEDULE, REPLACED):
            os.replace(entry, aside / entry.name)
    schedule["replanned"]["set_aside"] = True
    write_json(run_dir / SCHEDULE, schedule)
