"""`ocg eval ... --endpoint` against `ocg serve` started in the test (a tiny random checkpoint on a loopback port):
the samples the evaluation records equal what the server's engine gives for the same prompt, params and seed
(engine.generate on the healed prompt, as test_serve_api pins the server), for HumanEval and for FIM through the
`suffix` field (then cut as infill cuts every middle), and the CLI runs end to end."""

from __future__ import annotations

import json

import pytest
import torch

from opencodegen.cli import main
from opencodegen.eval import humaneval, infill
from opencodegen.eval.endpoint import Endpoint
from opencodegen.healing import heal
from opencodegen.model.config import ModelConfig
from opencodegen.model.io import save_checkpoint
from opencodegen.model.transformer import GPT
from opencodegen.sampling import HUMANEVAL_STOP, SamplingParams
from opencodegen.engine import generate
from opencodegen.prompt_format import fim_end_ids
from opencodegen.serve.prompts import healed_fim
from opencodegen.tokenizer import train_tokenizer
from serve_fixtures import CODE, one_torch_thread, running_server  # noqa: F401 (autouse fixture)

N = 2


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # A context long enough for whole HumanEval prompts in a 384-id vocabulary.
    tok = train_tokenizer(CODE * 20, vocab_size=384)
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=tok.vocab_size, block_size=2048, eos_token_id=tok.eos_id))
    with running_server(save_checkpoint(model, tok, tmp_path_factory.mktemp("ckpt") / "tiny")) as s:
        yield s


def test_humaneval_samples_equal_the_servers_engine(served, tmp_path):
    server, model, tok = served
    problems = humaneval.load_problems()
    params = SamplingParams(max_new_tokens=16, temperature=0.8, top_p=0.95, seed=7)
    with Endpoint(server.url, model_name="tiny", concurrency=2) as ep:
        summary = humaneval.evaluate(tmp_path, endpoint=ep, limit=3, n=N, params=params, ks=(1, 2))
    samples = [json.loads(line) for line in open(tmp_path / "samples.jsonl")]
    for task_id in list(problems)[:3]:
        want = generate(model, tok, [heal(tok, tok.encode(problems[task_id]["prompt"]))],
                        SamplingParams(max_new_tokens=16, temperature=0.8, top_p=0.95, seed=7, n=N,
                                       stop=HUMANEVAL_STOP))[0]
        got = [s for s in samples if s["task_id"] == task_id]
        assert [s["completion"] for s in got] == [c.text for c in want]
        assert [s["finish_reason"] for s in got] == [c.finish_reason for c in want]
    assert summary["samples"] == 3 * N and set(summary["per_task"]) == set(list(problems)[:3])


def test_infill_through_suffix_equals_the_servers_engine(served, tmp_path):
    server, model, tok = served
    problems = humaneval.load_problems()
    tasks = infill.spread(infill.build_tasks(problems, "multi-line"), 3)
    params = SamplingParams(max_new_tokens=12, temperature=0.0)
    with Endpoint(server.url + "/v1", concurrency=3) as ep:
        infill.evaluate(tmp_path, endpoint=ep, modes=("multi-line",), limit=3, params=params, ks=(1,))
    samples = {s["task_id"]: s["completion"] for s in map(json.loads, open(tmp_path / "samples.jsonl"))}
    for t in tasks:
        prompt = healed_fim(tok, tok.encode(t.prefix), tok.encode(t.suffix))
        [want] = generate(model, tok, [prompt], SamplingParams(max_new_tokens=12, temperature=0.0,
                                                               stop_token_ids=fim_end_ids(tok)))[0:1]
        assert samples[t.task_id] == infill.cut_middle(t, want[0].text)  # the server's middle, syntax-truncated


def test_cli_eval_mtpb_through_the_endpoint_writes_a_run_and_resumes(served, tmp_path, capsys):
    server, _, _ = served
    args = ["eval", "mtpb", "--endpoint", server.url, "--limit", "2", "--out", str(tmp_path), "--concurrency", "2"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    samples = [json.loads(line) for line in open(tmp_path / "samples.jsonl")]
    assert summary["problems"] == 2 and len(samples) == summary["samples"] > 0
    journal = (tmp_path / "endpoint_responses.jsonl").read_text()
    assert main(args) == 0  # every answer comes from the journal: nothing new is written to it
    assert (tmp_path / "endpoint_responses.jsonl").read_text() == journal
    assert [json.loads(line) for line in open(tmp_path / "samples.jsonl")] == samples
