"""`ocg eval compare`: per-problem scores from results.jsonl of any benchmark shape, the paired tests against values
computed by hand (exact sign-flip enumeration, McNemar's binomial tail), the bootstrap interval's bounds, and the
CLI's files and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from opencodegen.cli import main
from opencodegen.errors import UserError
from opencodegen.eval import compare


def run_dir(path: Path, benchmark: str, rows: list[dict]) -> Path:
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"benchmark": benchmark}))
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def humaneval_rows(passed: dict[int, list[bool]]) -> list[dict]:
    return [{"task_id": f"HumanEval/{t}", "completion_id": j, "passed": p} for t, ps in passed.items()
            for j, p in enumerate(ps)]


def test_exact_randomization_and_mcnemar_by_hand(tmp_path):
    # A solves 0, 1, 2 and 3; B solves only 3: three discordant problems, all for A.
    a = run_dir(tmp_path / "a", "humaneval", humaneval_rows({0: [True], 1: [True], 2: [True], 3: [True], 4: [False]}))
    b = run_dir(tmp_path / "b", "humaneval", humaneval_rows({0: [False], 1: [False], 2: [False], 3: [True],
                                                              4: [False], 5: [True]}))
    r = compare.compare(a, b)
    assert (r["problems"], r["a_better"], r["b_better"], r["equal"]) == (5, 3, 0, 2)
    assert r["only_in_b"] == ["HumanEval/5"] and r["only_in_a"] == []
    assert r["mean_difference"] == pytest.approx(3 / 5)
    assert r["p_randomization"] == pytest.approx(2 / 8)  # of the 8 sign patterns, +++ and --- reach |3|
    assert r["p_mcnemar"] == pytest.approx(2 * 0.5 ** 3)
    assert r["ci95"][0] <= r["mean_difference"] <= r["ci95"][1] <= 1.0


def test_fractions_per_problem_and_mtpb_and_evalplus_shapes(tmp_path):
    a = run_dir(tmp_path / "a", "humaneval", humaneval_rows({0: [True, True, False, False], 1: [True] * 4}))
    b = run_dir(tmp_path / "b", "humaneval", humaneval_rows({0: [True, False, False, False], 1: [True] * 4}))
    r = compare.compare(a, b)
    assert r["per_problem"]["HumanEval/0"] == {"a": 0.5, "b": 0.25, "n_a": 4, "n_b": 4}
    assert "p_mcnemar" not in r  # several samples per problem
    mtpb = [{"id": 1, "case": c, "mode": "multi", "passed": c < 2} for c in range(5)]
    x = run_dir(tmp_path / "x", "mtpb", mtpb)
    y = run_dir(tmp_path / "y", "mtpb", [{**row, "passed": True} for row in mtpb])
    r = compare.compare(x, y)
    assert r["problems"] == 5 and r["b_better"] == 3 and r["mean_difference"] == pytest.approx(-3 / 5)
    plus = run_dir(tmp_path / "p", "evalplus", [{"task_id": "Mbpp/2", "base_passed": True, "plus_passed": False}])
    plus2 = run_dir(tmp_path / "q", "evalplus", [{"task_id": "Mbpp/2", "base_passed": True, "plus_passed": True}])
    assert compare.compare(plus, plus2)["per_problem"]["Mbpp/2"]["a"] == 0.0


def test_randomization_sampling_agrees_with_exact_enumeration():
    diffs = np.array([1.0] * 14 + [-1.0] * 4 + [0.5, -0.25, 0.75] + [0.0] * 10)
    exact = compare.randomization_p(diffs)
    compare.EXACT_UP_TO, saved = 0, compare.EXACT_UP_TO
    try:
        sampled = compare.randomization_p(diffs, seed=1)
    finally:
        compare.EXACT_UP_TO = saved
    assert abs(exact - sampled) < 0.01 and 0 < exact < 0.05


def test_cli_writes_files_and_refuses_mismatched_runs(tmp_path, capsys):
    a = run_dir(tmp_path / "a", "humaneval", humaneval_rows({0: [True], 1: [False]}))
    b = run_dir(tmp_path / "b", "humaneval", humaneval_rows({0: [False], 1: [False]}))
    assert main(["eval", "compare", str(a), str(b), "--out", str(tmp_path / "c")]) == 0
    for name in ("compare.json", "compare.md", "compare.png"):
        assert (tmp_path / "c" / name).stat().st_size > 0
    assert "HumanEval/0 | 100.00 | 0.00 | 100.00" in (tmp_path / "c" / "compare.md").read_text()
    m = run_dir(tmp_path / "m", "mtpb", [{"id": 1, "case": 0, "passed": True}])
    assert main(["eval", "compare", str(a), str(m)]) == 2
    assert "a humaneval run" in capsys.readouterr().err
    with pytest.raises(UserError, match="not an `ocg eval` result directory"):
        compare.compare(a, tmp_path / "nowhere")
