"""The progress display where it cannot redraw (a log file, a pipe): each task prints plain lines with its count,
rate, elapsed time and ETA, at most every PLAIN_EVERY_S seconds and once when it ends; on a terminal, none."""

from __future__ import annotations

import io

from rich.console import Console

from opencodegen import progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_task(monkeypatch, terminal: bool) -> list[str]:
    """A task of 100 items advanced one a second for 25 seconds, with a line due every 10 s."""
    out = io.StringIO()
    clock = FakeClock()
    monkeypatch.setattr(progress, "console", Console(file=out, force_terminal=terminal, width=60))
    monkeypatch.setattr(progress, "clock", clock)
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 10.0)
    with progress.progress_task("sample humaneval", total=100, unit="task") as task:
        for _ in range(25):
            clock.now += 1
            task.advance()
        task.update(info="pass@1 2.0%")
    return out.getvalue().splitlines()


def test_a_log_file_gets_a_line_every_interval_and_one_at_the_end(monkeypatch):
    lines = run_task(monkeypatch, terminal=False)
    # 1 task/s: at 10 s, 90 left -> eta 90 s; at 20 s, 80 left; the end line has no ETA and shows the info.
    assert lines == [
        "sample humaneval: 10/100 (10%), 1.00 task/s, 0:00:10 elapsed, eta 0:01:30",
        "sample humaneval: 20/100 (20%), 1.00 task/s, 0:00:20 elapsed, eta 0:01:20",
        "sample humaneval: 25/100 (25%), 1.00 task/s, 0:00:25 elapsed · pass@1 2.0%",
    ]


def test_a_terminal_gets_the_bar_and_no_plain_lines(monkeypatch):
    text = "\n".join(run_task(monkeypatch, terminal=True))
    assert "elapsed, eta" not in text and "sample humaneval:" not in text


def test_fractions_and_large_counts_read_as_numbers():
    class Task:
        description, completed, total, percentage, finished = "pretrain mono", 1.25, 1206, 1.25 / 12.06, False
        elapsed, time_remaining, finished_speed, speed = 3725.0, 59.6, None, 2.5
        fields = {"unit": "step", "info": ""}

    assert progress.plain_line(Task()) == "pretrain mono: 1.25/1,206 (0%), 2.50 step/s, 1:02:05 elapsed, eta 0:01:00"
    Task.completed, Task.total, Task.speed = 12345, None, 2500.0
    assert progress.plain_line(Task()) == "pretrain mono: 12,345, 2.5k step/s, 1:02:05 elapsed"
