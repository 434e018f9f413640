"""The code tokenizer: lossless on real code, CodeGen's whitespace-run tokens, control tokens that text never
produces, exact vocabulary size, save/load, HuggingFace interoperability, clear errors, and the CLI."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

from opencodegen.cli import main as ocg
from opencodegen.errors import UserError
from opencodegen.tokenizer import SPECIAL_TOKENS, WHITESPACE_TOKENS, CodeTokenizer, train_tokenizer

STDLIB = Path(sysconfig.get_paths()["stdlib"])
ODD_TEXTS = [
    "x = '<|endoftext|>' + \"<|fim_prefix|><|file_sep|>\"\n",  # control-token text inside source code
    "def f():\r\n\treturn 1\r\n",
    " " * 40 + "deep\n" + "\t" * 12 + "tabs\n" + " \t \t  \t\n",
    "naïve = 'ünïcödé' + '漢字' + '\U0001F600' + '\u200b' + '\x00\x7f'\n",
    "", " ", "\n\n\n", "    ",
]


def stdlib_sample(every: int, offset: int) -> list[str]:
    files = sorted(p for p in STDLIB.glob("*.py"))[offset::every]
    return [p.read_text(encoding="utf-8") for p in files]


@pytest.fixture(scope="module")
def tok() -> CodeTokenizer:
    return train_tokenizer(stdlib_sample(4, 0), vocab_size=2048)


def test_lossless_on_held_out_stdlib_and_odd_text(tok):
    held_out = stdlib_sample(9, 1)  # files the tokenizer never saw
    assert len(held_out) > 15
    for text in held_out + ODD_TEXTS:
        assert tok.decode(tok.encode(text)) == text
    assert [tok.decode(ids) for ids in tok.encode_batch(held_out)] == held_out
    assert tok.encode_batch(held_out) == [tok.encode(t) for t in held_out]


def test_vocabulary_is_exact_with_every_special_and_whitespace_token(tok):
    assert tok.vocab_size == 2048
    ids = [tok.special_id(name) for name in SPECIAL_TOKENS]
    assert None not in ids and len(set(ids)) == len(SPECIAL_TOKENS)
    assert tok.eos_id == tok.special_id("<|endoftext|>")
    assert tok.special_id("def") is None  # only control tokens count as special
    assert len(WHITESPACE_TOKENS) == 38  # CodeGen: 30 space runs (31..2) + 8 tab runs (9..2)
    for run in WHITESPACE_TOKENS:
        assert len(tok.encode(run)) == 1 and tok.decode(tok.encode(run)) == run


def test_control_tokens_never_come_from_text(tok):
    specials = {tok.special_id(name) for name in SPECIAL_TOKENS}
    ids = tok.encode(ODD_TEXTS[0])
    assert not specials & set(ids)
    assert tok.decode([tok.special_id("<|fim_prefix|>")]) == "<|fim_prefix|>"  # but ids render as their text


def test_whitespace_runs_between_tokens_are_one_token(tok):
    for n in range(2, 33):  # byte-level pre-tokenization leaves the run's last space to the next word
        ids = tok.encode("x" + " " * n + "= 1")
        assert [tok.token_text(i) for i in ids[:2]] == ["x", "Ġ" * (n - 1)], n
    for n in range(3, 11):
        assert tok.token_text(tok.encode("x" + "\t" * n + "y")[1]) == "ĉ" * (n - 1), n


def test_whitespace_tokens_cost_nothing_against_plain_bpe():
    """Same vocabulary size, trained on the same code: every run is guaranteed to be one token, and bytes per token on
    held-out code stay within 1% of a plain byte-level BPE (CodeGen's added-token form lost 7% here)."""
    train, held_out = stdlib_sample(4, 0), stdlib_sample(9, 1)
    code = train_tokenizer(train, vocab_size=1024)
    plain = train_tokenizer(train, vocab_size=1024, whitespace_tokens=False)
    assert code.vocab_size == plain.vocab_size == 1024
    assert all(len(code.encode(r)) == 1 for r in WHITESPACE_TOKENS)
    assert sum(len(plain.encode(r)) > 1 for r in WHITESPACE_TOKENS) > 10  # plain BPE leaves many runs split
    n_bytes = sum(len(t.encode()) for t in held_out)
    ours = n_bytes / sum(map(len, code.encode_batch(held_out)))
    baseline = n_bytes / sum(map(len, plain.encode_batch(held_out)))
    assert ours > baseline * 0.99, (ours, baseline)


def test_save_load_round_trip_and_hf_directory(tok, tmp_path):
    path = tok.save(tmp_path / "a")
    assert path == tmp_path / "a" / "tokenizer.json"
    again = CodeTokenizer.load(tmp_path / "a")
    assert CodeTokenizer.load(path).encode(ODD_TEXTS[2]) == again.encode(ODD_TEXTS[2]) == tok.encode(ODD_TEXTS[2])
    assert again.vocab_size == tok.vocab_size and again.eos_id == tok.eos_id

    transformers = pytest.importorskip("transformers")
    hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path), eos_token="<|endoftext|>")
    hf.save_pretrained(tmp_path / "hf")  # an HF model directory: tokenizer.json + tokenizer_config.json
    from_hf = CodeTokenizer.load(tmp_path / "hf")
    for text in stdlib_sample(30, 2) + ODD_TEXTS[1:]:
        assert from_hf.encode(text) == hf.encode(text, add_special_tokens=False) == tok.encode(text)
        assert hf.decode(tok.encode(text)) == text


def test_eos_named_by_tokenizer_config(tmp_path):
    from tokenizers import Tokenizer, models

    t = Tokenizer(models.WordLevel({"<unk>": 0, "</s>": 1, "a": 2}, unk_token="<unk>"))
    t.add_special_tokens(["</s>"])
    t.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": "</s>"}}))
    loaded = CodeTokenizer.load(tmp_path)
    assert loaded.eos_id == 1 and loaded.special_id("<|fim_prefix|>") is None and loaded.vocab_size == 3


def test_bad_input_gets_clear_errors(tmp_path):
    with pytest.raises(UserError, match=r"no tokenizer\.json"):
        CodeTokenizer.load(tmp_path)
    with pytest.raises(UserError, match="no such tokenizer file"):
        CodeTokenizer.load(tmp_path / "missing.json")
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": 3}}')
    with pytest.raises(UserError, match=r"tokenizer\.json: not a valid tokenizer\.json"):
        CodeTokenizer.load(tmp_path)
    with pytest.raises(UserError, match="too small"):
        train_tokenizer(["x"], vocab_size=200)


def test_cli_train(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for i, text in enumerate(stdlib_sample(20, 3)):
        (src / f"m{i}.py").write_text(text)
    (src / "blob.bin").write_bytes(b"\xff\xfe\x00binary")
    assert ocg(["tokenizer", "train", "--files", str(src), "--vocab-size", "700", "--out", str(tmp_path / "t")]) == 0
    tok = CodeTokenizer.load(tmp_path / "t")
    assert tok.vocab_size == 700 and tok.decode(tok.encode(ODD_TEXTS[3])) == ODD_TEXTS[3]
    assert "blob.bin" in capsys.readouterr().err  # the binary file is named as skipped
    assert ocg(["tokenizer", "train", "--out", str(tmp_path / "x")]) == 2
    assert ocg(["tokenizer", "train", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert ocg(["tokenizer", "train", "--corpus", str(src), "--out", str(tmp_path / "x")]) == 2
    assert "not a built corpus" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
