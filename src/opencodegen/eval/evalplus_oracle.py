"""How evalplus decides that one output is right: its comparison and its problem-specific oracles, written here from
the behaviour of evalplus's `unsafe_execute` (evalplus/eval/__init__.py and _special_oracle.py, read, not copied).

Trusted code: evalplus.py hands this file's text to the judge as helper code, so `same_output` runs in the judge
process on plain data the candidate returned. Stdlib only (no numpy in the judge): `all_close` is numpy.allclose's
test |a - b| <= atol + rtol * |b| (NaN never close), element by element over equal shapes.

    same_output(dataset, entry_point, args, out, expected, atol) -> (verdict, atol for the next input)

`out` is first put in the form the expected outputs were recorded in (as_recorded: numpy values as Python values).

The rules, in evalplus's order:
- exact equality passes;
- MBPP+ special oracles: Mbpp/164 `are_equivalent` accepts any output (its reference is ambiguous); Mbpp/295
  `sum_div` also accepts 0; Mbpp/581 `surface_Area` also accepts the slant-height reading of the task within atol;
  Mbpp/558 `digit_distance_nums` also accepts the zero-padded reading; the tasks in SET_EQUAL compare set(out) with
  set(expected) instead; the tasks in NOT_NONE (whose reference returns a re.Match) compare "is not None" (a bool
  output as itself);
- HumanEval+'s find_zero (HumanEval/32) passes when |poly(xs, out)| <= atol, whatever root it found;
- otherwise, when the expected output is a float or a non-empty list/tuple of floats and the problem's atol is 0, atol
  becomes 1e-6, and stays so for the problem's later inputs (evalplus reassigns its loop's variable; kept, so verdicts
  agree with evalplus's); with atol != 0 an inexact output passes only if it has the expected output's type, its
  length (lists, tuples) and is all_close to it with rtol 1e-7.
"""

from __future__ import annotations

import math

RTOL = 1e-07
FLOAT_ATOL = 1e-06

NOT_NONE = ("check_str", "text_match_three", "text_starta_endb")  # Mbpp/737, /787, /794
SET_EQUAL = ("similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
             "intersection_array", "find_dissimilar", "Diff")  # Mbpp/2, /7, /111, /140, /232, /249, /579, /769


def poly(xs, x):
    """HumanEval/32's polynomial: sum of xs[i] * x**i."""
    return sum(coefficient * math.pow(x, i) for i, coefficient in enumerate(xs))


def pyramid_surface(base_edge, height):
    """Mbpp/581 read with `height` as the pyramid's height (the slant height computed from it), rounded."""
    slant = math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 2 * base_edge * slant)


def padded_digit_distance(a, b):
    """Mbpp/558 read with the shorter number zero-padded on the left."""
    x, y = str(a), str(b)
    width = max(len(x), len(y))
    return sum(abs(int(p) - int(q)) for p, q in zip(x.zfill(width), y.zfill(width)))


def is_floats(value) -> bool:
    return isinstance(value, float) or (isinstance(value, (list, tuple)) and len(value) > 0
                                        and all(isinstance(v, float) for v in value))


def all_close(a, b, atol: float, rtol: float = RTOL) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(all_close(x, y, atol, rtol) for x, y in zip(a, b)))
    if not all(isinstance(v, (bool, int, float)) for v in (a, b)):
        return False  # numpy raises on strings, dicts, None: not close
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)  # False with a NaN on either side


def as_recorded(value):
    """An output as the reference's outputs are recorded (sandbox_worker._printed): numpy scalars and arrays as the
    Python values they hold, inside containers too, so both sides of a comparison went through the same conversion.
    The judge's own numpy values only (numpy is not imported here)."""
    kind = type(value)
    if kind in (list, tuple, set, frozenset):
        return kind(as_recorded(v) for v in value)
    if kind is dict:
        return {as_recorded(k): as_recorded(v) for k, v in value.items()}
    if kind.__module__ == "numpy" and hasattr(value, "tolist"):  # a scalar's tolist() is its Python value
        return value.tolist()
    return value


def same_output(dataset: str, entry_point: str, args, out, expected, atol: float):
    """(does `out` pass for this input, the atol the problem's next input is compared with)."""
    out = as_recorded(out)
    exact = out == expected
    if dataset == "mbpp":
        if entry_point == "are_equivalent":
            exact = True
        elif entry_point == "sum_div":
            exact = exact or out == 0
        elif entry_point == "surface_Area":
            exact = exact or (isinstance(out, (int, float)) and abs(out - pyramid_surface(*args)) <= atol)
        elif entry_point == "digit_distance_nums":
            exact = exact or out == padded_digit_distance(*args)
        elif entry_point in SET_EQUAL:
            try:
                exact = set(out) == set(expected)
            except TypeError:  # not iterable, or unhashable items: evalplus's check raises, the input fails
                return False, atol
        elif entry_point in NOT_NONE:
            exact = out == expected if isinstance(out, bool) else expected == (out is not None)
    if dataset == "humaneval" and entry_point == "find_zero":
        try:
            return abs(poly(*args, out)) <= atol, atol
        except (TypeError, ValueError, OverflowError):
            return False, atol
    if atol == 0 and is_floats(expected):
        atol = FLOAT_ATOL
    if exact or atol == 0:
        return bool(exact), atol
    if type(out) is not type(expected):
        return False, atol
    return all_close(out, expected, atol), atol
