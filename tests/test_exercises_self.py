"""Self-generation (expert iteration): k samples per exercise, judged; passing ones become "self" exercises and the
round's acceptance rate is recorded. A tiny model taught one solution shows the whole path on a real model."""

from __future__ import annotations

import json

import pytest
import torch

from opencodegen.cli import main
from opencodegen.exercises.build import BuildOptions, build
from opencodegen.exercises.judge import CheckJob, Judge
from opencodegen.exercises.records import Exercise, read_exercises
from opencodegen.exercises.self_generate import sample_and_judge
from opencodegen.sampling import SamplingParams

from eval_tiny import ByteTokenizer, tiny_model
from serve_fixtures import one_torch_thread, write_checkpoint  # noqa: F401 (fixture)

PROMPT = 'def total(xs: list) -> int:\n    """ Return the sum of xs.\n    >>> total([1, 2])\n    3\n    """\n'
SOLUTION = "    return sum(xs)\n"
TESTS = "\n\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n" \
        "    assert candidate([5, -5, 4]) == 4\n"
OTHER = Exercise("synthetic/0/1", "synthetic", 'def biggest(xs: list) -> int:\n    """ Return the largest of xs.\n'
                 '    >>> biggest([1, 3])\n    3\n    """\n', "biggest", "    return max(xs)\n",
                 "\n\ndef check(candidate):\n    assert candidate([1, 3]) == 3\n    assert candidate([-2]) == -2\n",
                 {"n_asserts": 2})
TOTAL = Exercise("synthetic/0/0", "synthetic", PROMPT, "total", SOLUTION, TESTS, {"n_asserts": 3})


def taught_model():
    """A tiny byte-level model trained until it writes TOTAL's solution greedily."""
    tok = ByteTokenizer()
    torch.manual_seed(0)
    model = tiny_model(block_size=512)
    ids = tok.encode(PROMPT + SOLUTION) + [tok.eos_id]
    x, y = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok


@pytest.fixture(scope="module")
def judge():
    with Judge(workers=1) as j:
        yield j


def test_a_taught_model_passes_and_its_pass_becomes_an_exercise(judge, tmp_path):
    model, tok = taught_model()
    params = SamplingParams(max_new_tokens=40, temperature=0.0)
    attempts = sample_and_judge(model, tok, [TOTAL, OTHER], 2, params, judge)
    assert [(a.exercise.id, a.sample_index) for a in attempts] == [
        ("synthetic/0/0", 0), ("synthetic/0/0", 1), ("synthetic/0/1", 0), ("synthetic/0/1", 1)]
    assert attempts[0].completion == SOLUTION and attempts[0].reward == 1.0
    assert [a.reward for a in attempts[2:]] == [0.0, 0.0]
    # The verdicts are the judge's on HumanEval's program, run again here.
    again = judge.check([CheckJob(a.exercise.prompt, a.completion, a.exercise.tests, a.exercise.entry_point)
                         for a in attempts])
    assert [v.passed for v in again] == [a.verdict.passed for a in attempts]

    from opencodegen.exercises.build import Collected, write_outputs
    from opencodegen.exercises.decontaminate import Benchmarks
    from opencodegen.exercises.self_generate import keep_passing
    collected = Collected()
    keep_passing(attempts, [TOTAL, OTHER], 0, 2, params, Benchmarks(), collected)
    stats = write_outputs(BuildOptions(out=tmp_path), collected, Benchmarks(), 1.0)
    kept = read_exercises(tmp_path)
    assert [(e.id, e.source, e.solution, e.tests) for e in kept] == [
        ("self/r1/synthetic/0/0/0", "self", SOLUTION, TESTS)]
    assert kept[0].meta["parent"] == "synthetic/0/0" and kept[0].meta["round"] == 1
    s = stats["sources"]["self"]
    assert s["rejected"] == {"duplicate_completion": 1, "fails_tests": 2} and stats["accounted"]
    (r,) = s["rounds"]
    assert (r["samples"], r["passed"], r["acceptance_rate"], r["exercises_solved"], r["solve_rate"]) == \
        (4, 2, 0.5, 1, 0.5)


def test_sampling_is_seeded(judge):
    model, tok = tiny_model(block_size=512), ByteTokenizer()
    params = SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=11)
    one = sample_and_judge(model, tok, [TOTAL, OTHER], 3, params, judge)
    two = sample_and_judge(model, tok, [TOTAL, OTHER], 3, params, judge)
    assert len(one) == 6 and [a.completion for a in one] == [a.completion for a in two]
    with pytest.raises(ValueError, match="SFT-only"):
        sample_and_judge(model, tok, [Exercise("x", "mined", PROMPT, "total", SOLUTION, "", {})], 1, params, judge)


def test_cli_self_round(tmp_path):
    ckpt = write_checkpoint(tmp_path / "ckpt")
    build(BuildOptions(out=tmp_path / "synthetic", synthetic=4, seed=1, workers=1))
    assert main(["exercises", "build", "--self", "--model", str(ckpt), "--from", str(tmp_path / "synthetic"),
                 "--k", "2", "--max-new-tokens", "12", "--workers", "1", "--out", str(tmp_path / "r1")]) == 0
    stats = json.loads((tmp_path / "r1" / "stats.json").read_text())
    (r,) = stats["sources"]["self"]["rounds"]
    assert r["samples"] == 8 and r["exercises"] == 4 and stats["accounted"]
    assert r["acceptance_rate"] == r["passed"] / 8
    assert main(["exercises", "build", "--self", "--from", str(tmp_path / "synthetic"), "--out",
                 str(tmp_path / "r2")]) == 2
