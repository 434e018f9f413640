"""Local datatrove stages run in a child process through datatrove's public API only: their console output lands in
logs/<stage>/console.log (not on the terminal the progress display owns), a failing step's exception reaches the
caller with its type and message, and a rerun skips completed tasks."""

from __future__ import annotations

from pathlib import Path

import pytest
from datatrove.pipeline.base import PipelineStep

from opencodegen.data.pipeline import Stage, make_executors, run_stages


class Count(PipelineStep):
    """Writes one file per task (so the test can see which tasks ran)."""

    name = "count"

    def __init__(self, out: str):
        super().__init__()
        self.out = out

    def run(self, data, rank: int = 0, world_size: int = 1):
        Path(self.out, f"{rank}.txt").write_text(f"{rank}/{world_size}")
        self.stat_update("test/tasks")
        return
        yield


class Fail(PipelineStep):
    name = "fail"

    def run(self, data, rank: int = 0, world_size: int = 1):
        raise ValueError(f"bad input in task {rank}")
        yield


@pytest.mark.parametrize("workers", [1, 2])
def test_console_output_goes_to_the_stage_log_and_reruns_skip_done_tasks(tmp_path, capfd, workers):
    out = tmp_path / "out"
    out.mkdir()
    stages = [Stage("count", [Count(str(out))], tasks=3)]
    logs = tmp_path / "logs"
    walls = run_stages(stages, make_executors(stages, logs, "local", workers), "local")
    assert sorted(p.name for p in out.iterdir()) == ["0.txt", "1.txt", "2.txt"] and set(walls) == {"count"}
    captured = capfd.readouterr()
    assert "Launching pipeline" not in captured.err + captured.out
    assert "Launching pipeline for rank=" in (logs / "count" / "console.log").read_text()
    assert "Launching pipeline for rank=2" in (logs / "count" / "logs" / "task_00002.log").read_text()

    (out / "1.txt").unlink()
    (logs / "count" / "completions" / "00001").unlink()
    run_stages(stages, make_executors(stages, logs, "local", workers), "local")
    assert sorted(p.name for p in out.iterdir()) == ["0.txt", "1.txt", "2.txt"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()}["0.txt"] < (out / "1.txt").stat().st_mtime_ns


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_step_raises_its_error_in_the_caller(tmp_path, workers):
    stages = [Stage("fail", [Fail()], tasks=2)]
    with pytest.raises(ValueError, match=r"bad input in task \d"):
        run_stages(stages, make_executors(stages, tmp_path / "logs", "local", workers), "local")
    assert "ValueError: bad input in task" in (tmp_path / "logs" / "fail" / "console.log").read_text()
