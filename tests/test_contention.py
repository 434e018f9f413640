"""The share of the cores other processes used while the plan measured: hand-computed from two snapshots, and a
real reading while another process spins."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from opencodegen.quickstart.contention import CpuSnapshot, foreign_share, snapshot


def test_the_share_is_the_others_busy_time_over_the_cores_time():
    # 10 s on 2 cores: 20 core-seconds; the machine was busy for 14 of them, 4 of which were ours: others used 10
    before, after = CpuSnapshot(100.0, 5.0, 1000.0), CpuSnapshot(114.0, 9.0, 1010.0)
    assert foreign_share(before, after, 2) == pytest.approx(0.5)
    assert foreign_share(before, CpuSnapshot(103.0, 9.0, 1010.0), 2) == 0.0  # our children reaped late: clamped
    assert foreign_share(None, after, 2) is None and foreign_share(after, after, 2) is None


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux only")
def test_a_busy_process_beside_us_shows_as_foreign():
    """Measured while another process spins and before it is reaped: its CPU time is someone else's. (Other work
    on the machine only adds to the share, so the bound holds on a busy machine too.)"""
    start = snapshot()
    other = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 2: pass"])
    time.sleep(1.5)
    end = snapshot()
    other.wait()
    foreign_core_seconds = foreign_share(start, end, os.cpu_count()) * (end.wall_seconds - start.wall_seconds) * \
        os.cpu_count()
    assert foreign_core_seconds > 0.5  # it spun for most of the 1.5 s (at least a third of a core under load)
