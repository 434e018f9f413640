"""Staged pretraining (CodeGen NL -> Multi -> Mono; Qwen2.5-Coder file-level -> repo-level)."""

from __future__ import annotations

from .loop import train
from .recipe import Recipe, load_recipe, recipe_from_dict

__all__ = ["Recipe", "load_recipe", "recipe_from_dict", "train"]
