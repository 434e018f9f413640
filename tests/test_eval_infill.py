"""HumanEval infilling: task construction matches HumanEval-Infilling's counts, canonical middles pass and match
exactly, wrong middles fail, and the PSM prompt splices the tokenizer's FIM ids around separately encoded text."""

from __future__ import annotations

import json

import pytest
from eval_tiny import ByteTokenizer, tiny_model

from opencodegen.eval import humaneval, infill
from opencodegen.prompt_format import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX
from opencodegen.sampling import SamplingParams


@pytest.fixture(scope="module")
def problems():
    return humaneval.load_problems()


def test_task_counts_match_humaneval_infilling(problems):
    assert len(infill.build_tasks(problems, "single-line")) == 1033
    assert len(infill.build_tasks(problems, "multi-line")) == 5815


def test_tasks_reassemble_the_canonical_program(problems):
    for task in infill.build_tasks({"HumanEval/2": problems["HumanEval/2"]}, "multi-line"):
        p = problems[task.problem_id]
        assert task.prefix + task.middle + task.suffix == p["prompt"] + p["canonical_solution"]
        assert task.middle.strip() and task.span_lines == len([x for x in task.middle.splitlines() if x.strip()])


def test_canonical_middles_pass_and_match_wrong_ones_fail(problems, sandbox):
    tasks = infill.spread(infill.build_tasks(problems, "single-line"), 60) + \
        infill.spread(infill.build_tasks(problems, "multi-line"), 60)
    samples = [{"task_id": t.task_id, "completion": t.middle.rstrip("\n"), "completion_id": 0} for t in tasks]
    samples += [{"task_id": t.task_id, "completion": "    return None\n" if t.span_lines > 1 else
                 t.middle[: len(t.middle) - len(t.middle.lstrip())] + "raise ValueError\n", "completion_id": 1}
                for t in tasks]
    outcomes = infill.execute(tasks, problems, samples, sandbox)
    results, summary = infill.score(tasks, samples, outcomes, ks=(1, 2))
    canonical = [r for r in results if r["completion_id"] == 0]
    wrong = [r for r in results if r["completion_id"] == 1]
    assert all(r["passed"] and r["exact_match"] for r in canonical), [r for r in canonical if not r["passed"]][:3]
    assert not any(r["passed"] or r["exact_match"] for r in wrong)
    for mode in ("single-line", "multi-line"):
        assert summary["by_mode"][mode]["pass_at_k"]["pass@2"] == 1.0
        assert summary["by_mode"][mode]["exact_match"] == 0.5


def test_psm_prompt_splices_special_ids():
    tok = ByteTokenizer()
    task = infill.InfillTask("t", "p", "single-line", prefix="a<|fim_suffix|>", middle="m\n", suffix="z",
                             span_lines=1)
    ids = infill.psm_prompt(tok, task)
    pre, suf, mid = (tok.special_id(n) for n in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE))
    assert ids == [pre] + tok.encode("a<|fim_suffix|>") + [suf] + tok.encode("z") + [mid]
    assert ids.count(suf) == 1  # the literal text in code is not the control token


def test_sampling_mechanics_with_a_tiny_model(problems, sandbox, tmp_path):
    tok, model = ByteTokenizer(), tiny_model(block_size=1024)
    tasks = infill.spread(infill.build_tasks({"HumanEval/0": problems["HumanEval/0"]}, "single-line"), 3)
    samples = infill.sample(model, tok, tasks, n=2, params=SamplingParams(max_new_tokens=8, temperature=0.8,
                                                                          seed=0))
    assert [s["task_id"] for s in samples] == [t.task_id for t in tasks for _ in range(2)]
    assert all(s["completion"].count("\n") <= 1 for s in samples)
    outcomes = infill.execute(tasks, problems, samples, sandbox)
    results, summary = infill.score(tasks, samples, outcomes, ks=(1, 2))
    infill.write_outputs(tmp_path, samples, results, summary)
    assert json.loads((tmp_path / "summary.json").read_text())["tasks"] == 3
    assert (tmp_path / "fim_exact_match_by_span.png").stat().st_size > 0


def test_random_spans_are_seeded_character_spans_whose_middles_pass(problems, sandbox):
    tasks = infill.build_tasks(problems, "random-span")
    assert len(tasks) == 1640 and tasks == infill.build_tasks(problems, "random-span")
    assert infill.random_span_tasks({"HumanEval/7": problems["HumanEval/7"]}) == \
        [t for t in tasks if t.problem_id == "HumanEval/7"]  # a subset gets the same spans
    for t in tasks:
        solution = problems[t.problem_id]["canonical_solution"].rstrip()
        assert t.middle and problems[t.problem_id]["prompt"] + solution + "\n" == t.prefix + t.middle + t.suffix
    assert sum(not t.middle.endswith("\n") and "\n" in t.middle for t in tasks) > 100  # ends inside lines
    subset = infill.spread(tasks, 40)
    samples = [{"task_id": t.task_id, "completion": t.middle, "completion_id": 0} for t in subset]
    outcomes = infill.execute(subset, problems, samples, sandbox)
    assert all(r.passed for r in outcomes), [(s["task_id"], r.reason) for s, r in zip(samples, outcomes)
                                             if not r.passed][:3]


def test_syntax_truncation_cuts_a_run_on_middle_and_leaves_a_parsing_one(problems):
    task = next(t for t in infill.build_tasks({"HumanEval/0": problems["HumanEval/0"]}, "multi-line")
                if t.span_lines == 2)
    # the model wrote the span, then started re-writing the suffix and stopped mid-statement
    run_on = task.middle + task.suffix.splitlines(keepends=True)[0][:-3]
    assert infill.syntax_truncate(task, run_on) == task.middle
    assert infill.syntax_truncate(task, task.middle) == task.middle
    assert infill.syntax_truncate(task, "    return (\n") == "    return (\n"  # nothing parses: unchanged
    assert infill.cut_middle(task, run_on) == task.middle


def test_calibrated_limits_replace_the_fixed_timeout(problems, tmp_path):
    task = next(t for t in infill.build_tasks(problems, "single-line")
                if t.problem_id == "HumanEval/0" and t.middle.lstrip().startswith("for "))
    indent = task.middle[:len(task.middle) - len(task.middle.lstrip())]
    slow = f"{indent}__import__('time').sleep(0.04)\n{task.middle}"  # right; its 7 calls outlast the fixed limit
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"task_id": task.task_id, "completion": slow}) + "\n")
    fixed = infill.evaluate(tmp_path / "fixed", samples_path=path, modes=("single-line",), ks=(1,), workers=1,
                            timeout=0.1)
    calibrated = infill.evaluate(tmp_path / "cal", samples_path=path, modes=("single-line",), ks=(1,), workers=1,
                                 timeout=0.1, calibration=(4.0, 1.0))
    assert fixed["by_mode"]["single-line"]["pass_at_k"] == {"pass@1": 0.0}
    assert calibrated["by_mode"]["single-line"]["pass_at_k"] == {"pass@1": 1.0}
    table = json.loads((tmp_path / "cal" / "calibration.json").read_text())["problems"]
    entry = table["HumanEval/0"]  # one reference run per problem, whatever its tasks
    assert list(table) == ["HumanEval/0"] and entry["reference_status"] == "passed"
    assert entry["limit"] == round(max(1.0, 4 * entry["reference_seconds"]), 3)
    assert calibrated["calibration"]["floor"] == 1.0 and "calibrated" in (tmp_path / "cal" / "report.md").read_text()
