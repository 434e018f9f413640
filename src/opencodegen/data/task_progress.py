"""Progress across processes: datatrove tasks run in worker processes (or on other machines), so each task writes its
running count to `<dir>/<rank>` and the parent sums those files into the one progress bar it shows."""

from __future__ import annotations

import os
import time
from pathlib import Path


class ProgressWriter:
    def __init__(self, directory: str | None, rank: int, every_s: float = 0.5):
        self.path = Path(directory) / f"{rank:05d}" if directory else None
        self.every_s = every_s
        self.count = 0
        self._last = 0.0
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def advance(self, n: int = 1) -> None:
        self.count += n
        if self.path and time.monotonic() - self._last > self.every_s:
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(str(self.count))
        os.replace(tmp, self.path)  # a reader never sees a half-written number
        self._last = time.monotonic()

    def close(self) -> None:
        if self.path:
            self._write()


def read_total(directory: Path) -> int:
    total = 0
    if directory.is_dir():
        for p in directory.iterdir():
            if not p.name.startswith("."):
                try:
                    total += int(p.read_text() or 0)
                except (OSError, ValueError):
                    pass
    return total
