"""Speculative decoding by prompt lookup: the drafter against a brute-force search, generate() with drafts against
generate() without them (tokens, logprobs, texts, streams; greedy and seeded sampling; batches; stops, stop tokens
and lengths landing inside accepted drafts), the KV-cache rollback against full recomputation, and that drafts are
really accepted (fewer forward passes than tokens)."""

from __future__ import annotations

import random

import pytest
import torch

from eval_tiny import ByteTokenizer
from opencodegen.cli import main
from opencodegen.errors import UserError
from opencodegen.model.config import ModelConfig
from opencodegen.model.transformer import GPT, KVCache
from opencodegen.sampling import SamplingParams
from opencodegen.engine import generate
from opencodegen.speculative import NgramDrafter
from serve_fixtures import one_torch_thread, write_checkpoint  # noqa: F401 (one_torch_thread is an autouse fixture)

TOK = ByteTokenizer()
QWEN = dict(parallel_residual=False, norm="rmsnorm", mlp="swiglu", n_kv_heads=2, qkv_bias=True, rope_interleaved=False)
# A random tiny model soon repeats itself on this prompt, so drafts get accepted...
REPETITIVE = "hello world " * 5
# ...while here the prompt's own repetition proposes drafts the model mostly turns down.
PROMPTS = [REPETITIVE, "abcabcabcabcabcabc", "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n", "xq7!"]


def tiny(family: str = "codegen") -> GPT:
    torch.manual_seed(0)
    config = ModelConfig.from_preset("tiny-1m", vocab_size=TOK.vocab_size, block_size=256,
                                     **(QWEN if family == "qwen" else {}))
    return GPT(config).eval()


@pytest.fixture(scope="module")
def model() -> GPT:
    return tiny()


def looped_prompt(model: GPT) -> list[int]:
    """REPETITIVE followed by the model's own first 30 greedy tokens: the loop it falls into is already in the
    prompt, so drafts are accepted from the first pass on."""
    looped = generate(model, TOK, [REPETITIVE], SamplingParams(max_new_tokens=30))[0][0].token_ids
    return TOK.encode(REPETITIVE) + looped


def assert_same(plain, spec):
    """Same completions; log-probabilities equal up to the rounding of a multi-position forward pass."""
    for p_row, s_row in zip(plain, spec, strict=True):
        for p, s in zip(p_row, s_row, strict=True):
            assert (s.token_ids, s.text, s.finish_reason) == (p.token_ids, p.text, p.finish_reason)
            if p.logprobs is not None:
                assert s.logprobs == pytest.approx(p.logprobs, abs=1e-5)
            if p.top_logprobs is not None:
                for p_top, s_top in zip(p.top_logprobs, s.top_logprobs, strict=True):
                    assert s_top.keys() == p_top.keys()
                    assert list(s_top.values()) == pytest.approx(list(p_top.values()), abs=1e-5)


def both(model, prompts, k=8, **params):
    plain = generate(model, TOK, prompts, SamplingParams(**params))
    spec = generate(model, TOK, prompts, SamplingParams(speculative_tokens=k, **params))
    return plain, spec


class PassRecorder:
    """Records every decode forward pass of a batch-1 generate(): (fed tokens, cache length before the pass)."""

    def __init__(self, model: GPT):
        self.passes: list[tuple[list[int], int]] = []
        self.handle = model.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, _module, args, kwargs):
        if kwargs.get("cache") is not None and kwargs.get("rows") is None:  # the prefill names its row
            self.passes.append((args[0][0].tolist(), int(kwargs["cache"].lengths[0])))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()

    def ended_inside_accepted_draft(self, prompt_len: int, token_ids: list[int]) -> bool:
        """The last pass fed [t, d0, d1, ...]; the completion ended on a token that was itself a correct draft, with
        more drafted tokens after it that the end made moot."""
        fed, cache_len = self.passes[-1]
        emitted = token_ids[cache_len - prompt_len + 1:]  # the tokens after t, all from the last pass
        drafts = fed[1:]
        return 0 < len(emitted) < len(drafts) and emitted == drafts[: len(emitted)]


# ---- drafting -----------------------------------------------------------------------------------------------

def reference_draft(ids: list[int], k: int, min_n: int, max_n: int) -> list[int]:
    """Brute force: the longest suffix n-gram (max_n..min_n) that occurred earlier, its latest occurrence, and the k
    tokens that followed it, continuing into the draft itself when they run past the end."""
    for n in range(min(max_n, len(ids)), min_n - 1, -1):
        for after in range(len(ids) - 1, n - 1, -1):
            if ids[after - n : after] == ids[len(ids) - n :]:
                seq = list(ids)
                for j in range(k):
                    seq.append(seq[after + j])
                return seq[len(ids):]
    return []


def test_drafter_examples():
    assert NgramDrafter([1, 2, 3, 9, 1, 2, 3, 7, 5, 1, 2, 3]).draft(3) == [7, 5, 1]  # latest match of (1, 2, 3)
    assert NgramDrafter([1, 2, 9, 4, 2, 8, 1, 2]).draft(2) == [9, 4]  # (1, 2) beats the later match of (2,)
    assert NgramDrafter([5, 6, 5, 6]).draft(5) == [5, 6, 5, 6, 5]  # a periodic tail continues its own period
    assert NgramDrafter([1, 2, 3]).draft(4) == []  # nothing earlier to match
    assert NgramDrafter([1, 2, 1, 3, 1], min_n=2).draft(2) == []  # only n-grams of size >= 2 count


def test_drafter_matches_brute_force_search_while_growing():
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(4) for _ in range(rng.randrange(1, 40))]
        min_n = rng.randrange(1, 4)
        max_n = rng.randrange(min_n, 5)
        drafter = NgramDrafter(ids[:1], min_n, max_n)
        for end in range(2, len(ids) + 1):  # token by token, as generate() feeds it
            drafter.extend(ids[end - 1 : end])
            k = rng.randrange(0, 10)
            assert drafter.draft(k) == reference_draft(ids[:end], k, min_n, max_n), (ids[:end], k, min_n, max_n)


# ---- the cache -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["codegen", "qwen"])
def test_cache_rollback_gives_the_logits_of_a_fresh_computation(family):
    m = tiny(family)
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, TOK.vocab_size, (n,), generator=g) for n in (9, 14)]
    kept = [2, 0]  # row 0 keeps 2 of 5 drafted tokens, row 1 none
    cache = KVCache(m.config, 2, 32)
    with torch.inference_mode():
        for r, s in enumerate(seqs):
            m(s[:-4][None], cache=cache, rows=torch.tensor([r]))
        prefix = [len(s) - 4 for s in seqs]
        # A verify pass: each row's real next kept tokens followed by wrong ones, 5 positions per row.
        fed = torch.stack([torch.cat([s[p : p + n], torch.full((5 - n,), 7)]) for s, p, n in zip(seqs, prefix, kept)])
        m(fed, cache=cache)
        cache.truncate([p + n for p, n in zip(prefix, kept)])
        # Rows continue with different token counts; pad the shorter, compare only real positions.
        rest = [s[p + n :] for s, p, n in zip(seqs, prefix, kept)]
        width = max(len(r) for r in rest)
        logits = m(torch.stack([torch.cat([r, r[-1:].expand(width - len(r))]) for r in rest]), cache=cache)
        for b, (s, r) in enumerate(zip(seqs, rest)):
            full = m(s[None])[0, -len(r):]
            torch.testing.assert_close(logits[b, : len(r)], full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="shorten"):
        cache.truncate([40, 0])


# ---- generate with drafts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["codegen", "qwen"])
def test_greedy_batch_is_unchanged_by_speculation(family):
    m = tiny(family)
    plain, spec = both(m, PROMPTS, max_new_tokens=60, logprobs=3)
    assert_same(plain, spec)
    stats = [c[0].speculation for c in spec]
    assert sum(s.accepted for s in stats) > 0  # drafts were accepted...
    assert sum(s.drafted - s.accepted for s in stats) > 0  # ...and some rejected, rows accepting different counts
    assert len({s.accepted for s in stats}) > 1


def test_acceptance_saves_forward_passes(model):
    with PassRecorder(model) as rec:
        out = generate(model, TOK, [REPETITIVE], SamplingParams(max_new_tokens=100, speculative_tokens=8))[0][0]
    stats = out.speculation
    assert len(out.token_ids) == 100
    assert stats.passes == len(rec.passes)
    assert len(out.token_ids) == 1 + stats.passes + stats.accepted  # each pass: its own token + accepted drafts
    assert len(rec.passes) < len(out.token_ids) / 2


def test_stop_strings_and_tokens_landing_inside_accepted_drafts(model):
    prompt = looped_prompt(model)  # drafts accepted from the first pass: the stops below first appear inside one
    reference = generate(model, TOK, [prompt], SamplingParams(max_new_tokens=40))[0][0]
    cases = [dict(stop=(reference.text[a : a + 2],)) for a in range(0, 30, 3)]
    cases += [dict(stop_token_ids=(t,)) for t in sorted(set(reference.token_ids))]
    inside = 0
    for case in cases:
        plain = generate(model, TOK, [prompt], SamplingParams(max_new_tokens=40, **case))
        with PassRecorder(model) as rec:
            spec = generate(model, TOK, [prompt], SamplingParams(max_new_tokens=40, speculative_tokens=8, **case))
        assert_same(plain, spec)
        if spec[0][0].finish_reason == "stop" and rec.passes:
            inside += rec.ended_inside_accepted_draft(len(prompt), spec[0][0].token_ids)
    assert inside >= len(cases) // 2  # the stops really cut into accepted drafts, not only at pass boundaries


def test_max_new_tokens_at_every_offset(model):
    # Drafts are clamped so that they never run past max_new_tokens: each length must still come out the same.
    for n in range(1, 30):
        assert_same(*both(model, [REPETITIVE, "xq7!"], max_new_tokens=n, logprobs=0))


def test_streamed_text_is_unchanged(model):
    # Each sequence streams the same deltas (how the rows interleave differs: a pass may emit several tokens).
    streams = []
    for k in (0, 8):
        deltas: list[list[str]] = [[], []]
        out = generate(model, TOK, PROMPTS[:2], SamplingParams(max_new_tokens=50, stop=("ld",), speculative_tokens=k),
                       on_token=lambda i, _j, d: deltas[i].append(d))
        streams.append(deltas)
        for i, row in enumerate(out):
            assert "".join(deltas[i]) == row[0].text
    assert streams[0] == streams[1]


def test_seeded_sampling_is_unchanged_by_speculation(model):
    # Verification samples each position exactly as plain decoding does (one draw per emitted token), so a seed
    # gives the same samples; the draft survives exactly when the sample equals it. A random model is nearly
    # uniform, so only a low temperature makes it peaked enough to accept drafts.
    prompts = [looped_prompt(model), *PROMPTS]
    plain, spec = both(model, prompts, max_new_tokens=40, temperature=0.05, top_p=0.9, n=3, seed=5, logprobs=0)
    assert_same(plain, spec)
    assert sum(c.speculation.accepted for row in spec for c in row) > 0


def test_bad_speculation_params_are_user_errors():
    with pytest.raises(UserError, match="speculative_tokens=-1"):
        SamplingParams(speculative_tokens=-1)
    with pytest.raises(UserError, match="prompt_lookup_min=3"):
        SamplingParams(speculative_tokens=4, prompt_lookup_min=3, prompt_lookup_max=2)


def test_generate_command_speculative_flag(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "ckpt")
    outputs = []
    for flag in ([], ["--speculative", "6"]):
        assert main(["generate", "--model", str(ckpt), "--max-new-tokens", "40", *flag, "def fib(n):"]) == 0
        outputs.append(capsys.readouterr())
    assert outputs[0].out == outputs[1].out
    assert "drafted tokens accepted in" in outputs[1].err
