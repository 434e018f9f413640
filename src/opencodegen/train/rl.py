"""Reinforcement learning from execution feedback: each step samples a group of completions per exercise, the judge
runs each against the exercise's tests, and the policy moves toward the completions that scored above their group.

- grpo (DeepSeekMath's group-relative policy optimisation, as nanochat uses it): advantage = reward minus the group's
  mean reward, divided by the group's standard deviation when rl.scale_rewards (Dr. GRPO leaves it out). One gradient
  step per batch of samples, so the policy ratio is 1 and PPO's clipping never binds; the loss is
  -advantage * log p(token), averaged over the step's completion tokens, plus rl.kl times the k3 estimate of the KL
  divergence to the stage's starting weights.
- expert_iteration (STaR; phi-1's and nanochat's simple mode): supervised learning on the passing samples only.

A group whose samples all earn the same reward has no signal and is skipped (unless the KL term needs it)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..errors import UserError
from . import distributed as dist_
from .curriculum import LearnabilityCurriculum
from .objective import MicroBatch
from .policy import pad_sequences, token_logprobs
from .recipe import Recipe
from .rollout import Sample, no_grad_logprobs, sample_and_judge, step_seed
from .sampling_objective import SamplingObjective


def advantages(rewards: list[float], mode: str, scale: bool) -> list[float]:
    r = np.asarray(rewards, dtype=np.float64)
    if mode == "expert_iteration":
        return [1.0 if x >= 1.0 else 0.0 for x in r]
    a = r - r.mean()
    if scale:
        std = r.std(ddof=1) if len(r) > 1 else 0.0
        a = a / (std + 1e-4) if std > 0 else a * 0.0
    return a.tolist()


class RL(SamplingObjective):
    kind = "rl"

    def __init__(self, recipe: Recipe, index: int, world_size: int, vocab: int, tok_vocab: int | None):
        super().__init__(recipe, index, world_size, recipe.stages[index].rl)
        self.examples = [e for e in self.rows if e.judgeable]
        if not self.examples:
            stage = recipe.stages[index]
            raise UserError(f"stage {stage.name}: no exercises with tests and an entry_point in "
                            f"{', '.join(stage.data)} (an rl stage needs what the judge can run)")

    def setup(self, model, ctx) -> None:
        self.ctx = ctx
        self.examples = self.fitting(self.examples, model)
        if not self.examples:
            raise UserError(f"stage {ctx.stage.name}: no exercise's prompt fits the model's "
                            f"{model.config.block_size}-token context")
        self.reference = copy.deepcopy(model).eval().requires_grad_(False) if self.options.kl > 0 else None
        self.curriculum = (LearnabilityCurriculum(self.examples) if self.options.curriculum == "learnability"
                           else None)
        self.open_judge(keep_going=self.options.reward == "fraction")

    def batches(self, step: int, model) -> list[MicroBatch]:
        o, d = self.options, self.ctx.dist
        picked = self.share_indices(step, len(self.examples), self.curriculum and self.curriculum.draw)
        mine = [self.examples[k] for k in picked]
        # One seed for the step: an exercise's samples depend on it and on the prompt only, not on the process that
        # draws them, so any number of processes samples what one would.
        groups, timing = sample_and_judge(model, self.tokenizer, mine, o,
                                          step_seed(self.recipe.run.seed, self.index, step), self.judge,
                                          reward=o.reward)
        seqs: list[tuple[Sample, float]] = []
        rewards = []
        for g in groups:
            rewards += [s.reward for s in g]
            for s, a in zip(g, advantages([s.reward for s in g], o.mode, o.scale_rewards)):
                if a != 0 or self.reference is not None:
                    seqs.append((s, a))
        n_tokens = sum(len(s.completion_ids) for s, _ in seqs)
        # The mean over every process's completion tokens (DDP averages gradients over processes: hence world).
        self.norm = max(1, int(round(dist_.all_sum(n_tokens, d)))) / d.world_size
        solved = sum(any(s.reward >= 1 for s in g) for g in groups)
        if self.curriculum is not None:  # every process's verdicts, so that all of them draw alike next step
            passes, samples = self.curriculum.counts(picked, [sum(s.reward >= 1 for s in g) for g in groups],
                                                     [len(g) for g in groups])
            self.curriculum.update(dist_.all_sum_list(passes, d), dist_.all_sum_list(samples, d))
        shares = {"reward": float(np.mean(rewards)) if rewards else 0.0,
                  "pass_rate": float(np.mean([r >= 1 for r in rewards])) if rewards else 0.0,
                  "solved_fraction": solved / max(1, len(groups)),
                  # the groups that teach nothing: every sample earned the same reward (TRL's frac_reward_zero_std)
                  "groups_without_signal": sum(len({s.reward for s in g}) == 1 for g in groups) / max(1, len(groups))}
        # every process holds the same number of groups, so the mean of their means is the step's mean
        self._metrics = {**{k: dist_.all_mean(v, d) for k, v in shares.items()},
                         "trained_samples": int(round(dist_.all_sum(len(seqs), d))), **timing}
        mb = self.batch.micro_batch
        out = [self._micro(seqs[k:k + mb]) for k in range(0, len(seqs), mb)]
        while len(out) < dist_.all_max(len(out), d):  # every process backpropagates as often as the others
            out.append(self._micro([]))
        return out

    def state_dict(self) -> dict:
        return {} if self.curriculum is None else {"curriculum": self.curriculum.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.curriculum is not None and "curriculum" in state:
            self.curriculum.load_state_dict(state["curriculum"])

    def _micro(self, part: list[tuple[Sample, float]]) -> MicroBatch:
        pad = self.tokenizer.eos_id or 0
        if not part:  # a placeholder that contributes nothing, for processes with fewer samples
            tokens, mask = pad_sequences([([pad, pad], 1)], pad)
            return MicroBatch({"tokens": tokens, "mask": mask & False, "adv": torch.zeros(1)})
        tokens, mask = pad_sequences([(s.prompt_ids + s.completion_ids, len(s.prompt_ids)) for s, _ in part], pad)
        data = {"tokens": tokens, "mask": mask, "adv": torch.tensor([a for _, a in part], dtype=torch.float32)}
        if self.reference is not None:
            data["ref_logprobs"] = no_grad_logprobs(self.reference, tokens.to(self.ctx.device), self.ctx.autocast)
        return MicroBatch(data)

    def loss(self, model, batch: MicroBatch):
        dev = self.ctx.device
        tokens, mask = batch.data["tokens"].to(dev), batch.data["mask"].to(dev)
        logp = token_logprobs(model, tokens)
        per_token = -batch.data["adv"].to(dev)[:, None] * logp
        metrics = {}
        if self.reference is not None:
            delta = batch.data["ref_logprobs"].to(dev) - logp
            k3 = torch.exp(delta) - delta - 1
            per_token = per_token + self.options.kl * k3
            metrics["kl"] = float((k3.detach() * mask).sum()) / max(1, int(mask.sum()))
        total = (per_token * mask).sum() / self.norm
        return float(total.detach()), total, metrics

    def tokens_in(self, batch: MicroBatch) -> int:
        return int(batch.data["mask"].sum())

