"""`ocg eval ... --model DIR` end to end on a real checkpoint directory (a tiny random model with a freshly trained
CodeTokenizer): mechanics only. Runs once opencodegen.tokenizer exists (written alongside this module)."""

from __future__ import annotations

import json

import pytest
import torch

tokenizer_module = pytest.importorskip("opencodegen.tokenizer")

from opencodegen.cli import main  # noqa: E402
from opencodegen.eval import humaneval  # noqa: E402
from opencodegen.model.config import ModelConfig  # noqa: E402
from opencodegen.model.io import save_checkpoint  # noqa: E402
from opencodegen.model.transformer import GPT  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    texts = [p["prompt"] + p["canonical_solution"] for p in humaneval.load_problems().values()]
    tok = tokenizer_module.train_tokenizer(texts, vocab_size=512)
    torch.manual_seed(0)
    vocab = -(-tok.vocab_size // 64) * 64
    model = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=vocab, block_size=512)).eval()
    directory = tmp_path_factory.mktemp("ckpt") / "model"
    save_checkpoint(model, tok, directory)
    return directory


def summary(path):
    for name in ("samples.jsonl", "results.jsonl", "summary.json", "report.md"):
        assert (path / name).stat().st_size > 0
    return json.loads((path / "summary.json").read_text())


def test_eval_commands_with_a_checkpoint(checkpoint, tmp_path):
    common = ["--model", str(checkpoint), "--limit", "2"]
    assert main(["eval", "humaneval", *common, "--n", "2", "--temperature", "0.8", "--max-new-tokens", "8",
                 "--k", "1,2", "--prompt-perplexity", "--out", str(tmp_path / "h")]) == 0
    s = summary(tmp_path / "h")
    assert s["samples"] == 4 and set(s["pass_at_k"]) == {"pass@1", "pass@2"} and "prompt_perplexity" in s
    assert main(["eval", "mtpb", *common, "--mode", "both", "--prompt-perplexity", "--timeout", "5",
                 "--out", str(tmp_path / "m")]) == 0
    assert set(summary(tmp_path / "m")["by_mode"]) == {"multi", "single"}
    assert main(["eval", "infill", *common, "--max-new-tokens", "8", "--k", "1", "--out", str(tmp_path / "f")]) == 0
    assert summary(tmp_path / "f")["tasks"] == 2
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("def add(a, b):\n    return a + b\n")
    assert main(["eval", "bpb", "--model", str(checkpoint), "--files", str(src), "--out", str(tmp_path / "b")]) == 0
    assert summary(tmp_path / "b")["documents"] == 1
