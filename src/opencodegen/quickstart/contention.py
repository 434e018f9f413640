"""How much of the machine other processes used while the plan timed its steps.

A step timed while other work runs says how fast this machine is now, not once that work ends: a plan timed beside a
test suite measured steps 2.5 times slower than training then ran them, chose a 0.9M-parameter model, and the run
ended worse than xz -9. Training corrects for it (train_schedule.py refits the step counts before each stage, and
plans again when the first stage runs much faster than planned); the plan also records the share of the cores that
others used while it measured, and says so when it is large. Linux only (/proc/stat); elsewhere the share is unknown
(None)."""

from __future__ import annotations

import os
import time
from typing import NamedTuple

# Above this share of the cores used by others while the plan measured, the plan warns that its shape may be smaller
# than this machine trains best once the other work ends.
CONTENDED_SHARE = 0.25


class CpuSnapshot(NamedTuple):
    busy_seconds: float  # all cores' non-idle time since boot
    own_seconds: float  # this process's and its reaped children's CPU time
    wall_seconds: float


def snapshot() -> CpuSnapshot | None:
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: busy is everything but idle and iowait (steal included:
    # time the hypervisor gave to other machines is time this one did not have)
    busy = sum(fields[:8]) - fields[3] - fields[4]
    t = os.times()
    return CpuSnapshot(busy / os.sysconf("SC_CLK_TCK"), t.user + t.system + t.children_user + t.children_system,
                       time.monotonic())


def foreign_share(before: CpuSnapshot | None, after: CpuSnapshot | None, cores: int) -> float | None:
    """The share of the cores' time between two snapshots that other processes used (0 = the machine was ours)."""
    if before is None or after is None or after.wall_seconds <= before.wall_seconds:
        return None
    others = (after.busy_seconds - before.busy_seconds) - (after.own_seconds - before.own_seconds)
    return min(1.0, max(0.0, others / ((after.wall_seconds - before.wall_seconds) * cores)))
