"""Logit parity with transformers for CodeGen, Qwen2, Qwen3 and Llama (random weights from small configs), greedy
decoding parity, export -> transformers, import -> export -> import round trips, and the three HF weight formats."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from opencodegen.model.hf import export_hf, load_hf_model  # noqa: E402
from opencodegen.model.io import save_checkpoint  # noqa: E402
from opencodegen.model.transformer import KVCache  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

VOCAB = 96


def codegen(tied: bool):
    # The released checkpoints are untied; the quickstart's tiny CodeGen ties its head to the embedding.
    return transformers.CodeGenConfig(vocab_size=VOCAB, n_positions=128, n_embd=64, n_layer=2, n_head=8, rotary_dim=4,
                                      bos_token_id=1, eos_token_id=2, tie_word_embeddings=tied,
                                      architectures=["CodeGenForCausalLM"])


def qwen2(tied: bool):
    return transformers.Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                    rope_theta=1e6, tie_word_embeddings=tied, architectures=["Qwen2ForCausalLM"])


def llama(bias: bool, scaling: dict | None):
    return transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=24, max_position_embeddings=128,
                                    attention_bias=bias, mlp_bias=bias, rope_scaling=scaling,
                                    architectures=["LlamaForCausalLM"])


def qwen3(bias: bool):
    # head_dim 24 is not hidden/heads: Qwen3 decouples them, and its q/k norms run over head_dim.
    return transformers.Qwen3Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=24,
                                    max_position_embeddings=128, rope_theta=1e6, attention_bias=bias,
                                    tie_word_embeddings=not bias,
                                    architectures=["Qwen3ForCausalLM"])


CONFIGS = {
    "codegen": lambda: codegen(False),
    "codegen-tied": lambda: codegen(True),
    "qwen2-tied": lambda: qwen2(True),
    "qwen2-untied": lambda: qwen2(False),
    "qwen3-tied": lambda: qwen3(False),
    "qwen3-bias": lambda: qwen3(True),
    "llama-bias-linear": lambda: llama(True, {"rope_type": "linear", "factor": 2.0}),
    "llama-nobias-yarn": lambda: llama(False, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}),
}


def hf_model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[name](), dtype=torch.float32).eval()
    with torch.no_grad():  # HF initialises biases and norms to constants; randomise so a wrong mapping shows up
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def save_hf(model, directory, **kwargs):
    model.save_pretrained(directory, **kwargs)
    return directory


def greedy_ours(model, prompt: torch.Tensor, n: int) -> torch.Tensor:
    cache = KVCache(model.config, prompt.shape[0], prompt.shape[1] + n)
    logits = model(prompt, cache=cache)
    out = []
    for _ in range(n):
        tok = logits[:, -1].argmax(-1, keepdim=True)
        out.append(tok)
        logits = model(tok, cache=cache)
    return torch.cat(out, 1)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_greedy_export_roundtrip(name, tmp_path):
    ref = hf_model(name)
    src = save_hf(ref, tmp_path / "hf")
    ours = load_hf_model(src)
    tokens = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref(tokens).logits
        got = ours(tokens)
        assert (got - expected).abs().max().item() <= 1e-4

        prompt = tokens[:2, :8]
        theirs = ref.generate(prompt, max_new_tokens=32, min_new_tokens=32, do_sample=False, pad_token_id=0)[:, 8:]
        assert torch.equal(greedy_ours(ours, prompt, 32), theirs)

    # ours -> checkpoint -> HF export -> transformers: same logits; -> import again: bit-identical weights.
    ckpt = save_checkpoint(ours, None, tmp_path / "ckpt")
    exported = export_hf(ckpt, tmp_path / "exported")
    back = transformers.AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32).eval()
    assert type(back) is type(ref)
    with torch.no_grad():
        assert torch.equal(back(tokens).logits, expected) or (back(tokens).logits - expected).abs().max() <= 1e-5
    again = load_hf_model(exported)
    a, b = ours.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The exported tensors are the HF model's own tensors, bit for bit.
    original = load_file(str(src / "model.safetensors"))
    exported_sd = load_file(str(exported / "model.safetensors"))
    for k, v in exported_sd.items():
        assert torch.equal(v, original[k]), k


@pytest.mark.parametrize("fmt", ["safetensors", "bin", "sharded-safetensors", "sharded-bin"])
def test_input_formats(fmt, tmp_path):
    ref = hf_model("qwen2-untied", seed=3)
    kwargs = {"safe_serialization": not fmt.endswith("bin")} if "bin" in fmt else {}
    if fmt.startswith("sharded"):
        kwargs["max_shard_size"] = "20KB"
    try:
        src = save_hf(ref, tmp_path / "hf", **kwargs)
    except TypeError:  # transformers 5 dropped safe_serialization; write the .bin files ourselves
        src = tmp_path / "hf"
        ref.config.save_pretrained(src)
        sd = ref.state_dict()
        if fmt == "bin":
            torch.save(sd, src / "pytorch_model.bin")
        else:
            import json

            keys = sorted(sd)
            halves = {"pytorch_model-00001-of-00002.bin": keys[::2], "pytorch_model-00002-of-00002.bin": keys[1::2]}
            for file, names in halves.items():
                torch.save({k: sd[k] for k in names}, src / file)
            index = {"weight_map": {k: f for f, names in halves.items() for k in names}}
            (src / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    files = sorted(p.name for p in src.iterdir())
    if fmt.startswith("sharded"):
        assert any(f.endswith(".index.json") for f in files), files
    ours = load_hf_model(src)
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours(tokens) - ref(tokens).logits).abs().max().item() <= 1e-4


def test_dtype_is_preserved(tmp_path):
    ref = hf_model("codegen").to(torch.bfloat16)
    src = save_hf(ref, tmp_path / "hf")
    ours = load_hf_model(src)
    assert all(p.dtype == torch.bfloat16 for p in ours.parameters())
    exported = export_hf(save_checkpoint(ours, None, tmp_path / "ckpt"), tmp_path / "out")
    sd = load_file(str(exported / "model.safetensors"))
    assert all(v.dtype == torch.bfloat16 for v in sd.values())
    import json

    cfg = json.loads((exported / "config.json").read_text())
    assert cfg["torch_dtype"] == "bfloat16" and cfg["architectures"] == ["CodeGenForCausalLM"]
