"""Choose the model's shape for the time budget, by measuring this machine.

Candidates are the recipe's architecture at several depths and widths (heads 64 wide), smallest first. For each, the
pretraining step is timed on this machine in the dtype the run will use, which gives the tokens pretraining can
train in its share of the budget. The rule (Chinchilla's, with the ratio from our own sweep): at a fixed budget,
held-out loss is about a parabola in log(tokens per parameter) with its minimum at the sweep's ratio (Hoffmann et al.'s
IsoFLOP profiles; our sweep's three best points put the vertex at 0.80 against the winner's 0.67), so of the two
candidates either side of the ratio the better one is the nearer in log: the largest candidate at or above the ratio,
or the next larger one if it falls short by less than that one exceeds it. The smallest if none reaches the ratio.
Timing stops at the first candidate below the ratio: larger ones are slower per token and have more parameters, so
they fall further from it.

The ratio comes from `benchmarks/sweep_quickstart_shapes.py`: every candidate pretrained for the same minutes on the
quickstart's data, held-out bits per byte compared; the ratio is that of the winner (the figures are in the config
and in benchmarks/results/quickstart_shapes.json)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from ..model.transformer import GPT
from ..train.loop import model_config
from ..train.recipe import Recipe

# (depth, width): heads are 64 wide.
CANDIDATES = ((2, 128), (3, 192), (4, 256), (5, 320), (6, 384), (8, 512), (12, 768))
SHAPE_PROBE_STEPS = 8


@dataclass
class Candidate:
    n_layer: int
    n_embd: int
    params: int
    seconds_per_step: float | None = None  # Mono's optimiser step
    tokens: float | None = None  # what pretraining trains in its share of the budget

    @property
    def name(self) -> str:
        return f"{self.n_layer}x{self.n_embd}"

    @property
    def tokens_per_param(self) -> float | None:
        return None if self.tokens is None else self.tokens / self.params


def with_shape(recipe: Recipe, n_layer: int, n_embd: int) -> Recipe:
    out = copy.deepcopy(recipe)
    out.model = {**out.model, "n_layer": n_layer, "n_embd": n_embd, "n_head": max(1, n_embd // 64)}
    return out


def parameter_count(recipe: Recipe) -> int:
    """Every parameter (a tied embedding once): what the ratio counts. Built on the meta device: shapes without
    storage or initialisation (12x768 would otherwise take a second of the plan to allocate and fill)."""
    with torch.device("meta"):
        model = GPT(model_config(recipe))
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def choose(recipe: Recipe, pretrain_seconds: float, tokens_per_param: float, time_step, stage: int) -> dict:
    """{"chosen": name, "rule": ..., "candidates": [...]}. `time_step(recipe, stage)` gives the seconds of one
    optimiser step of `stage` (the pretraining stage whose batch sets the rate) for a recipe."""
    batch_tokens = recipe.stage_batch(stage).batch_tokens

    def distance(ratio: float) -> float:  # how far a ratio is from the optimum, in log: the parabola's argument
        return abs(math.log(ratio / tokens_per_param))

    cands = [Candidate(n, w, parameter_count(with_shape(recipe, n, w))) for n, w in CANDIDATES]
    chosen = cands[0]
    for c in cands:
        c.seconds_per_step = time_step(with_shape(recipe, c.n_layer, c.n_embd), stage)
        c.tokens = pretrain_seconds / c.seconds_per_step * batch_tokens
        if c.tokens_per_param < tokens_per_param:
            if distance(c.tokens_per_param) < distance(chosen.tokens_per_param):
                chosen = c
            break
        chosen = c
    rule = (f"the shape nearest {tokens_per_param:g} tokens per parameter (in log ratio) in "
            f"{pretrain_seconds / 60:.1f} min of pretraining")
    return {"chosen": chosen.name, "n_layer": chosen.n_layer, "n_embd": chosen.n_embd, "params": chosen.params,
            "rule": rule, "tokens_per_param": tokens_per_param, "pretrain_seconds": pretrain_seconds,
            "candidates": [{"shape": c.name, "params": c.params, "seconds_per_step": c.seconds_per_step,
                            "tokens": c.tokens, "tokens_per_param": c.tokens_per_param} for c in cands]}
