"""Fill-in-the-middle (Bavarian et al. 2022) with Qwen2.5-Coder's special tokens.

A document is cut at two points drawn uniformly over its characters (before tokenization, as in the paper) into
prefix, middle and suffix, and rearranged in PSM or SPM order. The layouts themselves are prompt_format's (the server
builds its prompts there too); this module decides which files are transformed and where they are cut."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..prompt_format import FimIds, Piece, psm, spm


@dataclass
class FimConfig:
    rate: float = 0.5  # fraction of files transformed
    spm_rate: float = 0.5  # of those, fraction in SPM order

    def __post_init__(self) -> None:
        for name in ("rate", "spm_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"fim {name} must be in [0, 1], got {v}")


def split_points(text: str, rng: random.Random) -> tuple[str, str, str]:
    """(prefix, middle, suffix) for two cut points drawn uniformly from 0..len(text) and sorted."""
    a, b = sorted((rng.randint(0, len(text)), rng.randint(0, len(text))))
    return text[:a], text[a:b], text[b:]


def fim_pieces(text: str, rng: random.Random, cfg: FimConfig, ids: FimIds | None) -> list[Piece]:
    """The file's pieces: unchanged with probability 1 - rate, else PSM or SPM (the draw order is fixed: the FIM
    coin, then the cut points, then the SPM coin, so a seed reproduces the same split)."""
    if ids is None or cfg.rate == 0.0 or rng.random() >= cfg.rate:
        return [text]
    prefix, middle, suffix = split_points(text, rng)
    if rng.random() < cfg.spm_rate:
        return spm(ids, prefix, suffix, middle)
    return psm(ids, prefix, suffix, middle)
