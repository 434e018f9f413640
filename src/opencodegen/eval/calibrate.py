"""Per-problem time limits measured on this machine, as evalplus sets them (its issue #5: the same samples scored
0.40 on a laptop and 0.23 on a slow cloud CPU under fixed limits). Each problem's reference solution runs through
its own check first; the problem's limit is max(floor, factor x the measured seconds). The table, the host's CPU
count and load are returned so runs record how their limits were set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError
from .report import write_json

DEFAULT_FACTOR = 4.0  # evalplus's DEFAULT_GT_TIME_LIMIT_FACTOR
DEFAULT_FLOOR = 4.0  # evalplus's DEFAULT_MIN_TIME_LIMIT, seconds
CALIBRATION_TIMEOUT = 120.0  # a reference slower than this is a broken problem, not a slow machine


def calibrate(task_ids: Sequence[str], run: Callable[[float], list], factor: float = DEFAULT_FACTOR,
              floor: float = DEFAULT_FLOOR) -> dict:
    """{"factor", "floor", "host": {"cpus", "loadavg"}, "problems": {task_id: {"reference_seconds", "limit",
    "reference_status"}}}. run(timeout) executes the reference solution of each task in `task_ids`, in order,
    through the same check its samples get (sandbox.run or sandbox.judge), and returns the ExecResults."""
    if not (factor > 0 and floor > 0):
        raise UserError(f"time-limit factor and floor must be > 0, not {factor} and {floor}")
    outcomes = run(CALIBRATION_TIMEOUT)
    table = {t: {"reference_seconds": round(r.duration, 4), "limit": round(max(floor, factor * r.duration), 3),
                 "reference_status": r.status} for t, r in zip(task_ids, outcomes)}
    return {"factor": factor, "floor": floor, "host": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
            "problems": table}


def summary_of(calibration: dict) -> dict:
    """What a run's summary.json records (the per-problem table goes to calibration.json)."""
    return {**{k: v for k, v in calibration.items() if k != "problems"},
            "reference_failures": sorted(t for t, v in calibration["problems"].items()
                                         if v["reference_status"] != "passed")}


def calibration_text(calibration: dict, per: str) -> str:
    """The report.md sentence for a summary's calibration; per: what one limit covers ("problem", "input case")."""
    host = calibration["host"]
    return (f"Time limits calibrated on this machine ({host['cpus']} CPUs, load {host['loadavg'][0]:.2f}), per {per}: "
            f"max({calibration['floor']} s, {calibration['factor']} x the reference solution's time); each limit in "
            "calibration.json.")


def limits_of(calibration: dict | None, keys: Sequence[str], timeout: float) -> float | list[float]:
    """What the sandbox is given: the fixed `timeout`, or each sample's calibrated limit (keys: each sample's entry
    in the table, in order)."""
    return timeout if calibration is None else [calibration["problems"][k]["limit"] for k in keys]


def record(summary: dict, calibration: dict | None, out: str | Path) -> None:
    """A calibrated run's summary entry (summary_of) and its whole table, written to calibration.json."""
    if calibration is not None:
        summary["calibration"] = summary_of(calibration)
        write_json(Path(out) / "calibration.json", calibration)
