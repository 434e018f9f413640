"""The sandbox's contract: results in program order, captured streams, exit codes, the captured print value decoded
to the same Python value, and isolation detection."""

from __future__ import annotations

import math
import os

import pytest

from opencodegen.eval.sandbox import FrameValue, Limits, Sandbox, SeriesValue, detect_isolation, run_programs


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2, preload=("numpy", "pandas")) as sb:
        yield sb


def test_results_come_back_in_program_order(sandbox):
    programs = [f"import time\ntime.sleep({0.02 * (i % 3)})\nprint({i})\n" for i in range(40)]
    results = sandbox.run(programs, timeout=5, progress=None)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(40)]


def test_streams_status_and_returncode(sandbox):
    ok, err, syntax = sandbox.run(["import sys\nprint('out')\nprint('err', file=sys.stderr)\n",
                                   "raise KeyError('k')\n", "def f(:\n"], timeout=5, progress=None)
    assert (ok.status, ok.stdout, ok.stderr, ok.returncode) == ("passed", "out\n", "err\n", 0)
    assert err.status == "failed" and err.reason == "KeyError: 'k'" and "Traceback" in err.stderr
    assert err.returncode == 1
    assert syntax.status == "failed" and syntax.reason.startswith("SyntaxError")


@pytest.mark.parametrize("expr,expected", [
    ("2**80", 2**80), ("0.1", 0.1), ("float('inf')", math.inf), ("(1, 'a', None)", (1, "a", None)),
    ("{1, 2}", {1, 2}), ("{'a': [1, 2.5], 3: True}", {"a": [1, 2.5], 3: True}), ("[[1], [2, [3]]]", [[1], [2, [3]]]),
    ("np.int32(5)", 5), ("np.arange(3)", [0, 1, 2]), ("np.float32(0.5)", 0.5),
    ("[np.int64(1), (np.float64(2.5), np.bool_(True))]", [1, (2.5, True)]), ("{np.int64(1): 'a'}", {1: "a"}),
])
def test_captured_value_round_trips(sandbox, expr, expected):
    [r] = sandbox.run([f"import numpy as np\nprint({expr})\n"], timeout=5, capture_last_print=True, progress=None)
    assert r.has_value and r.value == expected and type(r.value) is type(expected)


def test_pandas_values(sandbox):
    series, frame = sandbox.run(["import pandas as pd\nprint(pd.Series([1.5, 2.0]))\n",
                                 "import pandas as pd\nprint(pd.DataFrame({'x': [1]}))\n"],
                                timeout=5, capture_last_print=True, progress=None)
    assert isinstance(series.value, SeriesValue) and series.value == [1.5, 2.0]
    assert isinstance(frame.value, FrameValue) and list(frame.value) == ["x"] and "x" in str(frame.value)


def test_run_programs_one_shot_and_limits():
    results = run_programs(["print(1)", "x = bytearray(300 * 2**20)"], timeout=5, workers=1,
                           limits=Limits(memory_mb=128), progress=None)
    assert [r.status for r in results] == ["passed", "failed"] and "MemoryError" in results[1].reason


def test_a_process_describes_its_sandbox_once(monkeypatch):
    from opencodegen.eval import sandbox as sandbox_module

    said = []
    monkeypatch.setattr(sandbox_module, "_ANNOUNCED", set())
    monkeypatch.setattr("opencodegen.progress.log", said.append)
    for _ in range(2):  # a run that evaluates HumanEval, then MTPB: two sandboxes, one description
        with Sandbox(workers=1):
            pass
    assert len(said) == 1 and said[0].startswith("sandbox: ")


def test_isolation_is_detected_and_reported():
    assert detect_isolation() in ("namespace", "none")
    with pytest.raises(ValueError):
        Sandbox(isolation="docker")


def test_programs_that_look_hung_are_parked_and_give_up_their_core():
    """One core slot, two spinning programs: without parking they take a full timeout each, one after the other
    while the quick programs wait; parked after a third of the limit, they give their slot to the next program and
    run out their limits side by side with the rest."""
    import time

    programs = ["while True:\n    pass\n"] * 2 + ["print('quick')\n"] * 5
    with Sandbox(workers=1, limits=Limits(parked_per_core=3)) as sb:
        start = time.monotonic()
        results = sb.run(programs, timeout=2.4, progress=None)
        elapsed = time.monotonic() - start
    assert [r.status for r in results] == ["timeout", "timeout"] + ["passed"] * 5
    # the two hangs overlapped instead of running back to back (however slow a busy machine makes each one)
    assert elapsed < results[0].duration + results[1].duration, (elapsed, results[0].duration, results[1].duration)
    with Sandbox(workers=1, limits=Limits(park_after_fraction=None)) as sb:
        start = time.monotonic()
        results = sb.run(programs[:2], timeout=2.4, progress=None)
        elapsed = time.monotonic() - start
    assert elapsed >= results[0].duration + results[1].duration  # unparked: one after the other


def test_a_parked_program_keeps_the_verdict_it_would_have_alone():
    """One CPU: a program that needs 0.6 s of CPU under a 1 s limit is parked after 0.1 s, then shares the CPU
    with a hang and the 20 busy programs queued behind it (3 s of CPU). Its limit counts only the time it could run,
    so it passes, as it does alone; the hang parked beside it still times out, and the wall-clock cap (here 60 s) is
    not what ends either."""
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}:\n    pass\nprint('done')\n"
    programs = [spin.format(0.6), "while True:\n    pass\n"] + [spin.format(0.15)] * 20
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})  # the workers inherit it: everything shares one CPU
    try:
        with Sandbox(workers=1, limits=Limits(park_after_fraction=0.1, parked_per_core=2,
                                              wall_cap_factor=60)) as sb:
            results = sb.run(programs, timeout=1.0, progress=None)
    finally:
        os.sched_setaffinity(0, affinity)
    assert (results[0].status, results[0].stdout) == ("passed", "done\n"), results[0].reason
    assert results[0].duration > 1.5  # it really was held back past its limit in wall-clock terms
    assert (results[1].status, results[1].reason) == ("timeout", "time limit")
    assert [r.status for r in results[2:]] == ["passed"] * 20
