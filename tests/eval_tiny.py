"""A tiny random model and a byte tokenizer with the special tokens of the CodeTokenizer contract, for testing the
mechanics of the model-dependent evaluations (shapes, files, arithmetic), never their quality."""

from __future__ import annotations

import torch

from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT

SPECIALS = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>"]


class ByteTokenizer:
    def __init__(self) -> None:
        self.special = {name: 256 + i for i, name in enumerate(SPECIALS)}
        self.eos_id = self.special["<|endoftext|>"]
        self.vocab_size = 256 + len(SPECIALS)

    def special_id(self, name: str) -> int | None:
        return self.special.get(name)

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts):
        return [self.encode(t) for t in texts]

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


def tiny_model(block_size: int = 256, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    config = ModelConfig.from_preset("tiny-1m", vocab_size=ByteTokenizer().vocab_size, block_size=block_size)
    return GPT(config).eval()
