"""One progress display for the whole process. rich allows a single live display at a time, so library code never
creates its own: it asks for a task here, which joins the display already running (the quickstart's) or starts one.

    with progress_task("tokenize", total=n_files, unit="files") as task:
        for f in files:
            ...
            task.advance()

Where the display cannot redraw (output to a file or a pipe: nohup, Slurm, CI), rich would print nothing until the
end; there each task prints a plain line instead, at most every PLAIN_EVERY_S seconds and once when it ends, with
the same count, rate, ETA and info as its bar."""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
_active: Progress | None = None
_depth = 0
PLAIN_EVERY_S = 10.0  # where the display cannot redraw, a task's plain progress line at most this often
clock = time.monotonic  # the display's time (rates, ETAs, when a plain line is due)


def rate_text(task) -> str:
    """Items per second with the task's unit, e.g. '1.2k tok/s'."""
    speed = task.finished_speed or task.speed
    unit = task.fields.get("unit", "it")
    if speed is None:
        return f"- {unit}/s"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if speed >= scale:
            return f"{speed / scale:.1f}{suffix} {unit}/s"
    return f"{speed:.2f} {unit}/s"


class RateColumn(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        return rate_text(task)


def _clock_text(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=round(seconds)))


def plain_line(task, ended: bool = False) -> str:
    """A task's bar as one line of text: 'sample humaneval: 82/164 (50%), 0.49 task/s, 0:02:47 elapsed, eta
    0:02:47 · info' (the count as far as it is known, the ETA while the task runs)."""
    done = f"{task.completed:,.2f}".rstrip("0").rstrip(".")  # 1,206 steps; 1.25 (a step and a micro-batch)
    count = done if task.total is None else f"{done}/{task.total:,.0f} ({task.percentage:.0f}%)"
    running = not (ended or task.finished) and task.total is not None
    eta = f", eta {_clock_text(task.time_remaining)}" if running else ""
    info = task.fields.get("info") or ""
    return (f"{task.description}: {count}, {rate_text(task)}, {_clock_text(task.elapsed)} elapsed{eta}"
            + (f" · {info}" if info else ""))


def _new_progress() -> Progress:
    # Not redrawn where the output is no terminal: plain lines stand for the bars there (TaskHandle).
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
        get_time=lambda: clock(),  # looked up at each call, so that rates and plain lines share one clock
    )


class TaskHandle:
    def __init__(self, progress: Progress, task_id) -> None:
        self.progress, self.task_id = progress, task_id
        self.plain = progress.disable  # the display does not redraw: this handle prints plain lines
        self.last_line = clock()

    def advance(self, n: float = 1) -> None:
        self.progress.advance(self.task_id, n)
        self._line_if_due()

    def update(self, *, total: float | None = None, completed: float | None = None, info: str | None = None,
               description: str | None = None) -> None:
        kwargs = {k: v for k, v in dict(total=total, completed=completed, info=info, description=description).items()
                  if v is not None}
        self.progress.update(self.task_id, **kwargs)
        self._line_if_due()

    def _line_if_due(self) -> None:
        if self.plain and clock() - self.last_line >= PLAIN_EVERY_S:
            self.line()

    def line(self, ended: bool = False) -> None:
        """Prints the task's plain line (where the display cannot redraw)."""
        self.last_line = clock()
        task = next(t for t in self.progress.tasks if t.id == self.task_id)
        self.progress.console.print(plain_line(task, ended), markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_display() -> Iterator[Progress]:
    """Holds one display open across many tasks (the quickstart wraps its whole run in this)."""
    global _active, _depth
    if _active is None:
        _active = _new_progress()
        _active.start()
    _depth += 1
    try:
        yield _active
    finally:
        _depth -= 1
        if _depth == 0:
            _active.stop()
            _active = None


@contextlib.contextmanager
def progress_task(description: str, total: float | None, unit: str = "it", keep: bool = True) -> Iterator[TaskHandle]:
    """A task row in the current display; keep=False removes the row when the task ends (for inner loops)."""
    with progress_display() as progress:
        task_id = progress.add_task(description, total=total, unit=unit, info="")
        handle = TaskHandle(progress, task_id)
        try:
            yield handle
        finally:
            progress.stop_task(task_id)
            if handle.plain and keep:
                handle.line(ended=True)
            if not keep:
                progress.remove_task(task_id)


def log(message: str) -> None:
    """A line above the live display (notes such as 'skipped: no JDK found')."""
    # soft_wrap: a terminal wraps the line itself; a log file keeps it whole instead of cut at 80 columns
    (_active.console if _active is not None else console).print(message, soft_wrap=True)
