"""MTPB: the shipped problems pass with their reference solutions, and scoring follows the official mtpb_exec.py rules
(first argument of the last print, wrapping the last statement, crash after the print, type casts, float tolerance)."""

from __future__ import annotations

import json

import pytest

from opencodegen.errors import UserError
from opencodegen.eval import mtpb
from opencodegen.eval.sandbox import Sandbox, SeriesValue


@pytest.fixture(scope="module")
def problems():
    return mtpb.load_problems()


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2, preload=mtpb.PRELOAD) as sb:
        yield sb


def test_shipped_problems_cover_every_category(problems):
    assert len(problems) >= 10
    assert {p.category for p in problems} == {"array", "data science", "math", "string", "algorithm", "dict",
                                              "class"}
    for p in problems:
        assert len(p.inputs) == len(p.outputs) == 5 and 3 <= len(p.prompts) <= 9


def test_reference_solutions_all_pass(problems, sandbox):
    samples = mtpb.reference_samples(problems)
    outcomes = mtpb.execute(samples, sandbox, timeout=10)
    results, summary = mtpb.score(problems, samples, outcomes)
    failures = [(r["id"], r["case"], r["answer"], r["expected"], r["reason"]) for r in results if not r["passed"]]
    assert failures == []
    assert summary["pass_rate"] == 1.0 and set(summary["by_category"]) == {f"multi/{p.category}" for p in problems}


def test_multi_and_single_turn_programs():
    p = mtpb.Problem(id=1, name="x", category="math", description="", prompts=("Let a be {a}.", "Print a + 1."),
                     inputs=({"a": [1, 2]},), outputs=(0,), max_gen_length=64)
    assert mtpb.multi_turn_program(p, 0, ["a = [1, 2]", "print(a)"]) == (
        "# Import libraries.\n\nimport numpy as np\n\n# Let a be [1, 2].\na = [1, 2]\n\n# Print a + 1.\nprint(a)\n\n")
    assert mtpb.single_turn_prompt(p, 0) == (
        "# Import libraries.\n\nimport numpy as np\n\n# Let a be [1, 2].\n# Print a + 1.\n")


def test_truncate_follows_the_official_cut():
    text = "\nif len_a > len_b:\n    result = a\nelse:\n    result = b\n\n\n\n#"
    assert mtpb.truncate(text) == "\nif len_a > len_b:\n    result = a\nelse:\n    result = b"
    assert mtpb.truncate("x = 1\nprint(x)\nprint(2)\n") == "x = 1\nprint(x)\n"
    assert mtpb.truncate("def f():\n    pass\ndef g():\n    pass") == "def f():\n    pass\n"
    assert mtpb.truncate("y = 2\n# next turn\nz = 3") == "y = 2\n"
    assert mtpb.truncate("a = 1<|endoftext|>junk") == "a = 1"


@pytest.mark.parametrize("code,expected", [
    ("x = 1\nx + 1", "x = 1\nprint(x + 1)"),
    ("y = f()", "y = print(f())"),  # assignments too, as the official rewrite does
    ("print(3)", "print(3)"),
    ("def f():\n    return 1", "def f():\n    return 1"),  # no value: unchanged
    ("for i in range(3):\n    pass", "for i in range(3):\n    pass"),
    ("x = (", "x = ("),  # does not parse: runs as is
    # comments, blank lines and line numbers stay (a traceback names the line a person sees); columns are bytes
    ("# a\n\nx = [1,\n  2]  # b\n", "# a\n\nx = print([1,\n  2])  # b\n"),
    ("s = 'é'; len(s)", "s = 'é'; print(len(s))"),
])
def test_wrap_last_in_print(code, expected):
    assert mtpb.wrap_last_in_print(code) == expected


@pytest.mark.parametrize("answer,expected,match", [
    (3.9, 3, True),            # int target truncates a float
    ("ab", ["a", "b"], True),  # list target splits a string
    ({7}, [7], True),          # a set becomes a list
    (1, True, False), ("True", True, True), (True, True, True),  # booleans compare as text
    (0.1 + 0.2, 0.3, True), (0.3001, 0.3, False),  # top-level float tolerance
    ([0.1 + 0.2], [0.3], False),  # ...only at the top level
    ([(1, 2)], [[1, 2]], True),   # a list of tuples becomes a list of lists
    (SeriesValue([1.0, 2.0000000001]), [1, 2], True),  # a Series is compared with allclose
    ({"a": 1}, {"a": 1}, False), (None, None, False),  # the official harness cannot score dicts or None
    ("x", 5, False),  # a cast that fails is a wrong answer
    (5, "5", True),
])
def test_answers_match_official_rules(answer, expected, match):
    assert mtpb.answers_match(answer, expected) is match


def test_execution_rules_in_the_sandbox(sandbox):
    programs = {
        "first argument": "x = 4\nprint('Result:', x)\n",
        "crash after print": "print(42)\nraise ValueError('late')\n",
        "wrapped expression": "a = [3, 1, 2]\nsorted(a)\n",
        "no print": "import numpy as np\nx = 1\ndef f():\n    pass\n",
        "numpy scalar": "import numpy as np\nprint(np.int64(7))\n",
        "dataframe": "import pandas as pd\nprint(pd.DataFrame({'a': [1], 'b': [2]}))\n",
        "print in a function": "def show(v):\n    print(v)\nshow(5)\n",
        "assignment last": "x = 1\n",
        "time out after print": "print(9)\nwhile True:\n    pass\n",
    }
    outcomes = sandbox.run([mtpb.wrap_last_in_print(p) for p in programs.values()], timeout=1.0,
                           capture_last_print=True, progress=None)
    got = dict(zip(programs, outcomes))
    assert got["first argument"].value == "Result:"
    assert got["crash after print"].value == 42 and got["crash after print"].status == "failed"
    assert got["wrapped expression"].value == [1, 2, 3]
    assert not got["no print"].has_value
    assert got["numpy scalar"].value == 7 and type(got["numpy scalar"].value) is int
    assert list(got["dataframe"].value) == ["a", "b"] and "a  b" in str(got["dataframe"].value)
    # show(5) is wrapped: print(show(5)) prints 5 inside, then None; the last print's first argument is None
    assert got["print in a function"].has_value and got["print in a function"].value is None
    assert got["assignment last"].value == 1  # x = print(1)
    assert got["time out after print"].status == "timeout" and got["time out after print"].value == 9


def test_read_samples_formats(problems, tmp_path):
    p = problems[0]
    path = tmp_path / "s.jsonl"
    rows = [{"id": p.id, "case": 1, "completions": [s.format(**p.inputs[1]) for s in p.solution]},
            {"id": p.id, "input": p.inputs[2], "completions": "print(0)"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    samples = mtpb.read_samples(path, problems)
    assert [s["case"] for s in samples] == [1, 2]
    assert samples[0]["program"] == mtpb.reference_samples([p])[1]["program"]
    assert samples[1]["program"] == "print(0)"
    path.write_text(json.dumps({"id": p.id, "case": 0, "completions": ["x"]}) + "\n")
    with pytest.raises(UserError, match=f"1 completions for {len(p.prompts)} turns"):
        mtpb.read_samples(path, problems)
    path.write_text(json.dumps({"id": 9999, "case": 0, "completions": "x"}) + "\n")
    with pytest.raises(UserError, match="9999"):
        mtpb.read_samples(path, problems)


def test_official_file_quirks_are_accepted(tmp_path):
    # more outputs than inputs (official problem 57) and a missing max_gen_length
    path = tmp_path / "mtpb.jsonl"
    path.write_text(json.dumps({"id": 57, "name": "q", "description": "", "category": "math",
                                "prompts": ["Let a be {a}.", "Print a."], "inputs": [{"a": 1}, {"a": 2}],
                                "outputs": [1, 2, 3]}) + "\n")
    [p] = mtpb.load_problems(path)
    assert p.outputs == (1, 2) and p.max_gen_length == mtpb.DEFAULT_MAX_GEN_LENGTH
    path.write_text(json.dumps({"id": 1, "prompts": ["Use {b}."], "inputs": [{"a": 1}], "outputs": [1]}) + "\n")
    with pytest.raises(UserError, match="cannot be filled"):
        mtpb.load_problems(path)


def test_score_summary_and_outputs(problems, sandbox, tmp_path):
    samples = mtpb.reference_samples(problems[:2])
    samples[0] = {**samples[0], "program": "print('wrong')"}
    outcomes = mtpb.execute(samples, sandbox, timeout=10)
    results, summary = mtpb.score(problems, samples, outcomes)
    first = f"multi/{problems[0].id}"
    assert summary["by_problem"][first]["passed"] == 4 and summary["by_problem"][first]["total"] == 5
    assert summary["pass_rate"] == pytest.approx(9 / 10)
    mtpb.write_outputs(tmp_path, samples, results, summary)
    for name in ("samples.jsonl", "results.jsonl", "summary.json", "report.md", "mtpb_by_category.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_calibrated_limits_replace_the_fixed_timeout(problems, tmp_path):
    p = problems[0]
    turns = [s.format(**p.inputs[0]) for s in p.solution]
    slow = ["__import__('time').sleep(0.3)\n" + turns[0]] + turns[1:]  # right, but slower than the fixed limit
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"id": p.id, "case": 0, "completions": slow}) + "\n")
    fixed = mtpb.evaluate(tmp_path / "fixed", samples_path=path, workers=1, timeout=0.1)
    calibrated = mtpb.evaluate(tmp_path / "cal", samples_path=path, workers=1, timeout=0.1, calibration=(4.0, 1.0))
    assert fixed["pass_rate"] == 0.0 and calibrated["pass_rate"] == 1.0
    table = json.loads((tmp_path / "cal" / "calibration.json").read_text())["problems"]
    entry = table[f"{p.id}/0"]  # only the input cases scored are measured
    assert list(table) == [f"{p.id}/0"] and entry["reference_status"] == "passed"
    assert entry["limit"] == round(max(1.0, 4 * entry["reference_seconds"]), 3)
    assert calibrated["calibration"]["reference_failures"] == []
    assert "calibrated on this machine" in (tmp_path / "cal" / "report.md").read_text()


def test_problems_without_a_reference_cannot_be_calibrated(tmp_path):
    data = tmp_path / "mtpb.jsonl"  # the official file's shape: no solutions
    data.write_text(json.dumps({"id": 3, "name": "q", "description": "", "category": "math",
                                "prompts": ["Let a be {a}.", "Print a."], "inputs": [{"a": 1}], "outputs": [1]}) + "\n")
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"id": 3, "case": 0, "completions": ["a = 1", "print(a)"]}) + "\n")
    with pytest.raises(UserError, match="reference solution.*have none.*--timeout"):
        mtpb.evaluate(tmp_path / "out", data=data, samples_path=samples, workers=1, calibration=(4.0, 1.0))
    assert mtpb.evaluate(tmp_path / "out", data=data, samples_path=samples, workers=1)["pass_rate"] == 1.0
