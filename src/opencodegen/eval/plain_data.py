"""Plain data across the sandbox boundary: the only thing a sandboxed program can hand to trusted code.

Plain data is None, bool, int, float, complex, str, bytes, and list, tuple, dict, set and frozenset of plain data,
checked by exact type (a subclass of int with its own `__eq__` is not an int here), at most MAX_DEPTH deep and at most
MAX_BYTES encoded. The encoding is JSON with tagged containers, never pickle: decoding builds nothing but those types,
so a value that arrives here cannot run code when compared, hashed, printed or subtracted.

    scalars     null, true/false, JSON numbers (ints of any size, floats by repr: NaN/Infinity included), strings
    containers  ["L", item...] list   ["T", item...] tuple   ["S", item...] set   ["F", item...] frozenset
                ["D", key, value, key, value...] dict   ["B", hex] bytes   ["C", real, imag] complex

Stdlib only: loaded by path inside the sandbox worker (see sandbox_worker.py), imported normally by the harness.
"""

from __future__ import annotations

import json

MAX_DEPTH = 64
MAX_BYTES = 16 << 20


class NotPlainData(ValueError):
    """A value that is not plain data, or an encoding that does not decode to plain data (the reason says which)."""


_TAGS = {list: "L", tuple: "T", set: "S", frozenset: "F"}
_BUILD = {"L": list, "T": tuple, "S": set, "F": frozenset}


def to_plain(value, depth: int = 0, numpy_scalars: bool = False):
    """The JSON-ready form of `value`; NotPlainData if any part of it is not plain data. With numpy_scalars, a numpy
    scalar (np.int64, np.float64, np.bool_) counts as the Python value it holds (the sandboxed side uses this: an
    honest function that computes with numpy returns such scalars; arrays are still refused)."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int or kind is float:  # JSON numbers: Python's json keeps every int digit and float bit (NaN too)
        return value
    if kind in _TAGS:
        return [_TAGS[kind], *(to_plain(v, depth + 1, numpy_scalars) for v in value)]
    if kind is dict:
        out = ["D"]
        for k, v in value.items():
            out += [to_plain(k, depth + 1, numpy_scalars), to_plain(v, depth + 1, numpy_scalars)]
        return out
    if kind is bytes:
        return ["B", value.hex()]
    if kind is complex:
        return ["C", repr(value.real), repr(value.imag)]
    if numpy_scalars and kind.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return to_plain(value.item(), depth, False)
    raise NotPlainData(f"a {kind.__module__}.{kind.__qualname__} is not plain data" if kind.__module__ != "builtins"
                       else f"a {kind.__qualname__} is not plain data")


def dumps(value, numpy_scalars: bool = False) -> bytes:
    try:
        body = json.dumps(to_plain(value, numpy_scalars=numpy_scalars), separators=(",", ":")).encode()
    except (ValueError, RecursionError) as e:  # ints past Python's digit limit, cycles
        raise NotPlainData(str(e)) from None
    if len(body) > MAX_BYTES:
        raise NotPlainData(f"larger than {MAX_BYTES} bytes encoded")
    return body


def from_plain(node, depth: int = 0):
    """Inverse of to_plain, strict: anything that to_plain cannot have made raises NotPlainData."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nested deeper than {MAX_DEPTH}")
    kind = type(node)
    if node is None or kind in (bool, str, int, float):
        return node
    if kind is not list or not node or type(node[0]) is not str:
        raise NotPlainData(f"unexpected {kind.__name__} in the encoding")
    tag, items = node[0], node[1:]
    if tag in _BUILD:
        values = [from_plain(v, depth + 1) for v in items]
        try:
            return _BUILD[tag](values)
        except TypeError as e:  # a set of lists
            raise NotPlainData(f"set with an unhashable item ({e})") from None
    if tag == "D":
        if len(items) % 2:
            raise NotPlainData("dict with a key and no value")
        out = {}
        for i in range(0, len(items), 2):
            try:
                out[from_plain(items[i], depth + 1)] = from_plain(items[i + 1], depth + 1)
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
    raise NotPlainData(f"unknown tag {tag[:20]!r}")


def loads(body: bytes):
    """Plain data from bytes a sandboxed process wrote; NotPlainData (never anything else) if they are not."""
    if len(body) > MAX_BYTES:
        raise NotPlainData(f"larger than {MAX_BYTES} bytes")
    try:
        node = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise NotPlainData(f"not valid JSON ({str(e)[:200]})") from None
    return from_plain(node)
