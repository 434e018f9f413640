"""Prompts that fit the model's context. A benchmark prompt longer than the context leaves no room to generate;
rather than fail the run, the prompt keeps its end (what the completion continues from) and the run notes how many
prompts were cut, so a number is never silently computed on clipped prompts."""

from __future__ import annotations

from typing import Sequence

from ..progress import log


def prompt_room(model, max_new_tokens: int) -> int:
    """Tokens a prompt may have so that max_new_tokens still fit (at least half the context)."""
    context = model.config.block_size
    return max(context // 2, context - max_new_tokens)


def fit_prompts(tokenizer, model, prompts: Sequence[str | Sequence[int]], max_new_tokens: int,
                what: str) -> list[list[int]]:
    """Token ids of each prompt (text, or ids already rendered, such as a chat prompt), cut from the left to fit."""
    room = prompt_room(model, max_new_tokens)
    ids = [tokenizer.encode(p) if isinstance(p, str) else list(p) for p in prompts]
    cut = sum(len(x) > room for x in ids)
    if cut:
        log(f"{what}: {cut} of {len(ids)} prompts exceed {room} tokens (context {model.config.block_size} - "
            f"{max_new_tokens} to generate); they keep their last {room} tokens")
    return [x[-room:] for x in ids]


def fit_infill(prefix_ids: list[int], suffix_ids: list[int], room: int) -> tuple[list[int], list[int]]:
    """Cuts the far ends (start of the prefix, end of the suffix) so prefix + suffix fit `room`, keeping the code
    nearest the hole; the shorter side is kept whole when it fits in half."""
    if len(prefix_ids) + len(suffix_ids) <= room:
        return prefix_ids, suffix_ids
    half = room // 2
    keep_suffix = min(len(suffix_ids), max(half, room - len(prefix_ids)))
    keep_prefix = room - keep_suffix
    return prefix_ids[len(prefix_ids) - keep_prefix:], suffix_ids[:keep_suffix]
