"""Stage caching for long multi-stage jobs: each finished stage leaves `stages/<name>.json` with its results, so a
rerun skips it; an interrupted stage has no marker and runs again (stages resume from their own checkpoints).

The runner also drives the run's overall progress row: each stage has an expected duration, and the row advances by
it when the stage ends (a stage skipped because an earlier run finished it leaves the total instead), so the row's
rate and ETA are in expected seconds of work still to do."""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from ..eval.report import write_json
from ..progress import TaskHandle, log


def peak_rss_mib() -> float:
    """Peak resident memory of this process and of its largest finished child (workers, sandboxed programs)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0  # ru_maxrss is KiB on Linux


def check_free_disk(path: Path, need_bytes: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    if free < need_bytes:
        raise UserError(
            f"{path}: only {free / 2**30:.2f} GiB free on this disk; this run needs about {need_bytes / 2**30:.1f} GiB. "
            "Free some space or pass --run-dir on a larger disk."
        )


class StageRunner:
    def __init__(self, run_dir: Path, fresh: bool = False, overall: TaskHandle | None = None,
                 overall_total: float = 0.0):
        self.run_dir = Path(run_dir)
        self.markers = self.run_dir / "stages"
        if fresh and self.run_dir.exists():
            if any(self.run_dir.iterdir()) and not self.markers.is_dir():
                # --fresh deletes the directory: never one that a run of ours did not make (a mistyped --run-dir)
                raise UserError(f"{self.run_dir}: not a run directory of ours (no stages/ in it); --fresh only "
                                "deletes run directories, choose another --run-dir")
            shutil.rmtree(self.run_dir)
        self.markers.mkdir(parents=True, exist_ok=True)
        self.results: dict[str, dict[str, Any]] = {}
        self.overall, self.overall_total = overall, overall_total

    def done(self, name: str) -> bool:
        return (self.markers / f"{name}.json").is_file()

    def run(self, name: str, fn: Callable[[], dict[str, Any] | None], expected_seconds: float = 1.0) -> dict[str, Any]:
        marker = self.markers / f"{name}.json"
        if self.overall is not None:
            self.overall.update(info=name)
        if marker.is_file():
            result = json.loads(marker.read_text())
            log(f"[dim]✓ {name}: done in an earlier run ({result.get('seconds', 0):.0f} s), skipped[/dim]")
            self.overall_total -= expected_seconds
            if self.overall is not None:
                self.overall.update(total=max(self.overall_total, 1.0))
        else:
            start, load_start = time.perf_counter(), os.getloadavg()[0]
            result = dict(fn() or {})
            result["seconds"] = round(time.perf_counter() - start, 1)
            result["peak_rss_mib"] = round(peak_rss_mib(), 1)
            # Kept with the stage, so a later run that reuses it reports the load it actually ran under.
            result["load_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
            write_json(marker, result)
            log(f"✓ {name}: {result['seconds']:.0f} s")
            if self.overall is not None:
                self.overall.advance(expected_seconds)
        self.results[name] = result
        return result
