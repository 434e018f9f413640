"""The quickstart's shape rule: of the candidates either side of the tokens-per-parameter ratio, the nearer in log,
from timings."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import tiny_recipe  # noqa: E402

from opencodegen.model.transformer import GPT  # noqa: E402
from opencodegen.quickstart import shape_plan, train_plan  # noqa: E402
from opencodegen.train import recipe_from_dict  # noqa: E402
from opencodegen.train.loop import model_config  # noqa: E402


@functools.cache
def _params(n_layer: int, n_embd: int, vocab: int = 256) -> int:
    """Counted by hand: tied embedding, per block 2 LayerNorms, qkv/out projections, a 4x GELU MLP (all with
    biases where tiny-1m has them) and the final norm, read off the built module for the per-block part."""
    recipe = recipe_from_dict(tiny_recipe(Path("/tmp/ocg-shape-test")))
    model = GPT(model_config(shape_plan.with_shape(recipe, n_layer, n_embd)))  # allocated, unlike the plan's count
    block = sum(p.numel() for p in model.blocks[0].parameters())
    rest = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("blocks."))
    return rest + n_layer * block


def test_of_the_shapes_either_side_of_the_ratio_the_nearer_in_log_is_chosen(tmp_path):
    recipe = recipe_from_dict(tiny_recipe(tmp_path))
    timed = []

    def step_seconds(r, stage):  # a machine where a step costs a microsecond per parameter
        timed.append(r.model["n_embd"])
        return shape_plan.parameter_count(r) * 1e-6

    batch = recipe.stage_batch(1).batch_tokens
    seconds = 60.0
    name = "{}x{}".format
    # tokens/param = seconds / (params * 1e-6) * batch / params: ratios between the 2nd and 3rd candidates
    ratios = [seconds / (p * 1e-6) * batch / p for p in (_params(n, w) for n, w in shape_plan.CANDIDATES)]
    between = [ratios[2] ** (1 - f) * ratios[1] ** f for f in (0.4, 0.6)]  # nearer the 3rd, nearer the 2nd in log
    out = shape_plan.choose(recipe, seconds, between[1], step_seconds, 1)
    assert out["chosen"] == name(*shape_plan.CANDIDATES[1])
    assert timed == [w for _, w in shape_plan.CANDIDATES[:3]]  # timing stops at the first below the ratio
    assert [c["params"] for c in out["candidates"]] == [_params(n, w) for n, w in shape_plan.CANDIDATES]
    assert out["candidates"][1]["tokens_per_param"] == ratios[1]
    # short of the ratio by less than the 2nd exceeds it: the 3rd, the 4th never timed
    timed.clear()
    assert shape_plan.choose(recipe, seconds, between[0], step_seconds, 1)["chosen"] == name(*shape_plan.CANDIDATES[2])
    assert timed == [w for _, w in shape_plan.CANDIDATES[:3]]
    # none reaches the ratio: the smallest, however far below
    chosen = lambda ratio: shape_plan.choose(recipe, seconds, ratio, step_seconds, 1)["chosen"]  # noqa: E731
    assert chosen(ratios[0] * 100) == name(*shape_plan.CANDIDATES[0])
    # every one exceeds it: the largest
    assert chosen(ratios[-1] / 2) == name(*shape_plan.CANDIDATES[-1])


def test_the_plan_applies_the_chosen_shape(tmp_path):
    recipe = recipe_from_dict(tiny_recipe(tmp_path))
    plan = {"steps": [3, 5], "autocast": "fp32", "shape": {"n_layer": 5, "n_embd": 320}}
    out = train_plan.apply(recipe, plan)
    cfg = model_config(out)
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, [s.steps for s in out.stages]) == (5, 320, 5, [3, 5])


def test_a_calibrated_plan_scales_every_measured_step_and_so_chooses_a_larger_shape(tmp_path, monkeypatch):
    """calibration = training's seconds a step over a probe's: a plan whose probes ran twice as slow as training
    counts every step at half its probe, the stages' and the shape candidates' alike."""
    recipe = recipe_from_dict(tiny_recipe(tmp_path))
    monkeypatch.setattr(train_plan, "seconds_per_step",  # a microsecond per parameter, as above
                        lambda r, stage, probe_steps=None: shape_plan.parameter_count(r) * 1e-6)
    ratios = [60.0 / (p * 1e-6) * recipe.stage_batch(1).batch_tokens / p
              for p in (_params(n, w) for n, w in shape_plan.CANDIDATES)]
    # both stages pretrain, so they get all of the 60 s (the budget less the plan's 10% overhead share). At the
    # probes' times the threshold is nearer the 2nd candidate's ratio than the 3rd's in log; at half of them (every
    # ratio doubled) it is nearer the 3rd's
    threshold = 3 * ratios[2]
    assert (ratios[1] * ratios[2]) ** 0.5 < threshold < 2 * (ratios[1] * ratios[2]) ** 0.5
    plain = train_plan.plan(recipe, 1.0 / 0.9, threshold)
    halved = train_plan.plan(recipe, 1.0 / 0.9, threshold, calibration=0.5)
    assert plain["shape"]["chosen"] == "{}x{}".format(*shape_plan.CANDIDATES[1])
    assert halved["shape"]["chosen"] == "{}x{}".format(*shape_plan.CANDIDATES[2])  # twice the tokens per parameter
    assert halved["calibration"] == 0.5
    small = [c for c in plain["shape"]["candidates"] if c["shape"] == plain["shape"]["chosen"]][0]
    assert [c for c in halved["shape"]["candidates"] if c["shape"] == small["shape"]][0]["seconds_per_step"] == \
        small["seconds_per_step"] / 2


def _timed_stages(monkeypatch, recipe, fixed: float) -> list[tuple]:
    """A machine where a pretraining step costs a microsecond per parameter and the other stage's step that plus
    `fixed` seconds (as a sampling stage's does: its per-token work does not shrink with the model). Returns the log
    of (shape, stage, probe steps) timed."""
    calls = []

    def step_seconds(r, stage, probe_steps=train_plan.PROBE_STEPS):
        calls.append(((r.model["n_layer"], r.model["n_embd"]), stage, probe_steps))
        p = shape_plan.parameter_count(r) * 1e-6
        return p if r.stages[stage].kind == "pretrain" else p + fixed

    monkeypatch.setattr(train_plan, "seconds_per_step", step_seconds)
    return calls


def _choice_at(recipe, shape, ratio: float, minutes: float) -> tuple:
    """The shape the rule picks with the pretraining share that timing every stage at `shape` gives."""
    at = shape_plan.with_shape(recipe, *shape)
    per_step = [train_plan.seconds_per_step(at, i) for i in range(len(recipe.stages))]
    fitted = train_plan.fit_steps([s.steps for s in recipe.stages], per_step,
                                  minutes * 60 * (1 - train_plan.OVERHEAD_SHARE), {})
    out = shape_plan.choose(recipe, fitted[0] * per_step[0], ratio, train_plan.seconds_per_step, 0)
    return out["n_layer"], out["n_embd"]


def test_every_stage_is_timed_at_the_shape_that_trains(tmp_path, monkeypatch):
    """First at the smallest candidate (for pretraining's share of the budget), then at each shape chosen with the
    share timed at the one before, until the choice is the shape timed; never at the recipe's own shape. The plan's
    step times are the chosen shape's own."""
    recipe = recipe_from_dict(tiny_recipe(tmp_path))
    recipe.stages[1].kind = "sft"  # a stage whose cost does not scale with the model's alone
    calls = _timed_stages(monkeypatch, recipe, fixed=1.0)
    out = train_plan.plan(recipe, 2.0, 0.0016)  # a ratio at which this machine's choice moves twice (from a scan)
    probed = [shape for shape, stage, steps in calls if stage == 1]
    assert probed[0] == shape_plan.CANDIDATES[0]
    assert (1, 32) not in [shape for shape, _, _ in calls]
    assert len(probed) == 3  # the share timed at the second shape moved the choice once more
    for before, after in zip(probed, probed[1:]):
        assert _choice_at(recipe, before, 0.0016, 2.0) == after
    chosen = (out["shape"]["n_layer"], out["shape"]["n_embd"])
    assert chosen == probed[-1] == _choice_at(recipe, chosen, 0.0016, 2.0)
    at = shape_plan.with_shape(recipe, *chosen)
    assert out["seconds_per_step"] == [train_plan.seconds_per_step(at, i) for i in range(2)]
    # each candidate's pretraining step timed once, whichever rounds asked for it
    shape_probes = [shape for shape, _, steps in calls if steps == shape_plan.SHAPE_PROBE_STEPS]
    assert len(shape_probes) == len(set(shape_probes))


def test_a_choice_still_moving_after_the_last_round_scales_the_last_timed_shape(tmp_path, monkeypatch):
    recipe = recipe_from_dict(tiny_recipe(tmp_path))
    recipe.stages[1].kind = "sft"
    calls = _timed_stages(monkeypatch, recipe, fixed=5.0)
    out = train_plan.plan(recipe, 2.0, 0.000122)  # a ratio at which the choice still moves after three rounds
    probed = [shape for shape, stage, steps in calls if stage == 1]
    assert len(probed) == train_plan.SHAPE_ROUNDS
    chosen = (out["shape"]["n_layer"], out["shape"]["n_embd"])
    assert chosen != probed[-1]
    last = shape_plan.with_shape(recipe, *probed[-1])
    scale = shape_plan.parameter_count(shape_plan.with_shape(recipe, *chosen)) / shape_plan.parameter_count(last)
    assert out["seconds_per_step"] == pytest.approx([train_plan.seconds_per_step(last, i) * scale for i in range(2)])
