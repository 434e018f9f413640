"""Time to target (quickstart/targets.py) and the train plan's SFT epoch cap, on hand-made inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import sys

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from posttrain_fixtures import toy_recipe  # noqa: E402

from opencodegen.train import recipe_from_dict  # noqa: E402

from opencodegen.errors import UserError  # noqa: E402
from opencodegen.quickstart import targets, train_plan  # noqa: E402
from opencodegen.quickstart.published import HUMANEVAL_SMALL_MODELS  # noqa: E402

ROWS = [name for name, *_ in HUMANEVAL_SMALL_MODELS]


def write_metrics(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_training_seconds_sum_steps_in_stage_order_and_a_rerun_step_counts_once(tmp_path):
    metrics = write_metrics(tmp_path / "metrics.jsonl", [
        {"stage": "mono", "step": 1, "seconds": 1.0}, {"stage": "mono", "step": 2, "seconds": 2.0},
        {"stage": "mono", "step": 2, "seconds": 3.0},  # resumed: the step ran again, its last record counts
        {"stage": "sft", "step": 1, "seconds": 0.5, "val_loss": 1.0}, {"stage": "sft", "val_loss": 0.9},
        {"stage": "nl", "step": 1, "seconds": 4.0},  # logged late, but nl is the first stage
    ])
    t = targets.training_seconds(metrics, ["nl", "mono", "sft"])
    assert t == {("nl", 1): 4.0, ("mono", 1): 5.0, ("mono", 2): 8.0, ("sft", 1): 8.5}


def test_a_damaged_metrics_line_is_named(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"stage": "nl", "step": 1, "seconds": 1.0}\n{"stage": "nl", "st\n')
    with pytest.raises(UserError, match=r"metrics.jsonl: line 2 is not JSON"):
        targets.training_seconds(metrics, ["nl"])


def pass_at_k(p1: float, p10: float, p100: float) -> dict:
    return {"pass@1": p1 / 100, "pass@10": p10 / 100, "pass@100": p100 / 100}


CODEX_12M = pass_at_k(2.0, 3.7, 8.6)  # reaches Codex-12M (2.00 / 3.62 / 8.58) and nothing above it
CODEX_25M = pass_at_k(3.3, 7.2, 13.0)  # reaches Codex-25M too
BELOW = pass_at_k(1.0, 3.0, 8.0)


def candidates(n: int) -> list[targets.Candidate]:
    return [targets.Candidate("rl", step, f"ckpt-{step}", 60.0 * step) for step in range(1, n + 1)]


def test_the_first_checkpoint_reaching_each_row_is_found_oldest_first_and_the_walk_stops():
    scores = {1: BELOW, 2: CODEX_12M, 3: CODEX_25M, 4: BELOW}
    asked = []

    def evaluate(c):
        asked.append(c.step)
        return scores[c.step]

    t = targets.time_to_target(candidates(5), CODEX_25M, evaluate)
    assert asked == [1, 2, 3]  # checkpoint 4 is not needed: both rows the final reaches were found by then
    by_row = {r["model"]: r for r in t["rows"]}
    assert (by_row["Codex-12M"]["step"], by_row["Codex-12M"]["train_seconds"]) == (2, 120.0)
    assert by_row["Codex-25M"]["step"] == 3
    assert [r["model"] for r in t["rows"] if r["reached"]] == ["Codex-12M", "Codex-25M"]
    assert [e["step"] for e in t["evaluated"]] == [1, 2, 3, 5] and t["evaluated"][-1]["reached"] == ROWS[:2]
    from opencodegen.quickstart.report import time_to_target_rows
    assert time_to_target_rows(t)[:3] == [["Codex-12M", "rl step 2", "2.0 min"], ["Codex-25M", "rl step 3", "3.0 min"],
                                          ["Codex-42M", "not reached", "-"]]


def test_nothing_is_evaluated_when_the_final_checkpoint_reaches_no_row():
    def evaluate(c):
        raise AssertionError("no earlier checkpoint needs scoring")

    t = targets.time_to_target(candidates(4), BELOW, evaluate)
    assert not any(r["reached"] for r in t["rows"]) and [e["step"] for e in t["evaluated"]] == [4]


def test_a_row_only_the_final_checkpoint_reaches_is_the_final_ones():
    t = targets.time_to_target(candidates(3), CODEX_12M, lambda c: BELOW)
    row = next(r for r in t["rows"] if r["model"] == "Codex-12M")
    assert row["step"] == 3 and row["train_seconds"] == 180.0


def test_fit_steps_scales_to_the_budget_and_gives_a_capped_stages_time_to_the_others():
    base, per_step = [10, 20, 10], [1.0, 1.0, 2.0]  # 10 + 20 + 20 = 50 s as written
    assert train_plan.fit_steps(base, per_step, 100.0, {}) == [20.0, 40.0, 20.0]
    # stage 2 may take 12 steps (24 s) instead of 20: the 76 s left go to stages 0 and 1 as 10:20
    fitted = train_plan.fit_steps(base, per_step, 100.0, {2: 12.0})
    assert fitted[2] == 12.0 and fitted[0] == pytest.approx(76 / 3) and fitted[1] == pytest.approx(152 / 3)
    assert sum(n * t for n, t in zip(fitted, per_step)) == pytest.approx(100.0)
    # a cap above what the budget gives changes nothing
    assert train_plan.fit_steps(base, per_step, 100.0, {2: 50.0}) == [20.0, 40.0, 20.0]
    assert all(math.isfinite(x) for x in train_plan.fit_steps(base, per_step, 100.0, {0: 1, 1: 1, 2: 1}))


def test_the_plan_spreads_each_post_training_stages_checkpoints_over_it(tmp_path):
    recipe = recipe_from_dict(toy_recipe(tmp_path, [{"name": "sft", "kind": "sft", "steps": 1},
                                                    {"name": "rl", "kind": "rl", "steps": 1}], save_every=50))
    planned = train_plan.apply(recipe, {"steps": [7, 4], "autocast": "fp32"})
    runs = [planned.stage_run(i) for i in range(2)]
    assert [(r.save_every, r.keep_last) for r in runs] == [(3, 3), (2, 3)]  # saves at 3, 6, 7 and at 2, 4
