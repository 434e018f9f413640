"""Sampling a group of completions per exercise from the model being trained, and judging each in the sandbox: the
source of RL's rewards and of DPO's sampled pairs. The judge decides; the reward is its verdict."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import torch

from ..eval.humaneval import build_program
from ..eval.sandbox import Sandbox
from ..sampling import HUMANEVAL_STOP, SamplingParams, generate
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
                     sandbox: Sandbox) -> tuple[list[list[Sample]], dict[str, float]]:
    """options.group_size samples per example, each judged by running the example's tests against it. Returns the
    groups and the timing numbers (samples per second, judge seconds)."""
    if not examples:
        return [], {}
    params = SamplingParams(max_new_tokens=options.max_new_tokens, temperature=options.temperature,
                            top_p=options.top_p, n=options.group_size, seed=seed, stop=HUMANEVAL_STOP)
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        outputs = generate(model, tokenizer, [e.prompt for e in examples], params)
    finally:
        model.train(was_training)
    t1 = time.perf_counter()
    problems = [{"prompt": e.prompt, "test": e.tests, "entry_point": e.entry_point} for e in examples]
    programs = [build_program(p, c.text) for p, group in zip(problems, outputs) for c in group]
    verdicts = iter(sandbox.run(programs, timeout=options.timeout))
    t2 = time.perf_counter()
    groups = []
    for e, group in zip(examples, outputs):
        prompt_ids = tokenizer.encode(e.prompt)
        row = []
        for c in group:
            v = next(verdicts)
            row.append(Sample(e, prompt_ids, list(c.token_ids), c.text, 1.0 if v.passed else 0.0, v.status))
        groups.append(row)
    n = len(programs)
    return groups, {"samples_per_s": n / max(t1 - t0, 1e-9), "judge_s": t2 - t1, "sample_s": t1 - t0}


def no_grad_logprobs(model, tokens: torch.Tensor, autocast) -> torch.Tensor:
    with torch.no_grad(), autocast():
        return token_logprobs(model, tokens)
