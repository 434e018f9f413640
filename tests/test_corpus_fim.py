"""FIM transform (Bavarian et al. 2022): uniform character cut points, PSM and SPM (variant 2) layouts, rates."""

from __future__ import annotations

import random

import numpy as np
import pytest

from opencodegen.data.fim import FimConfig, FimIds, fim_pieces, split_points

IDS = FimIds(prefix=-1, middle=-2, suffix=-3)  # distinct sentinels; real ids come from the tokenizer


def test_split_points_cover_the_text_and_are_uniform():
    text = "".join(chr(97 + i % 26) for i in range(100))
    rng = random.Random(0)
    lo, hi = [], []
    for _ in range(20000):
        p, m, s = split_points(text, rng)
        assert p + m + s == text
        lo.append(len(p))
        hi.append(len(p) + len(m))
    # two uniform draws on 0..100, sorted: E[min] = 33.17, E[max] = 66.83 (hand-computed for the discrete case)
    exp_min = sum(min(a, b) for a in range(101) for b in range(101)) / 101**2
    assert abs(np.mean(lo) - exp_min) < 0.6 and abs(np.mean(hi) - (100 - exp_min)) < 0.6
    counts = np.bincount(lo + [100 - h for h in hi], minlength=101)  # both cut marginals, folded
    assert counts[0] > 0 and counts[100] > 0  # the ends are reachable: empty prefix / suffix happen


def test_psm_and_spm_layouts():
    text = "def f(x):\n    return x * 2\n"
    psm = fim_pieces(text, random.Random(3), FimConfig(rate=1.0, spm_rate=0.0), IDS)
    assert [p for p in psm if isinstance(p, int)] == [IDS.prefix, IDS.suffix, IDS.middle]
    pre, suf, mid = psm[1], psm[3], psm[5]
    assert pre + mid + suf == text
    spm = fim_pieces(text, random.Random(3), FimConfig(rate=1.0, spm_rate=1.0), IDS)
    # <PRE> <SUF> suffix <MID> prefix+middle: the same draw, so the same cut
    assert spm == [IDS.prefix, IDS.suffix, suf, IDS.middle, pre + mid]


def test_rates():
    rng = random.Random(7)
    cfg = FimConfig(rate=0.5, spm_rate=0.5)
    kinds = []
    for _ in range(4000):
        out = fim_pieces("some code here\n", rng, cfg, IDS)
        kinds.append("plain" if len(out) == 1 else "spm" if out[1] == IDS.suffix else "psm")
    frac_fim = 1 - kinds.count("plain") / len(kinds)
    frac_spm = kinds.count("spm") / (len(kinds) - kinds.count("plain"))
    assert abs(frac_fim - 0.5) < 0.03 and abs(frac_spm - 0.5) < 0.04
    assert fim_pieces("x", rng, FimConfig(rate=0.0), IDS) == ["x"]
    assert fim_pieces("x", rng, FimConfig(rate=1.0), None) == ["x"]  # tokenizer without FIM tokens
    with pytest.raises(ValueError):
        FimConfig(rate=1.5)
