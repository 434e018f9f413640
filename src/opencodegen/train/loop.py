"""Runs a recipe: its stages in order, each from the previous stage's weights with a fresh optimizer, each through
the one stage runner (train/stage.py) with the objective its `kind` names (pretrain, sft, dpo, rl).

    from opencodegen.train import load_recipe, train
    summary = train(load_recipe("configs/quickstart.yaml"), "runs/quickstart")

Exact resume: batches are a function of (seed, stage, step) and the weights, the optimizer and RNG states are saved
with the weights, so restarting after a SIGKILL at any moment continues from the last checkpoint and reproduces the
uninterrupted run's losses bit for bit on CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from ..errors import UserError
from ..model.config import ModelConfig
from ..model.io import load_checkpoint
from ..model.transformer import GPT
from ..progress import console, log as note
from . import checkpoint as ckpt
from . import distributed as dist_
from .data import tokenizer_vocab_size
from .metrics import MetricsLog, measure_peak_flops
from .objective import Objective
from .precision import resolve_autocast
from .recipe import Recipe
from .stage import Stage, StageContext, stage_dir, stage_length
from .stage_output import stage_output


def build_model(recipe: Recipe) -> GPT:
    if recipe.init_from:
        model, _ = load_checkpoint(recipe.init_from, with_tokenizer=False)
        return model.train()
    torch.manual_seed(recipe.run.seed)
    return GPT(model_config(recipe))


def model_config(recipe: Recipe) -> ModelConfig:
    """The recipe's `model`: a preset with field overrides, or every field spelled out."""
    spec = dict(recipe.model)
    preset = spec.pop("preset", None)
    return ModelConfig.from_preset(preset, **spec) if preset else ModelConfig.from_dict(spec, where="model")


def model_vocab_size(recipe: Recipe) -> int:
    """The vocabulary the run's model will have, read from config.json when starting from a checkpoint (ours and HF's
    both name it vocab_size) rather than by loading the weights."""
    if not recipe.init_from:
        return model_config(recipe).vocab_size
    config = Path(recipe.init_from) / "config.json"
    try:
        return int(json.loads(config.read_text())["vocab_size"])
    except FileNotFoundError:
        raise UserError(f"init_from {recipe.init_from}: not a checkpoint directory (no config.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"init_from {config}: no readable vocab_size ({e})") from None


def preflight(recipe: Recipe, world_size: int) -> list[Objective]:
    """Every check that can fail on user input, before a model is built: data exists and fits the vocabulary,
    batches divide. Returns each stage's objective, ready for its runner."""
    from .objectives import make_objective  # the post-training kinds pull in sampling and the sandbox

    vocab = model_vocab_size(recipe)
    tok_vocab = tokenizer_vocab_size(recipe.tokenizer) if recipe.tokenizer else None
    if tok_vocab is not None and tok_vocab > vocab:
        raise UserError(f"tokenizer {recipe.tokenizer} has {tok_vocab} ids but the model's vocab_size is {vocab}")
    return [make_objective(recipe, i, world_size, vocab, tok_vocab) for i in range(len(recipe.stages))]


def _find_resume(run_dir: Path, recipe: Recipe, d: dist_.Dist) -> tuple[int, Path | None]:
    """(stage index to run, its latest checkpoint or None). Finished stages are skipped: the next one starts from the
    last finished stage's output."""
    for i, s in reversed(list(enumerate(recipe.stages))):
        directory = stage_dir(run_dir, i, s.name)
        found = ckpt.checkpoint_dirs(directory)
        if found:
            step, last = found[-1]
            if step >= stage_length(recipe, i):
                return (i + 1, stage_output(directory, recipe.stage_run(i), d))
            return (i, last)
    return (0, None)


def train(recipe: Recipe, run_dir: str | Path, progress: bool = True, table: bool = True) -> dict[str, Any]:
    """Runs (or resumes) every stage of the recipe under run_dir; returns the summary (also in summary.json).
    progress: a live bar per stage (joining the process's one display) and, with `table`, a summary table at the
    end (a caller that trains a recipe a stage at a time prints it once)."""
    run_dir = Path(run_dir)
    d = dist_.init(recipe.run.device)
    objectives = preflight(recipe, d.world_size)
    run_dir.mkdir(parents=True, exist_ok=True)
    if d.is_main:
        (run_dir / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")
    autocast = resolve_autocast(recipe.run.autocast, recipe.run.device)
    dtype = torch.bfloat16 if autocast == "bf16" else torch.float32
    peak = measure_peak_flops(dtype, recipe.run.device)
    log = MetricsLog(run_dir, d.is_main)
    start_stage, resume_dir = _find_resume(run_dir, recipe, d)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "autocast": autocast, "peak_flops": peak, "stages": []}
    prev = run_dir / "summary_stages.json"
    if start_stage > 0 and prev.is_file():
        summary["stages"] = json.loads(prev.read_text())[:start_stage]
    if start_stage == len(recipe.stages) and d.is_main:
        note(f"{run_dir}: every stage of this recipe is already trained (final checkpoint {resume_dir}); nothing to "
             "do. Give another --run-dir to train again, or more --stages.N.steps to train on")
    try:
        for i in range(start_stage, len(recipe.stages)):
            resume = resume_dir if resume_dir is not None and resume_dir.parent.name.startswith(f"stage-{i}-") else None
            init = resume_dir if resume is None else None  # previous stage's final weights
            ctx = StageContext(recipe, i, run_dir, d, dtype, peak, log, progress)
            stage = Stage(ctx, objectives[i], lambda: build_model(recipe))
            stage.setup(init, resume)
            summary["stages"].append(stage.run().to_dict())
            resume_dir = stage_output(ctx.directory, ctx.run, d)
            if d.is_main:
                prev.write_text(json.dumps(summary["stages"], indent=2) + "\n")
        summary["final_checkpoint"] = str(resume_dir) if resume_dir else None
        if d.is_main:
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if progress and table:
                print_summary(summary)
    finally:
        log.close()
        dist_.close(d)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    t = Table(title=f"training summary: {summary['run_dir']}")
    for col in ("stage", "steps", "tokens", "final loss", "val loss", "val bpb", "tok/s", "time"):
        t.add_column(col, justify="right")
    for s in summary["stages"]:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        t.add_row(s["stage"], str(s["steps"]), f"{s['tokens']:,}", fmt(s.get("final_loss"), ".3f"),
                  fmt(s.get("val_loss"), ".3f"), fmt(s.get("val_bpb"), ".3f"), fmt(s.get("tokens_per_s"), ",.0f"),
                  fmt(s.get("seconds"), ".0f") + " s" if s.get("seconds") is not None else "-")
    console.print(t)
