"""evalplus's comparison, reproduced in evalplus_oracle.same_output, against values worked out by hand from evalplus's
rules (exact equality; atol 1e-6 for float outputs, kept for the problem's later inputs; type and length before
closeness with rtol 1e-7; the problem-specific oracles of HumanEval/32 and MBPP+)."""

from __future__ import annotations

import math

from opencodegen.eval.evalplus_oracle import all_close, padded_digit_distance, pyramid_surface, same_output


def test_exact_and_float_tolerance():
    assert same_output("humaneval", "f", [], [1, 2], [1, 2], 0.0) == (True, 0.0)
    assert same_output("humaneval", "f", [], [1, 2], [1, 3], 0.0) == (False, 0.0)
    # a float output gets atol 1e-6: 0.3 + 5e-7 is within 1e-6 + 1e-7 * 0.3; 0.3 + 2e-6 is not
    assert same_output("humaneval", "f", [], 0.3 + 5e-7, 0.3, 0.0) == (True, 1e-6)
    assert same_output("humaneval", "f", [], 0.3 + 2e-6, 0.3, 0.0) == (False, 1e-6)
    # rtol: |a - b| <= 1e-6 + 1e-7 * |b|; at b = 1e6 that is 0.1000001
    assert same_output("humaneval", "f", [], 1e6 + 0.1, 1e6, 0.0)[0]
    assert not same_output("humaneval", "f", [], 1e6 + 0.11, 1e6, 0.0)[0]
    # an int where a float is expected is never close (evalplus checks the type first)
    assert same_output("humaneval", "f", [], 3, 3.0000001, 0.0) == (False, 1e-6)
    # the tolerance, once set by a float output, applies to the next (integer list) output of the same run
    assert same_output("humaneval", "f", [], [0.0000001, 0], [0, 0], 1e-6) == (True, 1e-6)
    assert same_output("humaneval", "f", [], [0.0000001, 0], [0, 0], 0.0) == (False, 0.0)
    # an inexact output must have the expected type and length
    assert not same_output("humaneval", "f", [], (0.1 + 1e-9, 0.2), [0.1, 0.2], 0.0)[0]
    assert not same_output("humaneval", "f", [], [0.1, 0.2, 0.0], [0.1, 0.2], 0.0)[0]
    assert same_output("humaneval", "f", [], [0.1 + 1e-9, 0.2], [0.1, 0.2], 0.0)[0]
    # the problem's own atol
    assert same_output("humaneval", "f", [], 2.004, 2.0, 0.01) == (True, 0.01)
    # NaN is close to nothing, infinity only to itself; strings are never "close"
    assert not same_output("humaneval", "f", [], math.nan, math.nan, 0.0)[0]
    assert not all_close(math.inf, 1e308, 1e-6) and all_close(-math.inf, -math.inf, 1e-6)
    assert not same_output("humaneval", "f", [], "a", "b", 1e-3)[0]


def test_find_zero_accepts_any_root():
    # -2 + x^2: both +-sqrt(2) are roots; the reference found the positive one
    assert same_output("humaneval", "find_zero", [[-2, 0, 1]], -math.sqrt(2), math.sqrt(2), 1e-4)[0]
    assert not same_output("humaneval", "find_zero", [[-2, 0, 1]], 1.0, math.sqrt(2), 1e-4)[0]
    assert not same_output("humaneval", "find_zero", [[-2, 0, 1]], "x", math.sqrt(2), 1e-4)[0]
    # only in HumanEval: an MBPP function of that name is compared normally
    assert not same_output("mbpp", "find_zero", [[-2, 0, 1]], -math.sqrt(2), math.sqrt(2), 1e-4)[0]


def test_mbpp_special_oracles():
    assert same_output("mbpp", "are_equivalent", [6, 7], False, True, 0.0)[0]
    assert same_output("mbpp", "sum_div", [8], 0, 7, 0.0)[0] and not same_output("mbpp", "sum_div", [8], 6, 7, 0.0)[0]
    # Mbpp/581 with base 4, height 3: slant sqrt(4 + 9) = 3.6056, 16 + 2 * 4 * 3.6056 = 44.84 -> 45
    assert pyramid_surface(4, 3) == 45
    assert same_output("mbpp", "surface_Area", [4, 3], 45, 40, 0.0)[0]
    assert not same_output("mbpp", "surface_Area", [4, 3], 44, 40, 0.0)[0]
    # Mbpp/558: 123 vs 56 padded to 056: |1-0| + |2-5| + |3-6| = 7
    assert padded_digit_distance(123, 56) == 7
    assert same_output("mbpp", "digit_distance_nums", [123, 56], 7, 4, 0.0)[0]
    assert same_output("mbpp", "similar_elements", [], [5, 4], (4, 5), 0.0)[0]
    assert not same_output("mbpp", "similar_elements", [], [5], (4, 5), 0.0)[0]
    assert not same_output("mbpp", "similar_elements", [], 5, (4, 5), 0.0)[0]
    assert same_output("mbpp", "check_str", ["annie"], True, True, 0.0)[0]
    assert same_output("mbpp", "check_str", ["dawood"], None, False, 0.0)[0]
    assert not same_output("mbpp", "check_str", ["dawood"], "x", False, 0.0)[0]
    assert not same_output("humaneval", "similar_elements", [], [5, 4], (4, 5), 0.0)[0]


def test_numpy_outputs_are_compared_as_the_reference_outputs_were_recorded():
    """The reference's outputs are recorded as Python values (numpy's .tolist()); a candidate's numpy output, which
    now reaches the judge as a numpy value, is put in that form first, so a float within tolerance still passes."""
    import numpy as np
    from opencodegen.eval.evalplus_oracle import as_recorded
    recorded = as_recorded([np.float64(0.5), (np.int64(2), {"k": np.array([1, 2])}), {np.int32(3)}])
    assert recorded == [0.5, (2, {"k": [1, 2]}), {3}]
    assert [type(recorded[0]), type(recorded[1][0]), type(recorded[1][1]["k"])] == [float, int, list]
    # np.float64 within 1e-6 of a recorded float: the same verdict a Python float gets (types match after as_recorded)
    assert same_output("mbpp", "f", [], np.float64(0.3 + 5e-7), 0.3, 0.0) == (True, 1e-6)
    assert same_output("mbpp", "f", [], np.array([1.0, 2.0 + 1e-9]), [1.0, 2.0], 0.0)[0]
    assert not same_output("mbpp", "f", [], np.int64(3), 3.0000001, 0.0)[0]
