"""The one stage runner: every kind of stage (pretrain, sft, dpo, rl) trains through `Stage`.

    stage = Stage(ctx, objective)
    stage.setup(init=previous_checkpoint, resume=this_stages_checkpoint)
    result = stage.run()          # step() until the stage's length, evaluate() and save() on their cadence

The objective (train/objective.py) says which micro-batches a step has and what their loss is; everything else is
here, once."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..model.transformer import GPT
from ..progress import log as note, progress_task
from . import checkpoint as ckpt
from . import distributed as dist_
from .metrics import MetricsLog, plot_stage
from .objective import Objective
from .optim import lr_at, make_optimizer
from .recipe import BatchConfig, OptimConfig, Recipe, RunConfig, StageConfig
from .tokens import chat_template_after, tokenizer_file


@dataclass
class StageContext:
    """Everything about where and how a stage runs, fixed before it starts."""

    recipe: Recipe
    index: int
    run_dir: Path
    dist: dist_.Dist
    dtype: torch.dtype
    peak_flops: float
    log: MetricsLog
    progress: bool = True

    @property
    def stage(self) -> StageConfig:
        return self.recipe.stages[self.index]

    @property
    def optim(self) -> OptimConfig:
        return self.recipe.stage_optim(self.index)

    @property
    def batch(self) -> BatchConfig:
        return self.recipe.stage_batch(self.index)

    @property
    def run(self) -> RunConfig:
        return self.recipe.stage_run(self.index)

    @property
    def device(self) -> str:
        return self.recipe.run.device

    @property
    def directory(self) -> Path:
        return stage_dir(self.run_dir, self.index, self.stage.name)

    def autocast(self):
        return torch.autocast(self.device.split(":")[0], dtype=self.dtype, enabled=self.dtype != torch.float32)


@dataclass
class StageResult:
    stage: str
    kind: str
    steps: int
    tokens: int
    final_loss: float | None
    seconds: float
    tokens_per_s: float | None
    metrics: dict[str, float] = field(default_factory=dict)  # the last validation (and objective) numbers

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "metrics"}
        return {**out, **self.metrics}


def stage_dir(run_dir: Path, i: int, name: str) -> Path:
    return Path(run_dir) / f"stage-{i}-{name}"


def stage_length(recipe: Recipe, i: int) -> int:
    s, b = recipe.stages[i], recipe.stage_batch(i)
    return s.steps if s.steps is not None else max(1, s.tokens // b.batch_tokens)


class Stage:
    def __init__(self, ctx: StageContext, objective: Objective, build_model):
        self.ctx, self.objective, self.build_model = ctx, objective, build_model
        self.total_steps = stage_length(ctx.recipe, ctx.index)
        self.step_no = 0
        self.best = math.inf
        self.last_val: dict[str, float] = {}
        self.losses: list[float] = []
        self.tokens_done = 0

    # ---- setup ------------------------------------------------------------------------------------------------
    def setup(self, init: Path | None, resume: Path | None) -> None:
        """The model with its starting weights (this stage's checkpoint when resuming, else the previous stage's
        final one, else the recipe's initialisation), wrapped for the processes, and its optimizer."""
        ctx, stage = self.ctx, self.ctx.stage
        model: GPT = self.build_model()
        if init is not None or resume is not None:
            ckpt.load_model_weights(model, resume or init)
        # Long-context stages: new RoPE base/scaling and a table covering the stage's context.
        model.set_rope(block_size=max(model.config.block_size, ctx.batch.context_length), rope_base=stage.rope_base,
                       rope_scaling=stage.rope_scaling)
        model.to(ctx.device).train()
        if ctx.run.activation_checkpointing:
            _checkpoint_blocks(model)
        self.model = model
        self.objective.setup(model, ctx)
        self.wrapped = dist_.wrap(model, ctx.dist, ctx.run.parallel)
        self.optim = make_optimizer(self.wrapped, ctx.optim, ctx.dtype)
        if resume is not None:
            state, optim_sd, rng = ckpt.load_state(resume)
            self.step_no, self.best = state["step"], state.get("best_val_loss", math.inf)
            self.objective.load_state_dict(state.get("objective", {}))
            if optim_sd is not None:
                dist_.load_optim_state(self.wrapped, self.optim, optim_sd, ctx.dist)
            ckpt.set_rng_state(rng)
            ctx.log.truncate(stage.name, self.step_no)
            note(f"resuming stage {stage.name} at step {self.step_no} from {resume}")
        else:
            ctx.log.truncate(stage.name, 0)
        self.forward = torch.compile(self.wrapped) if ctx.run.compile else self.wrapped

    # ---- one optimizer step -----------------------------------------------------------------------------------
    def step(self, on_micro_batch=None) -> dict[str, Any]:
        """One optimizer step; `on_micro_batch(done, total, tokens)` is called after each micro-batch's backward pass
        (a step of a large batch on a CPU can take minutes)."""
        ctx, step = self.ctx, self.step_no
        t0 = time.perf_counter()
        lr = lr_at(step, self.total_steps, ctx.optim)
        for g in self.optim.param_groups:
            g["lr"] = lr
        batches = self.objective.batches(step, self.model)
        step_loss, tokens, sums = 0.0, 0, {}
        ddp = ctx.dist.enabled and ctx.run.parallel == "ddp"
        for m, mb in enumerate(batches):
            sync = m == len(batches) - 1 or not ddp
            with (contextlib.nullcontext() if sync else self.wrapped.no_sync()):
                with ctx.autocast():
                    report, loss, metrics = self.objective.loss(self.forward, mb)
                loss.backward()
            step_loss += report
            tokens += self.objective.tokens_in(mb)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v / len(batches)
            if on_micro_batch is not None:
                on_micro_batch(m + 1, len(batches), tokens * ctx.dist.world_size)
        step_loss = dist_.all_mean(step_loss, ctx.dist)
        if not math.isfinite(step_loss):
            found = ckpt.checkpoint_dirs(ctx.directory)
            keep = f"; the last good checkpoint is {found[-1][1]}" if found else ""
            raise UserError(f"stage {ctx.stage.name} step {step}: loss is {step_loss} (diverged). Lower optim.lr or "
                            f"raise warmup_steps{keep}")
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.wrapped.parameters(), ctx.optim.grad_clip))
        self.optim.step()
        self.optim.zero_grad(set_to_none=True)
        self.step_no += 1
        self.losses.append(step_loss)
        dt = time.perf_counter() - t0
        tokens *= ctx.dist.world_size
        self.tokens_done += tokens
        tps = tokens / dt
        mfu = tps * self.model.config.flops_per_token(ctx.batch.context_length) / (ctx.peak_flops *
                                                                                    ctx.dist.world_size)
        step_metrics = {k: dist_.all_mean(v, ctx.dist) for k, v in sums.items()}
        step_metrics.update(self.objective.step_metrics())
        return {"stage": ctx.stage.name, "step": self.step_no, "loss": step_loss, "lr": lr, "grad_norm": gnorm,
                "tokens_per_s": tps, "mfu": mfu, "seconds": dt, **step_metrics}

    # ---- validation and checkpoints ---------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        try:
            found = self.objective.evaluate(self.wrapped)
        finally:
            self.model.train()
        self.last_val = {**found, "val_step": self.step_no} if found else {}
        if found.get("val_loss", math.inf) < self.best:
            self.best = found["val_loss"]
        return found

    def save(self) -> None:
        ctx = self.ctx
        msd = dist_.full_state_dict(self.wrapped, ctx.dist)
        osd = dist_.full_optim_state(self.wrapped, self.optim, ctx.dist)
        if ctx.dist.is_main:
            state = {"stage": ctx.stage.name, "kind": ctx.stage.kind, "stage_index": ctx.index, "step": self.step_no,
                     "best_val_loss": self.best, "recipe": ctx.recipe.to_dict(), **self.last_val,
                     "objective": self.objective.state_dict()}
            tokenizer = tokenizer_file(ctx.recipe)
            template = chat_template_after(ctx.recipe, ctx.index)
            ckpt.save(ctx.directory / f"checkpoint-{self.step_no}", msd, self.model, tokenizer, osd, state, template)
            if self.last_val.get("val_loss", math.inf) <= self.best and self.last_val.get("val_step") == self.step_no:
                ckpt.save(ctx.directory / "best", msd, self.model, tokenizer, None, state, template)
            ckpt.prune(ctx.directory, ctx.run.keep_last)
        dist_.barrier(ctx.dist)

    def _out_of_time(self, start: float) -> bool:
        """run.max_seconds used (by any process: they all stop at the same step)."""
        limit = self.ctx.run.max_seconds
        return limit is not None and dist_.all_max(float(time.perf_counter() - start >= limit), self.ctx.dist) > 0

    # ---- the whole stage --------------------------------------------------------------------------------------
    def run(self) -> StageResult:
        ctx, run = self.ctx, self.ctx.run
        start = time.perf_counter()
        show = ctx.progress and ctx.dist.is_main
        title = ctx.stage.name if ctx.stage.name == ctx.stage.kind else f"{ctx.stage.kind} {ctx.stage.name}"
        bar = progress_task(title, total=self.total_steps, unit="step") if show else contextlib.nullcontext()
        try:
            with bar as task:
                task = task or _SilentTask()
                task.update(completed=self.step_no)
                within = _WithinStep(task, self)
                while self.step_no < self.total_steps:
                    within.start()
                    rec = self.step(within.micro_batch_done)
                    if self.step_no % run.eval_every == 0 or self.step_no == self.total_steps:
                        rec.update(self.evaluate())
                    ctx.log.write(rec, self.step_no)
                    task.update(completed=self.step_no, info=_info(rec, self.last_val))
                    saved = self.step_no % run.save_every == 0 or self.step_no == self.total_steps
                    if saved:
                        self.save()
                    if self.step_no < self.total_steps and self._out_of_time(start):
                        if not saved:
                            self.save()
                        note(f"stage {ctx.stage.name}: stopped at step {self.step_no} of {self.total_steps}, its "
                             f"{run.max_seconds:g} s (run.max_seconds) used")
                        break
        finally:
            self.objective.close()
        elapsed = time.perf_counter() - start
        if ctx.dist.is_main:
            plot_stage(ctx.log.records(), ctx.stage.name, ctx.run_dir / f"loss-{ctx.index}-{ctx.stage.name}.png")
        return StageResult(ctx.stage.name, ctx.stage.kind, self.step_no, self.step_no * ctx.batch.batch_tokens,
                           self.losses[-1] if self.losses else None, elapsed,
                           self.tokens_done / elapsed if elapsed and self.tokens_done else None, dict(self.last_val))


def _info(rec: dict[str, Any], last_val: dict[str, float]) -> str:
    info = f"loss {rec['loss']:.3f} lr {rec['lr']:.2e} {rec['tokens_per_s']:,.0f} tok/s MFU {rec['mfu']:.1%}"
    if "reward" in rec:
        info += f" reward {rec['reward']:.3f}"
    if "val_bpb" in last_val:
        info += f" val bpb {last_val['val_bpb']:.3f}"
    elif "val_loss" in last_val:
        info += f" val loss {last_val['val_loss']:.3f}"
    return info


class _WithinStep:
    """Progress inside a step: the bar advances by fractions of a step as micro-batches finish (so its rate and ETA
    move), and the info column shows the micro-batches, tokens/s and the step's ETA (a step of a large batch on a
    CPU can take minutes)."""

    def __init__(self, task, stage: "Stage"):
        self.task, self.stage = task, stage

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def micro_batch_done(self, done: int, total: int, tokens: int) -> None:
        if done == total:
            return  # the step's own record follows
        now = time.perf_counter()
        tps = tokens / max(now - self.t0, 1e-9)
        eta = (now - self.t0) * (total - done) / done
        info = f"step {self.stage.step_no + 1}: micro-batch {done}/{total}, {tps:,.0f} tok/s, step eta {eta:.0f} s"
        self.task.update(completed=self.stage.step_no + done / total, info=info)


class _SilentTask:
    """Ranks other than 0 (and progress=False) train without a display."""

    def update(self, **kwargs) -> None:
        pass


def _checkpoint_blocks(model: GPT) -> None:
    """Activation checkpointing: recompute each block's activations in the backward pass."""
    from torch.utils.checkpoint import checkpoint

    for block in model.blocks:
        forward = block.forward

        def wrapped(*args, _f=forward):
            return checkpoint(_f, *args, use_reentrant=False)

        block.forward = wrapped
