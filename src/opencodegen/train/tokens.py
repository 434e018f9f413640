"""The tokenizer a post-training stage encodes its prompts and completions with."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..prompt_format import CHAT_TEMPLATE
from ..tokenizer import FILE_NAME, CodeTokenizer
from .recipe import Recipe


def tokenizer_file(recipe: Recipe) -> str | None:
    """The recipe's tokenizer, else the one beside init_from's weights (the one the model was trained with): what
    every checkpoint of the run carries, so that it generates and evaluates on its own."""
    if recipe.tokenizer:
        return recipe.tokenizer
    beside = Path(recipe.init_from) / FILE_NAME if recipe.init_from else None
    return str(beside) if beside is not None and beside.is_file() else None


def stage_tokenizer(recipe: Recipe, stage: str) -> CodeTokenizer:
    source = tokenizer_file(recipe)
    if not source:
        raise UserError(f"stage {stage}: prompts and completions need a tokenizer: set `tokenizer` in the recipe "
                        "(or init_from a checkpoint directory that holds tokenizer.json)")
    return CodeTokenizer.load(source)


def chat_template_after(recipe: Recipe, index: int) -> str | None:
    """The chat template the checkpoints of stage `index` carry: once an sft stage with format chat has run (this
    one or an earlier one), the model has learnt the chat format. None: the tokenizer's own, if it has one."""
    learnt = any(s.kind == "sft" and s.sft.format == "chat" for s in recipe.stages[:index + 1])
    return CHAT_TEMPLATE if learnt else None
