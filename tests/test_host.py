"""host.py against /proc/cpuinfo read another way."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from opencodegen import host

CPUINFO = Path("/proc/cpuinfo")


@pytest.mark.skipif(not CPUINFO.exists(), reason="no /proc/cpuinfo (not Linux)")
def test_the_host_is_what_cpuinfo_says():
    text = CPUINFO.read_text()
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())
    name = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    assert host.cpu_flags() == flags
    assert host.matmul_flags() == [f for f in host.MATMUL_FLAGS if f in flags]
    if name:
        assert host.cpu_name() == name.group(1).strip()
    assert host.cores() == len(os.sched_getaffinity(0)) <= os.cpu_count()
    line = host.one_line()
    assert line.startswith(f"{host.cpu_name()}, {host.cores()} cores (") and all(f in line for f in host.matmul_flags())
    assert host.describe()["matmul_flags"] == host.matmul_flags()
