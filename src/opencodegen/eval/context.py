"""Prompts that fit the model's context. A benchmark prompt longer than the context leaves no room to generate;
rather than fail the run, the prompt keeps its end (what the completion continues from) and the run notes how many
prompts were cut, so a number is never silently computed on clipped prompts."""

from __future__ import annotations

from typing import Sequence

from ..progress import log


def prompt_room(model, max_new_tokens: int, context: int | None = None) -> int:
    """Tokens a prompt may have so that max_new_tokens still fit (at least half the context: the model's, or a
    shorter one its sampler decodes in)."""
    context = context or model.config.block_size
    return max(context // 2, context - max_new_tokens)


def fit_prompts(tokenizer, model, prompts: Sequence[str | Sequence[int]], max_new_tokens: int,
                what: str) -> list[list[int]]:
    """Token ids of each prompt (text, or ids already rendered, such as a chat prompt), cut from the left to fit."""
    fit = PromptFitter(tokenizer, model, what)
    ids = [fit(p, max_new_tokens) for p in prompts]
    fit.report()
    return ids


class PromptFitter:
    """fit_prompts one prompt at a time (prompts made as a run goes, such as multi-turn histories): each call cuts
    one prompt, and report() logs how many were cut, once. context: the positions the sampler decodes in, when
    fewer than the model's."""

    def __init__(self, tokenizer, model, what: str, context: int | None = None):
        self.tokenizer, self.model, self.what = tokenizer, model, what
        self.context = min(context or model.config.block_size, model.config.block_size)
        self.prompts, self.cut, self.rooms, self.generate = 0, 0, set(), set()

    def __call__(self, prompt: str | Sequence[int], max_new_tokens: int) -> list[int]:
        room = prompt_room(self.model, max_new_tokens, self.context)
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        self.prompts += 1
        if len(ids) > room:
            self.cut += 1
            self.rooms.add(room)
            self.generate.add(max_new_tokens)
        return ids[-room:]

    def report(self) -> None:
        if self.cut:
            rooms, generate = ("/".join(str(x) for x in sorted(v)) for v in (self.rooms, self.generate))
            log(f"{self.what}: {self.cut} of {self.prompts} prompts exceed {rooms} tokens (context "
                f"{self.context} - {generate} to generate); they keep their last {rooms} tokens")


def fit_infill(prefix_ids: list[int], suffix_ids: list[int], room: int) -> tuple[list[int], list[int]]:
    """Cuts the far ends (start of the prefix, end of the suffix) so prefix + suffix fit `room`, keeping the code
    nearest the hole; the shorter side is kept whole when it fits in half."""
    if len(prefix_ids) + len(suffix_ids) <= room:
        return prefix_ids, suffix_ids
    half = room // 2
    keep_suffix = min(len(suffix_ids), max(half, room - len(prefix_ids)))
    keep_prefix = room - keep_suffix
    return prefix_ids[len(prefix_ids) - keep_prefix:], suffix_ids[:keep_suffix]
