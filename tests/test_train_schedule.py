"""Refitting the stages left to the time left: hand-computed step counts at the pace the finished stages kept."""

from __future__ import annotations

import pytest

from opencodegen.quickstart.train_plan import OVERHEAD_SHARE
from opencodegen.quickstart.train_schedule import refit

NAMES = ["a", "b", "c"]
# 10 + 20 + 30 steps of ten seconds: 600 s of steps, which the plan fits to 600 / 0.9 s of wall time (each stage long
# enough to set the pace: MIN_PACE_SECONDS)
PLAN = {"steps": [10, 20, 30], "seconds_per_step": [10.0, 10.0, 10.0], "sft_caps": {}}
BUDGET = 600 / (1 - OVERHEAD_SHARE)


def test_before_any_stage_the_plan_stands():
    assert refit(PLAN, NAMES, {}, BUDGET) == pytest.approx([10, 20, 30])


def test_a_stage_that_ran_twice_as_slow_shrinks_the_rest_to_the_time_left():
    # a's 10 steps were predicted at 111 s of wall time and took 222: pace 2. 444 s are left for b and c, whose
    # 50 steps would now take 1,111 s: each keeps 0.4 of its steps.
    done = {"a": {"steps": 10, "seconds": 2 * 100 / (1 - OVERHEAD_SHARE)}}
    assert refit(PLAN, NAMES, done, BUDGET) == pytest.approx([8, 12])


def test_a_faster_machine_grows_the_rest_but_not_past_a_stage_cap():
    done = {"a": {"steps": 10, "seconds": 0.5 * 100 / (1 - OVERHEAD_SHARE)}}  # pace 0.5: 611 s left at half the time
    assert refit(PLAN, NAMES, done, BUDGET) == pytest.approx([20 * 2.2, 30 * 2.2])
    capped = {**PLAN, "sft_caps": {"c": {"max_steps": 40.0}}}
    # c stops at 40 steps (40 x 5 / 0.9 = 222 s): b gets the other 389 s, 70 steps
    assert refit(capped, NAMES, done, BUDGET) == pytest.approx([70, 40])


def test_a_stage_too_short_to_time_the_machine_leaves_the_pace_to_the_plan():
    """A stage predicted under MIN_PACE_SECONDS pays mostly its setup and checkpoint, whatever its steps: its pace
    is not the machine's. Its seconds still come off the time left (here exactly its predicted 11.1 s, spent at pace
    2 as 22.2: the other stages share 11.1 s less)."""
    from opencodegen.quickstart.train_schedule import MIN_PACE_SECONDS
    short = {**PLAN, "seconds_per_step": [1.0, 10.0, 10.0]}
    budget = (10 + 500) / (1 - OVERHEAD_SHARE)
    assert 10 / (1 - OVERHEAD_SHARE) < MIN_PACE_SECONDS
    done = {"a": {"steps": 10, "seconds": 2 * 10 / (1 - OVERHEAD_SHARE)}}
    # 544.4 s of wall time left at pace 1 for 50 steps of 11.1 s: 49 of them, in the plan's 20 : 30 (at a's pace 2,
    # 24.5)
    assert refit(short, NAMES, done, budget) == pytest.approx([19.6, 29.4])


def test_no_time_left_still_trains_each_stage_two_steps():
    done = {"a": {"steps": 10, "seconds": 2 * BUDGET}}
    assert refit(PLAN, NAMES, done, BUDGET) == [2.0, 2.0]


def test_a_refitted_post_training_stage_spreads_its_checkpoints_over_its_new_steps():
    """The time-to-target evaluation scores a post-training stage's kept checkpoints: with 208 steps instead of the
    planned 206, they are at 70, 140 and 208, not at 138, 207 and 208 (the plan's spacing of 69)."""
    from types import SimpleNamespace

    from opencodegen.quickstart.train_plan import POST_TRAINING_CHECKPOINTS
    from opencodegen.quickstart.train_schedule import with_schedule

    stages = [SimpleNamespace(name="mono", kind="pretrain", steps=1028, tokens=None, run={}),
              SimpleNamespace(name="sft", kind="sft", steps=206, tokens=None, run={"save_every": 69, "keep_last": 3})]
    out = with_schedule(SimpleNamespace(stages=stages), {"stages": {"mono": {"steps": 1125}, "sft": {"steps": 208}}})
    assert [s.steps for s in out.stages] == [1125, 208]
    assert out.stages[0].run == {}
    assert out.stages[1].run == {"save_every": 70, "keep_last": POST_TRAINING_CHECKPOINTS}
    assert stages[1].steps == 206  # the recipe given is not changed


def test_a_pretraining_stage_before_post_training_gets_a_time_allowance_at_the_pace_so_far():
    """Hand-computed: nl took twice its predicted time (pace 2), so mono's 100 steps of 9 s are fitted at 2,000 s
    (9 * 2 / 0.9 a step) and may run PRETRAIN_ALLOWANCE times that; the last pretraining stage of a run with no
    post-training, and post-training itself, are not limited."""
    from opencodegen.quickstart.train_schedule import PRETRAIN_ALLOWANCE, allowance

    plan = {"seconds_per_step": [9.0, 9.0, 20.0], "steps": [10, 100, 50]}
    names, kinds = ["nl", "mono", "sft"], ["pretrain", "pretrain", "sft"]
    done = {"nl": {"steps": 10, "seconds": 200.0}}
    assert allowance(plan, names, kinds, done, 1, 100) == pytest.approx(PRETRAIN_ALLOWANCE * 2000.0)
    assert allowance(plan, names, kinds, done, 2, 50) is None
    assert allowance(plan, names[:2], kinds[:2], done, 1, 100) is None
    # a stage that stopped early is paced by the steps it ran: 5 steps in 200 s is pace 4
    stopped = {"nl": {"steps": 10, "stopped_at": 5, "seconds": 200.0}}
    assert allowance(plan, names, kinds, stopped, 1, 100) == pytest.approx(PRETRAIN_ALLOWANCE * 4000.0)


def test_a_stage_whose_time_ran_out_counts_the_steps_it_reached():
    from types import SimpleNamespace

    from opencodegen.quickstart.train_schedule import with_schedule

    stages = [SimpleNamespace(name="mono", kind="pretrain", steps=1028, tokens=None, run={}),
              SimpleNamespace(name="sft", kind="sft", steps=206, tokens=None, run={})]
    schedule = {"stages": {"mono": {"steps": 1125, "stopped_at": 980, "max_seconds": 812.5},
                           "sft": {"steps": 208, "max_seconds": None}}}
    out = with_schedule(SimpleNamespace(stages=stages), schedule)
    assert [s.steps for s in out.stages] == [980, 208]
    assert out.stages[0].run == {"max_seconds": 812.5} and "max_seconds" not in out.stages[1].run


def test_a_last_stage_whose_rate_is_constant_trains_until_the_time_left_is_used():
    """RL's learning rate is constant (lr_end == lr), so its fitted steps bound nothing: it gets OPEN_ENDED_STEPS
    times them and the time left but for the plan's overhead share. A decaying rate, or any stage but the last,
    keeps its fitted steps."""
    from types import SimpleNamespace

    from opencodegen.quickstart.train_schedule import OPEN_ENDED_STEPS, open_ended
    from opencodegen.train.recipe import OptimConfig

    def recipe(*optims):
        return SimpleNamespace(stages=optims, stage_optim=lambda i: optims[i])

    constant, decaying = OptimConfig(lr=1e-4, lr_end=1e-4, warmup_steps=5), OptimConfig(lr=1e-4, lr_end=1e-5)
    assert open_ended(recipe(decaying, constant), 1, 80, 700.0) == (OPEN_ENDED_STEPS * 80,
                                                                    pytest.approx(700 * (1 - OVERHEAD_SHARE)))
    assert open_ended(recipe(decaying, decaying), 1, 80, 700.0) is None
    assert open_ended(recipe(constant, decaying), 0, 80, 700.0) is None


def test_a_length_free_schedule_gives_each_step_the_same_rate_whatever_the_length():
    from opencodegen.train.optim import length_free, lr_at
    from opencodegen.train.recipe import OptimConfig

    for o in (OptimConfig(lr=2e-4, lr_end=2e-4, warmup_steps=3), OptimConfig(lr=2e-4, lr_end=2e-4, schedule="wsd")):
        assert length_free(o)
        assert [lr_at(s, 10, o) for s in range(10)] == [lr_at(s, 40, o) for s in range(10)]
    decaying = OptimConfig(lr=2e-4, lr_end=2e-5, warmup_steps=3)
    assert not length_free(decaying) and lr_at(8, 10, decaying) != lr_at(8, 40, decaying)
