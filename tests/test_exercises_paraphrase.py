"""The synthetic drafts' surface variation: other names and wordings, the same meaning and code."""

import builtins
import random
import re
from collections import Counter

import pytest

from opencodegen.exercises import paraphrase, synthetic

SHARES = ("VERB_SHARE", "GIVEN_SHARE", "DEFINITE_SHARE", "MBPP_SHARE", "TERSE_SHARE")


@pytest.fixture
def only(monkeypatch):
    """Turn on exactly the named rewrites."""
    def set_shares(**on):
        for name in SHARES:
            monkeypatch.setattr(paraphrase, name, on.get(name, 0.0))
    return set_shares


def test_true_false_requests_become_checks(only):
    only(VERB_SHARE=1.0)
    doc = "Return True if every number in xs is even, and False otherwise. An empty list gives True."
    worded = {paraphrase.reword(doc, [("xs", "list[int]")], random.Random(i)) for i in range(40)}
    assert "Check if every number in xs is even. An empty list gives True." in worded
    assert "Return whether every number in xs is even. An empty list gives True." in worded
    assert all(w.endswith(" An empty list gives True.") and "every number in xs is even" in w for w in worded)


def test_given_names_every_parameter_with_its_type(only):
    only(GIVEN_SHARE=1.0)
    doc = paraphrase.reword("Return how many times k occurs in nums.", [("nums", "List[int]"), ("k", "int")],
                            random.Random(0))
    assert doc == "Given a list of integers nums and an integer k, return how many times k occurs in nums."


def test_a_parameter_of_unknown_type_gets_no_given(only):
    only(GIVEN_SHARE=1.0)
    doc = "Return the sum of the values of d."
    assert paraphrase.reword(doc, [("d", "dict[str, int]")], random.Random(0)) == doc


def test_the_only_parameter_becomes_the_given_one(only):
    only(DEFINITE_SHARE=1.0)
    worded = paraphrase.reword("Return the largest of the numbers in scores.", [("scores", "list[int]")],
                               random.Random(0))
    assert re.fullmatch(r"Return the largest of the numbers in (the given list|the input list|the list)\.", worded)
    # Named twice, or inside a literal, the name stays: replacing it could change what the sentence asks.
    twice = "Return scores sorted, or scores itself if it is empty."
    assert paraphrase.reword(twice, [("scores", "list[int]")], random.Random(0)) == twice
    quoted = "Return s with every 's' removed, and s itself otherwise."
    assert paraphrase.reword(quoted, [("s", "str")], random.Random(0)) == quoted


def test_terse_wording_leaves_literals_alone(only):
    only(TERSE_SHARE=1.0)
    doc = "Return the words of text joined by ' the ', or 'the end' if there are none; the same word twice is kept."
    assert paraphrase.reword(doc, [("text", "str")], random.Random(0)) == \
        "Return words of text joined by ' the ', or 'the end' if there are none; the same word twice is kept."
    # A parameter called `the` keeps its name in the sentence.
    assert paraphrase.reword("Return the digits of the.", [("the", "int")], random.Random(0)) == \
        "Return the digits of the."


def test_mbpp_wording(only):
    only(MBPP_SHARE=1.0)
    worded = paraphrase.reword("Count how many numbers in xs are odd.", [("xs", "list[int]")], random.Random(1))
    assert re.fullmatch(r"Write a (python )?function to count how many numbers in xs are odd\.", worded)


def test_rename_never_shadows_what_the_code_uses():
    taken = {"sum", "total", "xs", "solve", "compute"}
    names = {paraphrase.rename("sum_of_squares_even", taken, random.Random(i)) for i in range(200)}
    assert "sum_of" in names and len(names) > 5
    for name in names:
        assert name.isidentifier() and not hasattr(builtins, name) and name not in taken
    # No free short name: the original stays.
    assert paraphrase.rename("count", set(paraphrase.GENERIC_NAMES), random.Random(0)) == "count"


def test_drafts_vary_their_surface_but_not_their_code():
    rng = random.Random(5)
    drafts = [synthetic.draft(rng) for _ in range(2000)]
    openings = Counter(d.doc.split()[0] for d in drafts)
    assert openings["Return"] < 0.75 * len(drafts)
    assert {"Given", "Write", "Check", "Compute", "Count"} <= set(openings)
    generic = sum(d.name in paraphrase.GENERIC_NAMES for d in drafts)
    assert 0.1 * len(drafts) < generic < 0.4 * len(drafts)
    for d in drafts:  # a new name never shadows a name the body uses
        assert d.name not in set(re.findall(r"\w+", d.solution())), d
