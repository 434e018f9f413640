"""MBPP+ test inputs back in the shapes their functions take.

MbppPlus.jsonl is JSON, so some tasks' inputs are stored in a shape JSON can hold: a tuple as a list, a set as a list,
a complex number as a string. evalplus converts them back before running anything (its mbpp_deserialize_inputs); the
reference solution and the candidate both receive the converted inputs, and some functions only work on them (a
tuple used as a dictionary key, `set.intersection`, `complex.real`). Without the conversion a correct candidate can
fail, or a wrong one pass.

The table says, per MBPP task number, how each input (one argument list) is converted. It is written from evalplus's
behaviour as data here: `ARG_SHAPES` converts chosen arguments and keeps the rest; `WHOLE_INPUT` converts the input
as a whole. The converters are small named functions of one value.
"""

from __future__ import annotations

from typing import Callable


def as_tuple(value):
    return tuple(value)


def items_as_tuples(value):
    """[[1, 2], [3]] -> [(1, 2), (3,)]"""
    return [tuple(item) for item in value]


def items_as_tuples_in_a_tuple(value):
    """[[1, 2], [3]] -> ((1, 2), (3,))"""
    return tuple(tuple(item) for item in value)


def list_items_as_tuples_in_a_tuple(value):
    """[1, [2, 3]] -> (1, (2, 3)): only the items that are lists become tuples."""
    return tuple(tuple(item) if isinstance(item, list) else item for item in value)


def items_as_sets(value):
    """[[1, 2], []] -> [{1, 2}, {}]: as evalplus converts Mbpp/115's input, an empty list becomes an empty dict
    (`{}`), which the task's functions treat as an empty collection."""
    return [set(item) if isinstance(item, list) and item else {} for item in value]


def values_as_tuples(value):
    """{"a": [1, 2]} -> {"a": (1, 2)}"""
    return {key: tuple(item) for key, item in value.items()}


def lists_as_tuples(value):
    """Every list, at any depth, becomes a tuple."""
    return tuple(lists_as_tuples(item) for item in value) if isinstance(value, list) else value


EVERY = "*"  # the converter applies to every argument

# MBPP task number -> {argument index (or EVERY): converter}; arguments not named keep their JSON shape
ARG_SHAPES: dict[int, dict] = {
    **{n: {EVERY: as_tuple} for n in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596,
                                      616, 630, 726, 740, 744, 809)},
    **{n: {EVERY: items_as_tuples} for n in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780)},
    **{n: {0: items_as_tuples} for n in (75, 413, 444, 753)},
    **{n: {1: as_tuple} for n in (106, 750)},
    115: {0: items_as_sets},
    124: {0: float, 1: complex},
    **{n: {0: as_tuple} for n in (250, 307, 405, 446, 617, 720, 763, 808)},
    **{n: {EVERY: items_as_tuples_in_a_tuple} for n in (259, 401, 445)},
    278: {0: list_items_as_tuples_in_a_tuple},
    722: {0: values_as_tuples},
    252: {0: complex},
}
# MBPP task number -> converter of the whole argument list
WHOLE_INPUT: dict[int, Callable] = {n: lists_as_tuples for n in (580, 615, 791)}


def task_number(task_id: str) -> int | None:
    """"Mbpp/115" -> 115; None for anything else (HumanEval+ inputs are used as stored)."""
    prefix, _, number = task_id.partition("/")
    return int(number) if prefix == "Mbpp" and number.isdigit() else None


def deserialize_inputs(task_id: str, inputs: list) -> list:
    """The task's inputs (a list of argument lists) in the shapes its function takes."""
    n = task_number(task_id)
    if n in WHOLE_INPUT:
        return [list(WHOLE_INPUT[n](args)) for args in inputs]
    shapes = ARG_SHAPES.get(n)
    if not shapes:
        return inputs
    return [[shapes.get(i, shapes.get(EVERY, _same))(arg) for i, arg in enumerate(args)] for args in inputs]


def _same(value):
    return value
