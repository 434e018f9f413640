"""A stage's `kind` -> its objective (train/objective.py)."""

from __future__ import annotations

from .dpo import DPO
from .objective import Objective
from .pretrain import Pretrain
from .recipe import Recipe
from .rl import RL
from .sft import SFT

KIND_OBJECTIVES: dict[str, type[Objective]] = {"pretrain": Pretrain, "sft": SFT, "dpo": DPO, "rl": RL}


def make_objective(recipe: Recipe, index: int, world_size: int, vocab: int, tok_vocab: int | None) -> Objective:
    return KIND_OBJECTIVES[recipe.stages[index].kind](recipe, index, world_size, vocab, tok_vocab)
