"""Supervised fine-tuning: prompt/completion pairs, loss on the completion's tokens only (and the EOS that ends it),
or with `sft: {format: chat}` each pair as a chat (the prompt a user turn, the answer the assistant's turn, loss on
the answer and the <|im_end|> that ends it, prompt_format.chat_pieces); with `sft: {fim_rate: r}` a share r of the
examples also as fill-in-the-middle rows (loss on the middle and EOS); packed into fixed windows with document
masks so that packed examples never attend to each other.

Each epoch packs the examples in a seeded order (first fit, in that order); a step takes the next rows of the
stream of epochs, so a step's batch is a function of (seed, stage, step), as in pretraining."""

from __future__ import annotations

import bisect
import random

import numpy as np
import torch

from ..errors import UserError
from ..progress import log as note
from ..prompt_format import (CHAT_TEMPLATE, IM_END, IM_START, ChatFormat, FimIds, chat_format, chat_prompt,
                             encode_pieces, missing_tokens, psm, require_fim_ids)
from .examples import Example, held_out, read_mixture
from .loss import cross_entropy_and_z
from .objective import MicroBatch, Objective
from .recipe import Recipe, accumulation_steps
from .tokens import stage_tokenizer


def tokenize_pair(tokenizer, prompt: str | list[int], completion: str, end: int, completion_only: bool
                  ) -> tuple[list[int], list[bool]]:
    """(ids, is_target) of prompt (text, or ids already rendered) + completion + the end token (EOS; <|im_end|> in
    chat); the prompt's tokens are targets only if not completion_only."""
    p = tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
    c = tokenizer.encode(completion) + [end]
    return p + c, [not completion_only] * len(p) + [True] * len(c)


def chat_pair(tokenizer, fmt: ChatFormat, example: Example, completion_only: bool) -> tuple[list[int], list[bool]]:
    """An example as a chat: its prompt as the user's turn, then the assistant's answer, ending <|im_end|>. An
    exercise's answer is the whole function (its prompt, then its solution), since a chat answer stands alone; a
    pair's is its completion."""
    prompt = chat_prompt(tokenizer, fmt, [{"role": "user", "content": example.prompt}])
    answer = example.prompt + example.completion if example.entry_point else example.completion
    return tokenize_pair(tokenizer, prompt, answer, fmt.im_end, completion_only)


def completion_cut(prompt: str, completion: str, rng: random.Random) -> tuple[str, str, str]:
    """(prefix, middle, suffix) with the middle a span of the completion: the supervised code is what is masked, and
    the prompt stays whole in the prefix, as the question an infilling request carries. Half of the cuts fall on line
    starts (a middle of whole lines, as an editor's line or block), the rest anywhere (Bavarian et al.'s random span,
    which can start and end inside a token)."""
    lines = completion.splitlines(keepends=True)
    if lines and rng.random() < 0.5:
        a, b = sorted(rng.sample(range(len(lines) + 1), 2))
        i, j = len("".join(lines[:a])), len("".join(lines[:b]))
    else:
        i, j = sorted((rng.randint(0, len(completion)), rng.randint(0, len(completion))))
    return prompt + completion[:i], completion[i:j], completion[j:]


def fim_pair(tokenizer, ids: FimIds, example: Example, end: int, rng: random.Random
             ) -> tuple[list[int], list[bool]]:
    """The example cut by completion_cut as a PSM infilling prompt, with the middle and `end` as its targets (PSM,
    the order infilling requests are served in: a target mask needs the middle's tokens apart, which SPM's joined
    prefix and middle have not)."""
    prefix, middle, suffix = completion_cut(example.prompt, example.completion, rng)
    return tokenize_pair(tokenizer, encode_pieces(tokenizer, psm(ids, prefix, suffix)), middle, end, True)


def training_chat_format(tokenizer, stage: str) -> ChatFormat:
    """The chat format an sft stage with format chat teaches: CHAT_TEMPLATE's, which its checkpoints then carry."""
    fmt = chat_format(tokenizer, CHAT_TEMPLATE)
    if fmt is None:
        missing = ", ".join(missing_tokens(tokenizer, (IM_START, IM_END)))
        raise UserError(f"stage {stage}: sft.format chat needs the chat tokens, and the tokenizer has no {missing} "
                        "(tokenizers trained by `ocg tokenizer train` have them; Qwen2.5-Coder's have them)")
    return fmt


class Packed:
    """Examples packed into rows of `width` tokens: ids, target mask (for the token predicted at each position) and a
    document id per position (padding is a document of its own, with no targets)."""

    def __init__(self, seqs: list[tuple[list[int], list[bool]]], width: int, pad: int, order: np.ndarray):
        row, row_t, row_d = [], [], []
        tokens, targets, docs = [], [], []

        def flush():
            n = len(row)
            tokens.append(row + [pad] * (width - n))
            targets.append(row_t + [False] * (width - n))
            docs.append(row_d + [len(seqs) + 1] * (width - n))

        for k in order:
            ids, tgt = seqs[k]
            if len(row) + len(ids) > width:
                flush()
                row, row_t, row_d = [], [], []
            row += ids
            row_t += tgt
            row_d += [int(k)] * len(ids)
        if row:
            flush()
        self.tokens = torch.tensor(tokens, dtype=torch.long)
        # the target of position t is token t+1: it counts if token t+1 is a target of the same document
        tgt = torch.tensor(targets, dtype=torch.bool)
        d = torch.tensor(docs, dtype=torch.long)
        self.doc_ids = d
        self.mask = tgt[:, 1:] & (d[:, 1:] == d[:, :-1])

    def __len__(self) -> int:
        return len(self.tokens)


def packed_loss(model, tokens: torch.Tensor, doc_ids: torch.Tensor, mask: torch.Tensor, z_loss: float
                ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(summed cross-entropy over the masked positions, the same plus z-loss, their count)."""
    logits = model(tokens[:, :-1], doc_ids=doc_ids[:, :-1])
    n = int(mask.sum())
    if n == 0:
        zero = logits.sum() * 0.0
        return zero, zero, 0
    ce, z = cross_entropy_and_z(logits[mask], tokens[:, 1:][mask])
    return ce * n, (ce + z_loss * z) * n, n


class SFT(Objective):
    kind = "sft"

    def __init__(self, recipe: Recipe, index: int, world_size: int, vocab: int, tok_vocab: int | None):
        stage, self.batch = recipe.stages[index], recipe.stage_batch(index)
        self.recipe, self.index, self.options = recipe, index, stage.sft
        self.accum = accumulation_steps(self.batch, world_size, stage.name)
        self.tokenizer = stage_tokenizer(recipe, stage.name)
        examples = [e for e in read_mixture(stage.data, recipe.run.seed) if e.completion is not None]
        if not examples:
            raise UserError(f"stage {stage.name}: no prompt/completion examples in {', '.join(stage.data)}")
        width = self.batch.context_length + 1
        eos = self.tokenizer.eos_id
        if eos is None:
            raise UserError(f"stage {stage.name}: the tokenizer has no end-of-text token to end completions with")
        chat = training_chat_format(self.tokenizer, stage.name) if self.options.format == "chat" else None
        fim = require_fim_ids(self.tokenizer) if self.options.fim_rate > 0 else None
        train, valid, too_long, rows = [], [], 0, 0
        for e in examples:
            if chat is None:
                seqs = [tokenize_pair(self.tokenizer, e.prompt, e.completion, eos, self.options.completion_only)]
            else:
                seqs = [chat_pair(self.tokenizer, chat, e, self.options.completion_only)]
            # the same rows on every run, wherever the data lives (not the file path: the id)
            rng = random.Random(f"{recipe.run.seed}:{index}:{e.id}")
            if fim is not None and rng.random() < self.options.fim_rate:
                seqs.append(fim_pair(self.tokenizer, fim, e, eos, rng))
            for seq in seqs:
                rows += 1
                if len(seq[0]) > width:
                    too_long += 1
                    continue
                if max(seq[0]) >= vocab:
                    raise UserError(f"stage {stage.name}: {e.source} example {e.id} has token id {max(seq[0])}, "
                                    f"outside the model's vocabulary of {vocab}")
                (valid if held_out(e, self.options.valid_fraction) else train).append(seq)
        if fim is not None:
            note(f"stage {stage.name}: {rows - len(examples)} fill-in-the-middle rows beside {len(examples)} examples")
        if too_long:
            note(f"stage {stage.name}: {too_long} of {rows} rows are longer than the "
                 f"{self.batch.context_length}-token context and are left out")
        if not train:
            raise UserError(f"stage {stage.name}: no example fits the {self.batch.context_length}-token context")
        self.train, self.width, self.pad = train, width, eos
        self.valid = Packed(valid, width, eos, np.arange(len(valid))) if valid else None
        self._packed: dict[int, Packed] = {}
        self._starts = [0]

    def _epoch(self, e: int) -> Packed:
        """Epoch e's packing, in its own seeded order; only the two newest are kept (a step spans at most two)."""
        if e not in self._packed:
            rng = np.random.default_rng([self.recipe.run.seed, self.index, e])
            self._packed[e] = Packed(self.train, self.width, self.pad, rng.permutation(len(self.train)))
            for old in [k for k in self._packed if k < e - 1]:
                del self._packed[old]
        return self._packed[e]

    def _row(self, g: int) -> tuple[int, int]:
        """(epoch, row) of global row g of the stream of epochs."""
        while self._starts[-1] <= g:  # _starts[e]: the first global row of epoch e
            self._starts.append(self._starts[-1] + len(self._epoch(len(self._starts) - 1)))
        e = bisect.bisect_right(self._starts, g) - 1
        return e, g - self._starts[e]

    def epoch_steps(self) -> float:
        """Optimiser steps one epoch of the training rows takes (a pass over every example once)."""
        return len(self._epoch(0)) / (self.batch.batch_tokens // self.batch.context_length)

    def setup(self, model, ctx) -> None:
        self.ctx = ctx

    def batches(self, step: int, model) -> list[MicroBatch]:
        b, d = self.batch, self.ctx.dist
        per_step = b.batch_tokens // b.context_length
        rows = [self._row(step * per_step + r) for r in range(per_step)]
        tokens = torch.stack([self._epoch(e).tokens[r] for e, r in rows])
        docs = torch.stack([self._epoch(e).doc_ids[r] for e, r in rows])
        mask = torch.stack([self._epoch(e).mask[r] for e, r in rows])
        # Normalise by the step's target count over every process, so the loss is the mean over the global batch
        # whatever the split (DDP averages the processes' gradients, hence the factor world).
        self.norm = max(1, int(mask.sum())) / d.world_size
        mine = slice(d.rank * b.micro_batch * self.accum, (d.rank + 1) * b.micro_batch * self.accum)
        tokens, docs, mask = tokens[mine], docs[mine], mask[mine]
        return [MicroBatch({"tokens": tokens[k:k + b.micro_batch], "doc_ids": docs[k:k + b.micro_batch],
                            "mask": mask[k:k + b.micro_batch]}) for k in range(0, len(tokens), b.micro_batch)]

    def loss(self, model, batch: MicroBatch):
        dev = self.ctx.device
        ce_sum, loss_sum, n = packed_loss(model, batch.data["tokens"].to(dev), batch.data["doc_ids"].to(dev),
                                          batch.data["mask"].to(dev), self.ctx.optim.z_loss)
        return float(ce_sum.detach()) / self.norm, loss_sum / self.norm, {}

    def tokens_in(self, batch: MicroBatch) -> int:
        return int((batch.data["doc_ids"] <= len(self.train)).sum())

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        if self.valid is None:
            return {}
        total, count = 0.0, 0
        mb = self.batch.micro_batch
        for k in range(0, len(self.valid), mb):
            with self.ctx.autocast():
                ce_sum, _, n = packed_loss(model, self.valid.tokens[k:k + mb].to(self.ctx.device),
                                           self.valid.doc_ids[k:k + mb].to(self.ctx.device),
                                           self.valid.mask[k:k + mb].to(self.ctx.device), 0.0)
            total, count = total + float(ce_sum), count + n
        return {"val_loss": total / max(1, count)}
