"""Token healing (healing.py) on a hand-built vocabulary, where which tokens are allowed first is written out by hand:
a prompt ending mid-identifier, in a newline, in spaces, and a FIM prefix ending mid-word; prompts at a natural
boundary left exactly as they are; generate() sampling under the constraint; and the token index against a brute
force search over a trained tokenizer's whole vocabulary."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models

from opencodegen.cli import main as ocg
from opencodegen.healing import HealedPrompt, Respeller, constrain, heal, heal_tail, token_index
from opencodegen.model.config import ModelConfig
from opencodegen.model.io import load_checkpoint
from opencodegen.model.transformer import GPT
from opencodegen.sampling import SamplingParams
from opencodegen.engine import generate
from opencodegen.serve.prompts import healed_fim
from opencodegen.tokenizer import SPECIAL_TOKENS, CodeTokenizer, code_pre_tokenizer, train_tokenizer
from serve_fixtures import write_checkpoint

# The merges of the hand-built vocabulary, in rank order. " fibonacci" is reached through " fib" + "onacci", so
# " fibon" is not a token and "def fibon" encodes as "def", " fib", "on": the mid-identifier example.
MERGES = [("d", "e"), ("de", "f"), (" ", "f"), (" f", "i"), (" fi", "b"), ("o", "n"), ("a", "c"), ("ac", "c"),
          ("acc", "i"), ("on", "acci"), (" fib", "onacci"), ("\n", "\n"), (":", "\n"), (" ", " "), ("  ", " "),
          ("  ", "  "), ("    ", " "), (" ", "r"), (" r", "e"), (" re", "t"), (" ret", "u"), (" retu", "r"),
          (" retur", "n"), ("i", "f"), (" ", "x"), (b"\xa9", b"t")]  # the last: a token that starts inside "é"


def gpt2_symbols() -> dict[int, str]:
    """GPT-2's byte -> symbol table (printable latin-1 bytes stand for themselves, the others for 256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out, extra = {}, 0
    for b in range(256):
        out[b] = chr(b) if b in printable else chr(256 + (extra := extra + 1) - 1)
    return out


def hand_built_tokenizer() -> CodeTokenizer:
    sym = gpt2_symbols()
    spell = lambda text: "".join(sym[b] for b in (text if isinstance(text, bytes) else text.encode()))  # noqa
    vocab = {sym[b]: b for b in range(256)}
    for a, b in MERGES:
        vocab.setdefault(spell(a) + spell(b), len(vocab))
    tok = Tokenizer(models.BPE(vocab, [(spell(a), spell(b)) for a, b in MERGES]))
    tok.pre_tokenizer = code_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return CodeTokenizer(tok)


@pytest.fixture(scope="module")
def tok() -> CodeTokenizer:
    return hand_built_tokenizer()


@pytest.fixture(scope="module")
def model(tok) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig.from_preset("tiny-1m", vocab_size=tok.vocab_size, block_size=64,
                                       eos_token_id=tok.eos_id)).eval()


def pieces(tok, ids) -> list[str]:
    return [tok.decode([i]) for i in ids]


def first_allowed(tok, removed: bytes) -> set[str]:
    return set(pieces(tok, token_index(tok).allowed(removed).tolist()))


# ---- which tokens are backed up, and which are allowed first: hand-written expectations --------------------------

def test_mid_identifier_backs_up_every_token_a_longer_token_could_spell(tok):
    ids = tok.encode("def fibon")
    assert pieces(tok, ids) == ["def", " fib", "on"]
    h = heal(tok, ids)
    # "on" could start "onacci", and " fibon" could start " fibonacci"; "def fibon" starts no token.
    assert pieces(tok, h.ids) == ["def"] and h.removed == b" fibon"
    assert first_allowed(tok, h.removed) == {" ", " f", " fi", " fib", " fibonacci"}


def test_prompt_ending_in_a_newline(tok):
    ids = tok.encode("if x:\n    return x\n")
    assert pieces(tok, ids)[-3:] == [" return", " x", "\n"]
    h = heal(tok, ids)
    assert h.ids == ids[:-1] and h.removed == b"\n"
    assert first_allowed(tok, h.removed) == {"\n", "\n\n"}  # not ":\n": it does not start with the newline


def test_prompt_ending_in_spaces(tok):
    ids = tok.encode("if x:\n    ")
    assert pieces(tok, ids) == ["if", " x", ":\n", "    "]
    h = heal(tok, ids)
    assert h.ids == ids[:-1] and h.removed == b"    "
    assert first_allowed(tok, h.removed) == {" ", "  ", "   ", "    ", "     "}
    # After "   " one space is left to spell, which " return" does and goes on past.
    assert {" return", " x", " fibonacci"} <= first_allowed(tok, b" ")


def test_fim_prefix_ending_mid_word(tok):
    prefix, suffix = tok.encode("def fibon"), tok.encode("(n):\n")
    h = healed_fim(tok, prefix, suffix)
    pre, suf, mid = (tok.special_id(t) for t in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))
    assert h.ids == [pre, *tok.encode("def"), suf, *suffix, mid] and h.removed == b" fibon"
    assert first_allowed(tok, h.removed) == {" ", " f", " fi", " fib", " fibonacci"}
    # What is typed after the middle token is the cursor's side: it is healed, and the prefix is left whole.
    typed = healed_fim(tok, prefix, suffix, tok.encode("    "))
    assert typed.ids == [pre, *prefix, suf, *suffix, mid] and typed.removed == b"    "
    assert healed_fim(tok, prefix, suffix, heal=False) == HealedPrompt([pre, *prefix, suf, *suffix, mid])


def test_natural_boundaries_are_left_alone(tok):
    for text in ("def fibonacci", "if x:\n", "x = 1;"):  # no token starts with " fibonacci", ":\n" or ";"
        ids = tok.encode(text)
        assert heal(tok, ids) == HealedPrompt(ids), text
    only = tok.encode("def")  # "def" starts no longer token either
    assert heal_tail(tok, only) == (only, b"")
    assert heal_tail(tok, [tok.eos_id]) == ([tok.eos_id], b"")  # a control token is never backed up


def test_whole_prompt_backed_up_and_characters_kept_whole(tok):
    h = heal(tok, tok.encode(" fib"))
    assert h == HealedPrompt([], b" fib")
    # "é" is two byte tokens and the second starts a longer token ("\xa9t"): the tail takes the whole character.
    ids = tok.encode("xé")
    assert [tok.token_text(i) for i in ids] == ["x", "Ã", "©"]
    assert heal(tok, ids) == HealedPrompt(tok.encode("x"), "é".encode())


def test_constrain_masks_exactly_the_disallowed_tokens(tok):
    index = token_index(tok)
    logits = torch.randn(3, tok.vocab_size + 5)  # a model's vocabulary may be padded past the tokenizer's
    r = Respeller(index, b" fibon")
    out = constrain(logits, [None, r, Respeller(index, b"")])
    assert torch.equal(out[0], logits[0]) and torch.equal(out[2], logits[2])
    kept = set(torch.nonzero(out[1] > -float("inf")).flatten().tolist())
    assert set(pieces(tok, kept)) == {" ", " f", " fi", " fib", " fibonacci"}
    assert torch.equal(out[1][sorted(kept)], logits[1][sorted(kept)])
    assert constrain(logits, [None, None, None]) is logits  # nothing to heal: the very same tensor
    r.advance(tok.encode(" fib")[0])
    assert r.pending == b"on"
    with pytest.raises(ValueError):
        r.advance(tok.encode(" x")[0])


# ---- decoding under the constraint ------------------------------------------------------------------------------

def test_greedy_first_token_is_the_best_allowed_and_removed_text_is_not_returned(tok, model):
    prompt = "def fibon"
    h = heal(tok, tok.encode(prompt))
    [[c]] = generate(model, tok, [h], SamplingParams(max_new_tokens=6))
    with torch.no_grad():
        logits = model(torch.tensor([h.ids]))[0, -1]
    allowed = token_index(tok).allowed(h.removed)
    assert c.token_ids[0] == int(allowed[logits[allowed].argmax()])
    full = tok.decode(h.ids + c.token_ids)
    assert full.startswith(prompt) and c.text == full[len(prompt):]


@pytest.mark.parametrize("prompt", ["def fibon", "if x:\n    return x\n", "if x:\n    "])
def test_sampled_completions_respell_the_prompt_end_and_stream_the_same_text(tok, model, prompt):
    h = heal(tok, tok.encode(prompt))
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=3, n=4, stop=("\n",))
    deltas: dict[int, str] = {}
    samples = generate(model, tok, [h], params,
                       on_token=lambda i, j, text: deltas.__setitem__(j, deltas.get(j, "") + text))[0]
    again = generate(model, tok, [h, tok.encode("x")], params)[0]
    assert [c.token_ids for c in samples] == [c.token_ids for c in again]  # seeded, whatever shares the batch
    for j, c in enumerate(samples):
        full = tok.decode([t for t in h.ids + c.token_ids if t not in tok.special_ids])  # control tokens: not text
        assert full.startswith(prompt)
        after = full[len(prompt):]  # the stop string applies to this, not to the re-spelled newline
        assert c.text == after.split("\n")[0]
        assert deltas.get(j, "") == c.text


def test_natural_boundary_output_is_identical_with_healing_on_and_off(tok, model):
    for text in ("def fibonacci", "if x:\n"):
        ids = tok.encode(text)
        for params in (SamplingParams(max_new_tokens=8), SamplingParams(max_new_tokens=8, temperature=0.9, seed=1,
                                                                        n=3, top_p=0.9)):
            on = generate(model, tok, [heal(tok, ids)], params)[0]
            off = generate(model, tok, [ids], params)[0]
            assert [(c.token_ids, c.text) for c in on] == [(c.token_ids, c.text) for c in off]


def test_max_new_tokens_ending_inside_the_respelling_returns_no_text(tok, model):
    h = heal(tok, tok.encode("if x:\n    "))
    [[c]] = generate(model, tok, [h], SamplingParams(max_new_tokens=1, temperature=1.0, seed=0))
    assert tok.decode(c.token_ids) in {" ", "  ", "   ", "    ", "     "}
    assert c.text == tok.decode(c.token_ids)[4:] and c.finish_reason == "length"


# ---- a trained vocabulary: the index against brute force ---------------------------------------------------------

def test_allowed_tokens_match_a_brute_force_search_over_a_trained_vocabulary():
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text(encoding="utf-8") for p in sorted(stdlib.glob("*.py"))[::6]]
    tok = train_tokenizer(texts, vocab_size=2048)
    table = tok.token_bytes()
    assert all(table[tok.special_id(t)] is None for t in SPECIAL_TOKENS)
    assert all(tok.decode([i]).encode() == b for i, b in enumerate(table) if b and b.isascii())
    for prompt in ("def fibon", "    return len(string)", "    \"\"\"\n", "x = {'a':\n        ", "    ret"):
        h = heal(tok, tok.encode(prompt))
        assert tok.decode(h.ids) + h.removed.decode() == prompt
        if h.removed:
            brute = {i for i, b in enumerate(table) if b and (b.startswith(h.removed) or h.removed.startswith(b))}
            assert set(token_index(tok).allowed(h.removed).tolist()) == brute, prompt
            assert any(b and b.startswith(h.removed) and len(b) > len(h.removed) for b in table)


def test_speculative_decoding_gives_the_same_healed_output(tok, model):
    h = heal(tok, tok.encode("if x:\n    return x\n    "))
    assert h.removed
    plain = generate(model, tok, [h], SamplingParams(max_new_tokens=12, temperature=0.7, seed=2, n=2))[0]
    spec = generate(model, tok, [h], SamplingParams(max_new_tokens=12, temperature=0.7, seed=2, n=2,
                                                    speculative_tokens=4))[0]
    assert [(c.token_ids, c.text) for c in plain] == [(c.token_ids, c.text) for c in spec]


def test_generate_command_heals_by_default_and_can_be_told_not_to(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "ckpt")
    model, trained = load_checkpoint(ckpt)
    prompt = "def add(a, b):\n        "
    ids = trained.encode(prompt)
    assert heal(trained, ids).removed == b"        "
    params = SamplingParams(max_new_tokens=12)
    for flags, want in (([], heal(trained, ids)), (["--no-token-healing"], ids)):
        assert ocg(["generate", "--model", str(ckpt), "--max-new-tokens", "12", *flags, prompt]) == 0
        assert capsys.readouterr().out == generate(model, trained, [want], params)[0][0].text + "\n"
