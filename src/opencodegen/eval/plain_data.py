"""Plain data across the sandbox boundary: the only thing a sandboxed program can hand to trusted code.

Plain data is None, bool, int, float, complex, str, bytes, and list, tuple, dict, set and frozenset of plain data,
checked by exact type (a subclass of int with its own `__eq__` is not an int here), at most MAX_DEPTH deep and at most
MAX_BYTES encoded. The encoding is JSON with tagged containers, never pickle: decoding builds nothing but those types,
so a value that arrives here cannot run code when compared, hashed, printed or subtracted.

    scalars     null, true/false, JSON numbers (ints of any size, floats by repr: NaN/Infinity included), strings
    containers  ["L", item...] list   ["T", item...] tuple   ["S", item...] set   ["F", item...] frozenset
                ["D", key, value, key, value...] dict   ["B", hex] bytes   ["C", real, imag] complex
    numpy       ["N", dtype, value] a scalar (np.int64(3): ["N", "<i8", 3])
                ["A", dtype, shape, values] an array (its .tolist(), its shape for empty dimensions)
    reference   ["R", ref, type name] an object that stays on the other side (see below)

numpy values are sent as the plain data `.item()` / `.tolist()` give, for the dtypes whose items are plain (bool,
int, unsigned, float, complex, str, bytes), with their dtype: the receiver builds a numpy value of its own from that
plain data (numpy is looked up in sys.modules, never imported by the sender) or, without numpy, keeps the Python
values. Nothing of the sender's object arrives, so a subclass of ndarray with its own `__eq__` is only its values.

A reference stands for an object the sandboxed program made (an instance of its class, a generator): the object stays
in the sandbox, and the trusted side gets the number the sandbox filed it under. With `refer` the sender turns a value
that is not plain data into a reference (or refuses it); with `remote` the receiver turns a reference into its stand-in
(the judge's proxy, or the sandbox's object itself). Without them a reference is refused like any other value.
Set items and dict keys are never references: hashing one would run the sandboxed program's `__hash__`.

    copy        ["P", hex] an object of the trusted side, copied into the sandbox (its pickle)

The other way, the judge may hand the sandbox an object of its own that is not plain data (a tree MBPP's test setup
built): it goes as a Copy, the pickle trusted_check.py made of it, and only the sandbox decodes it (`copied`): the
receiver of an unpickled object runs its code, so the judge's decoder refuses the tag whatever sends it.

Stdlib only: loaded by path inside the sandbox worker (see sandbox_worker.py), imported normally by the harness.
"""

from __future__ import annotations

import json
import re
import sys

MAX_DEPTH = 64
MAX_BYTES = 16 << 20


class NotPlainData(ValueError):
    """A value that is not plain data, or an encoding that does not decode to plain data (the reason says which)."""


class Copy:
    """An object of the trusted side on its way into the sandbox: its pickle (trusted_check.Channel makes them)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


_TAGS = {list: "L", tuple: "T", set: "S", frozenset: "F"}
NUMPY_DTYPE = re.compile(r"[<>|=]?[biufcUS][0-9]{1,9}")  # the dtypes whose items are plain data
_BUILD = {"L": list, "T": tuple, "S": set, "F": frozenset}


def to_plain(value, depth: int = 0, refer=None, numpy_as_python: bool = False):
    """The JSON-ready form of `value`; NotPlainData if any part of it is not plain data (and `refer`, given, refuses
    it too). `refer(value) -> (ref, type name)` files a value that is not plain data as a reference. With
    numpy_as_python numpy scalars are sent as their Python values, untagged, and arrays are refused (MTPB's printed
    answer, whose caller turns a printed array into its list itself)."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int or kind is float:  # JSON numbers: Python's json keeps every int digit and float bit (NaN too)
        return value
    if kind is list or kind is tuple:
        return [_TAGS[kind], *(to_plain(v, depth + 1, refer, numpy_as_python) for v in value)]
    if kind is set or kind is frozenset:  # hashed on arrival: no references
        return [_TAGS[kind], *(to_plain(v, depth + 1, None, numpy_as_python) for v in value)]
    if kind is dict:
        out = ["D"]
        for k, v in value.items():
            out += [to_plain(k, depth + 1, None, numpy_as_python), to_plain(v, depth + 1, refer, numpy_as_python)]
        return out
    if kind is bytes:
        return ["B", value.hex()]
    if kind is complex:
        return ["C", repr(value.real), repr(value.imag)]
    if kind is Copy:
        return ["P", value.data.hex()]
    numpy = _numpy_value(value)
    if numpy is not None and not (numpy_as_python and numpy[1] is not None):
        dtype, shape, items = numpy
        plain = to_plain(items, depth + 1, None, False)
        if numpy_as_python:
            return plain
        return ["N", dtype, plain] if shape is None else ["A", dtype, list(shape), plain]
    if refer is not None:
        ref, name = refer(value)
        return ["R", ref, name]
    raise NotPlainData(f"a {kind.__module__}.{kind.__qualname__} is not plain data" if kind.__module__ != "builtins"
                       else f"a {kind.__qualname__} is not plain data")


def _numpy_value(value):
    """(dtype string, shape or None for a scalar, its Python value) of a numpy scalar or array whose items are plain
    data; None for anything else. numpy is looked up, not imported: a value can be numpy's only if numpy is loaded."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(value, (numpy.ndarray, numpy.generic)):
        return None
    try:
        dtype = value.dtype.str
        if not NUMPY_DTYPE.fullmatch(dtype):
            return None  # object, datetime, structured: not plain items
        return dtype, (None if isinstance(value, numpy.generic) else tuple(value.shape)), value.tolist()
    except Exception:  # noqa: BLE001 - a subclass that breaks tolist is not numpy's value
        return None


def dumps(value, refer=None, numpy_as_python: bool = False) -> bytes:
    try:
        body = json.dumps(to_plain(value, refer=refer, numpy_as_python=numpy_as_python),
                          separators=(",", ":")).encode()
    except (ValueError, RecursionError) as e:  # ints past Python's digit limit, cycles
        raise NotPlainData(str(e)) from None
    if len(body) > MAX_BYTES:
        raise NotPlainData(f"larger than {MAX_BYTES} bytes encoded")
    return body


def from_plain(node, depth: int = 0, remote=None, copied=None):
    """Inverse of to_plain, strict: anything that to_plain cannot have made raises NotPlainData. `remote(ref, type
    name)` gives what a reference stands for here, `copied(data)` the object a Copy's pickle holds (the sandbox's
    side only); without them a reference, or a copy, is refused."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH}")
    kind = type(node)
    if node is None or kind in (bool, str, int, float):
        return node
    if kind is not list or not node or type(node[0]) is not str:
        raise NotPlainData(f"unexpected {kind.__name__} in the encoding")
    tag, items = node[0], node[1:]
    if tag in ("L", "T"):
        return _BUILD[tag]([from_plain(v, depth + 1, remote, copied) for v in items])
    if tag in ("S", "F"):
        try:
            return _BUILD[tag]([from_plain(v, depth + 1, None, copied) for v in items])
        except TypeError as e:  # a set of lists
            raise NotPlainData(f"set with an unhashable item ({e})") from None
    if tag == "D":
        if len(items) % 2:
            raise NotPlainData("dict with a key and no value")
        out = {}
        for i in range(0, len(items), 2):
            try:
                out[from_plain(items[i], depth + 1, None, copied)] = from_plain(items[i + 1], depth + 1, remote,
                                                                                copied)
            except TypeError as e:
                raise NotPlainData(f"dict with an unhashable key ({e})") from None
        return out
    if tag == "B" and len(items) == 1 and type(items[0]) is str:
        try:
            return bytes.fromhex(items[0])
        except ValueError:
            raise NotPlainData("bytes that are not hex") from None
    if tag == "C" and len(items) == 2 and all(type(x) is str for x in items):
        try:
            return complex(float(items[0]), float(items[1]))
        except ValueError:
            raise NotPlainData("a complex number whose parts are not floats") from None
    if tag == "N" and len(items) == 2 and type(items[0]) is str and NUMPY_DTYPE.fullmatch(items[0]):
        return _numpy_scalar(items[0], from_plain(items[1], depth + 1))
    if (tag == "A" and len(items) == 3 and type(items[0]) is str and NUMPY_DTYPE.fullmatch(items[0])
            and type(items[1]) is list and all(type(d) is int and d >= 0 for d in items[1])):
        return _numpy_array(items[0], tuple(items[1]), from_plain(items[2], depth + 1))
    if tag == "P" and len(items) == 1 and type(items[0]) is str:
        if copied is None:
            raise NotPlainData("an object copied from the judge is read in the sandbox only")
        try:
            data = bytes.fromhex(items[0])
        except ValueError:
            raise NotPlainData("a copy that is not hex") from None
        return copied(data)
    if tag == "R" and len(items) == 2 and type(items[0]) is int and items[0] >= 0 and type(items[1]) is str:
        if remote is None:
            raise NotPlainData(f"a {items[1][:100]} object of the other side is not plain data")
        return remote(items[0], items[1][:100])
    raise NotPlainData(f"unknown tag {tag[:20]!r}")


_SCALARS = {"b": (bool,), "i": (int,), "u": (int,), "f": (float,), "c": (complex,), "U": (str,), "S": (bytes,)}


def _numpy_scalar(dtype: str, value):
    if type(value) not in _SCALARS[dtype.lstrip("<>|=")[0]]:
        raise NotPlainData(f"a numpy {dtype} scalar whose value is a {type(value).__name__}")
    numpy = _numpy_here()
    if numpy is None:
        return value
    try:
        return numpy.dtype(dtype).type(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise NotPlainData(f"a numpy {dtype} scalar that numpy cannot make ({e})") from None


def _numpy_array(dtype: str, shape: tuple, values):
    numpy = _numpy_here()
    if numpy is None:
        return values
    try:
        array = numpy.array(values, dtype=dtype)
        return array if array.shape == shape else array.reshape(shape)
    except (TypeError, ValueError, OverflowError) as e:  # ragged lists, a shape that does not hold the values
        raise NotPlainData(f"a numpy {dtype} array of shape {shape} that numpy cannot make ({str(e)[:200]})") from None


def _numpy_here():
    """numpy, to rebuild a numpy value from its plain data; None where numpy is not installed."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        try:
            import numpy
        except ImportError:
            return None
    return numpy


def loads(body: bytes, remote=None, copied=None):
    """Plain data from bytes a sandboxed process wrote; NotPlainData (never anything else) if they are not (or
    whatever `remote` raises for a reference, or `copied` for a copy)."""
    if len(body) > MAX_BYTES:
        raise NotPlainData(f"larger than {MAX_BYTES} bytes")
    try:
        node = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise NotPlainData(f"not valid JSON ({str(e)[:200]})") from None
    return from_plain(node, remote=remote, copied=copied)
