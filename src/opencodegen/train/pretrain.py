"""Pretraining: next-token cross-entropy (plus z-loss) on windows drawn from token shards (train/data.py)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import UserError
from .data import BatchPlan, ValidSet
from .loss import cross_entropy_and_z
from .objective import MicroBatch, Objective
from .recipe import Recipe, accumulation_steps


def loss_fn(model, x, y, doc_ids, z_loss: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy (mean over tokens) and the same plus z_loss * mean(logZ^2)."""
    ce, z = cross_entropy_and_z(model(x, doc_ids=doc_ids), y)
    return ce, ce + z_loss * z


class Pretrain(Objective):
    kind = "pretrain"

    def __init__(self, recipe: Recipe, index: int, world_size: int, vocab: int, tok_vocab: int | None):
        stage, b = recipe.stages[index], recipe.stage_batch(index)
        self.recipe, self.index, self.batch = recipe, index, b
        self.accum = accumulation_steps(b, world_size, stage.name)
        for d in stage.data:
            if not (Path(d) / "train").is_dir():
                raise UserError(f"stage {stage.name}: token directory {d} has no train/ split")
        self.plan = BatchPlan(stage.data, b.context_length, recipe.run.seed, index)
        for d, src in zip(stage.data, self.plan.sources):
            top = src.max_token()
            if top >= vocab or (tok_vocab is not None and top >= tok_vocab):
                limit = vocab if tok_vocab is None else min(vocab, tok_vocab)
                raise UserError(f"stage {stage.name}: shards in {d}/train hold token id {top}, outside the vocabulary "
                                f"of {limit} (tokenizer {recipe.tokenizer}, model vocab_size {vocab}): "
                                f"were they made with another tokenizer?")
        self.valid: ValidSet | None = None

    def setup(self, model, ctx) -> None:
        self.ctx = ctx
        self.valid = ValidSet(list(self.recipe.stages[self.index].data), self.batch.context_length,
                              ctx.run.eval_tokens, self.recipe.tokenizer)

    def batches(self, step: int, model) -> list[MicroBatch]:
        b, d = self.batch, self.ctx.dist
        rows_per_rank = b.micro_batch * self.accum
        out = []
        for m in range(self.accum):
            toks, docs = self.plan.rows(step, d.rank * rows_per_rank + m * b.micro_batch, b.micro_batch,
                                        rows_per_rank * d.world_size)
            out.append(MicroBatch({"tokens": toks, "doc_ids": docs}))
        return out

    def loss(self, model, batch: MicroBatch):
        toks = batch.data["tokens"].to(self.ctx.device)
        doc_ids = batch.data["doc_ids"][:, :-1].to(self.ctx.device) if self.recipe.run.doc_mask else None
        ce, loss = loss_fn(model, toks[:, :-1], toks[:, 1:], doc_ids, self.ctx.optim.z_loss)
        return float(ce.detach()) / self.accum, loss / self.accum, {}

    def tokens_in(self, batch: MicroBatch) -> int:
        return batch.data["tokens"][:, 1:].numel()

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        valid, ctx = self.valid, self.ctx
        if valid is None or not len(valid):
            return {}
        total, count = 0.0, 0
        # Every rank evaluates the same windows (they are few); the loss is identical, so no reduction is needed.
        for k in range(0, len(valid), self.batch.micro_batch):
            t = valid.tokens[k:k + self.batch.micro_batch].to(ctx.device)
            x, y = t[:, :-1], t[:, 1:]
            docs = valid.doc_ids[k:k + self.batch.micro_batch, :-1].to(ctx.device) if self.recipe.run.doc_mask \
                else None
            with ctx.autocast():
                logits = model(x, doc_ids=docs)
            total += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"))
            count += y.numel()
        out = {"val_loss": total / count}
        if valid.n_bytes:
            out["val_bpb"] = total / math.log(2) / valid.n_bytes
        return out
