"""The training loop: stages in order, each from the previous stage's weights with a fresh AdamW; warmup, then cosine
or WSD; gradient accumulation to the token batch; clipping; optional z-loss; bf16 autocast; validation loss and bits
per byte; atomic checkpoints with exact resume.

    from opencodegen.train import load_recipe, train
    summary = train(load_recipe("configs/quickstart.yaml"), "runs/quickstart")

Exact resume: batches are a function of (seed, stage, step), the optimiser and RNG states are saved with the weights,
so restarting after a SIGKILL at any moment continues from the last checkpoint and reproduces the uninterrupted
run's losses bit for bit on CPU."""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..model.config import ModelConfig
from ..model.transformer import GPT
from . import checkpoint as ckpt
from . import distributed as dist_
from .data import BatchPlan, ValidSet, tokenizer_vocab_size
from .loss import cross_entropy_and_z
from .metrics import MetricsLog, measure_peak_flops, plot_stage
from .muon import Muon, Optimizers, muon_parameters
from .precision import resolve_autocast
from .recipe import OptimConfig, Recipe, accumulation_steps


def lr_at(step: int, total: int, o: OptimConfig) -> float:
    """Linear warmup over warmup_steps, then from lr to lr_end at the last step: a cosine, or for "wsd" (MiniCPM's
    warmup-stable-decay) lr held until the last decay_fraction of the steps, then a straight line down."""
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    span = max(1, total - o.warmup_steps)
    progress = min(1.0, (step - o.warmup_steps) / span)
    if o.schedule == "wsd":
        return o.lr - (o.lr - o.lr_end) * max(0.0, 1 - (1 - progress) / o.decay_fraction)
    return o.lr_end + 0.5 * (o.lr - o.lr_end) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, o: OptimConfig, matmul_dtype: torch.dtype = torch.float32
                   ) -> torch.optim.Optimizer | Optimizers:
    """matmul_dtype: the autocast dtype, which Muon's orthogonalization then runs in too."""
    # No weight decay on 1-D parameters (biases, norm gains), as in CodeGen/GPT-2.
    def adamw(params: list[torch.nn.Parameter]) -> torch.optim.AdamW:
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": o.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        # Fused on CPU too: one kernel per parameter instead of foreach's chain of ops made the whole training step
        # 12-15% faster for tiny-10m/30m here (benchmarks/bench_train.py uses this same optimizer).
        return torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps, fused=True)

    if o.name == "muon":
        groups, rest = muon_parameters(model)
        return Optimizers([Muon(groups, lr=o.lr, weight_decay=o.weight_decay, ns_dtype=matmul_dtype), adamw(rest)])
    return adamw([p for p in model.parameters() if p.requires_grad])


def loss_fn(model, x, y, doc_ids, z_loss: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy (mean over tokens) and the same plus z_loss * mean(logZ^2)."""
    ce, z = cross_entropy_and_z(model(x, doc_ids=doc_ids), y)
    return ce, ce + z_loss * z


def build_model(recipe: Recipe, stage_idx: int) -> GPT:
    if recipe.init_from:
        from ..model.io import load_checkpoint

        model, _ = load_checkpoint(recipe.init_from, with_tokenizer=False)
        return model.train()
    torch.manual_seed(recipe.run.seed)
    return GPT(model_config(recipe))


def model_config(recipe: Recipe) -> ModelConfig:
    """The recipe's `model`: a preset with field overrides, or every field spelled out."""
    spec = dict(recipe.model)
    preset = spec.pop("preset", None)
    return ModelConfig.from_preset(preset, **spec) if preset else ModelConfig.from_dict(spec, where="model")


def stage_length(recipe: Recipe, i: int) -> int:
    s, b = recipe.stages[i], recipe.stage_batch(i)
    return s.steps if s.steps is not None else max(1, s.tokens // b.batch_tokens)


def preflight(recipe: Recipe, world_size: int) -> dict[str, Any]:
    """Every check that can fail on user input, before a model is built: shards exist, vocabularies fit, batches
    divide. Returns the model config so the vocabulary is checked against it."""
    if recipe.init_from:
        from ..model.io import is_hf_directory

        d = Path(recipe.init_from)
        if not (d / "config.json").is_file():
            raise UserError(f"init_from {d}: not a checkpoint directory (no config.json)")
        if is_hf_directory(d):
            from ..model.hf import load_hf_model

            vocab = load_hf_model(d).config.vocab_size
        else:
            vocab = ModelConfig.from_file(d / "config.json").vocab_size
    else:
        vocab = model_config(recipe).vocab_size
    tok_vocab = tokenizer_vocab_size(recipe.tokenizer) if recipe.tokenizer else None
    if tok_vocab is not None and tok_vocab > vocab:
        raise UserError(f"tokenizer {recipe.tokenizer} has {tok_vocab} ids but the model's vocab_size is {vocab}")
    plans = []
    for i, s in enumerate(recipe.stages):
        b = recipe.stage_batch(i)
        accumulation_steps(b, world_size, s.name)
        for d in s.data:
            if not (Path(d) / "train").is_dir():
                raise UserError(f"stage {s.name}: token directory {d} has no train/ split")
        plan = BatchPlan(s.data, b.context_length, recipe.run.seed, i)
        for d, src in zip(s.data, plan.sources):
            top = src.max_token()
            if top >= vocab or (tok_vocab is not None and top >= tok_vocab):
                limit = vocab if tok_vocab is None else min(vocab, tok_vocab)
                raise UserError(f"stage {s.name}: shards in {d}/train hold token id {top}, outside the vocabulary "
                                f"of {limit} (tokenizer {recipe.tokenizer}, model vocab_size {vocab}): "
                                f"were they made with another tokenizer?")
        plans.append(plan)
    return {"plans": plans, "vocab": vocab}


def _stage_dir(run_dir: Path, i: int, name: str) -> Path:
    return run_dir / f"stage-{i}-{name}"


def _find_resume(run_dir: Path, recipe: Recipe) -> tuple[int, Path | None]:
    """(stage index to run, its latest checkpoint or None). Finished stages are skipped."""
    for i, s in reversed(list(enumerate(recipe.stages))):
        found = ckpt.checkpoint_dirs(_stage_dir(run_dir, i, s.name))
        if found:
            step, d = found[-1]
            if step >= stage_length(recipe, i):
                return (i + 1, d)  # stage done: next stage starts from these weights
            return (i, d)
    return (0, None)


@torch.no_grad()
def evaluate(model, valid: ValidSet, micro: int, dtype, device: str, doc_mask: bool, d) -> dict[str, float]:
    model.eval()
    total, count = 0.0, 0
    # Every rank evaluates the same windows (they are few); the loss is identical, so no reduction is needed.
    for k in range(0, len(valid), micro):
        t = valid.tokens[k:k + micro].to(device)
        x, y = t[:, :-1], t[:, 1:]
        docs = valid.doc_ids[k:k + micro, :-1].to(device) if doc_mask else None
        with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            logits = model(x, doc_ids=docs)
        total += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"))
        count += y.numel()
    model.train()
    out = {"val_loss": total / count}
    if valid.n_bytes:
        out["val_bpb"] = total / math.log(2) / valid.n_bytes
    return out


def train(recipe: Recipe, run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Runs (or resumes) every stage of the recipe under run_dir; returns the summary (also in summary.json).
    progress: a live bar per stage (joining the process's one display) and a summary table at the end."""
    run_dir = Path(run_dir)
    d = dist_.init(recipe.run.device)
    pre = preflight(recipe, d.world_size)
    run_dir.mkdir(parents=True, exist_ok=True)
    if d.is_main:
        (run_dir / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")
    device = recipe.run.device
    autocast = resolve_autocast(recipe.run.autocast, device)
    dtype = torch.bfloat16 if autocast == "bf16" else torch.float32
    peak = measure_peak_flops(dtype, device)
    log = MetricsLog(run_dir, d.is_main)
    start_stage, resume_dir = _find_resume(run_dir, recipe)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "autocast": autocast, "peak_flops": peak, "stages": []}
    prev = run_dir / "summary_stages.json"
    if start_stage > 0 and prev.is_file():
        summary["stages"] = json.loads(prev.read_text())[:start_stage]
    model = None
    try:
        for i in range(start_stage, len(recipe.stages)):
            resume = resume_dir if resume_dir is not None and resume_dir.parent.name.startswith(f"stage-{i}-") else None
            init = resume_dir if resume is None else None  # previous stage's final weights
            model = _run_stage(recipe, i, run_dir, d, pre["plans"][i], dtype, peak, log, resume, init, progress,
                               summary)
            resume_dir = ckpt.checkpoint_dirs(_stage_dir(run_dir, i, recipe.stages[i].name))[-1][1]
            if d.is_main:
                prev.write_text(json.dumps(summary["stages"], indent=2) + "\n")
        summary["final_checkpoint"] = str(resume_dir) if resume_dir else None
        if d.is_main:
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if progress:
                print_summary(summary)
    finally:
        log.close()
        dist_.close(d)
    return summary


def _run_stage(recipe: Recipe, i: int, run_dir: Path, d, plan: BatchPlan, dtype, peak: float, log: MetricsLog,
               resume: Path | None, init: Path | None, progress: bool, summary: dict[str, Any]):
    from ..progress import log as note, progress_task

    stage = recipe.stages[i]
    o, b, run = recipe.stage_optim(i), recipe.stage_batch(i), recipe.run
    device = run.device
    accum = accumulation_steps(b, d.world_size, stage.name)
    total_steps = stage_length(recipe, i)
    stage_dir = _stage_dir(run_dir, i, stage.name)

    model = build_model(recipe, i)
    if init is not None or resume is not None:
        sd = ckpt.load_weights(resume or init)
        model.load_state_dict(sd, strict=False)
        if model.config.tie_embeddings:
            model.lm_head.weight = model.wte.weight
    # Long-context stages: new RoPE base/scaling and a table covering the stage's context.
    if stage.rope_base is not None:
        model.config.rope_base = stage.rope_base
    if stage.rope_scaling is not None:
        model.config.rope_scaling = stage.rope_scaling
    model.rebuild_rope(max(model.config.block_size, b.context_length))
    model.to(device).train()
    if run.activation_checkpointing:
        _checkpoint_blocks(model)
    wrapped = dist_.wrap(model, d, run.parallel)
    optim = make_optimizer(wrapped, o, dtype)
    step = 0
    best = math.inf
    if resume is not None:
        state, optim_sd, rng = ckpt.load_state(resume)
        step, best = state["step"], state.get("best_val_loss", math.inf)
        if optim_sd is not None:
            dist_.load_optim_state(wrapped, optim, optim_sd, d)
        ckpt.set_rng_state(rng)
        log.truncate(stage.name, step)
        note(f"resuming stage {stage.name} at step {step} from {resume}")
    else:
        log.truncate(stage.name, 0)
    fwd = torch.compile(wrapped) if run.compile else wrapped
    valid = ValidSet(list(stage.data), b.context_length, run.eval_tokens, recipe.tokenizer)
    fpt = model.config.flops_per_token(b.context_length)
    rows_per_rank = b.micro_batch * accum
    stage_start = time.perf_counter()
    last_val: dict[str, float] = {}
    losses: list[float] = []
    tokens_done = 0

    def save(tag_step: int) -> None:
        nonlocal best
        msd = dist_.full_state_dict(wrapped, d)
        osd = dist_.full_optim_state(wrapped, optim, d)
        if d.is_main:
            state = {"stage": stage.name, "stage_index": i, "step": tag_step, "best_val_loss": best,
                     "recipe": recipe.to_dict(), **last_val}
            target = stage_dir / f"checkpoint-{tag_step}"
            ckpt.save(target, msd, model, recipe.tokenizer, osd, state)
            if last_val.get("val_loss", math.inf) <= best and last_val.get("val_step") == tag_step:
                ckpt.save(stage_dir / "best", msd, model, recipe.tokenizer, None, state)
            ckpt.prune(stage_dir, run.keep_last)
        dist_.barrier(d)

    show = progress and d.is_main
    bar = progress_task(f"train {stage.name}", total=total_steps, unit="step") if show else contextlib.nullcontext()
    with bar as task:
        task = task or _SilentTask()
        task.update(completed=step)
        while step < total_steps:
            t0 = time.perf_counter()
            lr = lr_at(step, total_steps, o)
            for g in optim.param_groups:
                g["lr"] = lr
            step_loss = 0.0
            for m in range(accum):
                toks, docs = plan.rows(step, d.rank * rows_per_rank + m * b.micro_batch, b.micro_batch,
                                       rows_per_rank * d.world_size)
                toks = toks.to(device)
                x, y = toks[:, :-1], toks[:, 1:]
                doc_ids = docs[:, :-1].to(device) if run.doc_mask else None
                sync = m == accum - 1 or not (d.enabled and run.parallel == "ddp")
                ctx = wrapped.no_sync() if not sync else contextlib.nullcontext()
                with ctx:
                    with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
                        ce, loss = loss_fn(fwd, x, y, doc_ids, o.z_loss)
                    (loss / accum).backward()
                step_loss += float(ce.detach()) / accum
            step_loss = dist_.all_mean(step_loss, d)
            if not math.isfinite(step_loss):
                found = ckpt.checkpoint_dirs(stage_dir)
                keep = f"; the last good checkpoint is {found[-1][1]}" if found else ""
                raise UserError(f"stage {stage.name} step {step}: loss is {step_loss} (diverged). Lower optim.lr or "
                                f"raise warmup_steps{keep}")
            gnorm = float(torch.nn.utils.clip_grad_norm_(wrapped.parameters(), o.grad_clip))
            optim.step()
            optim.zero_grad(set_to_none=True)
            step += 1
            losses.append(step_loss)
            dt = time.perf_counter() - t0
            tokens_done += b.batch_tokens
            tps = b.batch_tokens / dt
            mfu = tps * fpt / (peak * d.world_size)
            rec = {"stage": stage.name, "step": step, "loss": step_loss, "lr": lr, "grad_norm": gnorm,
                   "tokens_per_s": tps, "mfu": mfu}
            if step % run.eval_every == 0 or step == total_steps:
                last_val = {**evaluate(wrapped, valid, b.micro_batch, dtype, device, run.doc_mask, d),
                            "val_step": step} if len(valid) else {}
                rec.update({k: v for k, v in last_val.items() if k != "val_step"})
                if last_val.get("val_loss", math.inf) < best:
                    best = last_val["val_loss"]
            log.write(rec, step)
            info = f"loss {step_loss:.3f} lr {lr:.2e} {tps:,.0f} tok/s MFU {mfu:.1%}"
            if "val_bpb" in last_val:
                info += f" val bpb {last_val['val_bpb']:.3f}"
            task.update(completed=step, info=info)
            if step % run.save_every == 0 or step == total_steps:
                save(step)
    elapsed = time.perf_counter() - stage_start
    result = {"stage": stage.name, "steps": total_steps, "tokens": total_steps * b.batch_tokens,
              "final_loss": losses[-1] if losses else None, "seconds": elapsed,
              "tokens_per_s": tokens_done / elapsed if elapsed else None, **{k: v for k, v in last_val.items()}}
    summary["stages"].append(result)
    if d.is_main:
        plot_stage(log.records(), stage.name, run_dir / f"loss-{i}-{stage.name}.png")
    return model


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


def print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from ..progress import console

    t = Table(title=f"training summary: {summary['run_dir']}")
    for col in ("stage", "steps", "tokens", "final loss", "val loss", "val bpb", "tok/s", "time"):
        t.add_column(col, justify="right")
    for s in summary["stages"]:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        t.add_row(s["stage"], str(s["steps"]), f"{s['tokens']:,}", fmt(s.get("final_loss"), ".3f"),
                  fmt(s.get("val_loss"), ".3f"), fmt(s.get("val_bpb"), ".3f"), fmt(s.get("tokens_per_s"), ",.0f"),
                  fmt(s.get("seconds"), ".0f") + " s" if s.get("seconds") is not None else "-")
    console.print(t)
