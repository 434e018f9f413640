"""Bad HF input gets one UserError naming the file/field and the reason."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from opencodegen.errors import UserError  # noqa: E402
from opencodegen.model.config import ModelConfig  # noqa: E402
from opencodegen.model.hf import export_hf, load_hf_model  # noqa: E402
from opencodegen.model.io import load_checkpoint, save_checkpoint  # noqa: E402
from opencodegen.model.transformer import GPT  # noqa: E402


@pytest.fixture
def hf_dir(tmp_path):
    config = transformers.CodeGenConfig(vocab_size=64, n_positions=64, n_embd=32, n_layer=1, n_head=4, rotary_dim=4,
                                        architectures=["CodeGenForCausalLM"])
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


def test_missing_directory(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_hf_model(tmp_path / "nope")
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")


def test_corrupt_safetensors(hf_dir):
    (hf_dir / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(UserError, match=r"model\.safetensors: cannot read weights"):
        load_hf_model(hf_dir)


def test_unknown_architecture(hf_dir):
    cfg = json.loads((hf_dir / "config.json").read_text())
    cfg["architectures"] = ["MambaForCausalLM"]
    (hf_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=r"config\.json: field 'architectures' is \['MambaForCausalLM'\]"):
        load_hf_model(hf_dir)


def test_shapes_not_matching_config(hf_dir):
    cfg = json.loads((hf_dir / "config.json").read_text())
    cfg["vocab_size"] = 80
    (hf_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=r"model\.safetensors: tensor transformer\.wte\.weight has shape \(64, 32\) "
                                        r"but config\.json implies \(80, 32\)"):
        load_hf_model(hf_dir)


def test_config_without_hf_family_cannot_be_exported(tmp_path):
    config = ModelConfig.from_preset("tiny-1m", vocab_size=64, n_head=2, n_embd=64)  # CodeGen needs n_head % 4 == 0
    ckpt = save_checkpoint(GPT(config), None, tmp_path / "ckpt")
    with pytest.raises(UserError, match=r"matches no HuggingFace family.*n_head % 4 == 0"):
        export_hf(ckpt, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tokenizer_vocab_too_big_for_model(tmp_path):
    tok = pytest.importorskip("opencodegen.tokenizer")
    texts = ["def f(x):\n    return x + 1\n" * 20, "class A:\n\tpass\n" * 20]
    tokenizer = tok.train_tokenizer(texts, vocab_size=400)
    model = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=256))
    ckpt = save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    with pytest.raises(UserError, match="tokenizer.json"):
        load_checkpoint(ckpt)
    with pytest.raises(UserError, match="tokenizer.json"):
        export_hf(ckpt, tmp_path / "out")
