"""A memory and process-count cgroup per sandbox worker, where the host lets this process make one.

rlimits are per process: RLIMIT_AS does not stop three children holding 150 MB each, and tmpfs pages count against
no process at all. A cgroup counts the worker's whole process tree, and the tmpfs pages its programs write (they are
charged to the writer's cgroup). Each worker gets a cgroup inside the subtree this process already runs in (where it
may create one without taking anything from whoever set up the host's cgroups):

- cgroup v2: in the nearest of this cgroup and its ancestors that has `memory` and `pids` enabled in its
  `cgroup.subtree_control` and lets this process create children there (a subtree delegated to us);
- cgroup v1: when the `memory` and `pids` hierarchies are mounted and this process may create directories there.

Otherwise there is none, and `describe()` says so. The memory limit is set once the worker has started: its own
resident size (the pre-imported zygote) plus `memory_mb`; the process limit is `max_processes` plus the worker's own.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

_counter = itertools.count()
OVERHEAD_PROCESSES = 8  # unshare, the worker, the judge, and the threads a preloaded library may start


def _own_cgroups(proc_self: Path) -> dict[str, str]:
    """controller (or "" for the v2 hierarchy) -> this process's cgroup path in it."""
    out = {}
    for line in (proc_self / "cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def _mounts(proc_self: Path) -> dict[str, str]:
    """controller (or "" for cgroup2) -> mount point."""
    out = {}
    for line in (proc_self / "mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _source, options = (right.split() + ["", ""])[:3]
        point = left.split()[4]
        if fstype == "cgroup2":
            out.setdefault("", point)
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in ("memory", "pids"):
                    out.setdefault(option, point)
    return out


def probe(proc_self: Path = Path("/proc/self")) -> dict | None:
    """Where per-worker cgroups can be made: {"version": 1|2, "memory": dir, "pids": dir} (the parent directories),
    or None. v2 is preferred when it is delegated to us; v1 is the fallback. `proc_self` is where this process's
    `cgroup` and `mountinfo` files are read from (tests point it at a fake tree)."""
    try:
        own, mounts = _own_cgroups(proc_self), _mounts(proc_self)
    except OSError:
        return None
    if "" in mounts and "" in own:
        parent = _v2_parent(Path(mounts[""]), own[""])
        if parent is not None:
            return {"version": 2, "memory": str(parent), "pids": str(parent)}
    if "memory" in mounts and "pids" in mounts and "memory" in own and "pids" in own:
        dirs = {c: Path(mounts[c] + own[c]) for c in ("memory", "pids")}
        if all(os.access(d, os.W_OK) for d in dirs.values()):
            return {"version": 1, **{c: str(d) for c, d in dirs.items()}}
    return None


def _v2_parent(mount: Path, own: str) -> Path | None:
    """The nearest of this process's cgroup and its ancestors that has memory and pids enabled for its children and
    that this process may create children in and move processes into. Usually that is not its own cgroup: in v2 a
    cgroup that holds processes cannot enable controllers for children (only the root may), so under systemd this
    process sits in a leaf (a scope or service) and the delegated subtree's controllers are enabled one level up (for
    a user, user@UID.service/app.slice). A worker moved from our leaf into a child of that ancestor stays inside
    the ancestor, which is what the kernel requires of the mover's permissions."""
    parts = [p for p in own.split("/") if p]
    for depth in range(len(parts), -1, -1):
        d = mount.joinpath(*parts[:depth])
        try:
            enabled = set((d / "cgroup.subtree_control").read_text().split())
        except OSError:
            continue
        if {"memory", "pids"} <= enabled and os.access(d, os.W_OK) and os.access(d / "cgroup.procs", os.W_OK):
            return d
    return None


class WorkerCgroup:
    """One worker's cgroup(s). `procs_files` are what the worker's launcher writes its pid into before anything
    else starts; `limit_memory` is called once the worker is up; `oom_kills` counts kills by the memory limit."""

    def __init__(self, where: dict, max_processes: int) -> None:
        self.version = where["version"]
        name = f"ocg-sandbox-{os.getpid()}-{next(_counter)}"
        self.dirs = sorted({Path(where["memory"]) / name, Path(where["pids"]) / name})
        for d in self.dirs:
            d.mkdir()
        self.memory = Path(where["memory"]) / name
        self.pids = Path(where["pids"]) / name
        (self.pids / "pids.max").write_text(str(max_processes + OVERHEAD_PROCESSES))
        if self.version == 2 and (self.memory / "memory.swap.max").exists():
            (self.memory / "memory.swap.max").write_text("0")  # no escape into swap

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def usage(self) -> int:
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int((self.memory / name).read_text())

    def peak(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.memory / name).read_text())
        except OSError:
            return None

    def limit_memory(self, limit_bytes: int) -> None:
        if self.version == 2:
            (self.memory / "memory.max").write_text(str(limit_bytes))
        else:
            (self.memory / "memory.limit_in_bytes").write_text(str(limit_bytes))
            memsw = self.memory / "memory.memsw.limit_in_bytes"  # with swap accounting: no escape into swap
            if memsw.exists():
                memsw.write_text(str(limit_bytes))

    @property
    def limit(self) -> int:
        name = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        return int((self.memory / name).read_text())

    def oom_kills(self) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.memory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0

    def close(self) -> None:
        """Removes the cgroups, after killing whatever is still in them (all of it is the worker's: a process that
        escaped the worker's kill, or a worker that was killed from outside and left its namespace's processes)."""
        for d in self.dirs:
            for _ in range(200):
                try:
                    for pid in (d / "cgroup.procs").read_text().split():
                        os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def describe(where: dict | None) -> str:
    if where is None:
        return "no cgroup (this process may not create one): memory and process limits are per process (rlimits)"
    return f"cgroup v{where['version']} memory+pids per worker (process tree and its tmpfs)"
