"""Bits per byte and prompt perplexity equal hand computations from the model's own cross-entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_tiny import ByteTokenizer, tiny_model

from opencodegen.eval import mtpb, perplexity

TOK = ByteTokenizer()


def manual_nats(model, ids: list[int], first: int) -> tuple[float, int]:
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0].float()
    logp = F.log_softmax(logits, -1)
    nats = -sum(float(logp[t - 1, ids[t]]) for t in range(first, len(ids)))
    return nats, len(ids) - first


@pytest.fixture(scope="module")
def model():
    return tiny_model(block_size=256)


def test_bits_per_byte_is_cross_entropy_over_bytes(model):
    texts = ["def f(x):\n    return x + 1\n", "é = 'ünïcode'\n", "x"]
    got = perplexity.bits_per_byte(model, TOK, texts, batch_size=2, progress=None)
    nats = tokens = 0
    for t in texts:
        n, c = manual_nats(model, [TOK.eos_id] + TOK.encode(t), 1)
        nats, tokens = nats + n, tokens + c
    n_bytes = sum(len(t.encode()) for t in texts)
    assert got["bytes"] == n_bytes and got["tokens"] == tokens
    assert got["bits_per_byte"] == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)
    # token documents (a tokenized split, EOS-terminated) give the same number
    as_tokens = perplexity.bits_per_byte(model, TOK, [TOK.encode(t) + [TOK.eos_id] for t in texts], progress=None)
    assert as_tokens["bits_per_byte"] == pytest.approx(got["bits_per_byte"], rel=1e-6)


@pytest.mark.parametrize("stride", [None, 8, 3])
def test_long_documents_are_scored_once_per_token_in_windows(stride):
    small = tiny_model(block_size=16)
    ids = [TOK.eos_id] + TOK.encode("abcdefghijklmnopqrstuvwxyz" * 2)
    windows, starts = perplexity._windows(ids, 1, 16, stride)
    step = stride or 15
    begins = range(0, 10**6, step)
    scored = [begin + k for w, s, begin in zip(windows, starts, begins) for k in range(s, len(w))]
    assert scored == list(range(1, len(ids)))
    # After the first window, every scored token sees at least context - stride tokens before it in its window.
    assert all(s >= 16 - step for s in starts[1:])
    assert all(w == ids[b:b + 16] for w, b in zip(windows, begins))
    [(nats, count)] = perplexity.sequence_nll(small, [ids], [1], stride=stride)
    expected = sum(manual_nats(small, w, s)[0] for w, s in zip(windows, starts))
    assert count == len(ids) - 1 and nats == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("stride", [0, 16, -1])
def test_a_stride_outside_the_window_is_refused(stride):
    with pytest.raises(perplexity.UserError, match="stride"):
        perplexity._windows(list(range(40)), 1, 16, stride)


def test_conditional_perplexity(model):
    [ppl] = perplexity.conditional_perplexity(model, TOK, ["# context\n"], ["x = 1\n"])
    ctx = [TOK.eos_id] + TOK.encode("# context\n")
    nats, count = manual_nats(model, ctx + TOK.encode("x = 1\n"), len(ctx))
    assert ppl == pytest.approx(math.exp(nats / count), rel=1e-5)


def test_mtpb_single_vs_multi_turn_prompt_perplexity(model):
    problems = mtpb.load_problems()[:2]
    histories = {(p.id, c): [s.format(**p.inputs[c]) for s in p.solution] for p in problems for c in range(2)}
    out = perplexity.mtpb_prompt_perplexity(model, TOK, problems, histories)
    assert out["cases"] == 4 and out["single_turn_mean_ppl"] > 1 and out["multi_turn_mean_ppl"] > 1
    p = problems[0]
    first_turn = perplexity.conditional_perplexity(model, TOK, [mtpb.PREAMBLE], [mtpb.turn_prompt(p.turns(0)[0])])
    assert np.isfinite(first_turn[0])


def test_token_split_reader(tmp_path):
    docs = [[1, 2, 3], [4], [5, 6]]
    np.array([t for d in docs for t in d], dtype="<u2").tofile(tmp_path / "000.ds")
    np.array(np.cumsum([len(d) for d in docs]), dtype="<u8").tofile(tmp_path / "000.ds.index")
    assert perplexity.read_token_split(tmp_path) == docs
    (tmp_path / "000.ds.index").unlink()
    with pytest.raises(perplexity.UserError, match="index"):
        perplexity.read_token_split(tmp_path)
