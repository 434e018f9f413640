"""A stage's output with run.average_last (train/stage_output.py): the mean of its last kept checkpoints, what the
next stage starts from and what a resumed run writes again; the recipe check; the time-to-target candidates."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import tiny_recipe  # noqa: E402

from opencodegen.errors import UserError  # noqa: E402
from opencodegen.quickstart import targets  # noqa: E402
from opencodegen.train import recipe_from_dict, train  # noqa: E402
from opencodegen.train import stage as stage_module  # noqa: E402


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def averaging_recipe(root: Path) -> dict:
    data = tiny_recipe(root)
    data["stages"][0]["steps"] = 5
    data["stages"][0]["run"] = {"keep_last": 3, "average_last": 2}  # checkpoints 2, 4, 5: the output is 4 and 5's mean
    return data


@pytest.fixture
def started_from(monkeypatch) -> list:
    """The `init` each stage was set up with (None: a fresh model, or a resumed stage)."""
    seen = []
    setup = stage_module.Stage.setup
    monkeypatch.setattr(stage_module.Stage, "setup",
                        lambda self, init, resume: seen.append(init) or setup(self, init, resume))
    return seen


def test_the_next_stage_starts_from_the_mean_of_the_last_checkpoints(tmp_path, started_from):
    data = averaging_recipe(tmp_path)
    summary = train(recipe_from_dict(data), tmp_path / "run", progress=False)
    first = tmp_path / "run" / "stage-0-nl"
    assert sorted(p.name for p in first.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-5"]
    mean, w4, w5 = weights(first / "average"), weights(first / "checkpoint-4"), weights(first / "checkpoint-5")
    assert set(mean) == set(w5)
    for name in w5:
        assert torch.equal(mean[name], ((w4[name].float() + w5[name].float()) / 2).to(w5[name].dtype)), name
    assert json.loads((first / "average" / "averaged.json").read_text())["checkpoints"] == [
        str(first / "checkpoint-4"), str(first / "checkpoint-5")]
    assert started_from == [None, first / "average"]
    # the last stage keeps average_last 1: the run's final checkpoint is its last checkpoint as it is
    assert summary["final_checkpoint"] == str(tmp_path / "run" / "stage-1-mono" / "checkpoint-4")


def test_a_run_resumed_after_the_stage_ended_writes_the_same_mean(tmp_path, started_from):
    data = averaging_recipe(tmp_path)
    data["stages"] = data["stages"][:1]
    run = tmp_path / "run"
    summary = train(recipe_from_dict(data), run, progress=False)
    average = run / "stage-0-nl" / "average"
    assert summary["final_checkpoint"] == str(average)  # the last stage's output is the run's final checkpoint
    expected = weights(average)
    shutil.rmtree(average)  # killed between the stage's last checkpoint and its mean
    data["stages"] = averaging_recipe(tmp_path)["stages"]
    train(recipe_from_dict(data), run, progress=False)
    assert started_from[-1] == average
    assert all(torch.equal(weights(average)[k], v) for k, v in expected.items())


def test_a_mean_of_other_checkpoints_is_written_again(tmp_path):
    data = averaging_recipe(tmp_path)
    data["stages"] = data["stages"][:1]
    run = tmp_path / "run"
    train(recipe_from_dict(data), run, progress=False)
    first = run / "stage-0-nl"
    expected = weights(first / "average")
    shutil.rmtree(first / "average")
    shutil.copytree(first / "checkpoint-2", first / "average")  # as if left from a shorter run of this stage
    (first / "average" / "averaged.json").write_text(json.dumps({"checkpoints": [str(first / "checkpoint-2")]}))
    train(recipe_from_dict(data), run, progress=False)
    assert all(torch.equal(weights(first / "average")[k], v) for k, v in expected.items())


def test_average_last_beyond_the_kept_checkpoints_is_refused(tmp_path):
    data = tiny_recipe(tmp_path)
    data["stages"][0]["run"] = {"keep_last": 2, "average_last": 3}
    with pytest.raises(UserError, match=r"stages\[0\] \(nl\): run.average_last \(3\) must be between 1 and keep_last"):
        recipe_from_dict(data)


def test_time_to_target_scores_the_averaged_output_after_its_stages_checkpoints(tmp_path):
    data = averaging_recipe(tmp_path)
    data["stages"][0]["kind"] = "pretrain"
    data["stages"][1]["run"] = {"keep_last": 3, "average_last": 2}
    data["stages"][1]["steps"] = 3
    recipe = recipe_from_dict(data)
    train(recipe, tmp_path / "run", progress=False)
    # both stages are pretraining here: the last one's checkpoints stand for post-training's
    found = [(c.stage, c.step, Path(c.path).name) for c in targets.candidates(tmp_path / "run", recipe)]
    assert found == [("mono", 3, "checkpoint-3"), ("mono", 3, "average")]
