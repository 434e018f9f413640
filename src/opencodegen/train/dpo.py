"""Direct preference optimisation (Rafailov et al. 2023) on (passed, failed) completions of the same prompt.

loss = -log sigmoid(beta * ((log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)))), with log pi
the summed log-probability of a completion's tokens, and ref the frozen starting weights of the stage.

Pairs come from the stage's data: rows with `chosen` and `rejected` are used as they are; exercises (rows with tests)
are sampled in the stage, dpo.group_size completions each, judged, and paired as (a passing one, a failing one)."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from . import distributed as dist_
from .objective import MicroBatch
from .policy import pad_sequences, token_logprobs
from .recipe import Recipe
from .rollout import no_grad_logprobs, sample_and_judge, step_seed
from .sampling_objective import SamplingObjective


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair losses and margins, from summed completion log-probabilities."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(margin), margin


class DPO(SamplingObjective):
    kind = "dpo"

    def __init__(self, recipe: Recipe, index: int, world_size: int, vocab: int, tok_vocab: int | None):
        super().__init__(recipe, index, world_size, recipe.stages[index].dpo)
        self.pairs = [(e.prompt, e.chosen, e.rejected) for e in self.rows
                      if e.chosen is not None and e.rejected is not None]
        self.exercises = [e for e in self.rows if e.judgeable and e.chosen is None]
        if not self.pairs and not self.exercises:
            stage = recipe.stages[index]
            raise UserError(f"stage {stage.name}: no preference pairs (prompt/chosen/rejected) and no exercises with "
                            f"tests in {', '.join(stage.data)}")

    def setup(self, model, ctx) -> None:
        self.ctx = ctx
        self.reference = copy.deepcopy(model).eval().requires_grad_(False)
        self.exercises = self.fitting(self.exercises, model)
        self.context = model.config.block_size
        if self.exercises and not self.pairs:
            self.open_judge()

    def _step_pairs(self, step: int, model) -> list[tuple[list[int], list[int], list[int]]]:
        """(prompt ids, chosen ids, rejected ids) of this process's share of the step."""
        o, d = self.options, self.ctx.dist
        eos = self.tokenizer.eos_id
        enc = self.tokenizer.encode
        if self.pairs:
            return [(enc(p), enc(c) + [eos], enc(r) + [eos]) for p, c, r in self.share(step, self.pairs)]
        mine = self.share(step, self.exercises)
        groups, timing = sample_and_judge(model, self.tokenizer, mine, o,
                                          step_seed(self.recipe.run.seed, self.index, step), self.judge)
        rewards = [s.reward for g in groups for s in g]
        self._metrics = {"reward": dist_.all_mean(float(np.mean(rewards)) if rewards else 0.0, d),
                         "pass_rate": dist_.all_mean(float(np.mean([r >= 1 for r in rewards])) if rewards else 0.0, d),
                         **timing}
        out = []
        for g in groups:
            passed = [s for s in g if s.reward >= 1]
            failed = [s for s in g if s.reward < 1]
            if passed and failed:
                out.append((passed[0].prompt_ids, passed[0].completion_ids, failed[0].completion_ids))
        return out

    def batches(self, step: int, model) -> list[MicroBatch]:
        d = self.ctx.dist
        pairs = [p for p in self._step_pairs(step, model) if len(p[0]) + max(len(p[1]), len(p[2])) <= self.context]
        self.norm = max(1, int(round(dist_.all_sum(len(pairs), d)))) / d.world_size
        self._metrics["pairs"] = len(pairs)
        mb = max(1, self.batch.micro_batch // 2)  # a pair is two sequences
        out = [self._micro(pairs[k:k + mb]) for k in range(0, len(pairs), mb)]
        while len(out) < dist_.all_max(len(out), d):
            out.append(self._micro([]))
        return out

    def _micro(self, pairs) -> MicroBatch:
        pad = self.tokenizer.eos_id or 0
        seqs = [(p + c, len(p)) for p, c, _ in pairs] + [(p + r, len(p)) for p, _, r in pairs]
        if not seqs:
            tokens, mask = pad_sequences([([pad, pad], 1)], pad)
            return MicroBatch({"tokens": tokens, "mask": mask & False, "ref": torch.zeros(1), "n": torch.tensor(0)})
        tokens, mask = pad_sequences(seqs, pad)
        ref = (no_grad_logprobs(self.reference, tokens.to(self.ctx.device), self.ctx.autocast).cpu() * mask).sum(-1)
        return MicroBatch({"tokens": tokens, "mask": mask, "ref": ref, "n": torch.tensor(len(pairs))})

    def loss(self, model, batch: MicroBatch):
        dev = self.ctx.device
        tokens, mask = batch.data["tokens"].to(dev), batch.data["mask"].to(dev)
        n = int(batch.data["n"])
        summed = (token_logprobs(model, tokens) * mask).sum(-1)
        if n == 0:
            zero = summed.sum() * 0.0
            return 0.0, zero, {}
        ref = batch.data["ref"].to(dev)
        losses, margins = dpo_loss(summed[:n], summed[n:], ref[:n], ref[n:], self.options.beta)
        total = losses.sum() / self.norm
        return float(total.detach()), total, {"margin": float(margins.detach().mean()),
                                              "accuracy": float((margins > 0).float().mean())}

    def tokens_in(self, batch: MicroBatch) -> int:
        return int(batch.data["mask"].sum())

