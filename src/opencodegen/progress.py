"""One progress display for the whole process. rich allows a single live display at a time, so library code never
creates its own: it asks for a task here, which joins the display already running (the quickstart's) or starts one.

    with progress_task("tokenize", total=n_files, unit="files") as task:
        for f in files:
            ...
            task.advance()
"""

from __future__ import annotations

import contextlib
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


class RateColumn(TextColumn):
    """Items per second with the task's unit, e.g. '1.2k tok/s'."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        if speed is None:
            return f"- {unit}/s"
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if speed >= scale:
                return f"{speed / scale:.1f}{suffix} {unit}/s"
        return f"{speed:.2f} {unit}/s"


def _new_progress() -> Progress:
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
    )


class TaskHandle:
    def __init__(self, progress: Progress, task_id) -> None:
        self.progress, self.task_id = progress, task_id

    def advance(self, n: float = 1) -> None:
        self.progress.advance(self.task_id, n)

    def update(self, *, total: float | None = None, completed: float | None = None, info: str | None = None,
               description: str | None = None) -> None:
        kwargs = {k: v for k, v in dict(total=total, completed=completed, info=info, description=description).items()
                  if v is not None}
        self.progress.update(self.task_id, **kwargs)


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
            if keep:
                progress.stop_task(task_id)
            else:
                progress.remove_task(task_id)


def log(message: str) -> None:
    """A line above the live display (notes such as 'skipped: no JDK found')."""
    (_active.console if _active is not None else console).print(message)
