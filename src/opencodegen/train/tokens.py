"""The tokenizer a post-training stage encodes its prompts and completions with."""

from __future__ import annotations

from ..errors import UserError
from ..tokenizer import CodeTokenizer
from .recipe import Recipe


def stage_tokenizer(recipe: Recipe, stage: str) -> CodeTokenizer:
    """The recipe's tokenizer, else the one beside init_from's weights: the one the model was trained with."""
    source = recipe.tokenizer or recipe.init_from
    if not source:
        raise UserError(f"stage {stage}: prompts and completions need a tokenizer: set `tokenizer` in the recipe "
                        "(or init_from a checkpoint directory that holds tokenizer.json)")
    return CodeTokenizer.load(source)
