"""Learnability sampling for RL: family weights p(1 - p) of decayed pass counts (hand-computed here), draws that follow
them, and a state that survives a checkpoint or is refused when the exercises changed."""

from __future__ import annotations

import numpy as np
import pytest

from opencodegen.errors import UserError
from opencodegen.train.curriculum import LearnabilityCurriculum, family_of
from opencodegen.train.examples import Example


def _ex(ident: str, recipe: str | None) -> Example:
    return Example(id=ident, prompt="", source="data/exercises.jsonl", meta={"recipe": recipe} if recipe else {})


EXAMPLES = ([_ex(f"synthetic/0/{i}", "floats/mean/x") for i in range(6)]
            + [_ex(f"synthetic/0/{10 + i}", "sets/same/ints") for i in range(2)]
            + [_ex("mined/stdlib/a.py:3", None), _ex("mined/stdlib/b.py:9", None)])


def test_a_family_is_the_recipes_first_part_else_the_ids_else_the_file():
    assert [family_of(e) for e in (EXAMPLES[0], EXAMPLES[6], EXAMPLES[8])] == ["floats", "sets", "mined"]
    assert family_of(_ex("task-17", None)) == "data/exercises.jsonl"  # a row of someone else's file


def test_weights_are_p_times_one_minus_p_of_the_decayed_counts():
    c = LearnabilityCurriculum(EXAMPLES, decay=0.5, floor=0.01)
    assert c.families == ["floats", "mined", "sets"]
    assert np.allclose(c.weights(), [1 / 3] * 3)  # no counts yet: every family at p = 1/2
    c.update([8, 4, 0], [8, 8, 8])  # floats always pass, mined half the time, sets never
    c.update([0, 0, 0], [0, 0, 0])  # a step that drew none of them: the counts halve
    p = np.array([5 / 6, 3 / 6, 1 / 6])  # (passes + 1) / (samples + 2) with passes 4, 2, 0 of samples 4, 4, 4
    assert np.allclose(c.pass_rates(), p)
    w = p * (1 - p) + 0.01
    assert np.allclose(c.weights(), w / w.sum())


def test_draws_follow_the_weights_and_pick_uniformly_within_a_family():
    c = LearnabilityCurriculum(EXAMPLES, decay=1.0)
    c.update([40, 20, 0], [40, 40, 40])
    picks = c.draw(np.random.default_rng(0), 20000)
    fam = np.array([family_of(EXAMPLES[k]) for k in picks])
    share = {f: float(np.mean(fam == f)) for f in c.families}
    for f, w in zip(c.families, c.weights()):
        assert abs(share[f] - w) < 0.015, (share, c.weights())
    floats = [k for k in picks if family_of(EXAMPLES[k]) == "floats"]
    counts = np.bincount(floats, minlength=6)[:6]
    assert counts.min() > 0.8 * counts.mean()  # the six floats exercises about equally often


def test_counts_add_each_groups_passes_to_its_family():
    c = LearnabilityCurriculum(EXAMPLES)
    passes, samples = c.counts([0, 6, 1, 8], [3, 1, 2, 0], [4, 4, 4, 4])
    assert passes == [5, 0, 1] and samples == [8, 4, 4]


def test_state_round_trips_and_another_set_of_families_is_refused():
    c = LearnabilityCurriculum(EXAMPLES, decay=0.9)
    c.update([3, 1, 0], [4, 4, 4])
    d = LearnabilityCurriculum(EXAMPLES, decay=0.9)
    d.load_state_dict(c.state_dict())
    rng_c, rng_d = np.random.default_rng(7), np.random.default_rng(7)
    assert c.draw(rng_c, 50) == d.draw(rng_d, 50)
    with pytest.raises(UserError, match="exercise families"):
        LearnabilityCurriculum(EXAMPLES[:6]).load_state_dict(c.state_dict())
