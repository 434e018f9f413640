"""`--compile` on every local sampler: `ocg eval humaneval|mbpp|mtpb|infill|repo --model DIR --compile` and
`ocg synth --compile` write the same samples as without it, on a tiny random checkpoint, and their decode steps are
seen to run compiled (the one engine's compiled step, model/compiled.py), not to fall back to eager."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from opencodegen.cli import main
from opencodegen.eval import humaneval, mtpb
from opencodegen.model.compiled import CompiledDecode
from opencodegen.model.config import ModelConfig
from opencodegen.model.io import save_checkpoint
from opencodegen.model.transformer import GPT
from opencodegen.tokenizer import train_tokenizer
from serve_fixtures import one_torch_thread  # noqa: F401 (an autouse fixture)

DATA = Path(__file__).parent / "data"

# The arguments of each sampler, small: a few tasks, short completions, several rows where the sampler batches.
SAMPLERS = {
    "humaneval": ["--limit", "2", "--n", "2", "--temperature", "0.8", "--max-new-tokens", "12"],
    "mbpp": ["--data", str(DATA / "mbpp_mini.jsonl"), "--split", "all", "--limit", "2", "--max-new-tokens", "12"],
    "mtpb": ["--limit", "1", "--mode", "multi", "--timeout", "5"],
    "infill": ["--limit", "2", "--max-new-tokens", "8", "--k", "1"],
    "repo": ["--repos", str(DATA / "repos"), "--limit", "3", "--max-new-tokens", "8"],
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    texts = [p["prompt"] + p["canonical_solution"] for p in humaneval.load_problems().values()]
    texts += [p.description + "\n" + "\n".join(p.solution or ()) for p in mtpb.load_problems()]
    tok = train_tokenizer(texts, vocab_size=512)
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=-(-tok.vocab_size // 64) * 64, block_size=512)).eval()
    return save_checkpoint(model, tok, tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture
def compiled_steps(monkeypatch):
    """Every compiled decode step taken, as (rows, whether compiling had failed)."""
    steps = []
    step = CompiledDecode.step

    def counted(self, idx, *args):
        out = step(self, idx, *args)
        steps.append((idx.shape[0], self.failed))
        return out

    monkeypatch.setattr(CompiledDecode, "step", counted)
    return steps


def samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("benchmark", ["humaneval", *(pytest.param(b, marks=pytest.mark.slow) for b in SAMPLERS
                                                      if b != "humaneval")])
def test_a_compiled_eval_writes_eager_samples(benchmark, checkpoint, tmp_path, compiled_steps):
    runs = {}
    for compile in (False, True):
        out = tmp_path / ("compiled" if compile else "eager")
        argv = ["eval", benchmark, "--model", str(checkpoint), *SAMPLERS[benchmark], "--out", str(out)]
        assert main(argv + ["--compile"] * compile) == 0
        runs[compile] = samples(out)
        if not compile:
            assert compiled_steps == []
    assert runs[True] == runs[False] and runs[True]
    assert compiled_steps and all(failed is None for _, failed in compiled_steps)
    if benchmark == "humaneval":  # 2 tasks x 2 samples decode as one batch
        assert max(rows for rows, _ in compiled_steps) == 4


def test_compile_needs_a_local_model(capsys):
    assert main(["eval", "humaneval", "--samples", "samples.jsonl", "--compile"]) == 2
    assert "--compile needs --model" in capsys.readouterr().err


@pytest.mark.slow  # 17 s; the default suite's compiled humaneval run goes through the same engine
def test_a_compiled_synth_session_writes_eager_turns(checkpoint, tmp_path, monkeypatch, capsys, compiled_steps):
    turns = {}
    for compile in (False, True):
        saved = tmp_path / f"session-{compile}.json"
        lines = ["Let xs be the list [3, 1, 2].", "Sort xs into ys.", f":save {saved}", ":quit"]
        monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
        argv = ["synth", "--model", str(checkpoint), "--seed", "3", "--max-tokens", "16"]
        assert main(argv + ["--compile"] * compile) == 0
        turns[compile] = json.loads(saved.read_text())["turns"]
    capsys.readouterr()
    assert turns[True] == turns[False] and len(turns[True]) == 2
    assert compiled_steps and all(failed is None for _, failed in compiled_steps)
