"""Log-probabilities of sampled or given completions under a model: what RL's and DPO's losses are made of."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_sequences(seqs: list[tuple[list[int], int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """seqs: (ids, prompt length). Returns right-padded tokens (B, T) and the mask (B, T-1) of positions whose next
    token belongs to the completion (the tokens after the prompt)."""
    width = max(len(ids) for ids, _ in seqs)
    tokens = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), width - 1, dtype=torch.bool)
    for b, (ids, n_prompt) in enumerate(seqs):
        tokens[b, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[b, n_prompt - 1:len(ids) - 1] = True
    return tokens, mask


def token_logprobs(model, tokens: torch.Tensor) -> torch.Tensor:
    """(B, T-1): log p(token t+1 | tokens ..t), in fp32 whatever the autocast dtype of the logits."""
    logits = model(tokens[:, :-1]).float()
    return torch.gather(F.log_softmax(logits, dim=-1), -1, tokens[:, 1:, None]).squeeze(-1)
