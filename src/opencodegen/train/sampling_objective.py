"""What the kinds that sample and judge (rl, and dpo on exercises) share: their tokenizer and rows, the judge's
lifetime, the step's share of items for this process, and the numbers a step measured."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..exercises.judge import Judge
from .examples import Example, read_mixture
from .objective import Objective
from .recipe import Recipe, SamplingOptions
from .rollout import fits
from .tokens import stage_tokenizer


class SamplingObjective(Objective):
    def __init__(self, recipe: Recipe, index: int, world_size: int, options: SamplingOptions):
        stage = recipe.stages[index]
        self.recipe, self.index, self.options, self.batch = recipe, index, options, recipe.stage_batch(index)
        self.tokenizer = stage_tokenizer(recipe, stage.name)
        self.rows: list[Example] = read_mixture(stage.data, recipe.run.seed)
        if options.exercises_per_step % world_size:
            raise UserError(f"stage {stage.name}: {self.kind}.exercises_per_step={options.exercises_per_step} is not "
                            f"a multiple of the {world_size} processes")
        self.judge: Judge | None = None
        self._metrics: dict[str, float] = {}

    def fitting(self, examples: list[Example], model) -> list[Example]:
        """The examples whose prompt leaves room to generate in the model's context."""
        return [e for e in examples if fits(self.tokenizer, e, model.config.block_size, self.options)]

    def expected_completion_tokens(self) -> int:
        """How many tokens a trained policy's completion takes on average: the reference answers of the rows it
        samples (the exercises with tests; else every row: a pair's chosen side) plus the end token, at most
        options.max_new_tokens. A policy fine-tuned on such rows writes about as much (the quickstart's 60-minute
        run: a mean of 32.6 completion tokens a sample in RL against 31.0 for its exercises' solutions); the step
        planner times a sampling step at this length, since an untrained model rarely stops before the limit."""
        sampled = [e for e in self.rows if e.judgeable] or self.rows
        answers = [e.completion if e.completion is not None else e.chosen for e in sampled]
        lengths = [len(self.tokenizer.encode(a)) + 1 for a in answers if a]
        if not lengths:
            return self.options.max_new_tokens
        return max(1, min(self.options.max_new_tokens, round(float(np.mean(lengths)))))

    def open_judge(self, keep_going: bool = False) -> None:
        """keep_going: every assert of a program runs, so a verdict also gives the fraction that held."""
        self.judge = Judge(workers=1, timeout=self.options.timeout, keep_going=keep_going)

    def close(self) -> None:
        if self.judge is not None:
            self.judge.close()

    def share(self, step: int, items: list) -> list:
        """This process's items of the step: options.exercises_per_step drawn for (seed, stage, step), dealt out."""
        return [items[k] for k in self.share_indices(step, len(items))]

    def share_indices(self, step: int, n_items: int, draw=None) -> list[int]:
        """The indices of this process's items of the step. draw(rng, n) -> n indices (a curriculum's); None:
        uniformly, with replacement only when there are fewer items than draws."""
        n, d = self.options.exercises_per_step, self.ctx.dist
        rng = np.random.default_rng([self.recipe.run.seed, self.index, step])
        pick = draw(rng, n) if draw is not None else rng.choice(n_items, size=n, replace=n_items < n)
        return [int(k) for k in pick[d.rank::d.world_size]]

    def step_metrics(self) -> dict[str, float]:
        return self._metrics
