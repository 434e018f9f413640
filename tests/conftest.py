"""Fixtures many test modules share."""

from __future__ import annotations

import os

# Under pytest-xdist (`make test`) each worker gets its share of the cores for torch's threads: two workers of two
# threads each on two cores spin-wait on each other's cores (OpenMP's waiting threads busy-loop). Set before torch is
# imported, so that processes the tests start inherit it too.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:  # the cores this process may run on (a container's, not the host's)
    _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _CORES // _WORKERS)))

import pytest  # noqa: E402

from opencodegen.eval.sandbox import Sandbox  # noqa: E402


@pytest.fixture(scope="module")
def sandbox():
    """Two sandbox workers for a module's judged runs (a module that needs preloaded libraries defines its own)."""
    with Sandbox(workers=2, announce=False) as sb:
        yield sb
