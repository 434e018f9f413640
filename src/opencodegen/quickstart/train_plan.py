"""Fit the recipe to a time budget: measure one optimiser step of each stage on this machine, then scale every
stage's steps by one factor so that the stages together take `minutes`. The recipe's own steps set the proportions
(Mono gets most: it is the stage the held-out bits per byte measures).

The plan is computed once and stored with the run: a resumed run must keep the same step counts, because the
learning-rate schedule (and so exact resume) depends on them."""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

from ..progress import log
from ..train import train
from ..train.loop import model_config
from ..train.objectives import KIND_OBJECTIVES
from ..train.precision import resolve_autocast
from ..train.recipe import Recipe
from ..train.sft import SFT
from . import contention, shape_plan

# The first step pays for warm-up (allocations, thread pools); the rest are timed, and their median is the step time.
# On a shared host a few timed steps misjudge it badly (the run then trains well short of, or past, its budget);
# nineteen agreed with the steps of the run that followed (figures in the README).
PROBE_STEPS = 20
# Stages that sample and judge (rl, dpo) spend seconds a step, mostly generating, and vary less step to step.
SAMPLING_PROBE_STEPS = 3
# Validation passes and checkpoint writes happen between steps: leave them this share of the budget.
OVERHEAD_SHARE = 0.1
# A run's time goal shortens training to no less than this share of its minutes: on a host slower still, a model
# trained for less would write nothing, and finishing a few minutes late is the lesser loss.
MIN_SHARE = 0.5
# Checkpoints kept per post-training stage, evenly spread (the last is the stage's end).
POST_TRAINING_CHECKPOINTS = 3
# Times the stages may be timed at a newly chosen shape before the plan settles (see plan()).
SHAPE_ROUNDS = 3


def seconds_per_step(recipe: Recipe, stage: int, probe_steps: int = PROBE_STEPS) -> float:
    """Wall seconds of one optimiser step of `stage` (its batch, context and data), measured by training a copy of
    the recipe for a few steps in a scratch directory, from the recipe's initialisation. A sampling stage's probe
    generates from untrained weights, which rarely stop before max_new_tokens, while the fine-tuned policy that
    will run the stage writes about as much as its data's reference answers: the probe generates that many tokens
    (before this, probes timed the quickstart's RL steps at 2.4-2.8 times what training then took)."""
    s = recipe.stages[stage]
    sampling = s.kind in ("rl", "dpo")
    probe = copy.deepcopy(recipe)
    probe.stages = [copy.deepcopy(s)]
    probe.stages[0].steps, probe.stages[0].tokens = SAMPLING_PROBE_STEPS if sampling else probe_steps, None
    if sampling:
        options = getattr(probe.stages[0], s.kind)
        vocab = model_config(recipe).vocab_size
        options.max_new_tokens = KIND_OBJECTIVES[s.kind](recipe, stage, 1, vocab, None).expected_completion_tokens()
    probe.stages[0].optim = {**probe.stages[0].optim, "warmup_steps": 1}
    b = recipe.stage_batch(stage)
    accumulation = 1
    if not sampling:
        # One micro-batch per probe step: a full step is `accumulation` of them plus one optimiser update, and the
        # update is cheap next to them (a few passes over the weights), so scaling up costs little accuracy.
        probe.stages[0].batch = {**probe.stages[0].batch, "batch_tokens": b.micro_batch * b.context_length}
        accumulation = b.batch_tokens // (b.micro_batch * b.context_length)
    probe.run.eval_tokens = b.context_length  # one validation window: the probe's last step validates
    probe.run.keep_last = 1
    with tempfile.TemporaryDirectory(prefix="ocg-probe-") as tmp:
        train(probe, tmp, progress=False)
        records = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    seconds = [r["seconds"] for r in records if "seconds" in r][1:]
    return accumulation * statistics.median(seconds)


def fit_steps(base: list[float], per_step: list[float], seconds: float, caps: dict[int, float]) -> list[float]:
    """Steps per stage: the recipe's `base` steps scaled by one factor so that the stages take `seconds`, except that
    no stage goes past its cap; a capped stage's time goes to the others, in their proportions."""
    capped: dict[int, float] = {}
    while True:
        free = [i for i in range(len(base)) if i not in capped]
        rest = seconds - sum(capped[i] * per_step[i] for i in capped)
        weight = sum(base[i] * per_step[i] for i in free)
        scale = rest / weight if weight else 0.0
        over = [i for i in free if i in caps and base[i] * scale > caps[i]]
        if not over:
            return [capped.get(i, base[i] * scale) for i in range(len(base))]
        capped.update({i: caps[i] for i in over})


def sft_caps(recipe: Recipe, max_epochs: float | None) -> dict[int, dict]:
    """{stage index: {"epoch_steps", "max_steps"}} for the SFT stages: at most `max_epochs` passes over their
    examples. A longer budget would otherwise repeat the same exercises many times over (the quickstart's exercises
    fill about one epoch in the default budget, and twice the epochs fit HumanEval's solutions worse)."""
    if not max_epochs:
        return {}
    vocab = model_config(recipe).vocab_size
    out = {}
    for i, s in enumerate(recipe.stages):
        if s.kind == "sft":
            epoch = SFT(recipe, i, 1, vocab, None).epoch_steps()
            out[i] = {"epoch_steps": round(epoch, 1), "max_steps": max(2.0, max_epochs * epoch)}
    return out


def plan(recipe: Recipe, minutes: float, tokens_per_param: float | None = None,
         sft_max_epochs: float | None = None, calibration: float = 1.0, deadline: float | None = None) -> dict:
    """{"steps": [per stage], "autocast": ..., "seconds_per_step": [...], "predicted_seconds": ..., "shape": ...,
    "sft_caps": ...}; stages that share a batch shape are measured once, in the autocast dtype the run will use on
    this machine. With `tokens_per_param`, the model's shape is chosen too (shape_plan.py), and the stages are timed at
    the shape that trains: first at the smallest candidate (cheap, for the share of the budget pretraining gets, which
    the choice needs), then at the chosen one (until the choice made with its share is the shape timed, at most
    SHAPE_ROUNDS times). Timing every stage at the recipe's shape and scaling by Mono's step cost 40 s more on a slow
    host, where a smaller shape is chosen, and misjudged the sampling stages, whose cost does not scale with Mono's.
    With `sft_max_epochs`, SFT stages stop at that many epochs of their data and the time left goes to the other
    stages. Every measured step time is multiplied by `calibration`: training's own seconds a step over a probe's,
    measured at the same moment (train_schedule.py's new plan after the first stage), for a machine on which probes
    misjudge training.
    deadline: time.monotonic() by which training should end; once the stages are timed, training gets the minutes
    left until then if they are fewer than `minutes` (never fewer than MIN_SHARE of them)."""
    recipe = copy.deepcopy(recipe)
    recipe.run.autocast = resolve_autocast(recipe.run.autocast, recipe.run.device)
    start = contention.snapshot()

    def timed(r: Recipe, i: int, probe_steps: int = PROBE_STEPS) -> float:
        return seconds_per_step(r, i, probe_steps) * calibration

    base = [s.steps if s.steps is not None else max(1, s.tokens // recipe.stage_batch(i).batch_tokens)
            for i, s in enumerate(recipe.stages)]
    caps = sft_caps(recipe, sft_max_epochs)
    max_steps = {i: c["max_steps"] for i, c in caps.items()}
    pre = [i for i, s in enumerate(recipe.stages) if s.kind == "pretrain"]
    shape_times: dict[tuple, float] = {}

    def shape_step(r: Recipe, i: int) -> float:  # each candidate is timed once, however many rounds ask
        key = (r.model["n_layer"], r.model["n_embd"])
        if key not in shape_times:
            shape_times[key] = timed(r, i, shape_plan.SHAPE_PROBE_STEPS)
        return shape_times[key]

    probed, shape = (shape_plan.CANDIDATES[0] if tokens_per_param and pre else None), None
    timed_at = []  # the shapes every stage was timed at, in order
    for round_ in range(SHAPE_ROUNDS):
        at = shape_plan.with_shape(recipe, *probed) if probed else recipe
        timed_at.append("{}x{}".format(*probed) if probed else "recipe")
        per_step = stage_seconds(at, timed)
        minutes_now = minutes if deadline is None else shortened(minutes, (deadline - time.monotonic()) / 60)
        budget = minutes_now * 60 * (1 - OVERHEAD_SHARE)
        fitted = fit_steps(base, per_step, budget, max_steps)
        if not probed:
            break
        pretrain_seconds = sum(fitted[i] * per_step[i] for i in pre)
        shape = shape_plan.choose(recipe, pretrain_seconds, tokens_per_param, shape_step, pre[-1])
        chosen = (shape["n_layer"], shape["n_embd"])
        if chosen == probed:
            break
        if round_ == SHAPE_ROUNDS - 1:  # still moving: the chosen shape's steps scale with its Mono step
            scale = shape_times[chosen] / shape_step(at, pre[-1])
            per_step = [t * scale for t in per_step]
            fitted = fit_steps(base, per_step, budget, max_steps)
        probed = chosen
    if shape:
        print_shape(shape)
        log(f"every stage timed at {', '.join(timed_at)}")
    if minutes_now < minutes:
        log(f"training gets {minutes_now:.1f} of its {minutes:g} minutes: the stages before it took long enough on "
            "this machine that the full budget would leave the evaluation too little of the run's time goal")
    steps = [max(2, round(n)) for n in fitted]
    foreign = contention.foreign_share(start, contention.snapshot(), os.cpu_count() or 1)
    if foreign is not None and foreign > contention.CONTENDED_SHARE:
        log(f"[yellow]other processes used {foreign:.0%} of the cores while the plan timed its steps: the model shape "
            "and step counts assume they keep running (the steps are refitted as training goes, and the plan is made "
            "again if the first stage runs much faster); on a quiet machine the plan may choose a larger "
            "model[/yellow]")
    names = [s.name for s in recipe.stages]
    sft = {names[i]: {**c, "max_epochs": sft_max_epochs, "capped": steps[i] >= round(c["max_steps"])}
           for i, c in caps.items()}
    for name, c in sft.items():
        if c["capped"]:
            log(f"stage {name}: {c['max_epochs']:g} epochs of its examples ({c['epoch_steps']:g} steps an epoch); "
                "the rest of its share of the budget goes to the other stages")
    return {"steps": steps, "autocast": recipe.run.autocast, "seconds_per_step": per_step, "minutes": minutes_now,
            "shortened_from": minutes if minutes_now < minutes else None,
            "predicted_seconds": sum(n * t for n, t in zip(steps, per_step)), "shape": shape, "sft_caps": sft,
            "stages_timed_at": timed_at,
            "foreign_cpu_share": None if foreign is None else round(foreign, 3), "calibration": calibration}


def stage_seconds(recipe: Recipe, timed) -> list[float]:
    """Seconds of one optimiser step of each stage, `timed(recipe, stage)`: stages of one kind with one batch shape
    run at one speed and are timed once (a sampling stage's speed also depends on its data)."""
    measured: dict[tuple, float] = {}
    out = []
    for i, s in enumerate(recipe.stages):
        b = recipe.stage_batch(i)
        key = (s.kind, b.batch_tokens, b.micro_batch, b.context_length) + ((i,) if s.kind in ("rl", "dpo") else ())
        if key not in measured:
            measured[key] = timed(recipe, i)
        out.append(measured[key])
    return out


def shortened(minutes: float, left: float) -> float:
    """The training minutes a run's time goal leaves: `minutes`, or the `left` ones if fewer (on a slow host the stages
    before training take longer), but at least MIN_SHARE of `minutes`."""
    out = round(max(MIN_SHARE * minutes, left), 2)
    return min(out, minutes)  # (compared rounded: a goal that leaves 8.996 of 9 minutes shortens nothing)


def print_shape(shape: dict) -> None:
    rows = ", ".join(f"{c['shape']} {c['params'] / 1e6:.1f}M params: "
                     + (f"{c['tokens'] / 1e6:.2f}M tokens = {c['tokens_per_param']:.2f}/param"
                        if c["tokens"] is not None else "not timed") for c in shape["candidates"])
    log(f"model shape: {shape['chosen']} ({shape['params'] / 1e6:.1f}M parameters), {shape['rule']}. Measured: {rows}")


def apply(recipe: Recipe, plan: dict, evals_per_stage: int = 4) -> Recipe:
    """The recipe with the planned step counts and precision, validating and checkpointing a few times per stage.
    Post-training stages keep POST_TRAINING_CHECKPOINTS checkpoints spread over the stage: the time-to-target
    evaluation (quickstart/targets.py) looks for the first of them that reaches a published model's row."""
    steps = plan["steps"]
    out = copy.deepcopy(recipe)
    if plan.get("shape"):
        out = shape_plan.with_shape(out, plan["shape"]["n_layer"], plan["shape"]["n_embd"])
    out.run.autocast = plan["autocast"]
    for s, n in zip(out.stages, steps):
        set_steps(s, n)
    longest = max(steps)
    out.run.eval_every = max(1, longest // evals_per_stage)
    out.run.save_every = out.run.eval_every
    return out


def set_steps(stage, n: int) -> None:
    """Give a recipe stage `n` steps; a post-training stage keeps POST_TRAINING_CHECKPOINTS checkpoints spread evenly
    over them (the last at its end)."""
    stage.steps, stage.tokens = n, None
    if stage.kind != "pretrain":
        stage.run = {**stage.run, "save_every": max(1, math.ceil(n / POST_TRAINING_CHECKPOINTS)),
                     "keep_last": POST_TRAINING_CHECKPOINTS}
