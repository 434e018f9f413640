"""Sampling a group of completions per exercise from the model being trained, and judging each against the
exercise's tests: the source of RL's rewards and of DPO's sampled pairs. Sampling and judging are the exercise
builder's (exercises/self_generate.py, exercises/judge.py): one path decides every verdict."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import torch

from ..exercises.judge import Judge
from ..exercises.self_generate import sample_and_judge as sample_and_judge_exercises
from ..sampling import SamplingParams
from .examples import Example
from .policy import token_logprobs
from .recipe import SamplingOptions


@dataclass
class Sample:
    example: Example
    prompt_ids: list[int]
    completion_ids: list[int]  # as sampled, through the EOS or the token that completed a stop string
    text: str  # the completion as judged: cut before the stop string
    reward: float
    status: str


def step_seed(*parts: int) -> int:
    """A sampling seed for (run seed, stage, step): fixed, so a resumed step samples what the first run did."""
    h = hashlib.blake2b(":".join(str(int(p)) for p in parts).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 2


def fits(tokenizer, example: Example, context: int, options: SamplingOptions) -> bool:
    """Whether the prompt leaves room for a useful completion in the model's context."""
    return len(tokenizer.encode(example.prompt)) + min(options.max_new_tokens, 32) < context


def sample_and_judge(model, tokenizer, examples: list[Example], options: SamplingOptions, seed: int,
                     judge: Judge, reward: str = "pass") -> tuple[list[list[Sample]], dict[str, float]]:
    """options.group_size samples per example, each judged by running the example's tests against it and rewarded
    by `Verdict.score(reward)`. Returns the groups and the timing numbers (samples per second, seconds sampling and
    judging)."""
    if not examples:
        return [], {}
    params = SamplingParams(max_new_tokens=options.max_new_tokens, temperature=options.temperature,
                            top_p=options.top_p, seed=seed)
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        attempts = sample_and_judge_exercises(model, tokenizer, examples, options.group_size, params, judge,
                                              progress=False)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - t0
    groups = [[Sample(a.exercise, list(a.prompt_ids), list(a.completion_ids), a.completion, a.verdict.score(reward),
                      a.verdict.status) for a in attempts[i:i + options.group_size]]
              for i in range(0, len(attempts), options.group_size)]
    return groups, {"samples_per_s": len(attempts) / max(seconds, 1e-9), "sample_judge_s": seconds}


def no_grad_logprobs(model, tokens: torch.Tensor, autocast) -> torch.Tensor:
    with torch.no_grad(), autocast():
        return token_logprobs(model, tokens)
